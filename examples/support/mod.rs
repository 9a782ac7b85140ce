//! What the examples share: flag parsing, the logger, the set-up every
//! server repeats (a listener, Ctrl-C, quiet resets, its first line), the
//! non-blocking write loop, and the registry that lets Ctrl-C end threads
//! blocked on a client.
//!
//! Each example includes it with `mod support;` (`selectors_echo`, which
//! has no event loop, uses the parts that need none). Cargo builds every file
//! directly under `examples/` as an example, but a directory only when it
//! has a `main.rs`: this one is not an example of its own.

// Each example uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Display;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::Mutex;

use anyhow::{anyhow, Context};
use selectloop::net::ListenerBuilder;
#[cfg(feature = "signals")]
use selectloop::{EventLoop, Signal};

// ----- flags ----------------------------------------------------------------

/// The command line, one flag at a time (parsed by `lexopt`: `--flag VALUE`
/// and `--flag=VALUE` both work).
///
/// ```ignore
/// let mut args = support::Args::from_env(USAGE);
/// while let Some(flag) = args.next_flag()? {
///     match flag.as_str() {
///         "--addr" => addr = args.value()?,
///         "--threads" => threads = args.positive()?,
///         _ => return Err(args.unknown()),
///     }
/// }
/// ```
pub struct Args {
    parser: lexopt::Parser,
    usage: &'static str,
    /// The flag last returned, for messages.
    flag: String,
}

impl Args {
    /// The process's arguments; `usage` is what `--help` prints.
    pub fn from_env(usage: &'static str) -> Args {
        Args {
            parser: lexopt::Parser::from_env(),
            usage,
            flag: String::new(),
        }
    }

    /// The next flag as written (`--addr`, `-x`), or `None` after the last.
    /// `-h` and `--help` print the usage and exit 0; an argument that is not
    /// a flag, or a value given to a flag that takes none, is an error.
    pub fn next_flag(&mut self) -> anyhow::Result<Option<String>> {
        use lexopt::Arg;
        let flag = match self.parser.next() {
            Ok(None) => return Ok(None),
            Ok(Some(Arg::Short('h') | Arg::Long("help"))) => {
                println!("{}", self.usage);
                std::process::exit(0);
            }
            Ok(Some(Arg::Short(c))) => format!("-{c}"),
            Ok(Some(Arg::Long(name))) => format!("--{name}"),
            Ok(Some(Arg::Value(value))) => {
                return Err(anyhow!("unexpected argument {value:?} (try --help)"))
            }
            Err(e) => return Err(anyhow!("{e} (try --help)")),
        };
        self.flag.clone_from(&flag);
        Ok(Some(flag))
    }

    /// The value of the flag just returned, parsed as a `T`.
    pub fn value<T>(&mut self) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let flag = &self.flag;
        let value = self
            .parser
            .value()
            .map_err(|_| anyhow!("{flag} needs a value (try --help)"))?;
        let value = value
            .into_string()
            .map_err(|value| anyhow!("{flag} {value:?}: not UTF-8"))?;
        value.parse().map_err(|e| anyhow!("{flag} {value:?}: {e}"))
    }

    /// [`value`](Args::value), which must be above zero (a count, a timeout).
    pub fn positive<T>(&mut self) -> anyhow::Result<T>
    where
        T: FromStr + PartialOrd + Default + Display,
        T::Err: Display,
    {
        let value: T = self.value()?;
        anyhow::ensure!(
            value > T::default(),
            "{} must be above {}",
            self.flag,
            T::default()
        );
        Ok(value)
    }

    /// The error for a flag the example does not have.
    pub fn unknown(&self) -> anyhow::Error {
        anyhow!("unknown argument {:?} (try --help)", self.flag)
    }
}

/// A TLS server's identity flags: `--cert FILE --key FILE`, or
/// `--self-signed` with `--cert-out FILE` (turned into a rustls config by
/// `support/tls_identity.rs`, in the examples built with `tls`).
#[derive(Clone, Debug, Default)]
pub struct TlsFlags {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub self_signed: bool,
    pub cert_out: Option<String>,
}

impl TlsFlags {
    /// Takes `flag` (and its value) if it is one of the TLS flags.
    pub fn take(&mut self, flag: &str, args: &mut Args) -> anyhow::Result<bool> {
        match flag {
            "--cert" => self.cert = Some(args.value()?),
            "--key" => self.key = Some(args.value()?),
            "--self-signed" => self.self_signed = true,
            "--cert-out" => self.cert_out = Some(args.value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether any TLS flag was given.
    pub fn any(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.self_signed || self.cert_out.is_some()
    }
}

// ----- logging --------------------------------------------------------------

/// Sends `log` records to stderr: the loop's own warnings and errors (a
/// failing callback under the default handler, a listener paused for want of
/// descriptors, a slow callback) and the error handler's below. `RUST_LOG`
/// chooses what is shown (e.g. `RUST_LOG=debug`, `RUST_LOG=off`); the default
/// is warnings and errors.
pub fn init_logger() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
}

// ----- a server's set-up ----------------------------------------------------

/// A listener on `addr` (`HOST:PORT`; port 0 picks one) as a server wants
/// it: backlog 1024 (std's 128 drops SYNs under a burst of connects),
/// SO_REUSEADDR on Unix only (on Windows it would let another socket take
/// the port over), non-blocking.
pub fn listen(addr: &str) -> anyhow::Result<TcpListener> {
    ListenerBuilder::new(addr)
        .build()
        .with_context(|| format!("binding {addr}"))
}

/// Ctrl-C stops the loop: `run` returns and the example exits cleanly.
#[cfg(feature = "signals")]
pub fn stop_on_ctrl_c(lp: &mut EventLoop) -> selectloop::Result<()> {
    lp.add_signal_handler(Signal::INT, |lp| {
        lp.stop();
        Ok(())
    })
}

/// The error handler a server wants: like the loop's default, it logs a
/// callback's error and unregisters (so closes) the failing source, but a
/// peer that reset the connection is routine and dropped without a word.
#[cfg(feature = "signals")]
pub fn drop_resets_quietly(lp: &mut EventLoop) {
    lp.set_error_handler(|lp, failure| {
        if !is_reset(&failure.error) {
            log::error!("{failure}; source dropped");
        }
        if let Some(token) = failure.token {
            let _ = lp.unregister(token);
        }
    });
}

/// Whether `e` says the peer reset or aborted the connection.
pub fn is_reset(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(is_reset_io)
}

/// [`is_reset`] for an `io::Error`.
pub fn is_reset_io(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

// ----- non-blocking I/O -----------------------------------------------------

/// Writes as much of `data` as the socket takes now (until it would block)
/// and returns how much that was; the caller keeps the rest for when the
/// socket is writable again. An interrupted write is retried.
pub fn write_some(stream: &mut impl Write, data: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < data.len() {
        match stream.write(&data[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

// ----- threads that block ---------------------------------------------------

/// The connections being served by threads with blocking I/O (a thread per
/// client, a pool), so that Ctrl-C can end them: such a thread sits in
/// `read` or `write` and sees no signal, but a socket shut down makes that
/// call return.
#[derive(Default)]
pub struct BlockingConns {
    inner: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    closed: bool,
    next: u64,
    open: HashMap<u64, TcpStream>,
}

impl BlockingConns {
    /// Serves `stream` with `serve` on this thread, recorded meanwhile. An
    /// error is printed as `client dropped: ...` unless the client reset.
    /// After [`close_all`](BlockingConns::close_all) the stream is dropped
    /// (closed) unserved.
    pub fn serve(&self, stream: TcpStream, serve: impl FnOnce(TcpStream) -> io::Result<()>) {
        let id = match self.add(&stream) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                eprintln!("client dropped: {e}");
                return;
            }
        };
        if let Err(e) = serve(stream) {
            if !is_reset_io(&e) {
                eprintln!("client dropped: {e}");
            }
        }
        self.lock().open.remove(&id);
    }

    /// Shuts every connection being served down (its thread's blocked read
    /// or write returns) and refuses new ones.
    pub fn close_all(&self) {
        let mut conns = self.lock();
        conns.closed = true;
        for (_, stream) in conns.open.drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Records a connection (a clone of its handle); `None` once closed.
    fn add(&self, stream: &TcpStream) -> io::Result<Option<u64>> {
        let mut conns = self.lock();
        if conns.closed {
            return Ok(None);
        }
        let id = conns.next;
        conns.next += 1;
        conns.open.insert(id, stream.try_clone()?);
        Ok(Some(id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        // A thread that panicked while holding it left the map consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ----- the first line -------------------------------------------------------

/// Prints a server's first line, `listening on ADDR`, and flushes it. Call it
/// once Ctrl-C is handled: whoever reads it (the tests do) may connect, or
/// interrupt, at once.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

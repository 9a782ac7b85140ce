//! The seeds' 100-socket echo client, on `EventLoop`, checking every byte.
//!
//! ```text
//! cargo run --release --example echo_client -- [--addr HOST:PORT] [--conns N] [--upper] [--timeout SECS]
//! cargo run --release --features tls --example echo_client -- --tls CA.pem [--server-name NAME] ...
//! ```
//!
//! - `--addr`: the echo server (default `127.0.0.1:9999`, where
//!   `cargo run --release --example echo` listens);
//! - `--conns N`: how many connections, all open at once (default 100);
//! - `--upper`: expect the reply upper-cased (for `echo --upper`);
//! - `--timeout SECS`: give up on connections not finished by then (default 10).
//! - `--tls CA.pem` (feature `tls`): talk TLS (`transport::tls::connect_tls`),
//!   trusting the certificates of that PEM file; `--server-name` is the name
//!   to verify (default: the host of `--addr`). The end of the messages is a
//!   `close_notify` and a half-close (`write_eof`), and the server's
//!   `close_notify` must follow the echo. Any TLS echo server will do, e.g.
//!   `socat openssl-listen:9443,reuseaddr,fork,cert=server.pem,verify=0 exec:cat`.
//!
//! On every connection it sends the seed's three messages (`"This is the
//! message. "`, `"It will be sent "`, `"in parts."`), each with a write of
//! its own, then half-closes and reads until the server closes. It exits 0
//! with a one-line summary when every connection got exactly its bytes back
//! followed by end of stream; otherwise it says on stderr what went wrong on
//! which connection (refused connect, wrong byte, early close, extra bytes,
//! timeout) and exits 1. Ctrl-C stops it, with a progress line, exit status 0.
//!
//! Better than the seed, which blocks on `connect`, assumes each `send` sends
//! everything and each `recv` returns one whole reply, and checks nothing:
//! connects are non-blocking (`EVENT_WRITE` says when one finished, and
//! `SO_ERROR` whether it worked), partial writes are kept and resumed,
//! replies are accumulated however the stream splits them and compared byte
//! for byte, and a dead or wrong server ends in a non-zero exit instead of a
//! hang or a silent pass.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use selectloop::net;
use selectloop::{EventLoop, Interest, Signal, EVENT_READ, EVENT_WRITE};

mod support;

/// The seed's messages, each sent with a `write` of its own.
const MESSAGES: [&[u8]; 3] = [b"This is the message. ", b"It will be sent ", b"in parts."];

struct Options {
    addr: String,
    conns: usize,
    upper: bool,
    timeout: Duration,
    /// `--tls CA.pem` and `--server-name`.
    tls: Option<(String, Option<String>)>,
}

const USAGE: &str = "usage: echo_client [--addr HOST:PORT] [--conns N] [--upper] [--timeout SECS] \
[--tls CA.pem [--server-name NAME]]";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:9999".into(),
        conns: 100,
        upper: false,
        timeout: Duration::from_secs(10),
        tls: None,
    };
    let mut server_name = None;
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--conns" => options.conns = args.positive()?,
            "--upper" => options.upper = true,
            "--tls" => options.tls = Some((args.value()?, None)),
            "--server-name" => server_name = Some(args.value()?),
            "--timeout" => {
                options.timeout =
                    Duration::try_from_secs_f64(args.positive()?).context("--timeout SECS")?;
            }
            _ => return Err(args.unknown()),
        }
    }
    match &mut options.tls {
        Some((_, name)) => *name = server_name,
        None if server_name.is_some() => anyhow::bail!("--server-name goes with --tls\n{USAGE}"),
        None => {}
    }
    if options.tls.is_some() && !cfg!(feature = "tls") {
        anyhow::bail!(
            "--tls needs the `tls` feature: cargo run --features tls --example echo_client"
        );
    }
    Ok(options)
}

/// What every connection shares: the expected reply and the tally.
struct Run {
    expected: Vec<u8>,
    /// Connections still going.
    open: usize,
    verified: usize,
    failures: Vec<String>,
    /// Whether each connection has finished (by index).
    finished: Vec<bool>,
}

impl Run {
    fn finish(&mut self, lp: &mut EventLoop, index: usize, outcome: Result<(), String>) {
        if std::mem::replace(&mut self.finished[index], true) {
            return;
        }
        match outcome {
            Ok(()) => self.verified += 1,
            Err(what) => self.failures.push(format!("connection {index}: {what}")),
        }
        self.open -= 1;
        if self.open == 0 {
            lp.stop();
        }
    }
}

/// One connection's progress.
struct Conn {
    index: usize,
    connected: bool,
    /// Which message is being sent, and how much of it went out.
    part: usize,
    offset: usize,
    /// Bytes received (and checked) so far.
    received: usize,
}

impl Conn {
    /// The callback: returns `Ok(true)` once the connection is done.
    fn on_ready(
        &mut self,
        stream: &mut TcpStream,
        mask: Interest,
        expected: &[u8],
    ) -> Result<bool, String> {
        if !self.connected {
            // EVENT_WRITE (or an error) on a connecting socket: it finished.
            net::finish_connect(stream).map_err(|e| format!("connect failed: {e}"))?;
            self.connected = true;
        }
        if mask.is_writable() {
            self.send(stream)?;
        }
        if mask.is_readable() {
            return self.receive(stream, expected);
        }
        Ok(false)
    }

    fn sending(&self) -> bool {
        self.part < MESSAGES.len()
    }

    /// Writes what the socket takes now, one `write` per message (a partial
    /// write is resumed next time); half-closes after the last one.
    fn send(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        while self.sending() {
            let message = MESSAGES[self.part];
            match stream.write(&message[self.offset..]) {
                Ok(n) => {
                    self.offset += n;
                    if self.offset == message.len() {
                        self.part += 1;
                        self.offset = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        // Everything sent: say so, so that a correct server closes after
        // echoing and extra bytes are caught.
        stream
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown failed: {e}"))
    }

    /// Reads what is there and checks it against the expected reply.
    fn receive(&mut self, stream: &mut TcpStream, expected: &[u8]) -> Result<bool, String> {
        let mut buf = [0u8; 4096];
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => {
                return Err(format!(
                    "read failed after {} of {} bytes: {e}",
                    self.received,
                    expected.len()
                ))
            }
        };
        if n == 0 {
            return if self.received == expected.len() {
                Ok(true)
            } else {
                Err(format!(
                    "server closed after {} of {} bytes",
                    self.received,
                    expected.len()
                ))
            };
        }
        check(self.received, &buf[..n], expected)?;
        self.received += n;
        Ok(false)
    }
}

/// Checks `data`, received after `received` bytes, against `expected`.
fn check(received: usize, data: &[u8], expected: &[u8]) -> Result<(), String> {
    for (i, &got) in data.iter().enumerate() {
        let at = received + i;
        match expected.get(at) {
            Some(&want) if want == got => {}
            Some(&want) => {
                return Err(format!(
                    "byte {at} is {got:#04x} {:?}, expected {want:#04x} {:?}",
                    got as char, want as char
                ))
            }
            None => {
                return Err(format!(
                    "server sent {} bytes more than the {} expected",
                    received + data.len() - expected.len(),
                    expected.len()
                ))
            }
        }
    }
    Ok(())
}

/// `--tls`: one connection as a transport protocol over TLS.
#[cfg(feature = "tls")]
mod over_tls {
    use std::cell::RefCell;
    use std::rc::Rc;

    use selectloop::transport::{Protocol, Transport};
    use selectloop::EventLoop;

    use super::{check, Run, MESSAGES};

    pub struct TlsConn {
        pub index: usize,
        pub run: Rc<RefCell<Run>>,
        pub received: usize,
    }

    impl TlsConn {
        fn finish(&mut self, lp: &mut EventLoop, outcome: Result<(), String>) {
            self.run.borrow_mut().finish(lp, self.index, outcome);
        }

        /// The server's end: everything must have come back first.
        fn ended(&mut self, lp: &mut EventLoop) {
            let expected = self.run.borrow().expected.len();
            let outcome = if self.received == expected {
                Ok(())
            } else {
                Err(format!(
                    "server closed after {} of {expected} bytes",
                    self.received
                ))
            };
            self.finish(lp, outcome);
        }
    }

    impl Protocol for TlsConn {
        /// After the handshake: the three messages, one write each, then
        /// `close_notify` and the half-close.
        fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
            for message in MESSAGES {
                t.write(message);
            }
            t.write_eof();
        }

        fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
            let outcome = check(self.received, data, &self.run.borrow().expected);
            self.received += data.len();
            if let Err(what) = outcome {
                self.finish(t.lp(), Err(what));
                t.abort();
            }
        }

        /// The server's `close_notify`.
        fn eof_received(&mut self, t: &mut Transport<'_, Self>) -> bool {
            self.ended(t.lp());
            false
        }

        fn connection_lost(&mut self, t: &mut Transport<'_, Self>, error: Option<std::io::Error>) {
            match error {
                // Ignored if the connection has finished already.
                Some(e) => self.finish(
                    t.lp(),
                    Err(format!(
                        "connection lost after {} bytes: {e}",
                        self.received
                    )),
                ),
                None => self.ended(t.lp()),
            }
        }

        fn connection_failed(&mut self, lp: &mut EventLoop, error: std::io::Error) {
            self.finish(lp, Err(format!("connect failed: {error}")));
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    support::init_logger();
    let options = parse_args()?;
    let addr = options
        .addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", options.addr))?
        .next()
        .with_context(|| format!("{} resolves to no address", options.addr))?;

    let mut expected: Vec<u8> = MESSAGES.concat();
    if options.upper {
        expected.make_ascii_uppercase();
    }
    let run = Rc::new(RefCell::new(Run {
        expected,
        open: options.conns,
        verified: 0,
        failures: Vec::new(),
        finished: vec![false; options.conns],
    }));

    let mut lp = EventLoop::new()?;
    let started = Instant::now();
    #[cfg(feature = "tls")]
    if let Some((ca, name)) = &options.tls {
        use selectloop::transport::tls::{connect_tls, TlsConnector};
        let mut connector =
            TlsConnector::from_ca_file(ca).with_context(|| format!("loading {ca}"))?;
        if let Some(name) = name {
            connector = connector.server_name(name);
        }
        for index in 0..options.conns {
            let conn = over_tls::TlsConn {
                index,
                run: Rc::clone(&run),
                received: 0,
            };
            connect_tls(
                &mut lp,
                &options.addr,
                Some(options.timeout),
                &connector,
                conn,
            )?;
        }
    }
    for index in (0..options.conns).filter(|_| options.tls.is_none()) {
        // Non-blocking, Nagle off; EVENT_WRITE tells when it has finished.
        let stream = match net::connect_nonblocking(addr) {
            Ok(stream) => stream,
            Err(e) => {
                run.borrow_mut()
                    .finish(&mut lp, index, Err(format!("connect failed: {e}")));
                continue;
            }
        };
        let mut conn = Conn {
            index,
            connected: false,
            part: 0,
            offset: 0,
            received: 0,
        };
        let shared = Rc::clone(&run);
        lp.register(
            stream,
            EVENT_READ | EVENT_WRITE,
            move |lp, stream: &mut TcpStream, ev| {
                let me = ev.token();
                let outcome = {
                    let run = shared.borrow();
                    conn.on_ready(stream, ev.mask(), &run.expected)
                };
                match outcome {
                    Ok(false) => {
                        if !conn.sending() {
                            lp.modify(me, EVENT_READ)?;
                        }
                    }
                    Ok(true) => {
                        lp.unregister(me)?;
                        shared.borrow_mut().finish(lp, conn.index, Ok(()));
                    }
                    Err(what) => {
                        lp.unregister(me)?;
                        shared.borrow_mut().finish(lp, conn.index, Err(what));
                    }
                }
                Ok(())
            },
        )?;
    }

    let timed_out = Rc::new(RefCell::new(false));
    let interrupted = Rc::new(RefCell::new(false));
    if run.borrow().open > 0 {
        let flag = Rc::clone(&timed_out);
        let watchdog = lp.call_later(options.timeout, move |lp| {
            *flag.borrow_mut() = true;
            lp.stop();
            Ok(())
        });
        let flag = Rc::clone(&interrupted);
        lp.add_signal_handler(Signal::INT, move |lp| {
            *flag.borrow_mut() = true;
            lp.stop();
            Ok(())
        })?;
        lp.run()?;
        watchdog.cancel();
    }
    let elapsed = started.elapsed();

    let mut run = run.borrow_mut();
    if *interrupted.borrow() {
        println!(
            "echo_client: interrupted; {} of {} connections verified so far",
            run.verified, options.conns
        );
        return Ok(ExitCode::SUCCESS);
    }
    if *timed_out.borrow() {
        let unfinished: Vec<usize> = (0..options.conns).filter(|&i| !run.finished[i]).collect();
        for &index in &unfinished {
            run.failures.push(format!(
                "connection {index}: not finished after {:?}",
                options.timeout
            ));
        }
    }
    if run.failures.is_empty() {
        println!(
            "echo_client: {} connections to {addr}, {} bytes each sent and verified, in {:.1?}",
            options.conns,
            run.expected.len(),
            elapsed
        );
        return Ok(ExitCode::SUCCESS);
    }
    const SHOWN: usize = 20;
    for what in run.failures.iter().take(SHOWN) {
        eprintln!("echo_client: {what}");
    }
    if run.failures.len() > SHOWN {
        eprintln!("echo_client: ... and {} more", run.failures.len() - SHOWN);
    }
    eprintln!(
        "echo_client: FAILED: {} of {} connections to {addr} failed ({} verified)",
        run.failures.len(),
        options.conns,
        run.verified
    );
    Ok(ExitCode::FAILURE)
}

//! Blocking work off the loop: the seeds' "asynchronous" upper-case echo
//! (seed 2), where a thread pool reads a file and a done-callback gets the
//! result, on `EventLoop::run_in_executor`.
//!
//! ```text
//! cargo run --release --example offload -- [--addr HOST:PORT]
//!     [--work-delay-ms MS] [--workers N]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:9999`; port 0 picks one);
//!   the first line printed is `listening on ADDR`, the address bound.
//! - `--work-delay-ms` (default 2000): how long each file read pretends to
//!   take (slow storage, a big computation), to make the point visible.
//! - `--workers N`: threads in the loop's pool (default: the number of
//!   CPUs, between 2 and 8).
//!
//! A line-based protocol; try it with `nc 127.0.0.1 9999` in two terminals:
//! - `READ <path>` reads the file on a worker thread (after the delay) and
//!   answers `<n> bytes`, or `ERROR <path>: <reason>`. A client's READs are
//!   answered in the order it sent them.
//! - Any other line comes back upper-cased at once, even while READs
//!   (this client's or another's) are under way: the loop is never blocked.
//!
//! The server tells the size of any file it can read to whoever connects:
//! keep it on a loopback address.
//!
//! What it does that the seed does not:
//! - The done-callback runs on the loop's thread (the seed's
//!   `add_done_callback` runs on the worker, racing the loop), so it can
//!   queue the answer on the connection without locks.
//! - Answers are written like everything else: what the socket does not
//!   take now waits for EVENT_WRITE, and while more than 64 KiB are pending
//!   the client is not read from. Lines are bounded too: one longer than
//!   64 KiB is echoed in pieces, never buffered whole (and is no command).
//! - A client that closes its sending side still gets the answers to its
//!   READs: the connection waits for them unregistered (a closed peer is
//!   readable forever, so watching it would spin), then is closed.
//! - A reset peer is dropped quietly; its READs finish and are discarded.
//! - Ctrl-C exits 0 at once: it also cuts the artificial delay of the READs
//!   under way, so shutting down does not wait for them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::TcpStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use selectloop::net;
use selectloop::{EventLoop, Interest, IoEvent, Signal, Token, EVENT_READ, EVENT_WRITE};

mod support;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// The longest line kept whole; a longer one is echoed in pieces.
const MAX_LINE: usize = 64 * 1024;
/// Past this many bytes of pending output, stop reading.
const OUT_HIGH: usize = 64 * 1024;

struct Options {
    addr: String,
    work_delay: Duration,
    workers: Option<usize>,
}

const USAGE: &str = "usage: offload [--addr HOST:PORT] [--work-delay-ms MS] [--workers N]";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:9999".into(),
        work_delay: Duration::from_secs(2),
        workers: None,
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--work-delay-ms" => options.work_delay = Duration::from_millis(args.value()?),
            "--workers" => options.workers = Some(args.positive()?),
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

/// Set once the server is shutting down; wakes the workers' delays.
#[derive(Default)]
struct Shutdown {
    stopping: Mutex<bool>,
    wake: Condvar,
}

impl Shutdown {
    fn start(&self) {
        *self.stopping.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits for `delay`, or less if the server stops; true if it stops.
    fn sleep(&self, delay: Duration) -> bool {
        let stopping = self.stopping.lock().unwrap_or_else(|e| e.into_inner());
        let (stopping, _) = self
            .wake
            .wait_timeout_while(stopping, delay, |stopping| !*stopping)
            .unwrap_or_else(|e| e.into_inner());
        *stopping
    }
}

/// The work done on a worker thread: the size of the file, read to the end.
fn count_bytes(path: &PathBuf, delay: Duration, shutdown: &Shutdown) -> io::Result<u64> {
    if shutdown.sleep(delay) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "server shutting down",
        ));
    }
    io::copy(&mut std::fs::File::open(path)?, &mut io::sink())
}

/// What every connection needs to know.
struct Config {
    work_delay: Duration,
    shutdown: Arc<Shutdown>,
}

/// One client, shared by its I/O callback and the done-callbacks of its READs.
struct Conn {
    config: Rc<Config>,
    /// Its registration; `None` while parked or closed.
    token: Option<Token<TcpStream>>,
    /// The socket, while the connection waits unregistered for READ answers.
    parked: Option<TcpStream>,
    /// The start of a line not complete yet.
    input: Vec<u8>,
    /// In a line longer than `MAX_LINE`, echoed as it comes.
    overlong: bool,
    /// Bytes not sent yet: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// The peer sent end of stream.
    eof: bool,
    /// READs are numbered as they arrive...
    next_read: u64,
    /// ...and answered in that order: the next to answer, and the answers
    /// that finished before it.
    next_answer: u64,
    finished: BTreeMap<u64, Vec<u8>>,
}

type Shared = Rc<RefCell<Conn>>;

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    fn reads_in_flight(&self) -> u64 {
        self.next_read - self.next_answer
    }

    fn can_read(&self) -> bool {
        !self.eof && self.pending() <= OUT_HIGH
    }

    /// Sends what the socket takes now.
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        self.sent += support::write_some(stream, &self.out[self.sent..])?;
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > OUT_HIGH {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    /// Handles every complete line in `input`.
    fn handle_lines(&mut self, lp: &mut EventLoop, me: &Shared) -> anyhow::Result<()> {
        let mut start = 0;
        while let Some(end) = self.input[start..].iter().position(|&b| b == b'\n') {
            let end = start + end + 1;
            let line = self.input[start..end].to_vec();
            if std::mem::take(&mut self.overlong) {
                self.echo(&line); // the end of a long line
            } else {
                self.handle_line(lp, me, line)?;
            }
            start = end;
        }
        self.input.drain(..start);
        if self.input.len() > MAX_LINE {
            let piece = std::mem::take(&mut self.input);
            self.echo(&piece);
            self.overlong = true;
        }
        Ok(())
    }

    fn handle_line(
        &mut self,
        lp: &mut EventLoop,
        me: &Shared,
        line: Vec<u8>,
    ) -> anyhow::Result<()> {
        let Some(arg) = line.strip_prefix(b"READ ") else {
            self.echo(&line);
            return Ok(());
        };
        let seq = self.next_read;
        self.next_read += 1;
        let arg = String::from_utf8_lossy(arg);
        let path = arg.trim_end_matches(['\r', '\n']);
        if path.is_empty() {
            self.finish(seq, b"ERROR READ needs a path\n".to_vec());
            return Ok(());
        }
        let path = PathBuf::from(path);
        let (delay, shutdown) = (self.config.work_delay, Arc::clone(&self.config.shutdown));
        let conn = Rc::clone(me);
        lp.run_in_executor(
            // On a worker thread:
            move || {
                let answer = match count_bytes(&path, delay, &shutdown) {
                    Ok(n) => format!("{n} bytes\n"),
                    Err(e) => format!("ERROR {}: {e}\n", path.display()),
                };
                answer.into_bytes()
            },
            // Back on the loop's thread:
            move |lp, answer: Vec<u8>| deliver(lp, &conn, seq, answer),
        )?;
        Ok(())
    }

    fn echo(&mut self, bytes: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(bytes);
        self.out[start..].make_ascii_uppercase();
    }

    /// Records READ number `seq`'s answer, and queues every answer whose
    /// turn has come.
    fn finish(&mut self, seq: u64, answer: Vec<u8>) {
        self.finished.insert(seq, answer);
        while let Some(answer) = self.finished.remove(&self.next_answer) {
            self.out.extend_from_slice(&answer);
            self.next_answer += 1;
        }
    }

    /// After an I/O callback: choose what to watch, or close, or park.
    fn settle(
        &mut self,
        lp: &mut EventLoop,
        stream: &TcpStream,
        me: Token<TcpStream>,
    ) -> anyhow::Result<()> {
        if self.eof && self.pending() == 0 {
            if self.reads_in_flight() > 0 {
                // Nothing to send until a READ finishes, nothing to read
                // ever: keep a handle on the socket and stop watching it.
                self.parked = Some(stream.try_clone()?);
            }
            // Unregistering drops (closes) the registered handle.
            self.token = None;
            lp.unregister(me)?;
            return Ok(());
        }
        let events = Interest::from_flags(self.can_read(), self.pending() > 0)
            .expect("a connection with nothing to send has not seen end of stream");
        lp.modify(me, events)?;
        Ok(())
    }
}

/// The I/O callback of a connection.
fn on_ready(
    conn: &Shared,
    lp: &mut EventLoop,
    stream: &mut TcpStream,
    ev: IoEvent<TcpStream>,
) -> anyhow::Result<()> {
    let (me, mask) = (ev.token(), ev.mask());
    let mut c = conn.borrow_mut();
    c.flush(stream)?;
    if mask.is_readable() && c.can_read() {
        let mut buf = [0; READ_CHUNK];
        match stream.read(&mut buf) {
            Ok(0) => c.eof = true,
            Ok(n) => {
                c.input.extend_from_slice(&buf[..n]);
                c.handle_lines(lp, conn)?;
                c.flush(stream)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    c.settle(lp, stream, me)
}

fn register(
    lp: &mut EventLoop,
    conn: &Shared,
    stream: TcpStream,
    events: Interest,
) -> selectloop::Result<()> {
    let shared = Rc::clone(conn);
    let token = lp.register(stream, events, move |lp, stream: &mut TcpStream, ev| {
        on_ready(&shared, lp, stream, ev)
    })?;
    conn.borrow_mut().token = Some(token);
    Ok(())
}

/// A READ's done-callback, on the loop's thread: queue the answer and make
/// sure the connection gets to send it.
fn deliver(lp: &mut EventLoop, conn: &Shared, seq: u64, answer: Vec<u8>) -> anyhow::Result<()> {
    let mut c = conn.borrow_mut();
    c.finish(seq, answer);
    if c.pending() == 0 {
        return Ok(()); // waits for an earlier READ
    }
    match (c.token, c.parked.take()) {
        (Some(token), _) if lp.is_registered(token) => {
            let events = Interest::from_flags(c.can_read(), true).expect("writable");
            lp.modify(token, events)?;
        }
        (_, Some(stream)) => {
            drop(c);
            register(lp, conn, stream, EVENT_WRITE)?;
        }
        // Closed or reset meanwhile: nobody to answer.
        _ => {}
    }
    Ok(())
}

/// What `net::serve` calls for each accepted connection (non-blocking,
/// Nagle off): a `Conn` of its own, watched for reading.
fn on_accept(lp: &mut EventLoop, stream: TcpStream, config: &Rc<Config>) -> anyhow::Result<()> {
    let conn = Rc::new(RefCell::new(Conn {
        config: Rc::clone(config),
        token: None,
        parked: None,
        input: Vec::new(),
        overlong: false,
        out: Vec::new(),
        sent: 0,
        eof: false,
        next_read: 0,
        next_answer: 0,
        finished: BTreeMap::new(),
    }));
    register(lp, &conn, stream, EVENT_READ)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args()?;
    let listener = support::listen(&options.addr)?;
    let addr = listener.local_addr()?;

    let mut lp = EventLoop::new()?;
    if let Some(workers) = options.workers {
        lp.set_executor_threads(workers);
    }
    // A reset peer is routine: dropped without a word. Any other error is
    // logged and closes its connection.
    support::drop_resets_quietly(&mut lp);
    let shutdown = Arc::new(Shutdown::default());
    let stop = Arc::clone(&shutdown);
    lp.add_signal_handler(Signal::INT, move |lp| {
        stop.start();
        lp.stop();
        Ok(())
    })?;
    let config = Rc::new(Config {
        work_delay: options.work_delay,
        shutdown,
    });
    // Accepts in batches; out of descriptors, it pauses the listener a while
    // instead of spinning on it.
    net::serve(&mut lp, listener, move |lp, stream, _peer| {
        on_accept(lp, stream, &config)
    })?;
    // Only now: whoever reads this line may connect, or interrupt, at once.
    support::announce(addr)?;
    lp.run()?;
    // Dropping the loop waits for the workers, which the shutdown woke.
    Ok(())
}

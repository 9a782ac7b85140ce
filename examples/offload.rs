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
//! - Each connection is a `transport::Protocol`: what the socket does not
//!   take now is queued by the transport and sent on EVENT_WRITE, and while
//!   more than 64 KiB are pending (its high-water mark) the client is not
//!   read from. Lines are bounded too: one longer than 64 KiB is echoed in
//!   pieces, never buffered whole (and is no command).
//! - A client that closes its sending side still gets the answers to its
//!   READs: `eof_received` keeps the connection half-open (the transport
//!   stops watching a socket with nothing to read or send, so a closed peer
//!   does not spin the loop), and it closes once the last answer is sent.
//! - A reset peer is dropped quietly; its READs finish and are discarded.
//! - Ctrl-C exits 0 at once: it also cuts the artificial delay of the READs
//!   under way, so shutting down does not wait for them.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use selectloop::transport::{self, Protocol, Transport};
use selectloop::{EventLoop, Signal};

mod support;

/// The longest line kept whole; a longer one is echoed in pieces.
const MAX_LINE: usize = 64 * 1024;

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

    /// True once the server is shutting down.
    fn stopping(&self) -> bool {
        *self.stopping.lock().unwrap_or_else(|e| e.into_inner())
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

/// One client's protocol; the done-callbacks of its READs reach it through
/// its token.
struct Offload {
    config: Rc<Config>,
    /// The start of a line not complete yet.
    input: Vec<u8>,
    /// In a line longer than `MAX_LINE`, echoed as it comes.
    overlong: bool,
    /// An echo being upper-cased.
    upper: Vec<u8>,
    /// The peer sent end of stream: close once every READ is answered.
    eof: bool,
    /// READs are numbered as they arrive...
    next_read: u64,
    /// ...and answered in that order: the next to answer, and the answers
    /// that finished before it.
    next_answer: u64,
    finished: BTreeMap<u64, Vec<u8>>,
}

impl Protocol for Offload {
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        self.input.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.input[start..].iter().position(|&b| b == b'\n') {
            let end = start + end + 1;
            let line = std::mem::take(&mut self.input);
            if std::mem::take(&mut self.overlong) {
                self.echo(t, &line[start..end]); // the end of a long line
            } else {
                self.handle_line(t, &line[start..end]);
            }
            self.input = line;
            start = end;
        }
        self.input.drain(..start);
        if self.input.len() > MAX_LINE {
            let piece = std::mem::take(&mut self.input);
            self.echo(t, &piece);
            self.overlong = true;
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_, Self>) -> bool {
        self.eof = true;
        // Half-open while READs are under way: their answers still go out.
        self.maybe_close(t);
        true
    }

    fn pause_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.pause_reading();
    }

    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.resume_reading();
    }
}

impl Offload {
    fn handle_line(&mut self, t: &mut Transport<'_, Self>, line: &[u8]) {
        let Some(arg) = line.strip_prefix(b"READ ") else {
            return self.echo(t, line);
        };
        let seq = self.next_read;
        self.next_read += 1;
        let arg = String::from_utf8_lossy(arg);
        let path = arg.trim_end_matches(['\r', '\n']);
        if path.is_empty() {
            return self.finish(t, seq, b"ERROR READ needs a path\n".to_vec());
        }
        let path = PathBuf::from(path);
        let (delay, shutdown) = (self.config.work_delay, Arc::clone(&self.config.shutdown));
        let me = t.token();
        let started = t.lp().run_in_executor(
            // On a worker thread:
            move || match count_bytes(&path, delay, &shutdown) {
                Ok(n) => Some(format!("{n} bytes\n").into_bytes()),
                // Cut short by Ctrl-C: the server is going away, no answer.
                Err(_) if shutdown.stopping() => None,
                Err(e) => Some(format!("ERROR {}: {e}\n", path.display()).into_bytes()),
            },
            // Back on the loop's thread; a connection closed or reset
            // meanwhile has nobody to answer.
            move |lp, answer: Option<Vec<u8>>| {
                if let Some(answer) = answer {
                    let _ = lp.with_transport(me, |conn, t| conn.finish(t, seq, answer));
                }
                Ok(())
            },
        );
        if let Err(e) = started {
            self.finish(t, seq, format!("ERROR no worker: {e}\n").into_bytes());
        }
    }

    fn echo(&mut self, t: &mut Transport<'_, Self>, bytes: &[u8]) {
        self.upper.clear();
        self.upper.extend_from_slice(bytes);
        self.upper.make_ascii_uppercase();
        t.write(&self.upper);
    }

    /// Records READ number `seq`'s answer, and sends every answer whose turn
    /// has come.
    fn finish(&mut self, t: &mut Transport<'_, Self>, seq: u64, answer: Vec<u8>) {
        self.finished.insert(seq, answer);
        while let Some(answer) = self.finished.remove(&self.next_answer) {
            t.write(&answer);
            self.next_answer += 1;
        }
        self.maybe_close(t);
    }

    /// After end of stream, closes once every READ is answered (and sent).
    fn maybe_close(&mut self, t: &mut Transport<'_, Self>) {
        if self.eof && self.next_answer == self.next_read {
            t.close();
        }
    }
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
    // instead of spinning on it. A reset peer is dropped quietly; its READs
    // finish and are discarded.
    transport::serve(&mut lp, listener, move || Offload {
        config: Rc::clone(&config),
        input: Vec::new(),
        overlong: false,
        upper: Vec::new(),
        eof: false,
        next_read: 0,
        next_answer: 0,
        finished: BTreeMap::new(),
    })?;
    // Only now: whoever reads this line may connect, or interrupt, at once.
    support::announce(addr)?;
    lp.run()?;
    // Dropping the loop waits for the workers, which the shutdown woke.
    Ok(())
}

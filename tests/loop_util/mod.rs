//! Helpers for the event-loop test binaries (`event_loop`, `timers`,
//! `cross_thread`, `reentrancy_stress`, `signals`): loopback socket pairs,
//! readiness waits, and watchdogs that keep every blocking run bounded.
//!
//! Each binary includes this with `mod loop_util;` and uses only part of it.
//! What the selector tests need too (the socket pair, the abort watchdog,
//! raising `RLIMIT_NOFILE`) comes from `tests/common`, re-exported: hence
//! `unused_imports` too.
#![allow(dead_code, unused_imports)]

#[path = "../common/mod.rs"]
mod common;

#[cfg(unix)]
pub use common::raise_nofile_limit;
/// A connected pair of loopback TCP sockets `(client, server)`, both
/// blocking, with Nagle off. Works on Windows too.
pub use common::socketpair;
/// Runs `f`, aborting the process (naming the test) if it has not returned
/// after `limit`: for tests where `stop()` itself is under test.
pub use common::with_timeout;

use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use selectloop::{LoopHandle, Token};

/// How long a test waits for something that should happen at once
/// (loopback data, a wake-up, EOF) before declaring failure.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a blocking `run()` may take before its watchdog stops it.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// [`socketpair`] with the server end non-blocking (the end the loop gets).
pub fn loop_pair() -> (TcpStream, TcpStream) {
    let (client, server) = socketpair().expect("loopback socket pair");
    server.set_nonblocking(true).expect("set_nonblocking");
    (client, server)
}

/// A loopback listener on port 0, non-blocking.
pub fn listener() -> TcpListener {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.set_nonblocking(true).expect("set_nonblocking");
    l
}

/// Blocks until the (non-blocking) loop end `sock` has data or EOF to read,
/// without reading it: the synchronisation point between "the peer wrote"
/// and "select must report it readable". Leaves `sock` non-blocking. Panics
/// after [`PATIENCE`].
pub fn wait_readable(sock: &TcpStream) {
    sock.set_nonblocking(false).expect("set_nonblocking");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set_read_timeout");
    let mut byte = [0u8; 1];
    let result = sock.peek(&mut byte);
    sock.set_read_timeout(None).expect("set_read_timeout");
    sock.set_nonblocking(true).expect("set_nonblocking");
    if let Err(e) = result {
        panic!("socket did not become readable within {PATIENCE:?}: {e}");
    }
}

/// Reads until the peer closes; panics if that takes longer than [`PATIENCE`].
pub fn read_to_eof(sock: &TcpStream) -> Vec<u8> {
    sock.set_nonblocking(false).expect("set_nonblocking");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set_read_timeout");
    let mut buf = Vec::new();
    (&*sock)
        .read_to_end(&mut buf)
        .unwrap_or_else(|e| panic!("peer did not close within {PATIENCE:?}: {e}"));
    buf
}

/// Asserts that the peer closed `sock`'s connection within [`PATIENCE`]:
/// end of stream, or a reset (a socket closed with unread data in its
/// receive buffer resets the connection). Returns what was read before.
#[track_caller]
pub fn expect_closed(sock: &TcpStream) -> Vec<u8> {
    sock.set_nonblocking(false).expect("set_nonblocking");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set_read_timeout");
    let mut buf = Vec::new();
    match (&*sock).read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) => {}
        Err(e) => panic!("peer did not close within {PATIENCE:?}: {e}"),
    }
    buf
}

/// Reads exactly `n` bytes within [`PATIENCE`].
pub fn read_n(sock: &TcpStream, n: usize) -> Vec<u8> {
    sock.set_nonblocking(false).expect("set_nonblocking");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set_read_timeout");
    let mut buf = vec![0; n];
    (&*sock)
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("expected {n} bytes within {PATIENCE:?}: {e}"));
    buf
}

/// Stops a loop that runs too long: after `limit` it calls
/// [`LoopHandle::stop`] (so `run()` returns and the test can fail with a
/// message), and if the loop still has not let go `limit` later (stuck in a
/// callback, or `stop` itself is broken) it aborts the process.
///
/// Drop it (or call [`Watchdog::finish`]) once the run is over.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Watches the loop behind `handle` for `limit`.
    pub fn new(handle: LoopHandle, limit: Duration) -> Watchdog {
        let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
        let (done, wait) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let fired2 = Arc::clone(&fired);
        let thread = thread::Builder::new()
            .name(format!("watchdog for {name}"))
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                    eprintln!("{name}: loop still running after {limit:?}; stopping it");
                    fired2.store(true, Ordering::SeqCst);
                    handle.stop();
                    if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                        eprintln!("{name}: loop ignored stop() for {limit:?}; aborting");
                        std::process::abort();
                    }
                }
            })
            .expect("spawn watchdog");
        Watchdog {
            done: Some(done),
            fired,
            thread: Some(thread),
        }
    }

    /// Watches for [`RUN_LIMIT`].
    pub fn default_for(handle: LoopHandle) -> Watchdog {
        Watchdog::new(handle, RUN_LIMIT)
    }

    /// Ends the watch; panics if the watchdog had to stop the loop.
    #[track_caller]
    pub fn finish(mut self) {
        self.end();
        assert!(
            !self.fired.load(Ordering::SeqCst),
            "the watchdog had to stop the loop"
        );
    }

    fn end(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.end();
    }
}

/// The slot number of a token, from its `Display` form `#slot.generation`.
pub fn token_slot<T: ?Sized>(token: Token<T>) -> usize {
    let s = token.to_string();
    let slot = s
        .trim_start_matches('#')
        .split('.')
        .next()
        .expect("#slot.gen");
    slot.parse().expect("numeric slot")
}

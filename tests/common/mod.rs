//! Helpers shared by the integration tests: a loopback socket pair that works
//! on every platform, mio-style `expect_events` / `expect_no_events`, a
//! watchdog for tests that could hang, a way to name a selector's backend,
//! raising `RLIMIT_NOFILE`, reproducible test bytes ([`pattern`]) and, with
//! the event loop, running a loop until a condition holds ([`run_until`]).
//!
//! Each test binary includes this with `mod common;` (`tests/loop_util`
//! re-exports part of it) and uses only part of it, hence the `dead_code`
//! allowance.
#![allow(dead_code)]

use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use selectloop::{Backend, BaseSelector, Fd, Interest, Selector, Source};

/// How long a test waits for something that should happen at once
/// (loopback data, a wake-up) before declaring failure.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// How long a loop-driven step ([`run_until`]) may take before the test
/// fails: transports and TLS handshakes on a loaded machine.
pub const LOOP_PATIENCE: Duration = Duration::from_secs(30);

/// Reproducible bytes: xorshift from `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs the loop until `done()` holds; panics after [`LOOP_PATIENCE`].
#[cfg(feature = "event-loop")]
pub fn run_until(lp: &mut selectloop::EventLoop, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LOOP_PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        lp.run_once(Some(Duration::from_millis(50)))
            .expect("run_once");
    }
}

/// A loop whose error handler fails the test: transports report their
/// failures (resets, TLS errors) to their protocols, never there.
#[cfg(feature = "event-loop")]
pub fn quiet_loop() -> selectloop::EventLoop {
    let mut lp = selectloop::EventLoop::new().expect("loop");
    lp.set_error_handler(|_lp, failure| panic!("error handler reached: {failure}"));
    lp
}

/// A connected pair of loopback TCP sockets (CPython's `socketpair()`
/// fallback): whatever is written to one end can be read from the other.
///
/// Unlike `UnixStream::pair()` this works on Windows too, so the same tests
/// run everywhere. Both ends are blocking, with no delay (Nagle) on writes.
pub fn socketpair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let client_addr = client.local_addr()?;
    loop {
        let (server, addr) = listener.accept()?;
        // Only our own client can connect to a fresh port-0 listener in
        // practice, but check it as CPython does.
        if addr == client_addr {
            client.set_nodelay(true)?;
            server.set_nodelay(true)?;
            return Ok((client, server));
        }
    }
}

/// Blocks until `sock` has data to read (or end of stream), without reading
/// it: the synchronisation point between "the peer wrote" and "select must
/// now report it readable". Panics after [`PATIENCE`].
pub fn wait_readable(sock: &TcpStream) {
    let old = sock.read_timeout().expect("read_timeout");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set_read_timeout");
    let mut byte = [0u8; 1];
    let result = sock.peek(&mut byte);
    sock.set_read_timeout(old).expect("set_read_timeout");
    if let Err(e) = result {
        panic!("socket did not become readable within {PATIENCE:?}: {e}");
    }
}

/// Reads until the peer closes its end; panics if that takes longer than
/// [`PATIENCE`]. Returns what was read on the way.
pub fn read_to_eof(sock: &TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set_read_timeout");
    let mut buf = Vec::new();
    (&*sock)
        .read_to_end(&mut buf)
        .unwrap_or_else(|e| panic!("peer did not close within {PATIENCE:?}: {e}"));
    buf
}

/// A borrowed handle: `BorrowedFd` on Unix, `BorrowedSocket` on Windows.
#[cfg(unix)]
pub type SameFd<'a> = std::os::fd::BorrowedFd<'a>;
/// A borrowed handle: `BorrowedFd` on Unix, `BorrowedSocket` on Windows.
#[cfg(windows)]
pub type SameFd<'a> = std::os::windows::io::BorrowedSocket<'a>;

/// A borrowed handle to the same socket as `sock`: a *different object* with
/// the *same descriptor* (what CPython gets by registering `sock.fileno()`).
#[cfg(unix)]
pub fn same_fd_other_object(sock: &TcpStream) -> SameFd<'_> {
    std::os::fd::AsFd::as_fd(sock)
}

/// A borrowed handle to the same socket as `sock`: a *different object* with
/// the *same descriptor* (what CPython gets by registering `sock.fileno()`).
#[cfg(windows)]
pub fn same_fd_other_object(sock: &TcpStream) -> SameFd<'_> {
    std::os::windows::io::AsSocket::as_socket(sock)
}

/// A descriptor number that is surely not registered (CPython's `999999`).
pub const UNKNOWN_FD: Fd = 999_999;

/// The descriptor of `obj`, Python's `fileno()`.
pub fn fd_of<S: Source + ?Sized>(obj: &S) -> Fd {
    obj.fileno()
}

/// One `select(timeout)`, as `(fd, mask)` pairs sorted by descriptor, so that
/// results compare with `assert_eq!`. Panics on error.
pub fn ready<S: Selector>(sel: &mut S, timeout: Option<Duration>) -> Vec<(Fd, Interest)> {
    let mut out: Vec<(Fd, Interest)> = sel
        .select(timeout)
        .expect("select")
        .map(|(key, mask)| (key.fd, mask))
        .collect();
    out.sort_by_key(|&(fd, _)| fd);
    out
}

/// Selects until the result is exactly `expected` (in any order), giving up
/// after [`PATIENCE`]; mio's `expect_events`, for a level-triggered selector.
///
/// Every intermediate result must be a subset of `expected` in the sense that
/// no key is reported with an event outside its expected mask: readiness may
/// arrive late, but never wrong.
#[track_caller]
pub fn expect_events<S: Selector>(sel: &mut S, expected: &[(Fd, Interest)]) {
    let mut want = expected.to_vec();
    want.sort_by_key(|&(fd, _)| fd);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = ready(sel, Some(left));
        if got == want {
            return;
        }
        for &(fd, mask) in &got {
            let allowed = want.iter().find(|&&(f, _)| f == fd).map(|&(_, m)| m);
            assert!(
                allowed.is_some_and(|m| m.contains(mask)),
                "unexpected readiness ({fd:?}, {mask:?}); got {got:?}, expected {want:?}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "expected {want:?} within {PATIENCE:?}, last select gave {got:?}"
        );
    }
}

/// Asserts that `select(timeout)` reports nothing; mio's `expect_no_events`.
#[track_caller]
pub fn expect_no_events<S: Selector>(sel: &mut S, timeout: Duration) {
    let got = ready(sel, Some(timeout));
    assert!(got.is_empty(), "expected no events, got {got:?}");
}

/// Runs `f`, aborting the whole process (with a message naming the test) if
/// it has not returned after `limit`: a hung `select(None)` must fail the
/// run, not stall it forever.
pub fn with_timeout<R>(limit: Duration, f: impl FnOnce() -> R) -> R {
    let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
    let (done, wait) = mpsc::channel::<()>();
    let watchdog = thread::Builder::new()
        .name(format!("watchdog for {name}"))
        .spawn(move || {
            // Disconnected (the body returned or panicked) or a message: fine.
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                eprintln!("{name}: still running after {limit:?}; aborting the test process");
                std::process::abort();
            }
        })
        .expect("spawn watchdog");
    let result = f();
    drop(done);
    watchdog.join().expect("watchdog");
    result
}

/// Names the backend of a selector type, so that an alias such as
/// `DefaultSelector` can be tested through whatever backend it stands for:
/// `<DefaultSelector as BackendOf>::Backend`.
pub trait BackendOf {
    /// The selector's backend.
    type Backend: Backend;
}

impl<B: Backend, F, D> BackendOf for BaseSelector<B, F, D> {
    type Backend = B;
}

/// The backend `DefaultSelector` uses in this build.
pub type DefaultBackend = <selectloop::DefaultSelector as BackendOf>::Backend;

/// Raises the soft `RLIMIT_NOFILE` towards `want` (`libc::RLIM_INFINITY`:
/// as far as the hard limit), never above the hard limit and never lowering
/// it; returns the limits in force. Raised for the whole process, and
/// inherited by the processes it starts afterwards.
///
/// Where the kernel refuses the value (macOS refuses `RLIM_INFINITY`, and
/// anything above its per-process ceiling), 2^16 and then 10240 (macOS's
/// `OPEN_MAX`) are tried in turn; if none is accepted the limit stays.
///
/// # Errors
/// - the OS error if `getrlimit` fails.
#[cfg(unix)]
pub fn raise_nofile_limit(want: libc::rlim_t) -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = want.min(lim.rlim_max);
    for cur in [target, target.min(1 << 16), target.min(10240)] {
        if cur <= lim.rlim_cur {
            break;
        }
        let raised = libc::rlimit {
            rlim_cur: cur,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a live rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised);
        }
    }
    Ok(lim)
}

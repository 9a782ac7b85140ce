//! CPython's `test_select_interrupt_noraise` and `test_select_interrupt_exc`
//! (from `test_selectors.py`), for every backend.
//!
//! `harness = false`: libtest runs each test on a thread of its own, next to
//! others, so a process-directed `SIGALRM` could land on any of them. Here
//! `main` is the only thread, so every alarm interrupts the `select` under
//! test. Unix only: Windows has no signals to interrupt a wait with.
//!
//! - `test_select_interrupt_noraise`, stricter than CPython: `SIGALRM` arrives
//!   every 100 ms (handler installed without `SA_RESTART`, so each one makes
//!   the kernel wait fail with `EINTR`) during `select(Some(1s))` with nothing
//!   ready. It must return `Ok` and empty, and only after the full second:
//!   the wait is resumed with what is left of the timeout (PEP 475), neither
//!   cut short nor turned into an error.
//! - `test_select_interrupt_exc`, ported in intent: CPython's handler raises
//!   an exception that unwinds out of `select(30)`. A Rust signal handler
//!   cannot unwind through `select`, so it does what Rust (and asyncio's
//!   `set_wakeup_fd`) does instead: it writes a byte to a self-pipe whose read
//!   end is registered with the selector. `select(Some(30s))` must then end
//!   well before its timeout (under 5 s, as CPython checks), reporting exactly
//!   that pipe.

#[cfg(unix)]
mod common;

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("select_interrupt: skipped: signals (SIGALRM, setitimer) exist on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::io::Read;
    use std::net::TcpStream;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use std::{mem, ptr};

    use selectloop::selector::{NativeBackend, PollBackend, SelectBackend};
    use selectloop::{Backend, BaseSelector, Selector, EVENT_READ};

    use crate::common::{socketpair, DefaultBackend, PATIENCE};

    /// How many `SIGALRM`s the handlers saw.
    static ALARMS: AtomicUsize = AtomicUsize::new(0);
    /// The self-pipe's write end while `alarm_to_self_pipe` is installed, else -1.
    static SELF_PIPE: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn count_alarm(_: libc::c_int) {
        ALARMS.fetch_add(1, Ordering::SeqCst);
    }

    extern "C" fn alarm_to_self_pipe(_: libc::c_int) {
        ALARMS.fetch_add(1, Ordering::SeqCst);
        let fd = SELF_PIPE.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe, and `fd` is the open,
            // non-blocking write end of the self-pipe while this handler is
            // installed. One byte into an empty pipe succeeds, so errno is
            // left alone.
            unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
        }
    }

    /// `handler` installed for `SIGALRM` (without `SA_RESTART`) and an
    /// interval timer firing after `first`, then every `every` (zero: once).
    /// Dropping it stops the timer and restores the previous action.
    struct Alarm {
        old: libc::sigaction,
    }

    fn timeval(d: Duration) -> libc::timeval {
        libc::timeval {
            tv_sec: d.as_secs() as _,
            tv_usec: d.subsec_micros() as _,
        }
    }

    impl Alarm {
        fn start(handler: extern "C" fn(libc::c_int), first: Duration, every: Duration) -> Alarm {
            // SAFETY: an all-zero `sigaction` is a valid value to fill in;
            // `handler` is an `extern "C" fn(c_int)`, what `sa_sigaction`
            // holds without `SA_SIGINFO`; every pointer passed is to a live local.
            unsafe {
                let mut act: libc::sigaction = mem::zeroed();
                act.sa_sigaction = handler as libc::sighandler_t;
                act.sa_flags = 0; // no SA_RESTART: the interrupted wait fails with EINTR
                libc::sigemptyset(&mut act.sa_mask);
                let mut old: libc::sigaction = mem::zeroed();
                assert_eq!(
                    libc::sigaction(libc::SIGALRM, &act, &mut old),
                    0,
                    "sigaction"
                );
                let timer = libc::itimerval {
                    it_interval: timeval(every),
                    it_value: timeval(first),
                };
                assert_eq!(
                    libc::setitimer(libc::ITIMER_REAL, &timer, ptr::null_mut()),
                    0,
                    "setitimer"
                );
                Alarm { old }
            }
        }
    }

    impl Drop for Alarm {
        fn drop(&mut self) {
            let off = libc::itimerval {
                it_interval: timeval(Duration::ZERO),
                it_value: timeval(Duration::ZERO),
            };
            // SAFETY: pointers to live values; restores what `start` replaced.
            unsafe {
                libc::setitimer(libc::ITIMER_REAL, &off, ptr::null_mut());
                libc::sigaction(libc::SIGALRM, &self.old, ptr::null_mut());
            }
        }
    }

    fn test_select_interrupt_noraise<B: Backend>() -> String {
        let (rd, _wr) = socketpair().unwrap();
        let mut s: BaseSelector<B, &TcpStream, ()> = BaseSelector::new().unwrap();
        s.register(&rd, EVENT_READ, ()).unwrap();

        ALARMS.store(0, Ordering::SeqCst);
        let alarm = Alarm::start(
            count_alarm,
            Duration::from_millis(100),
            Duration::from_millis(100),
        );
        let t = Instant::now();
        let result = s
            .select(Some(Duration::from_secs(1)))
            .map(|ready| ready.len());
        let dt = t.elapsed();
        drop(alarm);
        let alarms = ALARMS.load(Ordering::SeqCst);

        assert!(
            matches!(result, Ok(0)),
            "an interrupted select must be retried; got {result:?}"
        );
        assert!(
            dt >= Duration::from_secs(1),
            "select returned early, after {dt:?}"
        );
        assert!(
            dt <= Duration::from_secs(1) + PATIENCE,
            "select took {dt:?}"
        );
        assert!(
            alarms >= 2,
            "only {alarms} alarm(s) during select: nothing was tested"
        );
        format!("{alarms} interruptions, returned after {dt:?}")
    }

    fn test_select_interrupt_exc<B: Backend>() -> String {
        let (rd, _wr) = socketpair().unwrap();
        let (pipe_rx, pipe_tx) = UnixStream::pair().unwrap();
        pipe_tx.set_nonblocking(true).unwrap();
        let mut s: BaseSelector<B, BorrowedFd<'_>, &str> = BaseSelector::new().unwrap();
        s.register(rd.as_fd(), EVENT_READ, "rd").unwrap();
        s.register(pipe_rx.as_fd(), EVENT_READ, "self-pipe")
            .unwrap();

        ALARMS.store(0, Ordering::SeqCst);
        SELF_PIPE.store(pipe_tx.as_raw_fd(), Ordering::SeqCst);
        let alarm = Alarm::start(
            alarm_to_self_pipe,
            Duration::from_millis(100),
            Duration::ZERO,
        );
        let t = Instant::now();
        let got: Vec<_> = s
            .select(Some(Duration::from_secs(30)))
            .unwrap()
            .map(|(key, events)| (key.data, events))
            .collect();
        let dt = t.elapsed();
        drop(alarm);
        SELF_PIPE.store(-1, Ordering::SeqCst);

        assert_eq!(got, [("self-pipe", EVENT_READ)]);
        assert!(
            dt < Duration::from_secs(5),
            "select was not interrupted in time: {dt:?}"
        );
        assert_eq!(ALARMS.load(Ordering::SeqCst), 1);
        let mut byte = [0; 1];
        (&pipe_rx).read_exact(&mut byte).unwrap();
        format!("woken by the signal after {dt:?}")
    }

    fn run<B: Backend>(backend: &str) {
        for (name, case) in [
            (
                "test_select_interrupt_noraise",
                test_select_interrupt_noraise::<B> as fn() -> String,
            ),
            ("test_select_interrupt_exc", test_select_interrupt_exc::<B>),
        ] {
            println!("{backend}::{name} ...");
            let note = case();
            println!("{backend}::{name} ... ok ({note})");
        }
    }

    pub fn main() {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        run::<selectloop::selector::EpollBackend>("epoll");
        run::<NativeBackend>("polling");
        run::<PollBackend>("poll");
        run::<SelectBackend>("select");
        run::<DefaultBackend>("default");
        println!("select_interrupt: all ok");
    }
}

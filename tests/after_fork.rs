//! A forked child lets go of its parent's selector or loop with
//! `close_after_fork`, and the parent's goes on working.
//!
//! `harness = false`: `fork(2)` copies only the calling thread, and libtest
//! runs tests on threads of its own (which may hold locks at that moment).
//! Unix only. Every case, on every backend:
//!
//! - the parent sets up a selector (or an event loop with a registered
//!   connection, a signal handler, a timer, a `LoopHandle` and a started
//!   `run_in_executor` pool) and forks;
//! - the child closes the test's own objects, calls `close_after_fork`,
//!   lists `/proc/self/fd` (Linux; skipped elsewhere) and sends the list
//!   back through a socket pair: it must hold only what the process held
//!   before the test (the standard streams and whatever the test runner
//!   passed on), its connection and the report socket;
//! - the parent then checks that its own selector or loop was not touched
//!   (no `epoll_ctl` reached the shared instance): a timed wait ends on
//!   time, a waker (or a `LoopHandle`) still wakes it, a registered socket
//!   still gets its events, and (loop) a signal still reaches its handler.
//!
//! A case that hangs is ended by `alarm(2)`: SIGALRM kills the test.

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("after_fork: skipped: fork(2) exists on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::collections::BTreeSet;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use selectloop::selector::{NativeBackend, PollBackend, SelectBackend};
    use selectloop::{Backend, BaseSelector, Error, Selector, EVENT_READ};

    /// How long a case may take before SIGALRM ends the test.
    const CASE_LIMIT_SECS: u32 = 30;
    /// A timed wait that must end on its own.
    const SHORT: Duration = Duration::from_millis(50);
    /// Far longer than anything that should happen at once.
    const PATIENCE: Duration = Duration::from_secs(10);

    pub fn main() {
        let baseline = open_fds();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        selector_case::<selectloop::selector::EpollBackend>(&baseline);
        selector_case::<NativeBackend>(&baseline);
        selector_case::<PollBackend>(&baseline);
        selector_case::<SelectBackend>(&baseline);
        #[cfg(all(feature = "event-loop", feature = "signals"))]
        {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            event_loop::case::<selectloop::selector::EpollBackend>(&baseline);
            event_loop::case::<NativeBackend>(&baseline);
            event_loop::case::<PollBackend>(&baseline);
            event_loop::case::<SelectBackend>(&baseline);
        }
        // SAFETY: alarm(2) has no preconditions; 0 cancels the watchdog.
        unsafe { libc::alarm(0) };
        println!("after_fork: ok");
    }

    /// Starts the watchdog for one case: SIGALRM's default action ends the
    /// process if the case hangs.
    fn watchdog(case: &str) {
        println!("after_fork: {case} ...");
        // SAFETY: alarm(2) has no preconditions.
        unsafe { libc::alarm(CASE_LIMIT_SECS) };
    }

    /// The descriptors open in this process (Linux: from /proc), or `None`
    /// where there is no /proc to ask.
    pub fn open_fds() -> Option<BTreeSet<RawFd>> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let names: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
            .collect();
        // The directory's own descriptor was in the list and is closed now.
        // SAFETY: fcntl(2) F_GETFD only reads the descriptor's flags.
        let open = |fd: &RawFd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1;
        Some(names.into_iter().filter(open).collect())
    }

    /// `fd: target` for each descriptor, for the report.
    pub fn describe(fds: &BTreeSet<RawFd>) -> String {
        fds.iter()
            .map(|fd| {
                let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_else(|e| e.to_string());
                format!("{fd}={target}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// In the child: what it holds now, as the report line
    /// `fds <list>|<description>` (or `fds skipped` without /proc).
    pub fn child_report() -> String {
        match open_fds() {
            Some(fds) => format!(
                "fds {}|{}",
                fds.iter()
                    .map(|fd| fd.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                describe(&fds)
            ),
            None => "fds skipped".to_string(),
        }
    }

    /// Forks; the child runs `child` and sends what it returns through a
    /// socket pair, then leaves with `_exit` (status 0, or 101 if `child`
    /// panicked). The parent waits for it and returns the report, and the
    /// number of the child's report socket (which the child holds).
    pub fn in_child(child: impl FnOnce() -> String) -> (String, RawFd) {
        let (mut rx, tx) = UnixStream::pair().expect("report pair");
        let report_fd = tx.as_raw_fd();
        // SAFETY: fork(2) from this single-threaded process (or one whose
        // other threads, the loop's idle workers, are blocked in a wait):
        // the child runs the test's code and leaves with _exit(2).
        match unsafe { libc::fork() } {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                drop(rx);
                let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child));
                let code = match report {
                    Ok(report) => {
                        let _ = (&tx).write_all(report.as_bytes());
                        0
                    }
                    Err(_) => 101,
                };
                // SAFETY: _exit(2) ends the child without running the
                // parent's destructors a second time.
                unsafe { libc::_exit(code) }
            }
            pid => {
                drop(tx);
                let mut report = String::new();
                rx.read_to_string(&mut report).expect("the child's report");
                let mut status = 0;
                // SAFETY: waitpid(2) on our own child, with a valid pointer.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(waited, pid, "waitpid");
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "the child failed (status {status:#x}); its report: {report:?}"
                );
                (report, report_fd)
            }
        }
    }

    /// Checks the child's descriptor list: exactly what the process held
    /// before the test, plus `kept`.
    pub fn check_child_fds(
        case: &str,
        report: &str,
        baseline: &Option<BTreeSet<RawFd>>,
        kept: &[RawFd],
    ) {
        let Some(baseline) = baseline else {
            println!("after_fork: {case}: no /proc here, descriptor list not checked");
            return;
        };
        let (list, description) = report
            .strip_prefix("fds ")
            .and_then(|r| r.split_once('|'))
            .unwrap_or_else(|| panic!("{case}: bad report {report:?}"));
        let got: BTreeSet<RawFd> = list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("a descriptor"))
            .collect();
        let mut expected = baseline.clone();
        expected.extend(kept);
        println!("after_fork: {case}: the child holds {description}");
        assert_eq!(
            got, expected,
            "{case}: the child should hold only the process's descriptors from before \
             the test ({baseline:?}), its connection and the report socket {kept:?}; it holds \
             {description}"
        );
    }

    /// Closes the child's copy of a descriptor the test owns.
    ///
    /// # Safety
    /// Only in a forked child that leaves with `_exit`, so that the object
    /// owning `fd` is never dropped or used there.
    pub unsafe fn close_copy(fd: RawFd) {
        // SAFETY: as our caller promises: nothing uses `fd` after this.
        unsafe { libc::close(fd) };
    }

    /// A connected loopback TCP pair.
    pub fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    fn selector_case<B: Backend>(baseline: &Option<BTreeSet<RawFd>>) {
        let case = format!("BaseSelector<{}>", B::NAME);
        watchdog(&case);
        let mut sel: BaseSelector<B, TcpStream> = BaseSelector::new().expect("selector");
        let (mut client, server) = tcp_pair();
        let server_fd = server.as_raw_fd();
        sel.register(server, EVENT_READ, ()).expect("register");
        let (other_client, other_server) = tcp_pair();
        sel.register(other_server, EVENT_READ, ())
            .expect("register");
        let waker = sel.waker().expect("waker");
        // The child's own connection, which it keeps.
        let (conn, conn_peer) = UnixStream::pair().expect("pair");

        let (report, report_fd) = in_child(|| {
            // SAFETY: the child leaves with _exit (see `in_child`).
            unsafe {
                close_copy(client.as_raw_fd());
                close_copy(other_client.as_raw_fd());
                close_copy(conn_peer.as_raw_fd());
            }
            drop(waker);
            sel.close_after_fork();
            assert!(matches!(
                sel.select(Some(Duration::ZERO)),
                Err(Error::Closed)
            ));
            child_report()
        });
        check_child_fds(&case, &report, baseline, &[conn.as_raw_fd(), report_fd]);
        drop((conn, conn_peer));

        // The parent's selector: a timed wait ends on time...
        let t = Instant::now();
        assert_eq!(sel.select(Some(SHORT)).expect("select").len(), 0);
        let took = t.elapsed();
        assert!(
            took >= SHORT && took < PATIENCE,
            "{case}: a 50 ms select took {took:?}"
        );
        // ...a wake ends an unbounded one...
        let waker = sel.waker().expect("waker");
        let t = std::thread::spawn(move || waker.wake());
        assert_eq!(sel.select(None).expect("select").len(), 0);
        t.join().expect("waker thread").expect("wake");
        // ...and the registered socket still gets its events.
        client.write_all(b"x").expect("write");
        let ready: Vec<_> = sel
            .select(Some(PATIENCE))
            .expect("select")
            .map(|(key, mask)| (key.fd, mask))
            .collect();
        assert_eq!(ready, [(server_fd, EVENT_READ)], "{case}: the peer wrote");
        drop(other_client);
        println!("after_fork: {case}: ok");
    }

    #[cfg(all(feature = "event-loop", feature = "signals"))]
    mod event_loop {
        use std::cell::Cell;
        use std::collections::BTreeSet;
        use std::io::{Read, Write};
        use std::os::fd::{AsRawFd, RawFd};
        use std::os::unix::net::UnixStream;
        use std::rc::Rc;
        use std::time::{Duration, Instant};

        use selectloop::{Backend, EventLoop, Signal, EVENT_READ};

        use super::{check_child_fds, child_report, close_copy, in_child, tcp_pair, watchdog};

        /// Waits (Linux; bounded by the watchdog) until every worker thread
        /// of the offload pool is asleep, waiting for work.
        fn wait_for_idle_workers() {
            if !cfg!(target_os = "linux") {
                return;
            }
            loop {
                let busy = std::fs::read_dir("/proc/self/task")
                    .expect("/proc/self/task")
                    .flatten()
                    .filter(|task| {
                        let comm =
                            std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                        let stat =
                            std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
                        comm.starts_with("selectloop-work")
                            && !state.is_some_and(|s| s.starts_with('S'))
                    })
                    .count();
                if busy == 0 {
                    return;
                }
                std::thread::yield_now();
            }
        }

        pub fn case<B: Backend>(baseline: &Option<BTreeSet<RawFd>>) {
            let case = format!("EventLoop<{}>", B::NAME);
            watchdog(&case);
            let mut lp: EventLoop<B> = EventLoop::with_backend().expect("loop");
            let (mut client, server) = tcp_pair();
            let reads = Rc::new(Cell::new(0));
            let seen = Rc::clone(&reads);
            lp.register(
                server,
                EVENT_READ,
                move |lp, server: &mut std::net::TcpStream, _| {
                    let mut buf = [0; 16];
                    let n = server.read(&mut buf)?;
                    seen.set(seen.get() + n);
                    lp.stop();
                    Ok(())
                },
            )
            .expect("register");
            let signals = Rc::new(Cell::new(0));
            let counted = Rc::clone(&signals);
            lp.add_signal_handler(Signal::USR1, move |lp| {
                counted.set(counted.get() + 1);
                lp.stop();
                Ok(())
            })
            .expect("signal handler");
            let never = lp.call_later(Duration::from_secs(3600), |_| panic!("an hour passed"));
            // Start the offload pool, so that worker threads exist when the
            // process forks (they are not copied into the child).
            lp.run_in_executor(
                || 1,
                |lp, _| {
                    lp.stop();
                    Ok(())
                },
            )
            .expect("offload");
            lp.run().expect("run until the offloaded work is done");
            // The worker drops its reference to the loop's wake-up just after
            // handing the result over; a reference a thread holds when the
            // process forks is never released in the child (the thread is not
            // there), so wait until the workers are idle again.
            wait_for_idle_workers();
            let handle = lp.handle();
            let (conn, conn_peer) = UnixStream::pair().expect("pair");

            let mut lp = Some(lp);
            let (report, report_fd) = in_child(|| {
                // SAFETY: the child leaves with _exit (see `in_child`).
                unsafe {
                    close_copy(client.as_raw_fd());
                    close_copy(conn_peer.as_raw_fd());
                }
                let mut lp = lp.take().expect("the loop");
                lp.close_after_fork();
                // Handles keep the wake-up descriptor: let go of them too.
                drop(handle);
                assert_eq!(lp.source_count(), 0);
                lp.run().expect("an empty loop returns at once");
                // Dropping it does not join the pool's threads (there are none here).
                drop(lp);
                child_report()
            });
            check_child_fds(&case, &report, baseline, &[conn.as_raw_fd(), report_fd]);
            drop((conn, conn_peer));
            let mut lp = lp.expect("the parent's loop");

            // The parent's loop: a timer fires on time...
            let t = Instant::now();
            lp.call_later(super::SHORT, |lp| {
                lp.stop();
                Ok(())
            });
            lp.run().expect("run until the timer");
            let took = t.elapsed();
            assert!(
                took >= super::SHORT && took < super::PATIENCE,
                "{case}: a 50 ms timer took {took:?}"
            );
            // ...a handle wakes it from another thread...
            let handle = lp.handle();
            let t = std::thread::spawn(move || handle.stop());
            lp.run().expect("run until stopped from another thread");
            t.join().expect("handle thread");
            // ...a signal reaches its handler...
            // SAFETY: raise(3) with a signal the loop handles.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
            lp.run().expect("run until the signal's handler");
            assert_eq!(signals.get(), 1, "{case}: SIGUSR1 handled once");
            // ...and the registered connection still gets its events.
            client.write_all(b"x").expect("write");
            lp.run().expect("run until the read");
            assert_eq!(reads.get(), 1, "{case}: one byte read");
            never.cancel();
            println!("after_fork: {case}: ok");
        }
    }
}

//! `EventLoop::add_signal_handler` / `remove_signal_handler` (Unix).
//!
//! `harness = false`: signal dispositions and masks are per process, and
//! libtest's worker threads would spoil them, so `main` runs each check in
//! turn on the main thread. The "default action restored" checks run in a
//! child process (this same executable, told by an environment variable
//! which scenario to play), since the expected outcome is death by signal.
//!
//! Each check names, in the comment above it, the mutation of `src/` it
//! catches. On non-Unix platforms the binary prints why it skips.

#[cfg(unix)]
mod loop_util;

#[cfg(not(unix))]
fn main() {
    println!("signals: skipped: POSIX signals exist only on Unix (Windows console events are not raised by tests)");
}

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(unix)]
mod unix {
    use std::cell::{Cell, RefCell};
    use std::net::TcpListener;
    use std::os::unix::process::ExitStatusExt;
    use std::panic::{self, AssertUnwindSafe};
    use std::process::{Command, Output};
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use selectloop::{EventLoop, Signal, EVENT_READ};

    use crate::loop_util::{listener, with_timeout, PATIENCE, RUN_LIMIT};

    const CHILD_ENV: &str = "SELECTLOOP_SIGNALS_CHILD";

    /// `(name, check)` pairs, named after the functions.
    macro_rules! checks {
        ($($check:ident),* $(,)?) => {
            &[$((stringify!($check), $check as fn())),*]
        };
    }

    pub fn main() {
        if let Ok(scenario) = std::env::var(CHILD_ENV) {
            child(&scenario);
            return;
        }
        let checks: &[(&str, fn())] = checks![
            signal_from_another_thread_runs_the_handler_on_the_loop_thread,
            remove_signal_handler_reports_whether_there_was_one,
            signal_source_alone_does_not_keep_run_going,
            removed_handler_restores_the_default_action,
            handled_signal_does_not_kill,
            default_returns_only_when_the_last_handler_goes,
            dropped_loop_restores_the_default_action,
            signal_handler_error_does_not_disable_the_signal,
            error_handler_cannot_unregister_the_signal_source,
            signal_handler_error_then_signals_do_not_kill_with_sigpipe_default,
            panicking_signal_handler_unwinds_and_stays_installed,
            dropping_a_loop_with_a_signal_handler_during_a_signal_storm_does_not_kill,
        ];
        // `cargo test -- NAME` runs the checks whose name contains NAME.
        let filters: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        let mut failed = Vec::new();
        let mut ran = 0;
        for &(name, check) in checks {
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            ran += 1;
            print!("test {name} ... ");
            match panic::catch_unwind(AssertUnwindSafe(check)) {
                Ok(()) => println!("ok"),
                Err(_) => {
                    println!("FAILED");
                    failed.push(name);
                }
            }
        }
        println!(
            "\nsignals: {} passed; {} failed",
            ran - failed.len(),
            failed.len()
        );
        if !failed.is_empty() {
            eprintln!("failed: {failed:?}");
            std::process::exit(101);
        }
    }

    fn raise(signal: libc::c_int) {
        // SAFETY: raise(3) has no memory-safety preconditions.
        let rc = unsafe { libc::raise(signal) };
        assert_eq!(rc, 0, "raise({signal})");
    }

    /// A listener nobody connects to: keeps `run()` blocked in `select(None)`.
    fn keep_blocking(lp: &mut EventLoop) {
        lp.register(listener(), EVENT_READ, |_, _: &mut TcpListener, _| {
            panic!("nobody connects")
        })
        .unwrap();
    }

    // Catches: the signal not reaching the loop (the self-pipe not watched, or
    // not waking select: the aborting watchdog ends the run), or the handler
    // run on the signalling thread instead of the loop's.
    fn signal_from_another_thread_runs_the_handler_on_the_loop_thread() {
        let mut lp = EventLoop::new().unwrap();
        keep_blocking(&mut lp);
        let loop_thread = thread::current().id();
        let calls: Rc<RefCell<Vec<thread::ThreadId>>> = Rc::default();
        let c = Rc::clone(&calls);
        lp.add_signal_handler(Signal::USR1, move |lp| {
            c.borrow_mut().push(thread::current().id());
            lp.stop();
            Ok(())
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        lp.call_soon(move |_| {
            tx.send(()).unwrap();
            Ok(())
        });
        let raiser = thread::spawn(move || {
            rx.recv_timeout(PATIENCE).expect("the loop started");
            // raise(3) directs SIGUSR1 at this thread, not the loop's.
            raise(libc::SIGUSR1);
        });
        with_timeout(RUN_LIMIT, || lp.run()).unwrap();
        raiser.join().unwrap();
        assert_eq!(*calls.borrow(), [loop_thread]);
        assert!(lp.remove_signal_handler(Signal::USR1).unwrap());
    }

    // Catches: `remove_signal_handler` reporting a handler that is not there
    // (or not one that is), also after a replacement.
    fn remove_signal_handler_reports_whether_there_was_one() {
        let mut lp = EventLoop::new().unwrap();
        assert!(!lp.remove_signal_handler(Signal::USR1).unwrap());
        lp.add_signal_handler(Signal::USR1, |_| Ok(())).unwrap();
        // Replacing keeps one handler.
        lp.add_signal_handler(Signal::USR1, |_| Ok(())).unwrap();
        assert!(lp.remove_signal_handler(Signal::USR1).unwrap());
        assert!(!lp.remove_signal_handler(Signal::USR1).unwrap());
    }

    // Catches: the loop's own signal source counted as a user source (`run()`
    // would block for ever with nothing but a signal handler; the aborting
    // watchdog ends it).
    fn signal_source_alone_does_not_keep_run_going() {
        let mut lp = EventLoop::new().unwrap();
        lp.add_signal_handler(Signal::USR1, |_| Ok(())).unwrap();
        assert_eq!(lp.source_count(), 0);
        with_timeout(RUN_LIMIT, || lp.run()).unwrap();
        assert!(lp.remove_signal_handler(Signal::USR1).unwrap());
    }

    /// Runs `lp` one bounded iteration at a time until `calls` reaches `n`;
    /// false if it has not after [`PATIENCE`].
    fn run_until_calls(lp: &mut EventLoop, calls: &Cell<usize>, n: usize) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while calls.get() < n {
            if Instant::now() >= deadline {
                return false;
            }
            lp.run_once(Some(Duration::from_millis(50))).unwrap();
        }
        true
    }

    /// A handler for `signal` that counts its calls and fails each time.
    fn failing_handler(lp: &mut EventLoop, signal: Signal) -> Rc<Cell<usize>> {
        let calls = Rc::new(Cell::new(0));
        let c = Rc::clone(&calls);
        lp.add_signal_handler(signal, move |_| {
            c.set(c.get() + 1);
            anyhow::bail!("signal handler failed")
        })
        .unwrap();
        calls
    }

    // Catches (issue 9, fault 1): the default error policy unregistering and
    // dropping the loop's own signal source when the handler returns `Err`,
    // so that the next signal is swallowed.
    fn signal_handler_error_does_not_disable_the_signal() {
        let mut lp = EventLoop::new().unwrap();
        let calls = failing_handler(&mut lp, Signal::USR1);
        for n in 1..=3 {
            raise(libc::SIGUSR1);
            assert!(
                run_until_calls(&mut lp, &calls, n),
                "SIGUSR1 number {n} was not delivered after an Err (calls: {})",
                calls.get()
            );
        }
        assert_eq!(lp.stats().callback_errors, 3);
        assert!(lp.remove_signal_handler(Signal::USR1).unwrap());
    }

    // Catches (issue 9, fault 1): an error handler that unregisters
    // `failure.token`, as the documentation suggests for sources, reaching
    // the loop's own signal source.
    fn error_handler_cannot_unregister_the_signal_source() {
        let mut lp = EventLoop::new().unwrap();
        let tokens = Rc::new(RefCell::new(Vec::new()));
        let t = Rc::clone(&tokens);
        lp.set_error_handler(move |lp, failure| {
            t.borrow_mut().push(failure.token);
            if let Some(token) = failure.token {
                let _ = lp.unregister(token);
            }
        });
        let calls = failing_handler(&mut lp, Signal::USR1);
        for n in 1..=3 {
            raise(libc::SIGUSR1);
            assert!(
                run_until_calls(&mut lp, &calls, n),
                "SIGUSR1 number {n} was not delivered (calls: {})",
                calls.get()
            );
        }
        assert_eq!(*tokens.borrow(), [None, None, None]);
        assert!(lp.remove_signal_handler(Signal::USR1).unwrap());
    }

    // Catches (issue 9, fault 1): as above, in a process whose SIGPIPE has
    // its default action (a Rust program ignores it; hosts in other
    // languages may not): the signal after the error killed it with SIGPIPE.
    fn signal_handler_error_then_signals_do_not_kill_with_sigpipe_default() {
        let out = spawn_child("error_sigpipe_default");
        assert!(
            out.status.success(),
            "child should survive; status {:?} (signal {:?}), stdout {:?}",
            out.status,
            out.status.signal(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "handled 3");
    }

    // Catches: a panicking signal handler losing its callback (taken out
    // while it runs) or its loop source (unregistered like a user source's),
    // so that later signals are swallowed.
    fn panicking_signal_handler_unwinds_and_stays_installed() {
        let mut lp = EventLoop::new().unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = Rc::clone(&calls);
        lp.add_signal_handler(Signal::USR1, move |_| {
            c.set(c.get() + 1);
            if c.get() == 1 {
                panic!("signal handler exploded");
            }
            Ok(())
        })
        .unwrap();
        raise(libc::SIGUSR1);
        let result = panic::catch_unwind(AssertUnwindSafe(|| run_until_calls(&mut lp, &calls, 1)));
        let payload = result.expect_err("the handler's panic must unwind out of run_once");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"signal handler exploded")
        );
        raise(libc::SIGUSR1);
        assert!(
            run_until_calls(&mut lp, &calls, 2),
            "SIGUSR1 was not delivered after the handler panicked"
        );
        assert!(lp.remove_signal_handler(Signal::USR1).unwrap());
    }

    // Catches (issue 9, fault 2): a dropped loop closing its signal socket
    // pairs' read ends (the selector) before it unregisters signal-hook's
    // writes to them, or any of those writes raising SIGPIPE: with SIGPIPE
    // at its default action the child died of it within a few cycles.
    fn dropping_a_loop_with_a_signal_handler_during_a_signal_storm_does_not_kill() {
        let out = spawn_child("drop_storm");
        assert!(
            out.status.success(),
            "child should survive; status {:?} (signal {:?}), stdout {:?}",
            out.status,
            out.status.signal(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("cycles "));
    }

    /// Gives SIGPIPE its default action (death), as a host program in
    /// another language may have it: std ignores it in Rust programs.
    fn sigpipe_default() {
        // SAFETY: signal(2) with a valid signal number and SIG_DFL.
        let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert_ne!(old, libc::SIG_ERR, "signal(SIGPIPE, SIG_DFL)");
    }

    /// Runs this executable as a child playing `scenario`.
    fn spawn_child(scenario: &str) -> Output {
        let exe = std::env::current_exe().expect("current_exe");
        let out = Command::new(exe)
            .env(CHILD_ENV, scenario)
            .output()
            .expect("spawn child");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    // Catches: removal leaving the signal swallowed (the child would
    // survive SIGUSR2 and exit 0) instead of restoring the default action.
    fn removed_handler_restores_the_default_action() {
        let out = spawn_child("removed");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGUSR2),
            "child should die of SIGUSR2; status {:?}, stdout {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // Catches: the default action emulated while a handler is still installed
    // (the control for the check above: with a handler, the child lives).
    fn handled_signal_does_not_kill() {
        let out = spawn_child("handled");
        assert!(out.status.success(), "status {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "handled 1");
    }

    // Catches: the default action restored on the first removal although
    // another loop still handles the signal.
    fn default_returns_only_when_the_last_handler_goes() {
        let out = spawn_child("two_loops");
        assert!(out.status.success(), "status {:?}", out.status);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "second loop handled 1"
        );
    }

    // Catches: a dropped loop leaving its signal deliveries installed, so
    // the signal is swallowed for good (nobody handles it any more and the
    // default action never comes back).
    fn dropped_loop_restores_the_default_action() {
        let out = spawn_child("dropped");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGUSR2),
            "child should die of SIGUSR2; status {:?}, stdout {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn child(scenario: &str) {
        match scenario {
            "removed" => {
                let mut lp = EventLoop::new().unwrap();
                lp.add_signal_handler(Signal::USR2, |_| Ok(())).unwrap();
                assert!(lp.remove_signal_handler(Signal::USR2).unwrap());
                raise(libc::SIGUSR2);
                // Only reached if the signal did not kill us.
                println!("survived SIGUSR2");
                std::process::exit(0);
            }
            "dropped" => {
                let mut lp = EventLoop::new().unwrap();
                lp.add_signal_handler(Signal::USR2, |_| Ok(())).unwrap();
                drop(lp);
                raise(libc::SIGUSR2);
                println!("survived SIGUSR2");
                std::process::exit(0);
            }
            "handled" => {
                let mut lp = EventLoop::new().unwrap();
                keep_blocking(&mut lp);
                let calls = Rc::new(Cell::new(0));
                let c = Rc::clone(&calls);
                lp.add_signal_handler(Signal::USR2, move |lp| {
                    c.set(c.get() + 1);
                    lp.stop();
                    Ok(())
                })
                .unwrap();
                raise(libc::SIGUSR2);
                with_timeout(RUN_LIMIT, || lp.run()).unwrap();
                println!("handled {}", calls.get());
            }
            "two_loops" => {
                let mut first = EventLoop::new().unwrap();
                let mut second = EventLoop::new().unwrap();
                keep_blocking(&mut second);
                first
                    .add_signal_handler(Signal::USR2, |_| panic!("removed handler ran"))
                    .unwrap();
                let calls = Rc::new(Cell::new(0));
                let c = Rc::clone(&calls);
                second
                    .add_signal_handler(Signal::USR2, move |lp| {
                        c.set(c.get() + 1);
                        lp.stop();
                        Ok(())
                    })
                    .unwrap();
                assert!(first.remove_signal_handler(Signal::USR2).unwrap());
                raise(libc::SIGUSR2);
                with_timeout(RUN_LIMIT, || second.run()).unwrap();
                println!("second loop handled {}", calls.get());
            }
            "error_sigpipe_default" => {
                sigpipe_default();
                let mut lp = EventLoop::new().unwrap();
                let calls = failing_handler(&mut lp, Signal::USR2);
                for n in 1..=3 {
                    raise(libc::SIGUSR2);
                    assert!(run_until_calls(&mut lp, &calls, n), "signal {n} lost");
                }
                println!("handled {}", calls.get());
            }
            "drop_storm" => {
                sigpipe_default();
                // One loop keeps a SIGUSR1 handler for the whole run, so
                // the signal's default action (death) never comes back
                // between the cycles' loops; it is never run.
                let mut keeper = EventLoop::new().unwrap();
                keeper.add_signal_handler(Signal::USR1, |_| Ok(())).unwrap();
                let stop = Arc::new(AtomicBool::new(false));
                let s = Arc::clone(&stop);
                let storm = thread::spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        // SAFETY: kill(2) on our own process id.
                        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                        // Pacing, not synchronisation: a signal every ~20 µs.
                        thread::sleep(Duration::from_micros(20));
                    }
                });
                let started = Instant::now();
                let mut cycles = 0u64;
                while started.elapsed() < Duration::from_secs(2) {
                    let mut lp = EventLoop::new().unwrap();
                    lp.add_signal_handler(Signal::USR1, |_| Ok(())).unwrap();
                    drop(lp);
                    cycles += 1;
                }
                stop.store(true, Ordering::Relaxed);
                storm.join().unwrap();
                drop(keeper);
                println!("cycles {cycles}");
            }
            other => panic!("unknown child scenario {other:?}"),
        }
    }
}

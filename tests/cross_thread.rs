//! The `EventLoop` and other threads: `LoopHandle::stop` and
//! `call_soon_threadsafe` waking a blocked loop, and `run_in_executor`.
//!
//! Each test names, in the comment above it, the mutation of `src/` it
//! catches. Where `stop()` itself is under test, an aborting watchdog
//! bounds the run instead.
#![cfg(all(feature = "event-loop", feature = "net"))]

mod loop_util;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use selectloop::{CallbackError, EventLoop, EVENT_READ};

use loop_util::{listener, with_timeout, Watchdog, PATIENCE, RUN_LIMIT};

/// Registers a listener nobody connects to: it keeps `run()` blocking in
/// `select(None)` until something wakes it.
fn keep_blocking(lp: &mut EventLoop) {
    lp.register(
        listener(),
        EVENT_READ,
        |_, _: &mut std::net::TcpListener, _| panic!("nobody connects to this listener"),
    )
    .unwrap();
}

/// A channel whose receiver learns that the loop runs (a `call_soon`
/// callback ran), so another thread acts while `run()` is in progress,
/// most likely blocked in `select(None)`.
fn running_signal(lp: &mut EventLoop) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    lp.call_soon(move |_| {
        tx.send(()).unwrap();
        Ok(())
    });
    rx
}

// Catches: `LoopHandle::stop` not waking a `select(None)` (the run would
// hang until the aborting watchdog), or not making `run()` return.
#[test]
fn stop_from_another_thread_ends_a_blocked_run() {
    let mut lp = EventLoop::new().unwrap();
    keep_blocking(&mut lp);
    let started = running_signal(&mut lp);
    let handle = lp.handle();
    let stopper = thread::spawn(move || {
        started.recv_timeout(PATIENCE).expect("the loop started");
        handle.stop();
    });
    with_timeout(RUN_LIMIT, || lp.run()).unwrap();
    stopper.join().unwrap();
    assert_eq!(
        lp.source_count(),
        1,
        "stop() ends the run, it does not unregister"
    );
    // A second stop before run: the run does one iteration and returns.
    lp.handle().stop();
    with_timeout(RUN_LIMIT, || lp.run()).unwrap();
}

// Catches: `call_soon_threadsafe` callbacks run on the calling thread, or
// queued without waking a blocked loop (hang until the aborting watchdog).
#[test]
fn call_soon_threadsafe_runs_on_the_loop_thread_and_wakes_it() {
    let mut lp = EventLoop::new().unwrap();
    keep_blocking(&mut lp);
    let loop_thread = thread::current().id();
    let started = running_signal(&mut lp);
    let handle = lp.handle();
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&ran_on);
    let sender = thread::spawn(move || {
        started.recv_timeout(PATIENCE).expect("the loop started");
        for i in 0..3 {
            let r = Arc::clone(&r);
            handle.call_soon_threadsafe(move |lp| {
                r.lock().unwrap().push((i, thread::current().id()));
                if i == 2 {
                    lp.stop();
                }
                Ok(())
            });
        }
    });
    with_timeout(RUN_LIMIT, || lp.run()).unwrap();
    sender.join().unwrap();
    let ran_on = ran_on.lock().unwrap();
    assert_eq!(
        ran_on.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
        [0, 1, 2],
        "in order"
    );
    assert!(ran_on.iter().all(|&(_, t)| t == loop_thread));
}

// Catches: `run()` returning while offloaded work is pending (an idle check
// that ignores jobs), work run on the loop thread, or `done` run elsewhere
// or with another value.
#[test]
fn run_in_executor_offloads_work_and_returns_on_the_loop_thread() {
    let mut lp = EventLoop::new().unwrap();
    let loop_thread = thread::current().id();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let work_thread = Arc::new(Mutex::new(None));
    let w = Arc::clone(&work_thread);
    let done: Rc<RefCell<Option<(u64, thread::ThreadId)>>> = Rc::default();
    let d = Rc::clone(&done);
    lp.run_in_executor(
        move || {
            *w.lock().unwrap() = Some(thread::current().id());
            // Blocks until released, which happens only once run() is going.
            release_rx.recv_timeout(PATIENCE).expect("released");
            6 * 7u64
        },
        move |_, result| {
            *d.borrow_mut() = Some((result, thread::current().id()));
            Ok(())
        },
    )
    .unwrap();
    // No sources, no timers: only the pending job keeps run() going.
    let started = running_signal(&mut lp);
    let releaser = thread::spawn(move || {
        started.recv_timeout(PATIENCE).expect("the loop started");
        release_tx.send(()).unwrap();
    });
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    releaser.join().unwrap();
    assert_eq!(
        *done.borrow(),
        Some((42, loop_thread)),
        "done runs on the loop thread with the result"
    );
    let worker = work_thread.lock().unwrap().expect("work ran");
    assert_ne!(worker, loop_thread, "work must run on another thread");
}

// Catches: a panicking work item taking down a worker / the loop, reaching
// `done` anyway, or not reported to the error handler (or keeping `run()`
// going for ever as a pending job).
#[test]
fn panicking_work_goes_to_the_error_handler_and_skips_done() {
    let mut lp = EventLoop::new().unwrap();
    let errors: Rc<RefCell<Vec<CallbackError>>> = Rc::default();
    let e = Rc::clone(&errors);
    lp.set_error_handler(move |_, err| e.borrow_mut().push(err));
    let done_called = Rc::new(Cell::new(false));
    let d = Rc::clone(&done_called);
    lp.run_in_executor(
        || -> u32 { panic!("work exploded") },
        move |_, _| {
            d.set(true);
            Ok(())
        },
    )
    .unwrap();
    // The pool survives: a second job still completes.
    let second = Rc::new(Cell::new(0));
    let s = Rc::clone(&second);
    lp.run_in_executor(
        || 7,
        move |_, v| {
            s.set(v);
            Ok(())
        },
    )
    .unwrap();
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert!(!done_called.get(), "done must not run after a panic");
    assert_eq!(second.get(), 7);
    let errors = errors.borrow();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].token.is_none());
    let msg = format!("{:#}", errors[0].error);
    assert!(
        msg.contains("panicked") && msg.contains("work exploded"),
        "{msg}"
    );
    assert_eq!(lp.stats().callback_errors, 1);
}

// Catches: `set_executor_threads` ignored (the default pool here may be 2
// threads): three jobs that each wait for all three to have started can only
// all succeed on at least three workers; and no more than three exist.
#[test]
fn set_executor_threads_sizes_the_pool() {
    let mut lp = EventLoop::new().unwrap();
    lp.set_executor_threads(3);
    let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
    let results: Rc<RefCell<Vec<(bool, String)>>> = Rc::default();
    for _ in 0..3 {
        let arrived = Arc::clone(&arrived);
        let results = Rc::clone(&results);
        lp.run_in_executor(
            move || {
                let (count, cv) = &*arrived;
                let mut n = count.lock().unwrap();
                *n += 1;
                cv.notify_all();
                let deadline = Instant::now() + PATIENCE;
                while *n < 3 {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    n = cv.wait_timeout(n, left).unwrap().0;
                }
                let name = thread::current().name().unwrap_or("").to_owned();
                (*n >= 3, name)
            },
            move |_, r| {
                results.borrow_mut().push(r);
                Ok(())
            },
        )
        .unwrap();
    }
    // More jobs afterwards: they must all land on the same three workers.
    let extra = Arc::new(AtomicUsize::new(0));
    for _ in 0..12 {
        let extra = Arc::clone(&extra);
        let results = Rc::clone(&results);
        lp.run_in_executor(
            move || {
                extra.fetch_add(1, Ordering::SeqCst);
                (true, thread::current().name().unwrap_or("").to_owned())
            },
            move |_, r| {
                results.borrow_mut().push(r);
                Ok(())
            },
        )
        .unwrap();
    }
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    let results = results.borrow();
    assert_eq!(results.len(), 15);
    assert!(
        results.iter().all(|(ok, _)| *ok),
        "the three jobs did not run at once: {results:?}"
    );
    let names: HashSet<&str> = results.iter().map(|(_, n)| n.as_str()).collect();
    assert!(names.len() <= 3, "more than three workers: {names:?}");
    assert!(names.len() == 3, "fewer than three workers: {names:?}");
    assert_eq!(extra.load(Ordering::SeqCst), 12);
}

// Catches: a lost wake-up (a callback queued between the loop collecting
// remote callbacks and blocking in select) or a lost callback, under
// contention from four threads; the watchdog would have to stop the run.
#[test]
fn threadsafe_calls_from_many_threads_all_run() {
    const THREADS: usize = 4;
    const EACH: usize = 250;
    let mut lp = EventLoop::new().unwrap();
    keep_blocking(&mut lp);
    let count = Arc::new(AtomicUsize::new(0));
    let started = running_signal(&mut lp);
    let handle = lp.handle();
    let senders = thread::spawn(move || {
        started.recv_timeout(PATIENCE).expect("the loop started");
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let handle = handle.clone();
                let count = Arc::clone(&count);
                thread::spawn(move || {
                    for _ in 0..EACH {
                        let count = Arc::clone(&count);
                        handle.call_soon_threadsafe(move |lp| {
                            if count.fetch_add(1, Ordering::SeqCst) + 1 == THREADS * EACH {
                                lp.stop();
                            }
                            Ok(())
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    senders.join().unwrap();
}

//! The `EventLoop`'s timers and scheduled callbacks: deadline order, FIFO
//! among equal deadlines, cancellation, `call_every`, `call_soon` running on
//! the next iteration, no starvation between timers and I/O, and `run()`
//! waiting for a pending timer.
//!
//! Each test names, in the comment above it, the mutation of `src/` it
//! catches. Elapsed-time checks have generous bounds; nothing sleeps.
#![cfg(all(feature = "event-loop", feature = "net"))]

mod loop_util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use selectloop::{CallHandle, EventLoop, EVENT_READ};

use loop_util::{loop_pair, wait_readable, Watchdog, PATIENCE};

fn run_guarded(lp: &mut EventLoop) {
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
}

// Catches: a heap ordered the wrong way (latest deadline first) or timers
// firing before their deadline.
#[test]
fn call_later_runs_in_deadline_order_not_before_the_deadline() {
    let mut lp = EventLoop::new().unwrap();
    let order: Rc<RefCell<Vec<u64>>> = Rc::default();
    let start = Instant::now();
    for ms in [30u64, 10, 0, 20, 5] {
        let order = Rc::clone(&order);
        lp.call_later(Duration::from_millis(ms), move |_| {
            let elapsed = start.elapsed();
            assert!(
                elapsed >= Duration::from_millis(ms),
                "{ms} ms timer fired after {elapsed:?}"
            );
            order.borrow_mut().push(ms);
            Ok(())
        });
    }
    run_guarded(&mut lp);
    assert_eq!(*order.borrow(), [0, 5, 10, 20, 30]);
    assert_eq!(lp.stats().timers_fired, 5);
}

// Catches: equal deadlines not ordered by scheduling sequence (a heap that
// compares deadlines only pops them in arbitrary order), for `call_at`, and
// `call_soon` callbacks not run FIFO.
#[test]
fn equal_deadlines_run_in_scheduling_order() {
    let mut lp = EventLoop::new().unwrap();
    let order: Rc<RefCell<Vec<u32>>> = Rc::default();
    let at = Instant::now() + Duration::from_millis(5);
    for i in 0..32 {
        let order = Rc::clone(&order);
        lp.call_at(at, move |_| {
            order.borrow_mut().push(i);
            Ok(())
        });
    }
    run_guarded(&mut lp);
    assert_eq!(*order.borrow(), (0..32).collect::<Vec<_>>());

    order.borrow_mut().clear();
    for i in 0..32 {
        let order = Rc::clone(&order);
        lp.call_soon(move |_| {
            order.borrow_mut().push(i);
            Ok(())
        });
    }
    lp.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(*order.borrow(), (0..32).collect::<Vec<_>>());
}

// Catches: a cancelled callback still running, or a cancelled timer still
// counted as pending (so `run()` would wait out its hour).
#[test]
fn cancelled_before_firing_never_runs() {
    let mut lp = EventLoop::new().unwrap();
    let ran: Rc<RefCell<Vec<&str>>> = Rc::default();
    let far = lp.call_later(Duration::from_secs(3600), |_| panic!("cancelled timer ran"));
    let r = Rc::clone(&ran);
    let near_cancelled = lp.call_later(Duration::from_millis(5), move |_| {
        r.borrow_mut().push("near cancelled");
        Ok(())
    });
    let r = Rc::clone(&ran);
    lp.call_later(Duration::from_millis(10), move |_| {
        r.borrow_mut().push("kept");
        Ok(())
    });
    let soon = lp.call_soon(|_| panic!("cancelled call_soon ran"));
    assert!(far.cancel());
    assert!(
        !far.cancel(),
        "second cancel reports it was cancelled already"
    );
    assert!(far.is_cancelled());
    assert!(near_cancelled.cancel());
    assert!(soon.cancel());
    let started = Instant::now();
    run_guarded(&mut lp);
    assert!(
        started.elapsed() < PATIENCE,
        "run() waited for a cancelled timer"
    );
    assert_eq!(*ran.borrow(), ["kept"]);
    assert_eq!(lp.stats().timers_fired, 1);
}

// Catches: a repeating timer re-armed after cancelling itself (it would run
// a sixth time), or `call_every` drifting to fire early.
#[test]
fn call_every_cancelled_from_its_own_callback_runs_exactly_n_times() {
    let mut lp = EventLoop::new().unwrap();
    let handle: Rc<RefCell<Option<CallHandle>>> = Rc::default();
    let runs = Rc::new(Cell::new(0u32));
    let (h, r) = (Rc::clone(&handle), Rc::clone(&runs));
    let start = Instant::now();
    let period = Duration::from_millis(10);
    let every = lp.call_every(period, move |_| {
        r.set(r.get() + 1);
        assert!(r.get() <= 5, "ran after being cancelled");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= period * r.get(),
            "run {} came early, after {elapsed:?}",
            r.get()
        );
        if r.get() == 5 {
            assert!(h.borrow().as_ref().unwrap().cancel());
        }
        Ok(())
    });
    *handle.borrow_mut() = Some(every);
    run_guarded(&mut lp);
    assert_eq!(runs.get(), 5);
    assert_eq!(lp.stats().timers_fired, 5);
}

// Catches: `call_soon` from a scheduled callback running in the same
// iteration (draining the queue until empty instead of a snapshot), or
// recursively inside the callback that scheduled it.
#[test]
fn call_soon_from_a_scheduled_callback_runs_on_the_next_iteration() {
    let mut lp = EventLoop::new().unwrap();
    let runs: Rc<RefCell<Vec<u64>>> = Rc::default();
    let inside = Rc::new(Cell::new(false));
    fn link(lp: &mut EventLoop, left: u32, runs: Rc<RefCell<Vec<u64>>>, inside: Rc<Cell<bool>>) {
        lp.call_soon(move |lp| {
            assert!(
                !inside.get(),
                "call_soon ran inside the callback that scheduled it"
            );
            runs.borrow_mut().push(lp.stats().iterations);
            if left > 1 {
                inside.set(true);
                link(lp, left - 1, runs, Rc::clone(&inside));
                inside.set(false);
            }
            Ok(())
        });
    }
    link(&mut lp, 5, Rc::clone(&runs), inside);
    for i in 1..=5 {
        lp.run_once(Some(PATIENCE)).unwrap();
        assert_eq!(runs.borrow().len(), i, "exactly one link per iteration");
    }
    assert_eq!(*runs.borrow(), [1, 2, 3, 4, 5]);
    // A timer's call_soon, too.
    let at: Rc<RefCell<Vec<(&str, u64)>>> = Rc::default();
    let a = Rc::clone(&at);
    lp.call_later(Duration::ZERO, move |lp| {
        a.borrow_mut().push(("timer", lp.stats().iterations));
        let a = Rc::clone(&a);
        lp.call_soon(move |lp| {
            a.borrow_mut().push(("soon", lp.stats().iterations));
            Ok(())
        });
        Ok(())
    });
    run_guarded(&mut lp);
    let at = at.borrow();
    assert_eq!(at.len(), 2);
    assert_eq!(at[1].1, at[0].1 + 1, "{at:?}");
}

// Catches: `call_soon` from an I/O callback running in the same iteration as
// that callback (the doc promises the next iteration, as asyncio does).
#[test]
fn call_soon_from_an_io_callback_runs_on_the_next_iteration() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let at: Rc<RefCell<Vec<(&str, u64)>>> = Rc::default();
    let a = Rc::clone(&at);
    lp.register(server, EVENT_READ, move |lp, conn: &mut TcpStream, _| {
        let mut buf = [0u8; 16];
        let _ = conn.read(&mut buf)?;
        a.borrow_mut().push(("io", lp.stats().iterations));
        let a = Rc::clone(&a);
        lp.call_soon(move |lp| {
            a.borrow_mut().push(("soon", lp.stats().iterations));
            Ok(())
        });
        Ok(())
    })
    .unwrap();
    client.write_all(b"x").unwrap();
    let deadline = Instant::now() + PATIENCE;
    while at.borrow().is_empty() {
        assert!(Instant::now() < deadline);
        lp.run_once(Some(Duration::from_millis(100))).unwrap();
    }
    assert_eq!(
        at.borrow().len(),
        1,
        "call_soon ran in the I/O callback's iteration: {:?}",
        at.borrow()
    );
    lp.run_once(Some(PATIENCE)).unwrap();
    let at = at.borrow();
    assert_eq!(at.len(), 2, "{at:?}");
    assert_eq!(at[1].1, at[0].1 + 1, "{at:?}");
}

// Catches: I/O starved by scheduled callbacks (a call_soon that reschedules
// itself for ever): draining the ready queue until empty would never return
// to select.
#[test]
fn call_soon_forever_does_not_starve_io() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let server_probe = server.try_clone().unwrap();
    let spins = Rc::new(Cell::new(0u32));
    fn spin(lp: &mut EventLoop, spins: Rc<Cell<u32>>) {
        lp.call_soon(move |lp| {
            spins.set(spins.get() + 1);
            assert!(
                spins.get() < 10_000,
                "the ready queue is never left for select"
            );
            spin(lp, spins);
            Ok(())
        });
    }
    spin(&mut lp, Rc::clone(&spins));
    let io = Rc::new(Cell::new(0u64));
    let i = Rc::clone(&io);
    lp.register(server, EVENT_READ, move |lp, _: &mut TcpStream, _| {
        i.set(lp.stats().iterations);
        Ok(())
    })
    .unwrap();
    client.write_all(b"x").unwrap();
    wait_readable(&server_probe);
    // Readable before the first select: its callback must come within two
    // iterations, each running exactly one spin (the one queued before it).
    for _ in 0..2 {
        lp.run_once(Some(PATIENCE)).unwrap();
        if io.get() != 0 {
            break;
        }
    }
    assert_ne!(
        io.get(),
        0,
        "the socket's callback was starved by call_soon"
    );
    assert!(io.get() <= 2);
    assert_eq!(
        u64::from(spins.get()),
        lp.stats().iterations,
        "one spin per iteration"
    );
}

// Catches: timers starved by I/O (due timers processed only when no I/O was
// ready): the socket here is readable on every iteration.
#[test]
fn always_ready_io_does_not_starve_timers() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    client.write_all(b"never read").unwrap();
    wait_readable(&server);
    let io_calls = Rc::new(Cell::new(0u32));
    let c = Rc::clone(&io_calls);
    lp.register(server, EVENT_READ, move |_, _: &mut TcpStream, _| {
        c.set(c.get() + 1);
        Ok(())
    })
    .unwrap();
    let fired: Rc<RefCell<Vec<(&str, u64)>>> = Rc::default();
    let f = Rc::clone(&fired);
    lp.call_later(Duration::ZERO, move |lp| {
        f.borrow_mut().push(("zero", lp.stats().iterations));
        Ok(())
    });
    let f = Rc::clone(&fired);
    lp.call_later(Duration::from_millis(20), move |lp| {
        f.borrow_mut().push(("20ms", lp.stats().iterations));
        Ok(())
    });
    let deadline = Instant::now() + PATIENCE;
    while fired.borrow().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "timers starved: {:?}",
            fired.borrow()
        );
        lp.run_once(Some(PATIENCE)).unwrap();
    }
    assert_eq!(
        fired.borrow()[0],
        ("zero", 1),
        "a due timer runs in the first iteration"
    );
    assert_eq!(fired.borrow()[1].0, "20ms");
    assert!(io_calls.get() as u64 >= lp.stats().iterations - 1);
}

// Catches: `run()` returning while a timer is pending (an idle check that
// ignores timers), or busy-looping instead of sleeping until the deadline.
#[test]
fn run_waits_for_a_pending_timer_then_returns() {
    let mut lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    let start = Instant::now();
    lp.call_later(Duration::from_millis(50), move |_| {
        r.set(true);
        Ok(())
    });
    run_guarded(&mut lp);
    let took = start.elapsed();
    assert!(ran.get());
    assert!(took >= Duration::from_millis(50), "returned after {took:?}");
    assert!(took < PATIENCE, "took {took:?}");
    // A handful of iterations (wake-ups from coarse clocks), not a spin.
    assert!(
        lp.stats().iterations < 50,
        "{} iterations for one timer",
        lp.stats().iterations
    );
}

// Catches: a deadline in the past waiting (or being dropped) instead of
// running on the next iteration.
#[test]
fn call_at_in_the_past_runs_at_once() {
    let mut lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    let past = Instant::now()
        .checked_sub(Duration::from_secs(1))
        .unwrap_or_else(Instant::now);
    lp.call_at(past, move |_| {
        r.set(true);
        Ok(())
    });
    lp.run_once(Some(PATIENCE)).unwrap();
    assert!(ran.get());
    assert_eq!(lp.stats().iterations, 1);
}

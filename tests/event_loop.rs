//! The `EventLoop`'s sources and callbacks: registration with concrete types,
//! `run` / `run_once` / `stop`, the three re-entrancy guarantees of the
//! module docs, `take` / `with_source` / `set_callback` / `modify`, and error
//! and panic handling.
//!
//! Each test names, in the comment above it, the mutation of `src/` it
//! catches. Everything is loopback; every blocking run has a watchdog.
#![cfg(all(feature = "event-loop", feature = "net"))]

mod loop_util;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use selectloop::{CallbackError, Error, EventLoop, Fd, Interest, Source, EVENT_READ, EVENT_WRITE};

use loop_util::{
    expect_closed, listener, loop_pair, read_n, read_to_eof, token_slot, wait_readable, Watchdog,
    PATIENCE,
};

type Token = selectloop::Token<TcpStream>;
type Log = Rc<RefCell<Vec<(Token, Interest)>>>;
/// (old token, old fd, new token, new fd) of a mid-batch replacement.
type Swap = (Token, Fd, Token, Fd);

/// Runs `run_once` until `done()` holds; panics after [`PATIENCE`].
#[track_caller]
fn run_until(lp: &mut EventLoop, mut done: impl FnMut(&mut EventLoop) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(lp) {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {PATIENCE:?}"
        );
        lp.run_once(Some(Duration::from_millis(100)))
            .expect("run_once");
    }
}

/// Reads what is available; `Ok(None)` at end of stream.
fn read_some(conn: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 4096];
    match conn.read(&mut buf) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(Vec::new())),
        Err(e) => Err(e),
    }
}

/// Both ends of two pairs, the loop ends readable (one byte each) by the time
/// this returns, so one `select` reports both.
fn two_ready_pairs() -> ((TcpStream, TcpStream), (TcpStream, TcpStream)) {
    let (mut ca, sa) = loop_pair();
    let (mut cb, sb) = loop_pair();
    ca.write_all(b"a").unwrap();
    cb.write_all(b"b").unwrap();
    wait_readable(&sa);
    wait_readable(&sb);
    ((ca, sa), (cb, sb))
}

// ----- registration and running ---------------------------------------------

// Catches: a callback handed another object than its own (e.g. a neighbour's
// after a slot mix-up), or `run()` not returning once the last source is gone.
#[test]
fn callback_gets_its_own_concrete_object_and_run_returns_when_empty() {
    let mut lp = EventLoop::new().unwrap();
    let lst = listener();
    let addr = lst.local_addr().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = Rc::clone(&got);
    // A listener gets `&mut TcpListener` (accept), a connection `&mut TcpStream`.
    lp.register(lst, EVENT_READ, move |lp, lst: &mut TcpListener, ev| {
        let mask = ev.mask();
        assert_eq!(mask, EVENT_READ);
        assert_eq!(lst.local_addr()?, addr);
        let (conn, _) = lst.accept()?;
        conn.set_nonblocking(true)?;
        let local = conn.local_addr()?;
        let g = Rc::clone(&g);
        lp.register(conn, EVENT_READ, move |lp, conn: &mut TcpStream, _| {
            assert_eq!(conn.local_addr()?, local, "the callback got another socket");
            match read_some(conn)? {
                Some(data) => g.borrow_mut().extend_from_slice(&data),
                None => lp.unregister(ev.token())?,
            }
            Ok(())
        })?;
        // One connection only: the listener goes, so run() can end.
        lp.unregister(ev.token())?;
        Ok(())
    })
    .unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"typed").unwrap();
    drop(client);
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(&*got.borrow(), b"typed");
    assert_eq!(lp.source_count(), 0);
}

// Catches: `run()` doing a first `select(None)` on an empty loop (it would
// block for ever) instead of checking for work first.
#[test]
fn run_on_an_empty_loop_returns_at_once() {
    let mut lp = EventLoop::new().unwrap();
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(lp.stats().iterations, 0);
}

// Catches: `run()` returning while a source is still registered (an idle
// check that ignores sources), i.e. before the second connection's EOF.
#[test]
fn run_keeps_going_while_any_source_remains() {
    let mut lp = EventLoop::new().unwrap();
    let eofs = Rc::new(Cell::new(0));
    let (c1, s1) = loop_pair();
    let (mut c2, s2) = loop_pair();
    for s in [s1, s2] {
        let eofs = Rc::clone(&eofs);
        lp.register(s, EVENT_READ, move |lp, conn: &mut TcpStream, ev| {
            if read_some(conn)?.is_none() {
                eofs.set(eofs.get() + 1);
                lp.unregister(ev.token())?;
            }
            Ok(())
        })
        .unwrap();
    }
    drop(c1);
    // The second client closes only once the first one's EOF was handled.
    let wd = Watchdog::default_for(lp.handle());
    run_until(&mut lp, |_| eofs.get() == 1);
    c2.write_all(b"still here").unwrap();
    drop(c2);
    lp.run().unwrap();
    wd.finish();
    assert_eq!(eofs.get(), 2);
}

// Catches: `run_once` looping (more than one `select`), not dispatching, or
// not honouring its timeout when nothing is ready.
#[test]
fn run_once_runs_exactly_one_iteration() {
    let mut lp = EventLoop::new().unwrap();
    let (_client, server) = loop_pair();
    let calls = Rc::new(Cell::new(0));
    let c = Rc::clone(&calls);
    // A connected socket is always writable: level-triggered, one call per iteration.
    let tok = lp
        .register(server, EVENT_WRITE, move |_, _: &mut TcpStream, ev| {
            let mask = ev.mask();
            assert_eq!(mask, EVENT_WRITE);
            c.set(c.get() + 1);
            Ok(())
        })
        .unwrap();
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!((calls.get(), lp.stats().iterations), (1, 1));
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!((calls.get(), lp.stats().iterations), (2, 2));
    // Nothing ready: run_once waits out its timeout and returns.
    lp.modify(tok, EVENT_READ).unwrap();
    let started = Instant::now();
    lp.run_once(Some(Duration::from_millis(50))).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(45), "returned after {took:?}");
    assert!(took < PATIENCE, "took {took:?}");
    assert_eq!((calls.get(), lp.stats().iterations), (2, 3));
}

// Catches: `EventLoop::stop` ignored by `run()` (the watchdog would end the run
// much later, with many more calls).
#[test]
fn stop_from_a_callback_ends_run() {
    let mut lp = EventLoop::new().unwrap();
    let (_client, server) = loop_pair();
    let calls = Rc::new(Cell::new(0));
    let c = Rc::clone(&calls);
    lp.register(server, EVENT_WRITE, move |lp, _: &mut TcpStream, _| {
        c.set(c.get() + 1);
        if c.get() % 3 == 0 {
            lp.stop();
        }
        Ok(())
    })
    .unwrap();
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(calls.get(), 3);
    // The stop request was consumed: the next run() runs again until stopped.
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(calls.get(), 6);
}

// ----- the three re-entrancy guarantees -------------------------------------

// Guarantee 1. Catches: dispatching the batch without re-checking that each
// key is still registered (a stale snapshot of handlers), for `unregister`
// and for `take`.
#[test]
fn source_unregistered_earlier_in_the_batch_gets_no_callback() {
    for use_take in [false, true] {
        let mut lp = EventLoop::new().unwrap();
        let ((ca, sa), (cb, sb)) = two_ready_pairs();
        let tokens: Rc<RefCell<Vec<Token>>> = Rc::default();
        let log: Log = Rc::default();
        let taken: Rc<RefCell<Vec<TcpStream>>> = Rc::default();
        let all_tokens = Rc::clone(&tokens);
        for s in [sa, sb] {
            let (tokens, log, taken) = (Rc::clone(&tokens), Rc::clone(&log), Rc::clone(&taken));
            let tok = lp
                .register(s, EVENT_READ, move |lp, _: &mut TcpStream, ev| {
                    let mask = ev.mask();
                    let me = ev.token();
                    log.borrow_mut().push((me, mask));
                    // Whichever runs first removes the other; it must then not run.
                    let other = *tokens.borrow().iter().find(|&&t| t != me).unwrap();
                    if use_take {
                        taken.borrow_mut().push(lp.take::<TcpStream>(other)?);
                    } else {
                        lp.unregister(other)?;
                    }
                    Ok(())
                })
                .unwrap();
            all_tokens.borrow_mut().push(tok);
        }
        lp.run_once(Some(PATIENCE)).unwrap();
        let log = log.borrow();
        assert_eq!(log.len(), 1, "take={use_take}: both sources ran: {log:?}");
        assert_eq!(lp.source_count(), 1);
        let survivor = log[0].0;
        let victim = *tokens.borrow().iter().find(|&&t| t != survivor).unwrap();
        assert!(!lp.is_registered(victim));
        // Unregistered means closed; taken means handed back, still open.
        let victim_client = if victim == tokens.borrow()[0] {
            &ca
        } else {
            &cb
        };
        if use_take {
            let mut obj = taken.borrow_mut().pop().unwrap();
            let mut byte = [0u8; 1];
            obj.set_nonblocking(false).unwrap();
            obj.read_exact(&mut byte).unwrap();
            obj.write_all(b"!").unwrap();
            assert_eq!(read_n(victim_client, 1), b"!");
        } else {
            assert_eq!(expect_closed(victim_client), b"");
        }
    }
}

/// On Unix a new descriptor takes the lowest free number. Occupies every
/// free number below `fd` (holes left by closed sockets), so that the next
/// socket gets `fd` itself, if it is still free. Keep the result alive until
/// that socket exists.
#[cfg(unix)]
fn plug_fds_below(fd: Fd) -> Vec<std::net::UdpSocket> {
    let mut plugs = Vec::new();
    for _ in 0..256 {
        let plug = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        if plug.fileno() >= fd {
            break; // dropped: `fd` (if that was it) is the lowest free number again
        }
        plugs.push(plug);
    }
    plugs
}

/// Windows socket handles are not allocated lowest-first: nothing to plug.
#[cfg(not(unix))]
fn plug_fds_below(_fd: Fd) -> Vec<std::net::UdpSocket> {
    Vec::new()
}

// Guarantee 2. Catches: dropping the generation check in dispatch, so a
// source registered mid-batch into the slot (and, on Unix, the descriptor
// number) of a just-unregistered ready source inherits its stale readiness.
#[test]
fn new_source_reusing_fd_and_slot_never_gets_stale_events() {
    let fresh_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = fresh_listener.local_addr().unwrap();
    let mut saw_fd_reuse = false;
    for attempt in 0..50 {
        let mut lp = EventLoop::new().unwrap();
        let ((_ca, sa), (_cb, sb)) = two_ready_pairs();
        let tokens: Rc<RefCell<Vec<(Token, Fd)>>> = Rc::default();
        let log: Log = Rc::default();
        let swap: Rc<Cell<Option<Swap>>> = Rc::default();
        let all_tokens = Rc::clone(&tokens);
        for s in [sa, sb] {
            let fd = s.fileno();
            let (tokens, log, swap) = (Rc::clone(&tokens), Rc::clone(&log), Rc::clone(&swap));
            let tok = lp
                .register(s, EVENT_READ, move |lp, _: &mut TcpStream, ev| {
                    let mask = ev.mask();
                    let me = ev.token();
                    log.borrow_mut().push((me, mask));
                    if swap.get().is_some() {
                        return Ok(());
                    }
                    let (other, other_fd) =
                        *tokens.borrow().iter().find(|&&(t, _)| t != me).unwrap();
                    lp.unregister(other)?; // closes it: its fd and slot are free
                    let _plugs = plug_fds_below(other_fd);
                    let fresh = TcpStream::connect(addr)?; // connected, nothing to read
                    fresh.set_nonblocking(true)?;
                    let fresh_fd = fresh.fileno();
                    let log2 = Rc::clone(&log);
                    let new = lp.register(fresh, EVENT_READ, move |_, _: &mut TcpStream, ev| {
                        let mask = ev.mask();
                        log2.borrow_mut().push((ev.token(), mask));
                        Ok(())
                    })?;
                    swap.set(Some((other, other_fd, new, fresh_fd)));
                    Ok(())
                })
                .unwrap();
            all_tokens.borrow_mut().push((tok, fd));
        }
        lp.run_once(Some(PATIENCE)).unwrap();
        let (old, old_fd, new, new_fd) = swap.get().expect("one callback ran");
        assert_ne!(old, new);
        assert_eq!(
            token_slot(new),
            token_slot(old),
            "the test must exercise slot reuse"
        );
        assert_eq!(
            log.borrow().len(),
            1,
            "stale readiness reached someone: {:?}",
            log.borrow()
        );
        assert_ne!(log.borrow()[0].0, new);
        saw_fd_reuse |= new_fd == old_fd;

        // The new source does get its own events afterwards, under its own token.
        let (mut peer, _) = fresh_listener.accept().unwrap();
        peer.write_all(b"x").unwrap();
        run_until(&mut lp, |_| log.borrow().iter().any(|&(t, _)| t == new));
        assert!(log.borrow().iter().all(|&(t, _)| t != old));
        if saw_fd_reuse && attempt >= 2 {
            break;
        }
    }
    // Unix hands out the lowest free descriptor: the test must have hit reuse
    // (other test threads may take the number first now and then, hence the retries).
    if cfg!(unix) {
        assert!(
            saw_fd_reuse,
            "never got the closed descriptor number back in 50 attempts"
        );
    }
}

// Guarantee 3. Catches: dispatching the mask `select` returned without
// intersecting it with the source's current events.
#[test]
fn source_modified_to_drop_write_gets_no_write_callback_in_the_batch() {
    // (a) Both readable and writable; the first to run narrows the other to
    //     EVENT_READ: the other's callback (if any) must see EVENT_READ only.
    let mut lp = EventLoop::new().unwrap();
    let ((_ca, sa), (_cb, sb)) = two_ready_pairs();
    let tokens: Rc<RefCell<Vec<Token>>> = Rc::default();
    let log: Log = Rc::default();
    let all_tokens = Rc::clone(&tokens);
    for s in [sa, sb] {
        let (tokens, log) = (Rc::clone(&tokens), Rc::clone(&log));
        let tok = lp
            .register(
                s,
                EVENT_READ | EVENT_WRITE,
                move |lp, _: &mut TcpStream, ev| {
                    let mask = ev.mask();
                    let me = ev.token();
                    let first = log.borrow().is_empty();
                    log.borrow_mut().push((me, mask));
                    if first {
                        let other = *tokens.borrow().iter().find(|&&t| t != me).unwrap();
                        lp.modify(other, EVENT_READ)?;
                    }
                    Ok(())
                },
            )
            .unwrap();
        all_tokens.borrow_mut().push(tok);
    }
    lp.run_once(Some(PATIENCE)).unwrap();
    let got = log.borrow().clone();
    assert_eq!(got.len(), 2, "both are readable: {got:?}");
    assert_eq!(got[0].1, EVENT_READ | EVENT_WRITE);
    assert_eq!(
        got[1].1, EVENT_READ,
        "write callback after the write interest was dropped: {got:?}"
    );

    // (b) Writable only: the narrowed source gets no callback at all.
    let mut lp = EventLoop::new().unwrap();
    let (_ca, sa) = loop_pair();
    let (_cb, sb) = loop_pair();
    let tokens: Rc<RefCell<Vec<Token>>> = Rc::default();
    let log: Log = Rc::default();
    let all_tokens = Rc::clone(&tokens);
    for s in [sa, sb] {
        let (tokens, log) = (Rc::clone(&tokens), Rc::clone(&log));
        let tok = lp
            .register(s, EVENT_WRITE, move |lp, _: &mut TcpStream, ev| {
                let mask = ev.mask();
                let me = ev.token();
                log.borrow_mut().push((me, mask));
                let other = *tokens.borrow().iter().find(|&&t| t != me).unwrap();
                lp.modify(other, EVENT_READ)?;
                Ok(())
            })
            .unwrap();
        all_tokens.borrow_mut().push(tok);
    }
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(log.borrow().len(), 1, "{:?}", log.borrow());
}

// ----- unregister, take, with_source, set_callback, modify ------------------

// Catches: a source unregistering itself being dropped too early (while its
// callback still uses it) or too late (kept until the loop drops).
#[test]
fn unregister_self_from_own_callback_closes_right_after() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let tok = lp
        .register(server, EVENT_READ, |lp, conn: &mut TcpStream, ev| {
            let me = ev.token();
            lp.unregister(me)?;
            assert!(!lp.is_registered(me));
            assert_eq!(lp.source_count(), 0);
            // Still open until this callback returns.
            read_some(conn)?;
            conn.write_all(b"bye")?;
            Ok(())
        })
        .unwrap();
    client.write_all(b"hi").unwrap();
    run_until(&mut lp, |lp| !lp.is_registered(tok));
    // The loop is still alive, yet the peer sees the goodbye and then EOF.
    assert_eq!(read_to_eof(&client), b"bye");
    assert!(matches!(lp.unregister(tok), Err(Error::InvalidToken)));
}

// Catches: `take` closing the object, handing back another one, or leaving
// the source registered.
#[test]
fn take_gives_the_object_back() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let local = server.local_addr().unwrap();
    let tok = lp
        .register(server, EVENT_READ, |_, _: &mut TcpStream, _| Ok(()))
        .unwrap();
    let mut obj: TcpStream = lp.take(tok).unwrap();
    assert_eq!(obj.local_addr().unwrap(), local);
    assert!(!lp.is_registered(tok));
    assert_eq!(lp.source_count(), 0);
    assert!(matches!(
        lp.take::<TcpStream>(tok),
        Err(Error::InvalidToken)
    ));
    client.write_all(b"still open").unwrap();
    assert_eq!(read_n(&obj, 10), b"still open");
    obj.write_all(b"yes").unwrap();
    assert_eq!(read_n(&client, 3), b"yes");
}

// Catches: `take` (or `with_source`) on the running source succeeding (its
// object is borrowed by the callback) or unregistering it on the way.
#[test]
fn take_from_own_callback_is_in_use_and_stays_registered() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let checked = Rc::new(Cell::new(false));
    let c = Rc::clone(&checked);
    let tok = lp
        .register(server, EVENT_READ, move |lp, conn: &mut TcpStream, ev| {
            let me = ev.token();
            assert!(matches!(lp.take::<TcpStream>(me), Err(Error::InUse)));
            assert!(matches!(
                lp.with_source::<TcpStream, _>(me, |_| ()),
                Err(Error::InUse)
            ));
            assert!(lp.is_registered(me));
            read_some(conn)?;
            c.set(true);
            Ok(())
        })
        .unwrap();
    client.write_all(b"x").unwrap();
    run_until(&mut lp, |_| checked.get());
    assert!(lp.is_registered(tok));
    // The object survived the failed take: it is the same, open socket.
    let obj: TcpStream = lp.take(tok).unwrap();
    obj.set_nonblocking(false).unwrap();
    (&obj).write_all(b"ok").unwrap();
    assert_eq!(read_n(&client, 2), b"ok");
}

// (A token of one type cannot reach a source of another: `take`, `with_source`
// and `set_callback` are checked by the compiler; see the `compile_fail`
// doctests of `EventLoop::take`.)

// Catches: API entry points that look a token up by slot alone, so a dead
// token acts on whatever source now sits in its slot.
#[test]
fn stale_token_is_invalid_everywhere() {
    let mut lp = EventLoop::new().unwrap();
    let (_c1, s1) = loop_pair();
    let (_c2, s2) = loop_pair();
    let old = lp
        .register(s1, EVENT_READ, |_, _: &mut TcpStream, _| Ok(()))
        .unwrap();
    lp.unregister(old).unwrap();
    let new = lp
        .register(s2, EVENT_READ, |_, _: &mut TcpStream, _| Ok(()))
        .unwrap();
    assert_eq!(
        token_slot(new),
        token_slot(old),
        "the test must exercise slot reuse"
    );
    assert!(!lp.is_registered(old));
    assert!(matches!(lp.unregister(old), Err(Error::InvalidToken)));
    assert!(matches!(
        lp.take::<TcpStream>(old),
        Err(Error::InvalidToken)
    ));
    assert!(matches!(
        lp.with_source::<TcpStream, _>(old, |_| ()),
        Err(Error::InvalidToken)
    ));
    assert!(matches!(
        lp.modify(old, EVENT_WRITE),
        Err(Error::InvalidToken)
    ));
    assert!(matches!(lp.events(old), Err(Error::InvalidToken)));
    assert!(matches!(
        lp.set_callback(old, |_, _: &mut TcpStream, _| Ok(())),
        Err(Error::InvalidToken)
    ));
    // The new source was not touched.
    assert!(lp.is_registered(new));
    assert_eq!(lp.events(new).unwrap(), EVENT_READ);
    assert_eq!(lp.source_count(), 1);
}

// Catches: `with_source` giving the wrong object, or not giving mutable
// access to another source from a callback.
#[test]
fn with_source_writes_to_another_source() {
    let mut lp = EventLoop::new().unwrap();
    let (mut ca, sa) = loop_pair();
    let (cb, sb) = loop_pair();
    let b_local = sb.local_addr().unwrap();
    let tb = lp
        .register(sb, EVENT_READ, |_, _: &mut TcpStream, _| Ok(()))
        .unwrap();
    let relayed = Rc::new(Cell::new(false));
    let r = Rc::clone(&relayed);
    lp.register(sa, EVENT_READ, move |lp, conn: &mut TcpStream, _| {
        if let Some(data) = read_some(conn)? {
            if !data.is_empty() {
                lp.with_source(tb, |other: &mut TcpStream| {
                    assert_eq!(other.local_addr()?, b_local);
                    other.write_all(&data)
                })??;
                r.set(true);
            }
        }
        Ok(())
    })
    .unwrap();
    ca.write_all(b"relay me").unwrap();
    run_until(&mut lp, |_| relayed.get());
    assert_eq!(read_n(&cb, 8), b"relay me");
}

// Catches: `set_callback` on another source not taking effect, or losing the
// object when it rebuilds the handler.
#[test]
fn set_callback_on_another_source() {
    let mut lp = EventLoop::new().unwrap();
    let (mut ca, sa) = loop_pair();
    let (mut cb, sb) = loop_pair();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = Rc::clone(&log);
    let tb = lp
        .register(sb, EVENT_READ, move |_, conn: &mut TcpStream, _| {
            l.borrow_mut().push(format!("old {:?}", read_some(conn)?));
            Ok(())
        })
        .unwrap();
    let l = Rc::clone(&log);
    lp.register(sa, EVENT_READ, move |lp, conn: &mut TcpStream, ev| {
        read_some(conn)?;
        let l = Rc::clone(&l);
        lp.set_callback(tb, move |_, conn: &mut TcpStream, _| {
            let data = read_some(conn)?.unwrap_or_default();
            l.borrow_mut()
                .push(format!("new {}", String::from_utf8_lossy(&data)));
            Ok(())
        })?;
        lp.unregister(ev.token())?;
        Ok(())
    })
    .unwrap();
    ca.write_all(b"switch").unwrap();
    run_until(&mut lp, |lp| lp.source_count() == 1);
    cb.write_all(b"payload").unwrap();
    run_until(&mut lp, |_| !log.borrow().is_empty());
    assert_eq!(*log.borrow(), ["new payload"]);
}

// Catches: a callback replacing itself being ignored (old one keeps running),
// or applied to the running call; and the object being lost on the way.
#[test]
fn set_callback_on_itself_applies_from_the_next_event() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = Rc::clone(&log);
    let tok = lp
        .register(server, EVENT_READ, move |lp, conn: &mut TcpStream, ev| {
            let data = read_some(conn)?.unwrap_or_default();
            l.borrow_mut()
                .push(format!("first {}", String::from_utf8_lossy(&data)));
            let l = Rc::clone(&l);
            let me = ev.token();
            lp.set_callback(me, move |_, conn: &mut TcpStream, _| {
                let data = read_some(conn)?.unwrap_or_default();
                l.borrow_mut()
                    .push(format!("second {}", String::from_utf8_lossy(&data)));
                Ok(())
            })?;
            // Still this call's object and callback until it returns.
            conn.write_all(b"ack")?;
            Ok(())
        })
        .unwrap();
    client.write_all(b"one").unwrap();
    run_until(&mut lp, |_| log.borrow().len() == 1);
    assert_eq!(read_n(&client, 3), b"ack");
    client.write_all(b"two").unwrap();
    run_until(&mut lp, |_| log.borrow().len() == 2);
    client.write_all(b"three").unwrap();
    run_until(&mut lp, |_| log.borrow().len() == 3);
    assert_eq!(*log.borrow(), ["first one", "second two", "second three"]);
    assert!(lp.is_registered(tok));
}

// Catches: a self-replacement followed by self-unregistration resurrecting
// the source, or leaking its object (the peer would not see EOF).
#[test]
fn set_callback_then_unregister_self_closes() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let tok = lp
        .register(server, EVENT_READ, |lp, _: &mut TcpStream, ev| {
            let me = ev.token();
            lp.set_callback(me, |_, _: &mut TcpStream, _| {
                panic!("replacement of a dead source ran")
            })?;
            lp.unregister(me)?;
            Ok(())
        })
        .unwrap();
    client.write_all(b"x").unwrap();
    run_until(&mut lp, |lp| !lp.is_registered(tok));
    assert_eq!(lp.source_count(), 0);
    assert_eq!(expect_closed(&client), b"");
}

// Catches: `modify` not reaching the kernel or not updating `events()`.
#[test]
fn modify_changes_events_and_callbacks() {
    let mut lp = EventLoop::new().unwrap();
    let (_client, server) = loop_pair();
    let masks: Rc<RefCell<Vec<Interest>>> = Rc::default();
    let m = Rc::clone(&masks);
    let tok = lp
        .register(server, EVENT_READ, move |lp, _: &mut TcpStream, ev| {
            let mask = ev.mask();
            m.borrow_mut().push(mask);
            let me = ev.token();
            assert_eq!(lp.events(me)?, EVENT_READ | EVENT_WRITE);
            lp.modify(me, EVENT_READ)?;
            assert_eq!(lp.events(me)?, EVENT_READ);
            Ok(())
        })
        .unwrap();
    assert_eq!(lp.events(tok).unwrap(), EVENT_READ);
    // Not readable: nothing happens.
    lp.run_once(Some(Duration::from_millis(20))).unwrap();
    assert!(masks.borrow().is_empty());
    lp.modify(tok, EVENT_READ | EVENT_WRITE).unwrap();
    assert_eq!(lp.events(tok).unwrap(), EVENT_READ | EVENT_WRITE);
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(*masks.borrow(), [EVENT_WRITE]);
    // The callback narrowed itself back to EVENT_READ: quiet again.
    lp.run_once(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(masks.borrow().len(), 1);
    assert_eq!(lp.events(tok).unwrap(), EVENT_READ);
}

// Catches: `run` / `run_once` re-entering from a callback (nested dispatch)
// instead of failing with `AlreadyRunning`, from an I/O and from a scheduled
// callback; and the running flag staying set after a run.
#[test]
fn run_from_a_callback_is_already_running() {
    let mut lp = EventLoop::new().unwrap();
    let (_client, server) = loop_pair();
    let checks = Rc::new(Cell::new(0));
    let c = Rc::clone(&checks);
    lp.register(server, EVENT_WRITE, move |lp, _: &mut TcpStream, ev| {
        assert!(matches!(lp.run(), Err(Error::AlreadyRunning)));
        assert!(matches!(
            lp.run_once(Some(Duration::ZERO)),
            Err(Error::AlreadyRunning)
        ));
        lp.unregister(ev.token())?;
        c.set(c.get() + 1);
        let c = Rc::clone(&c);
        lp.call_soon(move |lp| {
            assert!(matches!(lp.run(), Err(Error::AlreadyRunning)));
            assert!(matches!(lp.run_once(None), Err(Error::AlreadyRunning)));
            c.set(c.get() + 1);
            Ok(())
        });
        Ok(())
    })
    .unwrap();
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(checks.get(), 2);
    // Not running any more.
    lp.run_once(Some(Duration::ZERO)).unwrap();
}

// ----- errors, panics, slow callbacks, stats ---------------------------------

/// An echo server whose connections fail on the message `fail`.
fn failing_echo_server(lp: &mut EventLoop) -> SocketAddr {
    let lst = listener();
    let addr = lst.local_addr().unwrap();
    lp.register(lst, EVENT_READ, |lp, lst: &mut TcpListener, _| {
        let (conn, _) = lst.accept()?;
        conn.set_nonblocking(true)?;
        lp.register(
            conn,
            EVENT_READ,
            |lp, conn: &mut TcpStream, ev| match read_some(conn)? {
                None => Ok(lp.unregister(ev.token())?),
                Some(data) if data == b"fail" => Err(anyhow::anyhow!("told to fail")),
                Some(data) => Ok(conn.write_all(&data)?),
            },
        )?;
        Ok(())
    })
    .unwrap();
    addr
}

// Catches: a callback error stopping the loop, the default handler not
// dropping the failing source, or `callback_errors` not counted.
#[test]
fn callback_error_drops_that_source_and_the_loop_keeps_serving() {
    let mut lp = EventLoop::new().unwrap();
    let addr = failing_echo_server(&mut lp);
    let mut bad = TcpStream::connect(addr).unwrap();
    let mut good = TcpStream::connect(addr).unwrap();
    run_until(&mut lp, |lp| lp.source_count() == 3);
    bad.write_all(b"fail").unwrap();
    run_until(&mut lp, |lp| lp.stats().callback_errors == 1);
    assert_eq!(
        expect_closed(&bad),
        b"",
        "the failing connection must be closed"
    );
    assert_eq!(lp.source_count(), 2);
    good.write_all(b"hello").unwrap();
    good.set_nonblocking(true).unwrap();
    run_until(&mut lp, |_| good.peek(&mut [0u8; 5]).is_ok_and(|n| n == 5));
    assert_eq!(read_n(&good, 5), b"hello");
    assert_eq!(lp.stats().callback_errors, 1);
}

// Catches: the error handler getting the wrong token / descriptor / peer, or
// the loop unregistering the source although a custom handler decides.
#[test]
fn custom_error_handler_gets_token_fd_and_peer() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let fd = server.fileno();
    let got: Rc<RefCell<Vec<CallbackError>>> = Rc::default();
    let g = Rc::clone(&got);
    lp.set_error_handler(move |_, e| g.borrow_mut().push(e));
    let tok = lp
        .register(server, EVENT_READ, |_, conn: &mut TcpStream, _| {
            read_some(conn)?;
            anyhow::bail!("io callback failed")
        })
        .unwrap();
    lp.call_soon(|_| anyhow::bail!("scheduled callback failed"));
    client.write_all(b"x").unwrap();
    run_until(&mut lp, |_| got.borrow().len() >= 2);
    let got = got.borrow();
    let io_err = got
        .iter()
        .find(|e| e.token.is_some())
        .expect("the I/O callback's error");
    assert_eq!(io_err.token, Some(tok.erase()));
    assert_eq!(io_err.fd, Some(fd));
    assert_eq!(io_err.peer, Some(client.local_addr().unwrap()));
    assert!(io_err.error.to_string().contains("io callback failed"));
    let sched = got
        .iter()
        .find(|e| e.token.is_none())
        .expect("the scheduled callback's error");
    assert_eq!((sched.fd, sched.peer), (None, None));
    assert!(sched
        .error
        .to_string()
        .contains("scheduled callback failed"));
    // A custom handler decides for itself: this one left the source alone.
    assert!(lp.is_registered(tok));
    assert_eq!(lp.stats().callback_errors as usize, got.len());
}

// Catches: a panicking callback leaving its source registered (or its
// object open), the panic being swallowed, or the loop left "running"
// (unusable) after the unwind.
#[test]
fn panicking_callback_unwinds_and_the_loop_stays_usable() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let tok = lp
        .register(server, EVENT_READ, |_, _: &mut TcpStream, _| {
            panic!("callback exploded")
        })
        .unwrap();
    client.write_all(b"x").unwrap();
    let wd = Watchdog::default_for(lp.handle());
    let result = panic::catch_unwind(AssertUnwindSafe(|| lp.run()));
    wd.finish();
    let payload = result.expect_err("the panic must unwind out of run()");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback exploded"));
    assert!(!lp.is_registered(tok));
    assert_eq!(lp.source_count(), 0);
    assert_eq!(
        expect_closed(&client),
        b"",
        "the panicking source must be closed"
    );

    // Usable afterwards: serve another source to completion.
    let (mut client2, server2) = loop_pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = Rc::clone(&got);
    lp.register(server2, EVENT_READ, move |lp, conn: &mut TcpStream, ev| {
        match read_some(conn)? {
            Some(d) => g.borrow_mut().extend_from_slice(&d),
            None => lp.unregister(ev.token())?,
        }
        Ok(())
    })
    .unwrap();
    client2.write_all(b"after").unwrap();
    drop(client2);
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(&*got.borrow(), b"after");
}

// Catches: a panic in a scheduled callback leaving the loop marked running.
#[test]
fn panicking_scheduled_callback_unwinds_and_the_loop_stays_usable() {
    let mut lp = EventLoop::new().unwrap();
    lp.call_soon(|_| panic!("timer exploded"));
    let result = panic::catch_unwind(AssertUnwindSafe(|| lp.run_once(Some(PATIENCE))));
    assert!(result.is_err());
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    lp.call_later(Duration::from_millis(1), move |_| {
        r.set(true);
        Ok(())
    });
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert!(ran.get());
}

// Catches (issue 9, fault 3): `report` taking the error handler out and
// putting it back only after a normal return, so that a handler that panics
// once is replaced by the default for good; or its panic swallowed.
#[test]
fn panicking_error_handler_unwinds_and_stays_installed() {
    let mut lp = EventLoop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = Rc::clone(&calls);
    lp.set_error_handler(move |_, failure| {
        c.set(c.get() + 1);
        if c.get() == 1 {
            panic!("error handler exploded: {}", failure.error);
        }
    });
    lp.call_soon(|_| anyhow::bail!("first"));
    let result = panic::catch_unwind(AssertUnwindSafe(|| lp.run()));
    let payload = result.expect_err("the handler's panic must unwind out of run()");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("error handler exploded: first")
    );
    assert_eq!(calls.get(), 1);
    // Still installed: the next error goes to it, not to the default.
    lp.call_soon(|_| anyhow::bail!("second"));
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    assert_eq!(calls.get(), 2, "the panicking handler must stay installed");
    assert_eq!(lp.stats().callback_errors, 2);
}

// Catches (issue 9, fault 4): a panic in `net::serve`'s `on_accept`
// unregistering (closing) the listener, so that later clients are refused.
#[test]
fn panicking_on_accept_keeps_the_listener_serving() {
    use selectloop::net::{serve, ListenerBuilder};

    let mut lp = EventLoop::new().unwrap();
    let listener = ListenerBuilder::new("127.0.0.1:0").build().unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = Rc::clone(&accepted);
    let server = serve(&mut lp, listener, move |lp, stream, _peer| {
        a.set(a.get() + 1);
        if a.get() == 1 {
            panic!("on_accept exploded");
        }
        lp.register(stream, EVENT_READ, |lp, conn: &mut TcpStream, ev| {
            match read_some(conn)? {
                Some(data) => conn.write_all(&data)?,
                None => lp.unregister(ev.token())?,
            }
            Ok(())
        })?;
        Ok(())
    })
    .unwrap();

    let first = TcpStream::connect(addr).unwrap();
    let wd = Watchdog::default_for(lp.handle());
    let result = panic::catch_unwind(AssertUnwindSafe(|| lp.run()));
    wd.finish();
    let payload = result.expect_err("on_accept's panic must unwind out of run()");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"on_accept exploded"));
    assert_eq!(accepted.get(), 1);
    assert!(
        lp.is_registered(server),
        "the listener must stay registered"
    );
    assert_eq!(
        expect_closed(&first),
        b"",
        "the panicking connection must be closed"
    );

    // A second client is accepted and served.
    let mut second = TcpStream::connect(addr).unwrap();
    second.write_all(b"still here").unwrap();
    second.set_nonblocking(true).unwrap();
    run_until(&mut lp, |_| {
        second.peek(&mut [0u8; 10]).is_ok_and(|n| n == 10)
    });
    assert_eq!(read_n(&second, 10), b"still here");
    assert_eq!(accepted.get(), 2);
    lp.unregister(server).unwrap();
}

fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

// Catches: slow callbacks not measured / not counted, or counted with the
// check turned off.
#[test]
fn slow_callbacks_are_counted() {
    let mut lp = EventLoop::new().unwrap();
    let (_client, server) = loop_pair();
    let tok = lp
        .register(server, EVENT_WRITE, |_, _: &mut TcpStream, _| {
            busy_wait(Duration::from_millis(5));
            Ok(())
        })
        .unwrap();
    // Off by default.
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(lp.stats().slow_callbacks, 0);
    lp.set_slow_callback_threshold(Some(Duration::from_millis(1)));
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(lp.stats().slow_callbacks, 1);
    // Scheduled callbacks are timed too.
    lp.modify(tok, EVENT_READ).unwrap();
    lp.call_soon(|_| {
        busy_wait(Duration::from_millis(5));
        Ok(())
    });
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(lp.stats().slow_callbacks, 2);
    // A generous threshold: nothing is slow.
    lp.set_slow_callback_threshold(Some(Duration::from_secs(60)));
    lp.modify(tok, EVENT_WRITE).unwrap();
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(lp.stats().slow_callbacks, 2);
}

// Catches: a stats counter not incremented, or incremented for the wrong
// kind of callback (`call_soon` is not a timer).
#[test]
fn stats_count_iterations_events_timers_and_errors() {
    let mut lp = EventLoop::new().unwrap();
    assert_eq!(lp.stats(), Default::default());
    let (_client, server) = loop_pair();
    let tok = lp
        .register(server, EVENT_WRITE, |_, _: &mut TcpStream, _| Ok(()))
        .unwrap();
    for _ in 0..3 {
        lp.run_once(Some(PATIENCE)).unwrap();
    }
    let s = lp.stats();
    assert_eq!(
        (
            s.iterations,
            s.events_dispatched,
            s.timers_fired,
            s.callback_errors
        ),
        (3, 3, 0, 0)
    );
    lp.unregister(tok).unwrap();
    lp.call_soon(|_| Ok(()));
    lp.call_later(Duration::ZERO, |_| anyhow::bail!("timer error"));
    lp.call_at(Instant::now(), |_| Ok(()));
    let wd = Watchdog::default_for(lp.handle());
    lp.run().unwrap();
    wd.finish();
    let s = lp.stats();
    assert_eq!(
        (s.events_dispatched, s.timers_fired, s.callback_errors),
        (3, 2, 1)
    );
    assert!(s.iterations >= 4);
}

// ----- pause and resume -------------------------------------------------------

// Catches: a paused source still watched (callbacks while paused), resume not
// re-adding it (or for stale events), or a pause that does not keep the source.
#[test]
fn paused_source_gets_no_callbacks_until_resumed_with_its_current_events() {
    let mut lp = EventLoop::new().unwrap();
    let (mut client, server) = loop_pair();
    let calls: Log = Rc::default();
    let log = calls.clone();
    let token = lp
        .register(server, EVENT_READ, move |lp, _s: &mut TcpStream, ev| {
            let mask = ev.mask();
            assert_eq!(lp.current_token(), Some(ev.token().erase()));
            log.borrow_mut().push((ev.token(), mask));
            Ok(())
        })
        .unwrap();
    lp.pause(token).unwrap();
    lp.pause(token).unwrap(); // twice: no-op
    assert!(lp.is_paused(token).unwrap());
    client.write_all(b"x").unwrap();
    // Readable, but paused: nothing for a few iterations.
    for _ in 0..3 {
        lp.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert!(calls.borrow().is_empty(), "no callback while paused");
    assert_eq!(lp.source_count(), 1, "a paused source is still registered");
    // A modify while paused takes effect on resume.
    lp.modify(token, EVENT_READ | EVENT_WRITE).unwrap();
    assert!(calls.borrow().is_empty());
    lp.resume(token).unwrap();
    lp.resume(token).unwrap(); // twice: no-op
    assert!(!lp.is_paused(token).unwrap());
    run_until(&mut lp, |_| !calls.borrow().is_empty());
    assert_eq!(calls.borrow()[0], (token, EVENT_READ | EVENT_WRITE));
    // Unregistering a paused source works too.
    lp.pause(token).unwrap();
    lp.unregister(token).unwrap();
    assert!(matches!(lp.pause(token), Err(Error::InvalidToken)));
    assert!(matches!(lp.is_paused(token), Err(Error::InvalidToken)));
}

// Catches: pause from an earlier callback of the batch not suppressing the
// paused source's callback from that same batch.
#[test]
fn source_paused_earlier_in_the_batch_gets_no_callback_from_it() {
    let mut lp = EventLoop::new().unwrap();
    let ((_ca, sa), (_cb, sb)) = two_ready_pairs();
    let calls = Rc::new(Cell::new(0));
    let tokens: Rc<RefCell<Vec<Token>>> = Rc::default();
    for server in [sa, sb] {
        let (calls, all) = (calls.clone(), tokens.clone());
        let token = lp
            .register(server, EVENT_READ, move |lp, _s: &mut TcpStream, ev| {
                calls.set(calls.get() + 1);
                let me = ev.token();
                for &other in all.borrow().iter().filter(|&&t| t != me) {
                    lp.pause(other)?;
                }
                Ok(())
            })
            .unwrap();
        tokens.borrow_mut().push(token);
    }
    lp.run_once(Some(PATIENCE)).unwrap();
    assert_eq!(
        calls.get(),
        1,
        "the source paused by the first callback must not run"
    );
}

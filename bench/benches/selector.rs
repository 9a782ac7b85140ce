//! Selector costs per backend, with short measurement times by default:
//!
//! - `select_idle/BACKEND/N`: one `select()` (zero timeout) over N idle
//!   sources and 1 ready one, which it reports; raw `polling` alongside.
//! - `register_modify_unregister/BACKEND`: one source through all three.
//! - `timers/100000`: 100,000 `call_later` timers (deadlines spread over
//!   1 ms) scheduled on an `EventLoop` and fired.
//!
//! ```text
//! cargo bench -p selectloop-bench --bench selector [-- FILTER]
//! ```
//!
//! Dispatch per event is the root crate's `benches/dispatch.rs`.

use std::cell::Cell;
use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use polling::{Event, Events, PollMode, Poller};
use selectloop::selector::{EpollBackend, NativeBackend, PollBackend, SelectBackend};
use selectloop::{Backend, BaseSelector, EventLoop, Selector, Source, EVENT_READ, EVENT_WRITE};

const NS: [usize; 6] = [1, 10, 100, 400, 1_000, 10_000];

/// N idle descriptors (duplicates of one socket nobody writes to: one
/// descriptor each, 10,000 fit under a 20,000 limit) and a ready one.
struct Sources {
    idle: Vec<OwnedFd>,
    ready: UnixStream,
    _peers: [UnixStream; 2],
}

fn sources(n: usize) -> Sources {
    let (quiet, quiet_peer) = UnixStream::pair().unwrap();
    let (ready, mut writer) = UnixStream::pair().unwrap();
    writer.write_all(b"x").unwrap();
    let idle = (0..n)
        .map(|_| quiet.as_fd().try_clone_to_owned().unwrap())
        .collect();
    drop(quiet);
    Sources {
        idle,
        ready,
        _peers: [quiet_peer, writer],
    }
}

fn select_idle<B: Backend>(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group("select_idle");
    for n in NS {
        let s = sources(n);
        let ready = OwnedFd::from(s.ready.try_clone().unwrap());
        // select(2) takes descriptors below FD_SETSIZE only (its own too).
        let Ok(mut sel) = BaseSelector::<B, &OwnedFd, ()>::new() else {
            continue;
        };
        if s.idle
            .iter()
            .any(|fd| sel.register(fd, EVENT_READ, ()).is_err())
        {
            continue;
        }
        if sel.register(&ready, EVENT_READ, ()).is_err() {
            continue;
        }
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            b.iter(|| {
                let ready = sel.select(Some(Duration::ZERO)).unwrap();
                assert_eq!(black_box(ready).count(), 1);
            })
        });
    }
    group.finish();
}

fn select_idle_polling(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_idle");
    for n in NS {
        let s = sources(n);
        let poller = Poller::new().unwrap();
        for (i, fd) in s.idle.iter().enumerate() {
            // SAFETY: deleted from the poller before the descriptors drop.
            unsafe {
                poller
                    .add_with_mode(fd, Event::readable(i), PollMode::Level)
                    .unwrap()
            };
        }
        // SAFETY: as above.
        unsafe {
            poller
                .add_with_mode(&s.ready, Event::readable(n), PollMode::Level)
                .unwrap()
        };
        let mut events = Events::with_capacity(NonZeroUsize::new(1024).unwrap());
        group.bench_with_input(BenchmarkId::new("raw polling", n), &n, |b, _| {
            b.iter(|| {
                events.clear();
                poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
                assert_eq!(black_box(events.len()), 1);
            })
        });
        for fd in &s.idle {
            poller.delete(fd).unwrap();
        }
        poller.delete(&s.ready).unwrap();
    }
    group.finish();
}

fn register_modify_unregister<B: Backend>(c: &mut Criterion, name: &str) {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut sel: BaseSelector<B, &UnixStream, ()> = BaseSelector::new().unwrap();
    let fd = a.fileno();
    c.bench_function(&format!("register_modify_unregister/{name}"), |b| {
        b.iter(|| {
            sel.register(&a, EVENT_READ, ()).unwrap();
            sel.modify(fd, EVENT_WRITE, ()).unwrap();
            black_box(sel.unregister(fd).unwrap());
        })
    });
}

fn timers(c: &mut Criterion) {
    const COUNT: usize = 100_000;
    let mut lp = EventLoop::new().unwrap();
    c.bench_function("timers/100000", |b| {
        b.iter(|| {
            let fired = Rc::new(Cell::new(0));
            for i in 0..COUNT {
                // Deadlines spread over 1 ms, out of order (a stride coprime to 1000).
                let delay = Duration::from_micros((i * 617 % 1000) as u64);
                let fired = fired.clone();
                lp.call_later(delay, move |lp| {
                    fired.set(fired.get() + 1);
                    if fired.get() == COUNT {
                        lp.stop();
                    }
                    Ok(())
                });
            }
            lp.run().unwrap();
            assert_eq!(fired.get(), COUNT);
        })
    });
}

fn benches(c: &mut Criterion) {
    select_idle_polling(c);
    select_idle::<EpollBackend>(c, "EpollBackend (epoll direct)");
    select_idle::<NativeBackend>(c, "NativeBackend (epoll through polling)");
    select_idle::<PollBackend>(c, "PollBackend (poll)");
    select_idle::<SelectBackend>(c, "SelectBackend (select)");
    register_modify_unregister::<EpollBackend>(c, "EpollBackend (epoll direct)");
    register_modify_unregister::<NativeBackend>(c, "NativeBackend (epoll through polling)");
    register_modify_unregister::<PollBackend>(c, "PollBackend (poll)");
    register_modify_unregister::<SelectBackend>(c, "SelectBackend (select)");
    timers(c);
}

criterion_group! {
    name = selector;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = benches
}
criterion_main!(selector);

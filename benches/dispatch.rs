//! Dispatch cost per event: `EventLoop` and the bare selectors against a
//! hand-written level-triggered `polling` loop.
//!
//! 50 sockets are kept readable (their data is never read), so every
//! iteration is one `select` with a zero timeout that reports all 50, and
//! 50 callbacks that only count. The difference between the lines is what
//! each layer adds per event on top of the kernel's wait.
//!
//! ```text
//! cargo bench --bench dispatch
//! ```

use std::hint::black_box;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use polling::{Event, Events, PollMode, Poller};
use selectloop::selector::{NativeBackend, PollBackend};
use selectloop::{Backend, BaseSelector, EventLoop, Selector, EVENT_READ};

const SOURCES: usize = 50;

/// `SOURCES` connected pairs whose server ends have unread data.
fn readable_pairs() -> Vec<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (0..SOURCES)
        .map(|_| {
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            client.write_all(&[0; 64]).unwrap();
            (client, server)
        })
        .collect()
}

fn raw_polling(c: &mut BenchmarkGroup<'_, WallTime>) {
    let pairs = readable_pairs();
    let poller = Poller::new().unwrap();
    for (i, (_, server)) in pairs.iter().enumerate() {
        // SAFETY: `server` outlives `poller`'s use below and is deleted before it drops.
        unsafe {
            poller
                .add_with_mode(server, Event::readable(i), PollMode::Level)
                .unwrap()
        };
    }
    let mut events = Events::with_capacity(NonZeroUsize::new(1024).unwrap());
    let mut counts = vec![0u64; SOURCES];
    c.bench_function("raw polling (epoll) loop", |b| {
        b.iter(|| {
            events.clear();
            poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
            for ev in events.iter() {
                counts[black_box(ev.key)] += 1;
            }
        })
    });
    for (_, server) in &pairs {
        poller.delete(server).unwrap();
    }
    assert!(counts.iter().all(|&n| n > 0), "every source was reported");
}

fn selector<B: Backend>(c: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let pairs = readable_pairs();
    let mut sel: BaseSelector<B, &TcpStream, usize> = BaseSelector::new().unwrap();
    for (i, (_, server)) in pairs.iter().enumerate() {
        sel.register(server, EVENT_READ, i).unwrap();
    }
    let mut counts = vec![0u64; SOURCES];
    c.bench_function(name, |b| {
        b.iter(|| {
            for (key, _mask) in sel.select(Some(Duration::ZERO)).unwrap() {
                counts[black_box(key.data)] += 1;
            }
        })
    });
    assert!(counts.iter().all(|&n| n > 0), "every source was reported");
}

fn event_loop<B: Backend>(c: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let mut lp: EventLoop<B> = EventLoop::with_backend().unwrap();
    let counts = std::rc::Rc::new(std::cell::RefCell::new(vec![0u64; SOURCES]));
    let mut clients = Vec::new();
    for (i, (client, server)) in readable_pairs().into_iter().enumerate() {
        let counts = counts.clone();
        lp.register(server, EVENT_READ, move |_lp, _s: &mut TcpStream, _mask| {
            counts.borrow_mut()[black_box(i)] += 1;
            Ok(())
        })
        .unwrap();
        clients.push(client);
    }
    c.bench_function(name, |b| {
        b.iter(|| lp.run_once(Some(Duration::ZERO)).unwrap())
    });
    assert!(
        counts.borrow().iter().all(|&n| n > 0),
        "every source was dispatched"
    );
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch of 50 ready sources");
    group.throughput(Throughput::Elements(SOURCES as u64));
    raw_polling(&mut group);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use selectloop::selector::EpollBackend;
        selector::<EpollBackend>(&mut group, "EpollSelector::select");
        event_loop::<EpollBackend>(&mut group, "EventLoop<EpollBackend>::run_once");
    }
    selector::<NativeBackend>(&mut group, "NativeSelector::select");
    event_loop::<NativeBackend>(&mut group, "EventLoop<NativeBackend>::run_once");
    selector::<PollBackend>(&mut group, "PollSelector::select");
    event_loop::<PollBackend>(&mut group, "EventLoop<PollBackend>::run_once");
    group.finish();
}

criterion_group!(dispatch, benches);
criterion_main!(dispatch);

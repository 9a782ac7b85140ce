//! What a transport connection costs on the heap, counted by a global
//! allocator: the heap held per idle connection (reported, and bounded), and
//! no allocation at all per message on the echo path once buffers are warm.
//!
//! Runs on its main thread with no harness: libtest's threads would
//! allocate meanwhile and blur the counts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use selectloop::transport::{self, Protocol, Transport};
use selectloop::EventLoop;

use common::run_until;

/// The system allocator, counting allocations and live bytes.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters have no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's `layout` goes to `System` as it came.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Idle connections opened for the per-connection figure.
const IDLE: usize = 500;
/// Connections and rounds of the per-message check.
const CONNS: usize = 20;
const ROUNDS: usize = 200;

struct Echo {
    made: Rc<Cell<usize>>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, _t: &mut Transport<'_, Self>) {
        self.made.set(self.made.get() + 1);
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        t.write(data);
    }
    fn pause_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.pause_reading();
    }
    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.resume_reading();
    }
}

/// One message on each client, each echoed back, the loop turning until all are.
fn round(lp: &mut EventLoop, clients: &mut [TcpStream], msg: &[u8]) {
    for c in clients.iter_mut() {
        c.write_all(msg).unwrap();
    }
    let mut buf = [0u8; 64];
    for c in clients.iter_mut() {
        let mut got = 0;
        while got < msg.len() {
            match c.read(&mut buf[got..msg.len()]) {
                Ok(0) => panic!("closed"),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    lp.run_once(Some(Duration::from_millis(50))).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..msg.len()], msg);
    }
}

fn main() {
    let mut lp = EventLoop::new().unwrap();
    let made = Rc::new(Cell::new(0));
    let counter = made.clone();
    let (_server, addr) = transport::serve_addr(&mut lp, "127.0.0.1:0", move || Echo {
        made: counter.clone(),
    })
    .unwrap();

    // Warm up: the slab, the selector's event list, the read buffer.
    let mut clients: Vec<TcpStream> = Vec::with_capacity(IDLE + CONNS);
    let mut warm = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let c = TcpStream::connect(addr).unwrap();
        c.set_nonblocking(true).unwrap();
        warm.push(c);
    }
    run_until(&mut lp, "warm connections", || made.get() == CONNS);
    let msg = [7u8; 64];
    for _ in 0..10 {
        round(&mut lp, &mut warm, &msg);
    }

    // Per message: no allocation at all.
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        round(&mut lp, &mut warm, &msg);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "transport_alloc: {allocs} allocations for {} echoed messages",
        ROUNDS * CONNS
    );
    assert_eq!(allocs, 0, "allocations on the echo path");

    // Per idle connection: the heap it holds once made.
    let live_before = LIVE.load(Ordering::Relaxed);
    for _ in 0..IDLE {
        clients.push(TcpStream::connect(addr).unwrap());
    }
    let clients_heap = LIVE.load(Ordering::Relaxed) - live_before;
    run_until(&mut lp, "idle connections", || made.get() == CONNS + IDLE);
    let per_conn = (LIVE.load(Ordering::Relaxed) - live_before - clients_heap) / IDLE as isize;
    println!(
        "transport_alloc: {per_conn} bytes of heap per idle connection ({IDLE} connections; \
         the loop's slab and selector tables included, amortised)"
    );
    assert!(per_conn <= 1024, "{per_conn} bytes per idle connection");
    println!("transport_alloc: ok");
}

//! `net::serve` out of descriptors: an accept that fails with `EMFILE`
//! pauses the listener (instead of spinning on a listener that stays
//! readable) and resumes after `ACCEPT_PAUSE`, and every queued connection
//! is served in the end.
//!
//! `harness = false`: it lowers `RLIMIT_NOFILE`, which is per process and
//! would starve libtest's other threads.

#[cfg(unix)]
fn main() {
    use std::cell::{Cell, RefCell};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use selectloop::net::{serve, ListenerBuilder};
    use selectloop::EventLoop;

    const CLIENTS: usize = 12;
    const ROOM: u64 = 3; // descriptors left for accepted connections

    let mut lp = EventLoop::new().unwrap();
    let listener = ListenerBuilder::new("127.0.0.1:0").build().unwrap();
    let addr = listener.local_addr().unwrap();
    // Every client connects now (the backlog completes the handshakes), so
    // only the accepts need descriptors later.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let highest = clients.iter().map(|c| c.as_raw_fd()).max().unwrap() as u64;

    let held: Rc<RefCell<Vec<TcpStream>>> = Rc::default();
    let accepted = Rc::new(Cell::new(0usize));
    let (held2, accepted2) = (held.clone(), accepted.clone());
    let token = serve(&mut lp, listener, move |lp, stream, _peer| {
        held2.borrow_mut().push(stream);
        accepted2.set(accepted2.get() + 1);
        if accepted2.get() == CLIENTS {
            lp.stop();
        }
        Ok(())
    })
    .unwrap();

    // SAFETY: getrlimit/setrlimit with a valid resource and valid pointers;
    // this binary has no other threads.
    let old = unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim;
        lim.rlim_cur = (highest + 1 + ROOM) as libc::rlim_t;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim),
            0,
            "lower RLIMIT_NOFILE"
        );
        old
    };

    // While paused, release what is held, so that accepting can go on after
    // the pause: the test sees the pause rather than guessing at timing.
    let paused_seen = Rc::new(Cell::new(0u32));
    let (held3, seen) = (held.clone(), paused_seen.clone());
    let watcher = lp.call_every(Duration::from_millis(5), move |lp| {
        if lp.is_paused(token).unwrap() {
            seen.set(seen.get() + 1);
            held3.borrow_mut().clear();
        }
        Ok(())
    });
    let handle = lp.handle();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        handle.stop();
    });
    let started = Instant::now();
    lp.run().unwrap();
    watcher.cancel();
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &old), 0) };

    assert_eq!(
        accepted.get(),
        CLIENTS,
        "every queued connection is accepted in the end"
    );
    assert!(
        paused_seen.get() > 0,
        "running out of descriptors paused the listener"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "finished before the watchdog"
    );
    let stats = lp.stats();
    // A spinning listener would run thousands of iterations in the pauses.
    assert!(
        stats.iterations < 2_000,
        "no busy loop while out of descriptors: {stats:?}"
    );
    drop(watchdog);
    println!(
        "accept_emfile: ok ({} pauses observed, {:?})",
        paused_seen.get(),
        stats
    );
}

#[cfg(not(unix))]
fn main() {
    println!("accept_emfile: skipped (RLIMIT_NOFILE is Unix-only)");
}

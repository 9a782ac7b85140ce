//! CPython's `ScalableSelectorMixIn.test_above_fd_setsize` (from
//! `test_selectors.py`), plus its mirror image for `SelectSelector`.
//!
//! `harness = false`: the test raises `RLIMIT_NOFILE` for the whole process
//! and then uses up to tens of thousands of descriptors, which must not race
//! with other tests on libtest's threads. Unix only: `RLIMIT_NOFILE` and
//! `FD_SETSIZE` are Unix notions (`WSAPoll` has no descriptor limit).
//!
//! - `EpollSelector` (Linux/Android), `NativeSelector` and `PollSelector`
//!   (CPython: Epoll/Kqueue/Poll): with
//!   the soft limit raised to the hard one, register `min(limit, 2^16) - 32`
//!   descriptors as socket pairs (read end for `EVENT_READ`, write end for
//!   `EVENT_WRITE`); `select` must report every write end writable, and
//!   nothing else. As in CPython the pairs are `socketpair(AF_UNIX)`
//!   (`UnixStream::pair`): tens of thousands of loopback TCP connections
//!   would run out of ephemeral ports first.
//! - `SelectSelector`: descriptors below `FD_SETSIZE` work up to the last
//!   one, a descriptor at or above it is refused with `Error::FdTooLarge`,
//!   handed back in the `RegisterError` still open and connected (it sends
//!   to and receives from its peer), and nothing is left half-registered
//!   (the map, `get_key` and `select` agree); and a `SelectSelector` whose
//!   own wake pipe would land above the limit is refused at `new()` with
//!   `Error::FdTooLarge` itself (not an `Error::Io` wrapping it).
//!
//! Skipped, with the reason printed, only where the descriptor limit cannot
//! be raised above `FD_SETSIZE`.

#[cfg(unix)]
mod common;

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("fd_setsize: skipped: RLIMIT_NOFILE and FD_SETSIZE exist on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::collections::HashSet;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use selectloop::selector::{NativeBackend, PollBackend, SelectBackend};
    use selectloop::{
        Backend, BaseSelector, Error, Fd, Interest, Selector, EVENT_READ, EVENT_WRITE,
    };

    // `libc::FD_SETSIZE` is a usize on some targets and a c_int on others.
    #[allow(clippy::unnecessary_cast)]
    const FD_SETSIZE: usize = libc::FD_SETSIZE as usize;
    /// Far more than any select here needs: the write ends are ready at once.
    const SELECT_LIMIT: Duration = Duration::from_secs(60);

    enum Outcome {
        Ok(String),
        Skipped(String),
    }

    fn test_above_fd_setsize<B: Backend>(limit: usize) -> Outcome {
        let num_fds = limit.min(1 << 16) - 32; // guard for descriptors already open
        let mut s: BaseSelector<B, UnixStream, ()> = BaseSelector::new().unwrap();
        let mut writers = HashSet::new();
        let mut max_fd: Fd = 0;
        for _ in 0..num_fds / 2 {
            let (rd, wr) = match UnixStream::pair() {
                Ok(pair) => pair,
                Err(e) => return Outcome::Skipped(format!("FD limit reached: {e}")),
            };
            let (rfd, wfd) = (rd.as_raw_fd(), wr.as_raw_fd());
            max_fd = max_fd.max(rfd).max(wfd);
            for (sock, events) in [(rd, EVENT_READ), (wr, EVENT_WRITE)] {
                match s.register(sock, events, ()).map_err(|e| e.into_error()) {
                    Ok(_) => {}
                    // epoll past fs.epoll.max_user_watches
                    Err(Error::Io(e)) if e.raw_os_error() == Some(libc::ENOSPC) => {
                        return Outcome::Skipped(format!("FD limit reached: {e}"));
                    }
                    Err(e) => panic!("register fd {rfd}/{wfd}: {e}"),
                }
            }
            writers.insert(wfd);
        }
        assert!(
            max_fd as usize >= FD_SETSIZE,
            "never went above FD_SETSIZE (max fd {max_fd})"
        );
        assert_eq!(s.get_map().unwrap().len(), num_fds / 2 * 2);

        let t = Instant::now();
        let ready: Vec<(Fd, Interest)> = s
            .select(Some(SELECT_LIMIT))
            .unwrap()
            .map(|(key, events)| (key.fd, events))
            .collect();
        let dt = t.elapsed();
        assert_eq!(
            ready.len(),
            num_fds / 2,
            "select reported {} of {} writers",
            ready.len(),
            num_fds / 2
        );
        let reported: HashSet<Fd> = ready.iter().map(|&(fd, _)| fd).collect();
        assert_eq!(reported.len(), ready.len(), "a key was reported twice");
        assert_eq!(
            reported, writers,
            "select reported something other than the write ends"
        );
        assert!(ready.iter().all(|&(_, events)| events == EVENT_WRITE));
        Outcome::Ok(format!(
            "{} descriptors up to fd {max_fd}, {} writable, select took {dt:?}",
            num_fds,
            ready.len()
        ))
    }

    fn test_select_refuses_fd_above_setsize() -> Outcome {
        let limit = FD_SETSIZE as Fd;
        let mut s: BaseSelector<SelectBackend, UnixStream, ()> = BaseSelector::new().unwrap();
        let mut writers = HashSet::new();
        let mut max_registered: Fd = 0;
        // Take descriptors until one lands at or above FD_SETSIZE, registering
        // every pair below it. The partner of that one stays open, unregistered,
        // so that nothing registered sees a hang-up.
        let (big, mut partner) = loop {
            let (rd, wr) = match UnixStream::pair() {
                Ok(pair) => pair,
                Err(e) => {
                    return Outcome::Skipped(format!("no descriptor at or above FD_SETSIZE: {e}"))
                }
            };
            let (rfd, wfd) = (rd.as_raw_fd(), wr.as_raw_fd());
            if rfd >= limit {
                break (rd, wr);
            }
            if wfd >= limit {
                break (wr, rd);
            }
            s.register(rd, EVENT_READ, ()).unwrap();
            s.register(wr, EVENT_WRITE, ()).unwrap();
            max_registered = max_registered.max(rfd).max(wfd);
            writers.insert(wfd);
        };
        let big_fd = big.as_raw_fd();
        let before = s.get_map().unwrap().len();

        let mut big = match s
            .register(big, EVENT_READ | EVENT_WRITE, ())
            .map_err(|e| e.into_parts())
        {
            Err((Error::FdTooLarge { fd, limit: l }, big)) => {
                assert_eq!((fd, l), (big_fd, limit));
                big
            }
            other => panic!("expected FdTooLarge for fd {big_fd}, got {other:?}"),
        };
        // Handed back open and unharmed: the very socket, still connected.
        assert_eq!(big.as_raw_fd(), big_fd);
        let mut buf = [0; 4];
        big.write_all(b"ping").unwrap();
        partner.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        partner.write_all(b"pong").unwrap();
        big.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        // Nothing half-registered.
        let map = s.get_map().unwrap();
        assert_eq!(map.len(), before);
        assert!(!map.contains(big_fd));
        assert!(matches!(s.get_key(big_fd), Err(Error::NotRegistered { fd }) if fd == big_fd));

        // Everything below the limit still works, up to the last descriptor.
        let ready: Vec<(Fd, Interest)> = s
            .select(Some(SELECT_LIMIT))
            .unwrap()
            .map(|(key, events)| (key.fd, events))
            .collect();
        let reported: HashSet<Fd> = ready.iter().map(|&(fd, _)| fd).collect();
        assert_eq!(reported.len(), ready.len(), "a key was reported twice");
        let mut missing: Vec<_> = writers.difference(&reported).collect();
        let mut extra: Vec<_> = reported.difference(&writers).collect();
        missing.sort();
        extra.sort();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "writers not reported: {missing:?}; reported, not writers: {extra:?}"
        );
        assert!(ready.iter().all(|&(_, events)| events == EVENT_WRITE));

        // With no descriptor below FD_SETSIZE left, a new SelectSelector's own
        // wake pipe would be too large: it must be refused, not used.
        let probe = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => return Outcome::Skipped(format!("FD limit reached: {e}")),
        };
        let lowest_free = probe.0.as_raw_fd().min(probe.1.as_raw_fd());
        drop(probe);
        assert!(
            lowest_free >= limit,
            "fd {lowest_free} below FD_SETSIZE is still free"
        );
        // The error is `FdTooLarge` itself, not an `Io` wrapping it.
        let wake_fd = match BaseSelector::<SelectBackend, UnixStream, ()>::new() {
            Err(Error::FdTooLarge { fd, limit: l }) => {
                assert_eq!(l, limit);
                assert!(fd >= limit, "wake fd {fd}");
                fd
            }
            other => panic!("a SelectSelector with its wake pipe at fd >= FD_SETSIZE: {other:?}"),
        };
        // Which still converts into an io::Error of kind InvalidInput.
        let io: std::io::Error = Error::FdTooLarge { fd: wake_fd, limit }.into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
        Outcome::Ok(format!(
            "{} registered up to fd {max_registered}, fd {big_fd} refused with FdTooLarge \
             and handed back working, new() refused with FdTooLarge (wake fd {wake_fd})",
            before
        ))
    }

    fn report(name: &str, outcome: Outcome) {
        match outcome {
            Outcome::Ok(note) => println!("{name} ... ok ({note})"),
            Outcome::Skipped(why) => println!("{name} ... skipped: {why}"),
        }
    }

    pub fn main() {
        // The soft limit raised to the hard one (or as close as the OS
        // allows, as CPython does).
        let lim = super::common::raise_nofile_limit(libc::RLIM_INFINITY).expect("getrlimit");
        let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
        let limit = usize::try_from(soft).unwrap_or(usize::MAX);
        if limit <= FD_SETSIZE + 32 {
            println!(
                "fd_setsize: skipped: RLIMIT_NOFILE cannot be raised above FD_SETSIZE ({FD_SETSIZE}): \
                 soft {soft}, hard {hard}"
            );
            return;
        }
        println!("fd_setsize: RLIMIT_NOFILE {soft} (hard {hard}), FD_SETSIZE {FD_SETSIZE}");
        #[cfg(any(target_os = "linux", target_os = "android"))]
        report(
            "epoll::test_above_fd_setsize",
            test_above_fd_setsize::<selectloop::selector::EpollBackend>(limit),
        );
        report(
            "native::test_above_fd_setsize",
            test_above_fd_setsize::<NativeBackend>(limit),
        );
        report(
            "poll::test_above_fd_setsize",
            test_above_fd_setsize::<PollBackend>(limit),
        );
        report(
            "select::test_above_fd_setsize (refuses fds >= FD_SETSIZE)",
            test_select_refuses_fd_above_setsize(),
        );
        println!("fd_setsize: all done");
    }
}

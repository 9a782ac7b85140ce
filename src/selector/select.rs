//! [`SelectBackend`]: select(2), Unix only.

use std::fmt;
use std::io;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use super::backend::sealed::{Notify, Ops};
use crate::sys::{self, PollFd, WakePipe, POLLIN};
use crate::{Error, Fd, Interest, Result, Source};

/// select(2); see [`SelectSelector`](crate::SelectSelector).
///
/// The registrations live in a dense array from which the two `fd_set`s are
/// rebuilt on every wait, as the kernel overwrites them. Descriptors at or
/// above `FD_SETSIZE` cannot be put in an `fd_set` and are refused at
/// registration with [`Error::FdTooLarge`].
///
/// # Hang-up is writable
/// select(2) has no hang-up bit, and Linux puts a hang-up (`POLLHUP`) in the
/// *read* set only: a Unix socket whose two ends both shut down writing while
/// its send buffer was full is hung up (a write fails at once with `EPIPE`)
/// yet never in the write set, where epoll and poll(2) report it writable
/// (issue 9, fault 7). Otherwise a socket whose write side is shut down, or
/// that has a pending error, is in select(2)'s write set (TCP on Linux, every
/// socket on the BSDs and macOS; `POLLERR` is in Linux's write set), so this
/// is the one gap to close, and it is closed at no cost in the usual case:
///
/// * a write-interested registration is also put in the read set, so that
///   a hang-up ends the wait;
/// * after select(2), the write-interested registrations that came back
///   readable but not writable (rare: usually none) are asked with a single
///   zero-timeout poll(2) whether they are hung up or in error
///   (`revents` beyond `POLLIN`): those are reported writable too;
/// * a write-only registration found readable *without* a hang-up (unread
///   input nobody asked about, and a full send buffer) would end every wait
///   at once: it is *muted*, kept out of the read set, and probed with a
///   zero-timeout poll(2) before each wait instead, until it hangs up
///   (reported, and the wait does not block) or stops being readable
///   (back in the read set).
///
/// One case remains that no select(2) can see while it blocks: a muted
/// registration (write-only, unread input, full send buffer) whose own
/// write side was shut down already, and whose peer then shuts down its
/// own while the wait is blocked. Its hang-up is reported by the next wait.
/// (A peer that *closes* frees the send buffer, or leaves an error, so that
/// is seen at once.)
pub struct SelectBackend {
    /// Index 0 is the wake pipe.
    entries: Vec<Entry>,
    /// `index[token]` is where that registration sits in `entries`.
    index: Vec<usize>,
    wake: Arc<WakePipe>,
    /// The zero-timeout poll(2) probes of one wait, and the index in
    /// `entries` of each: kept between waits so that a wait allocates nothing.
    probes: Vec<PollFd>,
    probed: Vec<usize>,
}

struct Entry {
    fd: Fd,
    token: usize,
    interest: Interest,
    /// Write-only, and readable without a hang-up at the last look: kept out
    /// of the read set and probed before each wait (see [`SelectBackend`]).
    muted: bool,
}

impl Entry {
    /// Whether select(2) watches it for reading: for its own sake, or to see
    /// a hang-up of a write-interested registration.
    fn in_read_set(&self) -> bool {
        self.interest.is_readable() || (self.interest.is_writable() && !self.muted)
    }
}

const WAKE_TOKEN: usize = usize::MAX;
const LIMIT: Fd = libc::FD_SETSIZE as Fd;

fn fd_set_new() -> libc::fd_set {
    let mut set = std::mem::MaybeUninit::<libc::fd_set>::uninit();
    // SAFETY: FD_ZERO initialises the whole set.
    unsafe {
        libc::FD_ZERO(set.as_mut_ptr());
        set.assume_init()
    }
}

fn fd_set_insert(set: &mut libc::fd_set, fd: Fd) {
    debug_assert!((0..LIMIT).contains(&fd));
    // SAFETY: `fd` is below FD_SETSIZE (checked at registration), so it is in bounds.
    unsafe { libc::FD_SET(fd, set) }
}

fn fd_set_contains(set: &libc::fd_set, fd: Fd) -> bool {
    // SAFETY: as for `fd_set_insert`; FD_ISSET only reads.
    unsafe { libc::FD_ISSET(fd, set) }
}

impl Ops for SelectBackend {
    const NAME: &'static str = "select";

    fn open() -> Result<Self> {
        let wake = WakePipe::new()?;
        if wake.fd() >= LIMIT {
            // Produced as itself, so `matches!(e, Error::FdTooLarge { .. })` sees it.
            return Err(Error::FdTooLarge {
                fd: wake.fd(),
                limit: LIMIT,
            });
        }
        Ok(SelectBackend {
            entries: vec![Entry {
                fd: wake.fd(),
                token: WAKE_TOKEN,
                interest: crate::EVENT_READ,
                muted: false,
            }],
            index: Vec::new(),
            wake: Arc::new(wake),
            probes: Vec::new(),
            probed: Vec::new(),
        })
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.wake.clone()
    }

    fn check(&self, fd: Fd) -> Result<()> {
        if (0..LIMIT).contains(&fd) {
            Ok(())
        } else {
            Err(Error::FdTooLarge { fd, limit: LIMIT })
        }
    }

    unsafe fn add<S: Source + ?Sized>(
        &mut self,
        _src: &S,
        fd: Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        if self.index.len() <= token {
            self.index.resize(token + 1, 0);
        }
        self.index[token] = self.entries.len();
        self.entries.push(Entry {
            fd,
            token,
            interest,
            muted: false,
        });
        Ok(())
    }

    fn modify<S: Source + ?Sized>(
        &mut self,
        _src: &S,
        _fd: Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        let entry = &mut self.entries[self.index[token]];
        entry.interest = interest;
        entry.muted = false;
        Ok(())
    }

    fn delete<S: Source + ?Sized>(&mut self, _src: &S, _fd: Fd, token: usize) -> io::Result<()> {
        let i = self.index[token];
        self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.index[moved.token] = i;
        }
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Interest)>,
    ) -> io::Result<()> {
        // Muted registrations first: hung up since (report it, and do not
        // block), or no longer readable (back in the read set).
        let mut timeout = timeout;
        self.probes.clear();
        self.probed.clear();
        for (i, entry) in self.entries.iter().enumerate().skip(1) {
            if entry.muted {
                self.probes.push(sys::pollfd(entry.fd, POLLIN));
                self.probed.push(i);
            }
        }
        if !self.probes.is_empty() {
            sys::poll(&mut self.probes, 0)?;
            for (pfd, &i) in self.probes.iter().zip(&self.probed) {
                let entry = &mut self.entries[i];
                if pfd.revents & !POLLIN != 0 {
                    ready.push((entry.token, crate::EVENT_WRITE));
                    entry.muted = false;
                    timeout = Some(Duration::ZERO);
                } else if pfd.revents & POLLIN == 0 {
                    entry.muted = false;
                }
            }
        }

        let mut readers = fd_set_new();
        let mut writers = fd_set_new();
        let mut max = 0;
        for entry in &self.entries {
            if entry.in_read_set() {
                fd_set_insert(&mut readers, entry.fd);
            }
            if entry.interest.is_writable() {
                fd_set_insert(&mut writers, entry.fd);
            }
            max = max.max(entry.fd);
        }
        let mut tv = timeout.map(timeval);
        let tv_ptr = tv
            .as_mut()
            .map_or(ptr::null_mut(), |tv| tv as *mut libc::timeval);
        // SAFETY: both sets are initialised and only hold descriptors below
        // FD_SETSIZE; `tv_ptr` is null or points to a live `timeval`.
        let n =
            unsafe { libc::select(max + 1, &mut readers, &mut writers, ptr::null_mut(), tv_ptr) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        if fd_set_contains(&readers, self.entries[0].fd) {
            self.wake.drain();
        }
        self.probes.clear();
        self.probed.clear();
        for (i, entry) in self.entries.iter().enumerate().skip(1) {
            let readable = fd_set_contains(&readers, entry.fd);
            let writable = fd_set_contains(&writers, entry.fd);
            if readable && !writable && entry.interest.is_writable() {
                // Hung up, or merely readable? Asked below, all at once.
                self.probes.push(sys::pollfd(entry.fd, POLLIN));
                self.probed.push(i);
                continue;
            }
            // A write-only registration in the read set is there for its
            // hang-up only: reporting a bare "readable" would end the
            // caller's select early with nothing.
            let mask = Interest::from_flags(readable && entry.interest.is_readable(), writable);
            if let Some(mask) = mask {
                ready.push((entry.token, mask));
            }
        }
        if !self.probes.is_empty() {
            sys::poll(&mut self.probes, 0)?;
            for (pfd, &i) in self.probes.iter().zip(&self.probed) {
                let entry = &mut self.entries[i];
                if pfd.revents & !POLLIN != 0 {
                    // Hung up or in error: readable and writable (the caller
                    // masks with the interest).
                    ready.push((entry.token, crate::EVENT_READ | crate::EVENT_WRITE));
                } else if entry.interest.is_readable() {
                    ready.push((entry.token, crate::EVENT_READ));
                } else {
                    entry.muted = true;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SelectBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectBackend")
            .field("watched", &(self.entries.len() - 1))
            .finish()
    }
}

/// `t` as select(2)'s `timeval`, rounded up to the next microsecond (so a
/// tiny timeout still waits), with a rounded-up 1,000,000 µs carried into the
/// seconds: macOS and FreeBSD refuse `tv_usec >= 1_000_000` with `EINVAL`.
fn timeval(t: Duration) -> libc::timeval {
    let mut secs = t.as_secs();
    let mut micros = t.subsec_micros() + u32::from(t.subsec_nanos() % 1000 != 0);
    if micros == 1_000_000 {
        secs = secs.saturating_add(1);
        micros = 0;
    }
    libc::timeval {
        tv_sec: libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX),
        tv_usec: micros as libc::suseconds_t,
    }
}

#[cfg(test)]
mod timeval_tests {
    use super::timeval;
    use std::time::Duration;

    #[test]
    fn rounding_up_to_a_whole_second_carries_into_tv_sec() {
        let tv = timeval(Duration::new(1, 999_999_001));
        assert_eq!((tv.tv_sec, tv.tv_usec), (2, 0));
        let tv = timeval(Duration::from_nanos(1));
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 1));
        let tv = timeval(Duration::new(3, 500_000_000));
        assert_eq!((tv.tv_sec, tv.tv_usec), (3, 500_000));
    }
}

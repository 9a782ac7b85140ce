//! [`SelectBackend`]: select(2), Unix only.

use std::fmt;
use std::io;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use super::backend::sealed::{Notify, Ops};
use crate::sys::WakePipe;
use crate::{Error, Fd, Interest, Result, Source};

/// select(2); see [`SelectSelector`](crate::SelectSelector).
///
/// The registrations live in a dense array from which the two `fd_set`s are
/// rebuilt on every wait, as the kernel overwrites them. Descriptors at or
/// above `FD_SETSIZE` cannot be put in an `fd_set` and are refused at
/// registration with [`Error::FdTooLarge`].
pub struct SelectBackend {
    /// `(fd, token, interest)`; index 0 is the wake pipe.
    entries: Vec<(Fd, usize, Interest)>,
    /// `index[token]` is where that registration sits in `entries`.
    index: Vec<usize>,
    wake: Arc<WakePipe>,
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
            entries: vec![(wake.fd(), WAKE_TOKEN, crate::EVENT_READ)],
            index: Vec::new(),
            wake: Arc::new(wake),
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
        self.entries.push((fd, token, interest));
        Ok(())
    }

    fn modify<S: Source + ?Sized>(
        &mut self,
        _src: &S,
        _fd: Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.entries[self.index[token]].2 = interest;
        Ok(())
    }

    fn delete<S: Source + ?Sized>(&mut self, _src: &S, _fd: Fd, token: usize) -> io::Result<()> {
        let i = self.index[token];
        self.entries.swap_remove(i);
        if let Some(&(_, moved, _)) = self.entries.get(i) {
            self.index[moved] = i;
        }
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Interest)>,
    ) -> io::Result<()> {
        let mut readers = fd_set_new();
        let mut writers = fd_set_new();
        let mut max = 0;
        for &(fd, _, interest) in &self.entries {
            if interest.is_readable() {
                fd_set_insert(&mut readers, fd);
            }
            if interest.is_writable() {
                fd_set_insert(&mut writers, fd);
            }
            max = max.max(fd);
        }
        let mut tv = timeout.map(|t| {
            // Round up to the next microsecond, so a tiny timeout still waits.
            let micros = t.subsec_micros() + u32::from(t.subsec_nanos() % 1000 != 0);
            libc::timeval {
                tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_usec: micros as libc::suseconds_t,
            }
        });
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
        if fd_set_contains(&readers, self.entries[0].0) {
            self.wake.drain();
        }
        for &(fd, token, _) in &self.entries[1..] {
            let mask =
                Interest::from_flags(fd_set_contains(&readers, fd), fd_set_contains(&writers, fd));
            if let Some(mask) = mask {
                ready.push((token, mask));
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

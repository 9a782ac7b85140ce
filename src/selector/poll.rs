//! [`PollBackend`]: poll(2) on Unix, `WSAPoll` on Windows.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::backend::sealed::{Notify, Ops};
use crate::sys::{self, PollFd, WakePipe, POLLIN, POLLOUT};
use crate::{Fd, Interest, Result, Source};

/// poll(2) on Unix, `WSAPoll` on Windows; see [`PollSelector`](crate::PollSelector).
///
/// The set lives in user space as a dense array of `pollfd`s handed whole to
/// the kernel on each wait; registering is a push, unregistering a
/// swap-remove, both O(1). Slot 0 holds the wake pipe.
pub struct PollBackend {
    fds: Vec<PollFd>,
    /// `tokens[i]` is the registration whose descriptor is `fds[i]` (index 0: the wake pipe).
    tokens: Vec<usize>,
    /// `index[token]` is where that registration sits in `fds`.
    index: Vec<usize>,
    wake: Arc<WakePipe>,
}

const WAKE_TOKEN: usize = usize::MAX;

fn poll_events(interest: Interest) -> i16 {
    let mut events = 0;
    if interest.is_readable() {
        events |= POLLIN;
    }
    if interest.is_writable() {
        events |= POLLOUT;
    }
    events
}

impl Notify for WakePipe {
    fn notify(&self) -> io::Result<()> {
        self.wake()
    }
}

impl Ops for PollBackend {
    const NAME: &'static str = if cfg!(windows) { "WSAPoll" } else { "poll" };
    // One pollfd per registration; POLLHUP/POLLERR count as both.
    const REPORTS_ONCE: bool = true;

    fn open() -> Result<Self> {
        let wake = WakePipe::new()?;
        Ok(PollBackend {
            fds: vec![sys::pollfd(wake.fd(), POLLIN)],
            tokens: vec![WAKE_TOKEN],
            index: Vec::new(),
            wake: Arc::new(wake),
        })
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.wake.clone()
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
        self.index[token] = self.fds.len();
        self.fds.push(sys::pollfd(fd, poll_events(interest)));
        self.tokens.push(token);
        Ok(())
    }

    fn modify<S: Source + ?Sized>(
        &mut self,
        _src: &S,
        _fd: Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.fds[self.index[token]].events = poll_events(interest);
        Ok(())
    }

    fn delete<S: Source + ?Sized>(&mut self, _src: &S, _fd: Fd, token: usize) -> io::Result<()> {
        let i = self.index[token];
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        if let Some(&moved) = self.tokens.get(i) {
            self.index[moved] = i;
        }
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Interest)>,
    ) -> io::Result<()> {
        let mut n = sys::poll(&mut self.fds, sys::timeout_ms(timeout))?;
        if n == 0 {
            return Ok(());
        }
        if self.fds[0].revents != 0 {
            self.wake.drain();
            n -= 1;
        }
        for (pfd, &token) in self.fds.iter().zip(&self.tokens).skip(1) {
            if n == 0 {
                break;
            }
            let revents = pfd.revents;
            if revents == 0 {
                continue;
            }
            n -= 1;
            // Python's mapping: anything but "writable" counts as readable
            // (data, end of stream, hang-up, error), anything but "readable"
            // as writable.
            let mask = Interest::from_flags(revents & !POLLOUT != 0, revents & !POLLIN != 0);
            if let Some(mask) = mask {
                ready.push((token, mask));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PollBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollBackend")
            .field("watched", &(self.fds.len() - 1))
            .finish()
    }
}

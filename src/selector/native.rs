//! [`NativeBackend`]: the platform's own scalable readiness API (epoll,
//! kqueue, IOCP, event ports), through the `polling` crate.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use super::backend::sealed::{Notify, Ops};
use super::platform::NATIVE_NAME;
use crate::{Fd, Interest, Result, Source};

/// The `polling` crate's `Poller` in level-triggered mode; see
/// [`NativeSelector`](crate::NativeSelector).
///
/// Where the OS has no level-triggered mode (event ports on illumos and
/// Solaris), registrations are one-shot and re-armed after every event, as
/// calloop does, which gives the same level-triggered behaviour.
pub struct NativeBackend {
    poller: Arc<Poller>,
    events: Events,
    mode: PollMode,
    /// For one-shot mode only: what to re-arm, by token.
    armed: Vec<Option<(Fd, Interest)>>,
    /// How many registrations there are: `events` must have room for all of
    /// them, or a `select` would report only the first 1024 ready keys.
    registered: usize,
}

impl NativeBackend {
    fn with_mode(level: bool) -> io::Result<Self> {
        let poller = Poller::new()?;
        let mode = if level && poller.supports_level() {
            PollMode::Level
        } else {
            PollMode::Oneshot
        };
        Ok(NativeBackend {
            poller: Arc::new(poller),
            events: Events::with_capacity(NonZeroUsize::new(1024).expect("non-zero")),
            mode,
            armed: Vec::new(),
            registered: 0,
        })
    }

    fn arm(&mut self, token: usize, armed: Option<(Fd, Interest)>) {
        if self.mode == PollMode::Oneshot {
            if self.armed.len() <= token {
                self.armed.resize(token + 1, None);
            }
            self.armed[token] = armed;
        }
    }
}

fn event(token: usize, interest: Interest) -> Event {
    Event::new(token, interest.is_readable(), interest.is_writable())
}

impl Notify for Poller {
    fn notify(&self) -> io::Result<()> {
        Poller::notify(self)
    }
}

impl Ops for NativeBackend {
    const NAME: &'static str = NATIVE_NAME;
    // epoll: one event per registered descriptor. kqueue reports reading and
    // writing as two events, and IOCP and event ports are left to the merge.
    const REPORTS_ONCE: bool = cfg!(any(target_os = "linux", target_os = "android"));

    fn open() -> Result<Self> {
        Ok(NativeBackend::with_mode(true)?)
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.poller.clone()
    }

    unsafe fn add<S: Source + ?Sized>(
        &mut self,
        _src: &S,
        fd: Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        // SAFETY: our caller guarantees `fd` stays open until `delete`.
        unsafe {
            self.poller
                .add_with_mode(fd, event(token, interest), self.mode)?
        };
        self.registered += 1;
        self.arm(token, Some((fd, interest)));
        Ok(())
    }

    fn modify<S: Source + ?Sized>(
        &mut self,
        src: &S,
        fd: Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller.modify_with_mode(
            crate::sys::as_borrowed(src),
            event(token, interest),
            self.mode,
        )?;
        self.arm(token, Some((fd, interest)));
        Ok(())
    }

    fn delete<S: Source + ?Sized>(&mut self, src: &S, _fd: Fd, token: usize) -> io::Result<()> {
        self.arm(token, None);
        self.registered = self.registered.saturating_sub(1);
        self.poller.delete(crate::sys::as_borrowed(src))
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Interest)>,
    ) -> io::Result<()> {
        // Room for every registration (as Python's `max_ev`), plus the poller's own wake-up.
        let room = self.registered + 1;
        let capacity = self.events.capacity().get();
        if capacity < room {
            // Geometric growth: registrations added one by one reallocate
            // the buffer O(log n) times, not on every wait.
            let room = room.max(capacity * 2);
            self.events = Events::with_capacity(NonZeroUsize::new(room).expect("non-zero"));
        }
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        for ev in self.events.iter() {
            if let Some(mask) = Interest::from_flags(ev.readable, ev.writable) {
                ready.push((ev.key, mask));
            }
            if self.mode == PollMode::Oneshot {
                if let Some(Some((fd, interest))) = self.armed.get(ev.key) {
                    // SAFETY: `fd` is registered (its `armed` entry is cleared on
                    // `delete`), so its owner keeps it open.
                    let src = unsafe { crate::sys::borrow(*fd) };
                    self.poller
                        .modify_with_mode(src, event(ev.key, *interest), self.mode)?;
                }
            }
        }
        Ok(())
    }

    /// epoll: the child shares the parent's instance (one open file
    /// description), and `polling`'s `Poller::drop` deletes its own eventfd
    /// and timerfd from it with `EPOLL_CTL_DEL`, which would take them out
    /// of the *parent's* interest list (its wake-ups and timed waits would
    /// stop working). So the child's epoll descriptor is first pointed at a
    /// private placeholder (`dup2`): the poller's drop then closes the
    /// placeholder, the eventfd and the timerfd, and its `epoll_ctl` calls
    /// fail on the placeholder instead of reaching the shared instance.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn forget_after_fork(self) {
        use std::os::fd::AsRawFd;
        let epoll = self.poller.as_raw_fd();
        if crate::sys::detach_fd(epoll).is_ok() {
            // The poller is dropped once the selector's `WakeState` and any
            // `Waker` clone let go of it; whenever that is, it is harmless.
            drop(self);
        } else {
            // No descriptor left for the placeholder: never run the poller's
            // drop (leak one count of the `Arc`, so no clone runs it either),
            // and close our reference to the shared instance directly. The
            // eventfd and timerfd stay open, but nothing touches the parent.
            std::mem::forget(self.poller);
            // SAFETY: `epoll` is the poller's own descriptor, open; the poller
            // is never dropped now (one strong count leaked), so nothing will
            // use or close that number again.
            unsafe { crate::sys::close_raw(epoll) };
        }
    }

    /// kqueue (and event ports): the kernel does not copy the queue into a
    /// forked child, so the child holds no descriptor of it, and the number
    /// the poller remembers may already name something else of the
    /// child's. Its drop (a kevent on that number, then `close`) must not
    /// run: one count of the `Arc` is leaked, so it never does. Where the
    /// poller wakes through `EVFILT_USER` (macOS, FreeBSD) it holds nothing
    /// else; where it uses a pipe, the pipe stays open in the child.
    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    fn forget_after_fork(self) {
        std::mem::forget(self.poller);
    }
}

impl fmt::Debug for NativeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeBackend")
            .field("mode", &self.mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::NativeBackend;
    use crate::selector::backend::sealed::Ops;
    use crate::{BaseSelector, Selector, EVENT_READ};

    /// The one-shot path (event ports) cannot run here, so run it on this
    /// OS's poller in one-shot mode: it must still behave level-triggered.
    #[test]
    fn oneshot_mode_is_rearmed_into_level_triggered() {
        let mut sel: BaseSelector<NativeBackend, TcpStream, ()> = BaseSelector::new().unwrap();
        sel.backend = Some(NativeBackend::with_mode(false).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fd = crate::Source::fileno(&server);
        sel.register(server, EVENT_READ, ()).unwrap();
        client.write_all(b"x").unwrap();
        for _ in 0..3 {
            let ready: Vec<_> = sel
                .select(Some(Duration::from_secs(5)))
                .unwrap()
                .map(|(k, m)| (k.fd, m))
                .collect();
            assert_eq!(ready, [(fd, EVENT_READ)]);
        }
        assert_eq!(
            sel.backend.as_ref().map(|b| b.mode),
            Some(polling::PollMode::Oneshot)
        );
    }

    #[test]
    fn named_after_the_mechanism() {
        // "epoll" alone is the direct EpollBackend's name on Linux/Android.
        let expected = if cfg!(any(target_os = "linux", target_os = "android")) {
            "epoll (polling)"
        } else if cfg!(windows) {
            "IOCP"
        } else {
            NativeBackend::NAME // the platform list lives in `platform`
        };
        assert_eq!(NativeBackend::NAME, expected);
        let sel: BaseSelector<NativeBackend, TcpStream, ()> = BaseSelector::new().unwrap();
        assert_eq!(sel.backend_name(), expected);
    }
}

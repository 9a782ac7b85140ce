//! [`EpollBackend`]: epoll(7) driven directly, Linux and Android only.
//!
//! One system call per wait when nothing woke the selector: `epoll_wait`
//! itself (`epoll_pwait`, or `epoll_pwait2` for a timeout with a fraction of
//! a millisecond). The waker is an eventfd in the same epoll set, read only
//! when it fired. The `polling` crate's epoll `Poller`, which
//! [`NativeBackend`](super::NativeBackend) drives, makes five per wait: it
//! arms a timerfd and re-arms its one-shot timerfd and eventfd around every
//! `epoll_pwait`, and reads the eventfd each time.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
#[cfg(not(target_os = "android"))]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};

use super::backend::sealed::{Notify, Ops};
use crate::{Interest, Result, Source};

/// epoll(7), level-triggered, with no library in between; see
/// [`EpollSelector`](crate::EpollSelector).
///
/// Each registration is one `epoll_ctl`; each wait is one `epoll_wait`
/// whose event buffer has room for every registration (plus the waker), so
/// that no ready key is left out of a batch. Timeouts keep their
/// sub-millisecond part where the kernel has `epoll_pwait2` (Linux 5.11);
/// elsewhere, and on Android, they are rounded up to whole milliseconds, as
/// CPython does: a 0.3 ms timeout waits 1 ms, never zero.
///
/// Readiness is mapped as Python does (and as `polling` does): data, end of
/// stream (`EPOLLIN`), urgent data (`EPOLLPRI`), hang-up (`EPOLLHUP`) and a
/// pending error (`EPOLLERR`) are readable; `EPOLLOUT`, hang-up and error
/// are writable.
pub struct EpollBackend {
    epoll: OwnedFd,
    waker: Arc<EventFd>,
    /// The kernel's output; its capacity is the `maxevents` of each wait.
    events: EventBuf,
    /// How many registrations there are: `events` has room for all of them.
    registered: usize,
    /// Whether to ask `epoll_pwait2` for sub-millisecond timeouts: false once
    /// the kernel has refused it (then timeouts are rounded up to whole ms).
    #[cfg(not(target_os = "android"))]
    pwait2: bool,
}

/// The buffer `epoll_wait` fills.
struct EventBuf(Vec<epoll::Event>);

// SAFETY: `epoll::Event` is not `Send` only because its data may hold a
// pointer; ours hold plain integers (tokens, set with `new_u64`), and the
// buffer is used only through `&mut EpollBackend`.
unsafe impl Send for EventBuf {}

/// The waker's `epoll_data`: never a registration's token (tokens are slots
/// of a slab, far below it), never reported.
const WAKE_TOKEN: u64 = u64::MAX;

/// Whether this kernel accepts `epoll_pwait2` (Linux 5.11+), as far as we
/// know: true until one call says otherwise. Android never calls it: its
/// seccomp filter kills apps making system calls their bionic does not know.
#[cfg(not(target_os = "android"))]
static PWAIT2: AtomicBool = AtomicBool::new(true);

/// The waker: a non-blocking, close-on-exec eventfd in the epoll set.
struct EventFd(OwnedFd);

impl EventFd {
    /// Resets the counter, so the eventfd is no longer readable.
    fn drain(&self) {
        let mut buf = [0u8; 8];
        // Only `WouldBlock` (nothing pending: another thread's notify was
        // consumed by an earlier read) can fail here; either way the counter
        // is zero now.
        let _ = rustix::io::read(&self.0, &mut buf);
    }
}

impl Notify for EventFd {
    fn notify(&self) -> io::Result<()> {
        match rustix::io::write(&self.0, &1u64.to_ne_bytes()) {
            // `EAGAIN`: the counter is at its maximum, so the eventfd is
            // readable already: the wake is pending.
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What to ask epoll for: readability includes `EPOLLPRI`, and both include
/// hang-up and error (which epoll reports whatever was asked).
fn epoll_flags(interest: Interest) -> EventFlags {
    let mut flags = EventFlags::empty();
    if interest.is_readable() {
        flags |= read_flags();
    }
    if interest.is_writable() {
        flags |= write_flags();
    }
    flags
}

fn read_flags() -> EventFlags {
    EventFlags::IN | EventFlags::PRI | EventFlags::HUP | EventFlags::ERR
}

fn write_flags() -> EventFlags {
    EventFlags::OUT | EventFlags::HUP | EventFlags::ERR
}

/// Python's mapping of what epoll reported.
fn readiness(flags: EventFlags) -> Option<Interest> {
    Interest::from_flags(
        flags.intersects(read_flags()),
        flags.intersects(write_flags()),
    )
}

/// A timeout for `epoll_wait` in whole milliseconds, rounded up (a non-zero
/// timeout never becomes a zero one), as a `Timespec` rustix turns back
/// into exactly that number (it never exceeds `i32::MAX` ms, so rustix
/// never reaches for `epoll_pwait2` itself).
fn whole_ms(timeout: Option<Duration>) -> Option<Timespec> {
    match crate::sys::timeout_ms(timeout) {
        -1 => None,
        ms => Some(Timespec {
            tv_sec: (ms / 1000).into(),
            tv_nsec: ((ms % 1000) * 1_000_000).into(),
        }),
    }
}

impl EpollBackend {
    /// One `epoll_pwait2`, for a timeout with a sub-millisecond part: `Ok(None)`
    /// if the kernel does not have it (it then is never tried again).
    #[cfg(not(target_os = "android"))]
    fn wait_pwait2(&mut self, timeout: Duration) -> io::Result<Option<usize>> {
        /// The kernel's `struct __kernel_timespec` (64-bit fields everywhere).
        #[repr(C)]
        struct KernelTimespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        let ts = KernelTimespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let maxevents = libc::c_int::try_from(self.events.0.capacity()).unwrap_or(libc::c_int::MAX);
        // SAFETY: epoll_pwait2(2) on our epoll descriptor. It writes at most
        // `maxevents` (≤ the capacity of `events`, which is empty) entries
        // of `struct epoll_event`, whose layout rustix's `epoll::Event` has
        // (rustix hands the kernel the same buffer). `ts` is a live
        // `__kernel_timespec` it only reads; the signal mask is null (none
        // changed), so its size argument is ignored.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                std::os::fd::AsRawFd::as_raw_fd(&self.epoll),
                self.events.0.as_mut_ptr(),
                maxevents,
                &ts as *const KernelTimespec,
                std::ptr::null::<libc::sigset_t>(),
                0 as libc::size_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            // ENOSYS: before Linux 5.11. EPERM: a seccomp filter (such as
            // older container runtimes' defaults) refusing a call it does
            // not know; epoll_pwait2 itself never fails with it.
            return match err.raw_os_error() {
                Some(libc::ENOSYS | libc::EPERM) => {
                    self.pwait2 = false;
                    PWAIT2.store(false, Ordering::Relaxed);
                    Ok(None)
                }
                _ => Err(err),
            };
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` entries (n ≤ maxevents
        // ≤ capacity).
        unsafe { self.events.0.set_len(n) };
        Ok(Some(n))
    }
}

impl Ops for EpollBackend {
    const NAME: &'static str = "epoll";
    // One epoll_event per ready descriptor; hang-up and error are both.
    const REPORTS_ONCE: bool = true;

    fn open() -> Result<Self> {
        let epoll = epoll::create(CreateFlags::CLOEXEC).map_err(io::Error::from)?;
        let waker =
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(io::Error::from)?;
        epoll::add(
            &epoll,
            &waker,
            EventData::new_u64(WAKE_TOKEN),
            EventFlags::IN,
        )
        .map_err(io::Error::from)?;
        Ok(EpollBackend {
            epoll,
            waker: Arc::new(EventFd(waker)),
            events: EventBuf(Vec::new()),
            registered: 0,
            #[cfg(not(target_os = "android"))]
            pwait2: PWAIT2.load(Ordering::Relaxed),
        })
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.waker.clone()
    }

    unsafe fn add<S: Source + ?Sized>(
        &mut self,
        src: &S,
        _fd: crate::Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        debug_assert_ne!(token as u64, WAKE_TOKEN, "the waker's token");
        // One epoll_ctl: it registers the descriptor or, on error, nothing.
        epoll::add(
            &self.epoll,
            src.as_fd(),
            EventData::new_u64(token as u64),
            epoll_flags(interest),
        )?;
        self.registered += 1;
        Ok(())
    }

    fn modify<S: Source + ?Sized>(
        &mut self,
        src: &S,
        _fd: crate::Fd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        epoll::modify(
            &self.epoll,
            src.as_fd(),
            EventData::new_u64(token as u64),
            epoll_flags(interest),
        )?;
        Ok(())
    }

    fn delete<S: Source + ?Sized>(
        &mut self,
        src: &S,
        _fd: crate::Fd,
        _token: usize,
    ) -> io::Result<()> {
        self.registered = self.registered.saturating_sub(1);
        epoll::delete(&self.epoll, src.as_fd())?;
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Interest)>,
    ) -> io::Result<()> {
        // Room for every registration (Python's `max_ev`) plus the waker;
        // `reserve` grows geometrically.
        self.events.0.clear();
        self.events.0.reserve(self.registered + 1);

        #[cfg(not(target_os = "android"))]
        let waited = match timeout {
            // Only a timeout with a sub-millisecond part needs epoll_pwait2;
            // whole milliseconds (and none, and zero) are exact without it.
            Some(t) if self.pwait2 && t.subsec_nanos() % 1_000_000 != 0 => self.wait_pwait2(t)?,
            _ => None,
        };
        #[cfg(target_os = "android")]
        let waited: Option<usize> = None;
        if waited.is_none() {
            epoll::wait(
                &self.epoll,
                spare_capacity(&mut self.events.0),
                whole_ms(timeout).as_ref(),
            )?;
        }

        for ev in &self.events.0 {
            let (data, flags) = (ev.data.u64(), ev.flags);
            if data == WAKE_TOKEN {
                self.waker.drain();
            } else if let Some(mask) = readiness(flags) {
                ready.push((data as usize, mask));
            }
        }
        Ok(())
    }

    /// Closes the epoll descriptor and lets go of the eventfd (the last
    /// [`Waker`](crate::Waker) clone closes it) with no `epoll_ctl` at all:
    /// in a forked child the epoll descriptor is the parent's instance, and
    /// closing the child's copies of descriptors leaves the parent's
    /// registrations (the waker's included) in place, as the parent holds
    /// its own copies. Plain drop does exactly that.
    fn forget_after_fork(self) {
        drop(self);
    }
}

impl fmt::Debug for EpollBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("EpollBackend");
        d.field("registered", &self.registered);
        #[cfg(not(target_os = "android"))]
        d.field("pwait2", &self.pwait2);
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    use super::{whole_ms, EpollBackend, WAKE_TOKEN};
    use crate::selector::backend::sealed::Ops;
    use crate::{Interest, EVENT_READ, EVENT_WRITE};

    fn backend() -> EpollBackend {
        EpollBackend::open().unwrap()
    }

    /// A socket that is writable at once, and stays so.
    fn writable() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    fn wait(b: &mut EpollBackend, timeout: Duration) -> Vec<(usize, Interest)> {
        let mut ready = Vec::new();
        b.wait(Some(timeout), &mut ready).unwrap();
        ready
    }

    /// What the kernel reported in the last wait, by `epoll_data`.
    fn reported(b: &EpollBackend) -> Vec<u64> {
        b.events.0.iter().map(|ev| ev.data.u64()).collect()
    }

    #[test]
    fn a_notify_is_consumed_and_the_next_wait_runs_to_its_timeout() {
        let mut b = backend();
        let notifier = b.notifier();
        notifier.notify().unwrap();
        notifier.notify().unwrap();
        // The kernel reports the eventfd; the backend reports nothing.
        assert_eq!(wait(&mut b, Duration::from_secs(10)), []);
        assert_eq!(reported(&b), [WAKE_TOKEN]);
        // The eventfd was read: its counter is zero, so it is not readable.
        let mut buf = [0u8; 8];
        assert_eq!(
            rustix::io::read(&b.waker.0, &mut buf),
            Err(rustix::io::Errno::AGAIN)
        );
        // Spent: the next wait runs to its timeout.
        let timeout = Duration::from_millis(50);
        let t = Instant::now();
        assert_eq!(wait(&mut b, timeout), []);
        assert!(t.elapsed() >= timeout, "{:?}", t.elapsed());
        assert_eq!(reported(&b), [] as [u64; 0]);
        // And a later notify works again.
        notifier.notify().unwrap();
        assert_eq!(wait(&mut b, Duration::from_secs(10)), []);
        assert_eq!(reported(&b), [WAKE_TOKEN]);
    }

    #[test]
    fn the_wakers_token_is_never_reported() {
        let mut b = backend();
        let sock = writable();
        // SAFETY: `sock` outlives the backend's registration (deleted below).
        unsafe { b.add(&sock, 0, 0, EVENT_WRITE) }.unwrap();
        b.notifier().notify().unwrap();
        assert_eq!(wait(&mut b, Duration::from_secs(10)), [(0, EVENT_WRITE)]);
        let mut kernel = reported(&b);
        kernel.sort_unstable();
        assert_eq!(kernel, [0, WAKE_TOKEN]);
        // Notified again and again: still only the socket.
        for _ in 0..3 {
            b.notifier().notify().unwrap();
            assert_eq!(wait(&mut b, Duration::ZERO), [(0, EVENT_WRITE)]);
        }
        b.delete(&sock, 0, 0).unwrap();
        assert_eq!(wait(&mut b, Duration::ZERO), []);
    }

    /// A 300 µs timeout is neither rounded down to a busy loop nor cut
    /// short, with `epoll_pwait2` (where the kernel has it) and without
    /// (whole milliseconds, rounded up).
    #[test]
    fn a_sub_millisecond_timeout_waits_and_does_not_spin() {
        let timeout = Duration::from_micros(300);
        let window = Duration::from_millis(30);
        for pwait2 in [true, false] {
            let mut b = backend();
            #[cfg(not(target_os = "android"))]
            {
                b.pwait2 = pwait2 && super::PWAIT2.load(std::sync::atomic::Ordering::Relaxed);
            }
            let t = Instant::now();
            assert_eq!(wait(&mut b, timeout), []);
            assert!(t.elapsed() >= timeout, "pwait2 {pwait2}: {:?}", t.elapsed());

            // Every wait takes at least the timeout, so a window holds at
            // most window / timeout of them (a spin would do thousands).
            let start = Instant::now();
            let mut waits = 0u32;
            while start.elapsed() < window {
                assert_eq!(wait(&mut b, timeout), []);
                waits += 1;
            }
            eprintln!("pwait2 {pwait2}: {waits} waits of {timeout:?} in {window:?}");
            let most = (window.as_micros() / timeout.as_micros()) as u32 + 1;
            assert!(
                waits <= most,
                "pwait2 {pwait2}: {waits} waits in {window:?}"
            );
            assert!(waits >= 1);
        }
    }

    #[test]
    fn a_refused_registration_leaves_nothing_behind() {
        let mut b = backend();
        // epoll(7) refuses what has no poll support: EPERM, nothing added.
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: `null` outlives the backend's registration, if any.
        let err = unsafe { b.add(&null, 0, 0, EVENT_READ) }.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert_eq!(b.registered, 0);

        // The same socket twice: the second add fails (EEXIST) and the
        // first registration, under its own token, is all there is.
        let sock = writable();
        // SAFETY: `sock` outlives the registration (deleted below).
        unsafe { b.add(&sock, 0, 1, EVENT_WRITE) }.unwrap();
        // SAFETY: as above.
        let err = unsafe { b.add(&sock, 0, 2, EVENT_READ | EVENT_WRITE) }.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
        assert_eq!(b.registered, 1);
        assert_eq!(wait(&mut b, Duration::from_secs(10)), [(1, EVENT_WRITE)]);

        // A failed modify changes nothing either: the file is not there.
        let err = b.modify(&null, 0, 0, EVENT_WRITE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert_eq!(wait(&mut b, Duration::from_secs(10)), [(1, EVENT_WRITE)]);

        b.delete(&sock, 0, 1).unwrap();
        assert_eq!(b.registered, 0);
        assert_eq!(wait(&mut b, Duration::ZERO), []);
        // Deleted means gone: deleting again is the kernel's ENOENT.
        let err = b.delete(&sock, 0, 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    }

    /// Every ready registration comes back from one wait: the buffer grows
    /// with the registrations (plus one for the waker).
    #[test]
    fn one_wait_reports_every_ready_registration() {
        let mut b = backend();
        let socks: Vec<UdpSocket> = (0..100).map(|_| writable()).collect();
        for (token, sock) in socks.iter().enumerate() {
            // SAFETY: `socks` outlives the backend (declared before it is dropped).
            unsafe { b.add(sock, 0, token, EVENT_WRITE) }.unwrap();
        }
        b.notifier().notify().unwrap();
        let mut ready = wait(&mut b, Duration::from_secs(10));
        ready.sort_unstable_by_key(|&(token, _)| token);
        let all: Vec<_> = (0..socks.len()).map(|t| (t, EVENT_WRITE)).collect();
        assert_eq!(ready, all);
        assert_eq!(reported(&b).len(), socks.len() + 1, "and the waker");
        drop(b);
    }

    #[test]
    fn readiness_follows_pythons_mapping() {
        use rustix::event::epoll::EventFlags as F;
        let both = EVENT_READ | EVENT_WRITE;
        assert_eq!(super::readiness(F::IN), Some(EVENT_READ));
        assert_eq!(super::readiness(F::PRI), Some(EVENT_READ));
        assert_eq!(super::readiness(F::OUT), Some(EVENT_WRITE));
        assert_eq!(super::readiness(F::HUP), Some(both));
        assert_eq!(super::readiness(F::ERR), Some(both));
        assert_eq!(super::readiness(F::IN | F::OUT), Some(both));
        // Asked for a read interest: end of stream, urgent data, hang-up, error.
        assert_eq!(
            super::epoll_flags(EVENT_READ),
            F::IN | F::PRI | F::HUP | F::ERR
        );
        assert_eq!(super::epoll_flags(EVENT_WRITE), F::OUT | F::HUP | F::ERR);
    }

    #[test]
    fn whole_milliseconds_round_up() {
        let ms = |t| whole_ms(t).map(|ts| (ts.tv_sec, ts.tv_nsec));
        assert_eq!(ms(None), None);
        assert_eq!(ms(Some(Duration::ZERO)), Some((0, 0)));
        assert_eq!(ms(Some(Duration::from_micros(300))), Some((0, 1_000_000)));
        assert_eq!(
            ms(Some(Duration::from_micros(1_500_001))),
            Some((1, 501_000_000))
        );
        // Beyond i32::MAX ms (24.8 days): clamped, so rustix never needs epoll_pwait2.
        assert_eq!(
            ms(Some(Duration::from_secs(u64::MAX))),
            Some((
                i64::from(i32::MAX / 1000),
                i64::from(i32::MAX % 1000) * 1_000_000
            ))
        );
    }
}

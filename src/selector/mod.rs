//! Selectors: Python's `selectors` module, the Rust way.
//!
//! A selector watches registered file objects and reports which are ready.
//! Each registration is a [`SelectorKey`] holding the object itself (the
//! selector owns it), its descriptor, the events it is watched for and your
//! `data`; [`Selector::select`] returns `(key, mask)` pairs, level-triggered
//! like Python: a key is reported for as long as it stays ready.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use selectloop::{DefaultSelector, Selector, Source, EVENT_READ};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! let (server, _) = listener.accept()?;
//!
//! let mut sel: DefaultSelector<TcpStream, &str> = DefaultSelector::new()?;
//! let fd = server.fileno();
//! sel.register(server, EVENT_READ, "echo")?;
//! client.write_all(b"ping")?;
//!
//! let ready: Vec<_> = sel.select(Some(Duration::from_secs(5)))?.collect();
//! assert_eq!(ready.len(), 1);
//! let (key, mask) = ready[0];
//! assert_eq!((key.fd, key.data, mask), (fd, "echo", EVENT_READ));
//!
//! let mut buf = [0; 4];
//! (&key.fileobj).read_exact(&mut buf)?;
//! assert_eq!(&buf, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Backends
//! Every backend is a [`BaseSelector`] over a different kernel interface,
//! and all pass the same test suite (a port of CPython's `test_selectors`):
//!
//! | type | mechanism | platforms |
//! |---|---|---|
//! | [`PollingSelector`] (`EpollSelector`, `KqueueSelector`) | the `polling` crate: epoll, kqueue, IOCP, event ports | all |
//! | [`PollSelector`] | poll(2); `WSAPoll` on Windows | all |
//! | [`SelectSelector`] | select(2); descriptors below `FD_SETSIZE` only | Unix |
//!
//! [`DefaultSelector`](crate::DefaultSelector) is epoll on Linux and Android, kqueue on macOS, iOS
//! and the BSDs, and **`WSAPoll` on Windows**. On Windows this follows the
//! project's choice of a plain readiness API whose behaviour matches Python's
//! `selectors.DefaultSelector` (which is `SelectSelector` there) without its
//! 512-socket `select()` limit; pick [`PollingSelector`] for IOCP, which
//! scales better with many idle sockets but costs a wait-completion round trip
//! per readiness change.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::slice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::{Error, Fd, Interest, RegisterError, Result, SelectorKey, Source};

mod poll;
mod polling;
#[cfg(unix)]
mod select;

pub use self::poll::PollBackend;
pub use self::polling::PollingBackend;
#[cfg(unix)]
pub use self::select::SelectBackend;

/// Any registrable object, boxed: the file-object type selectors default to,
/// for registering listeners, streams and pipes side by side.
///
/// ```
/// use std::net::{TcpListener, UdpSocket};
/// use selectloop::{AnySource, DefaultSelector, Selector, EVENT_READ};
///
/// let mut sel: DefaultSelector = DefaultSelector::new()?;
/// sel.register(AnySource::new(TcpListener::bind("127.0.0.1:0")?), EVENT_READ, ())?;
/// sel.register(AnySource::new(UdpSocket::bind("127.0.0.1:0")?), EVENT_READ, ())?;
/// assert_eq!(sel.get_map()?.len(), 2);
/// # Ok::<(), selectloop::Error>(())
/// ```
pub struct AnySource(Box<dyn Source + Send>);

impl AnySource {
    /// Boxes `source`.
    pub fn new<S: Source + Send + 'static>(source: S) -> AnySource {
        AnySource(Box::new(source))
    }

    /// The boxed object.
    pub fn into_inner(self) -> Box<dyn Source + Send> {
        self.0
    }

    pub(crate) fn inner(&self) -> &(dyn Source + Send) {
        &*self.0
    }
}

impl fmt::Debug for AnySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnySource").field(&self.0.fileno()).finish()
    }
}

/// A selector on the `polling` crate in level-triggered mode: epoll on
/// Linux/Android, kqueue on macOS/iOS/BSD, IOCP on Windows, event ports
/// (re-armed after each event, as level mode is missing there) on illumos.
pub type PollingSelector<F = AnySource, D = ()> = BaseSelector<PollingBackend, F, D>;

/// A selector on poll(2) (Unix) or `WSAPoll` (Windows). Each `select` passes
/// the whole set to the kernel: O(registered), no descriptor limit.
pub type PollSelector<F = AnySource, D = ()> = BaseSelector<PollBackend, F, D>;

/// A selector on select(2). Each `select` passes the whole set to the kernel,
/// and descriptors at or above `FD_SETSIZE` (1024 on Linux) are refused at
/// registration with [`Error::FdTooLarge`].
#[cfg(unix)]
pub type SelectSelector<F = AnySource, D = ()> = BaseSelector<SelectBackend, F, D>;

/// epoll(7), through the `polling` crate: [`PollingSelector`] on Linux and Android.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type EpollSelector<F = AnySource, D = ()> = PollingSelector<F, D>;

/// kqueue(2), through the `polling` crate: [`PollingSelector`] on macOS, iOS and the BSDs.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub type KqueueSelector<F = AnySource, D = ()> = PollingSelector<F, D>;

pub(crate) mod sealed {
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::{Fd, Interest, Result, Source};

    /// What a backend must do; see [`Backend`](super::Backend) for the contract.
    pub trait Ops: Sized + Send + 'static {
        /// A short name for `Debug` output ("polling", "poll", "select").
        const NAME: &'static str;

        /// Creates the kernel object.
        fn open() -> io::Result<Self>;

        /// A handle another thread can use to interrupt `wait`.
        fn notifier(&self) -> Arc<dyn Notify>;

        /// Refuses descriptors the backend can never watch. Called before `add`.
        fn check(&self, _fd: Fd) -> Result<()> {
            Ok(())
        }

        /// Starts watching `src` (whose descriptor is `fd`) for `interest`,
        /// reporting it as `token`.
        ///
        /// # Safety
        /// `src` must stay open until `delete` is called for it, or until the backend is dropped.
        unsafe fn add<S: Source + ?Sized>(
            &mut self,
            src: &S,
            fd: Fd,
            token: usize,
            interest: Interest,
        ) -> io::Result<()>;

        /// Changes the events `src` (already added as `token`) is watched for.
        fn modify<S: Source + ?Sized>(
            &mut self,
            src: &S,
            fd: Fd,
            token: usize,
            interest: Interest,
        ) -> io::Result<()>;

        /// Stops watching `src`, added as `token`.
        fn delete<S: Source + ?Sized>(&mut self, src: &S, fd: Fd, token: usize) -> io::Result<()>;

        /// Waits up to `timeout` (`None`: forever) and appends `(token, readiness)` for
        /// ready registrations to `ready` (one token may appear twice; readiness may exceed
        /// the interest, the caller masks). May return early with nothing; an interrupted
        /// wait may return `ErrorKind::Interrupted`. A notification is consumed silently.
        fn wait(
            &mut self,
            timeout: Option<Duration>,
            ready: &mut Vec<(usize, Interest)>,
        ) -> io::Result<()>;
    }

    /// Interrupts a backend's `wait` from any thread.
    pub trait Notify: Send + Sync {
        /// Makes the current or next `wait` return.
        fn notify(&self) -> io::Result<()>;
    }
}

/// A kernel interface a [`BaseSelector`] can drive: [`PollingBackend`],
/// [`PollBackend`] or `SelectBackend` (Unix).
///
/// The trait is sealed. Its contract, which every backend meets and the
/// shared test suite checks:
/// - level-triggered: a registration is reported by every `select` while it is ready;
/// - readiness is reported with Python's mapping: end of stream, hang-up and socket
///   errors count as readable, and hang-up and errors also as writable;
/// - a notification from another thread ends the current or the next wait;
/// - a wait interrupted by a signal is retried by the selector with what is left of
///   its timeout (PEP 475), so it never returns early with nothing.
pub trait Backend: sealed::Ops + fmt::Debug {}

impl<B: sealed::Ops + fmt::Debug> Backend for B {}

/// Python's `BaseSelector` API: register file objects with an event mask and
/// data, then `select`.
///
/// Implemented by [`BaseSelector`] for every [`Backend`]; generic code can be
/// written against this trait to run on any of them.
pub trait Selector {
    /// The registered objects' type; [`AnySource`] when it varies.
    type FileObj: Source;
    /// The data attached to each registration.
    type Data;

    /// Registers `fileobj` for `events`, attaching `data`, and returns its key.
    ///
    /// The selector takes ownership of `fileobj` (pass a reference to keep
    /// it); on error it is dropped.
    ///
    /// # Errors
    /// - [`Error::AlreadyRegistered`] if its descriptor is registered already;
    /// - [`Error::FdTooLarge`] if the backend cannot watch that descriptor number;
    /// - [`Error::Io`] if the kernel refuses (epoll refuses regular files, for one);
    ///   nothing is left registered then;
    /// - [`Error::Closed`] after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use selectloop::{DefaultSelector, Error, Selector, EVENT_READ};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut sel: DefaultSelector<&TcpListener> = DefaultSelector::new()?;
    /// sel.register(&listener, EVENT_READ, ())?;
    /// assert!(matches!(sel.register(&listener, EVENT_READ, ()), Err(Error::AlreadyRegistered { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    fn register(
        &mut self,
        fileobj: Self::FileObj,
        events: Interest,
        data: Self::Data,
    ) -> Result<&SelectorKey<Self::FileObj, Self::Data>, RegisterError<Self::FileObj>>;

    /// Unregisters the object with descriptor `fd` and returns its key, and
    /// with it the object.
    ///
    /// # Errors
    /// - [`Error::NotRegistered`] if `fd` is not registered;
    /// - [`Error::Closed`] after [`close`](Selector::close).
    fn unregister(&mut self, fd: Fd) -> Result<SelectorKey<Self::FileObj, Self::Data>>;

    /// Changes the events and data of the registration for `fd`. Only a change of
    /// `events` reaches the kernel.
    ///
    /// # Errors
    /// - [`Error::NotRegistered`] if `fd` is not registered;
    /// - [`Error::Io`] if the kernel refuses; the registration is then unchanged;
    /// - [`Error::Closed`] after [`close`](Selector::close).
    fn modify(
        &mut self,
        fd: Fd,
        events: Interest,
        data: Self::Data,
    ) -> Result<&SelectorKey<Self::FileObj, Self::Data>>;

    /// Waits until a registered object is ready, the `timeout` passes
    /// (`None`: wait forever; zero: just poll) or a [`Waker`] wakes it, and
    /// returns each ready key once, with the ready events it registered for.
    ///
    /// Level-triggered: an object is reported again by the next `select` for
    /// as long as it stays ready. A signal does not end the wait early: it is
    /// resumed with what is left of `timeout`, as Python does since PEP 475.
    ///
    /// # Errors
    /// - [`Error::Io`] if the kernel wait fails;
    /// - [`Error::Closed`] after [`close`](Selector::close).
    fn select(&mut self, timeout: Option<Duration>)
        -> Result<Ready<'_, Self::FileObj, Self::Data>>;

    /// The key registered for `fd`.
    ///
    /// # Errors
    /// - [`Error::NotRegistered`] if `fd` is not registered;
    /// - [`Error::Closed`] after [`close`](Selector::close).
    fn get_key(&self, fd: Fd) -> Result<&SelectorKey<Self::FileObj, Self::Data>>;

    /// The data of the registration for `fd`, mutably: per-connection state
    /// kept in `data` can change without a [`modify`](Selector::modify)
    /// (Python gets this from mutable data objects).
    ///
    /// # Errors
    /// - [`Error::NotRegistered`] if `fd` is not registered;
    /// - [`Error::Closed`] after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{DefaultSelector, Selector, Source, EVENT_READ};
    ///
    /// let mut sel: DefaultSelector<UdpSocket, Vec<u8>> = DefaultSelector::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let fd = socket.fileno();
    /// sel.register(socket, EVENT_READ, Vec::new())?;
    /// sel.data_mut(fd)?.extend_from_slice(b"pending");
    /// assert_eq!(sel.get_key(fd)?.data, b"pending");
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn data_mut(&mut self, fd: Fd) -> Result<&mut Self::Data>;

    /// A read-only view of every registration, keyed by descriptor.
    ///
    /// # Errors
    /// - [`Error::Closed`] after [`close`](Selector::close) (Python returns `None`).
    fn get_map(&self) -> Result<SelectorMap<'_, Self::FileObj, Self::Data>>;

    /// Unregisters everything, drops the registered objects and releases the
    /// kernel object. Calling it again does nothing; every other call then
    /// fails with [`Error::Closed`]. Dropping a selector closes it.
    ///
    /// # Errors
    /// - [`Error::Io`] is reserved for backends whose release can fail; none of
    ///   today's can.
    fn close(&mut self) -> Result<()>;

    /// A handle that interrupts a blocked [`select`](Selector::select) from
    /// any thread.
    ///
    /// # Errors
    /// - [`Error::Closed`] after [`close`](Selector::close).
    fn waker(&self) -> Result<Waker>;
}

/// Wakes a selector's blocked `select` from any thread.
///
/// Cheap to clone. Wakes coalesce: many calls before the selector next
/// returns make it return once.
///
/// ```
/// use selectloop::{DefaultSelector, Selector};
///
/// let mut sel: DefaultSelector = DefaultSelector::new()?;
/// let waker = sel.waker()?;
/// let t = std::thread::spawn(move || waker.wake());
/// // Returns, with no events, as soon as the other thread wakes it.
/// assert_eq!(sel.select(None)?.len(), 0);
/// t.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    inner: Arc<WakeState>,
}

struct WakeState {
    pending: AtomicBool,
    notifier: Arc<dyn sealed::Notify>,
}

impl Waker {
    /// Makes the selector's current `select`, or its next one, return.
    ///
    /// # Errors
    /// - the OS error if the notification could not be sent (it cannot fail on
    ///   today's backends short of resource exhaustion).
    pub fn wake(&self) -> io::Result<()> {
        if self.inner.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.inner.notifier.notify();
        if result.is_err() {
            self.inner.pending.store(false, Ordering::Release);
        }
        result
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("pending", &self.inner.pending.load(Ordering::Relaxed))
            .finish()
    }
}

struct Slot<F, D> {
    key: SelectorKey<F, D>,
    /// The `select` call that last reported this slot, and where in `ready`.
    batch: u64,
    pos: u32,
    /// Taken out of the backend for now (the event loop's `pause`).
    paused: bool,
}

/// A selector over backend `B`, owning objects of type `F` registered with data `D`.
///
/// Use it through the [`Selector`] trait and its aliases
/// ([`DefaultSelector`](crate::DefaultSelector), [`PollingSelector`],
/// [`PollSelector`], `SelectSelector`).
pub struct BaseSelector<B: Backend, F = AnySource, D = ()> {
    backend: Option<B>,
    slots: Slab<Slot<F, D>>,
    fds: HashMap<Fd, usize>,
    ready: Vec<(usize, Interest)>,
    batch: u64,
    wake: Arc<WakeState>,
}

impl<B: Backend, F: Source, D> BaseSelector<B, F, D> {
    /// Opens a selector.
    ///
    /// # Errors
    /// - [`Error::Io`] if the kernel object cannot be created (out of descriptors, say).
    pub fn new() -> Result<Self> {
        let backend = B::open()?;
        let wake = Arc::new(WakeState {
            pending: AtomicBool::new(false),
            notifier: backend.notifier(),
        });
        Ok(BaseSelector {
            backend: Some(backend),
            slots: Slab::new(),
            fds: HashMap::new(),
            ready: Vec::new(),
            batch: 0,
            wake,
        })
    }

    fn slot_of(&self, fd: Fd) -> Result<usize> {
        if self.backend.is_none() {
            return Err(Error::Closed);
        }
        self.fds
            .get(&fd)
            .copied()
            .ok_or(Error::NotRegistered { fd })
    }

    /// Registers like [`Selector::register`] and returns the registration's
    /// slot, a small integer that stays valid until it is unregistered. On
    /// failure the object and the data come back with the error.
    pub(crate) fn register_slot(
        &mut self,
        fileobj: F,
        events: Interest,
        data: D,
    ) -> Result<usize, RegisterError<(F, D)>> {
        let fd = fileobj.fileno();
        let checked = match self.backend.as_mut() {
            None => Err(Error::Closed),
            Some(_) if self.fds.contains_key(&fd) => Err(Error::AlreadyRegistered { fd }),
            Some(backend) => backend.check(fd).map(|()| backend),
        };
        let backend = match checked {
            Ok(backend) => backend,
            Err(error) => return Err(RegisterError::new(error, (fileobj, data))),
        };
        let entry = self.slots.vacant_entry();
        let token = entry.key();
        // SAFETY: the selector owns `fileobj` (or, for a borrowed `F`, the borrow
        // outlives the selector) until `unregister_slot` or `close` deletes it from
        // the backend, so the descriptor stays open while it is registered.
        if let Err(e) = unsafe { backend.add(&fileobj, fd, token, events) } {
            return Err(RegisterError::new(Error::Io(e), (fileobj, data)));
        }
        entry.insert(Slot {
            key: SelectorKey {
                fileobj,
                fd,
                events,
                data,
            },
            batch: 0,
            pos: 0,
            paused: false,
        });
        self.fds.insert(fd, token);
        Ok(token)
    }

    /// Unregisters the registration in `slot`.
    pub(crate) fn unregister_slot(&mut self, slot: usize) -> SelectorKey<F, D> {
        let Slot { key, paused, .. } = self.slots.remove(slot);
        self.fds.remove(&key.fd);
        if let Some(backend) = self.backend.as_mut().filter(|_| !paused) {
            // The object is still open (we own it), so the kernel cannot refuse
            // for a stale descriptor; like Python, a failure here is not the
            // caller's problem: the registration is gone either way.
            let _ = backend.delete(&key.fileobj, key.fd, slot);
        }
        key
    }

    /// Changes the events of the registration in `slot`, if they differ.
    pub(crate) fn modify_slot(&mut self, slot: usize, events: Interest) -> Result<()> {
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        let entry = &mut self.slots[slot];
        let key = &mut entry.key;
        if key.events != events {
            if !entry.paused {
                backend.modify(&key.fileobj, key.fd, slot, events)?;
            }
            key.events = events;
        }
        Ok(())
    }

    /// Stops watching the registration in `slot` without unregistering it:
    /// the backend forgets it until `resume_slot`.
    pub(crate) fn pause_slot(&mut self, slot: usize) -> Result<()> {
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        let entry = &mut self.slots[slot];
        if !entry.paused {
            backend.delete(&entry.key.fileobj, entry.key.fd, slot)?;
            entry.paused = true;
        }
        Ok(())
    }

    /// Watches a paused registration again, for its current events.
    pub(crate) fn resume_slot(&mut self, slot: usize) -> Result<()> {
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        let entry = &mut self.slots[slot];
        if entry.paused {
            let key = &entry.key;
            // SAFETY: as in `register_slot`: the selector still owns the object.
            unsafe { backend.add(&key.fileobj, key.fd, slot, key.events)? };
            entry.paused = false;
        }
        Ok(())
    }

    /// True if the registration in `slot` is paused.
    pub(crate) fn is_paused(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|s| s.paused)
    }

    /// The key in `slot`, mutably (the event loop swaps callbacks in and out).
    pub(crate) fn key_mut(&mut self, slot: usize) -> Option<&mut SelectorKey<F, D>> {
        self.slots.get_mut(slot).map(|s| &mut s.key)
    }

    /// The key in `slot`.
    pub(crate) fn key(&self, slot: usize) -> Option<&SelectorKey<F, D>> {
        self.slots.get(slot).map(|s| &s.key)
    }

    /// Waits like [`Selector::select`] and returns the ready `(slot, mask)`
    /// pairs, each slot once, masks within the registered events.
    pub(crate) fn select_slots(&mut self, timeout: Option<Duration>) -> Result<()> {
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        self.ready.clear();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut remaining = timeout;
        loop {
            match backend.wait(remaining, &mut self.ready) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            // A wake ends this wait even if it also had events; it must not
            // linger and cut the next, unrelated wait short.
            let woken = self.wake.pending.swap(false, Ordering::AcqRel);
            if !self.ready.is_empty() || woken {
                break;
            }
            match (timeout, deadline) {
                (None, _) => {}
                (Some(_), Some(deadline)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    remaining = Some(deadline - now);
                }
                // A timeout too large for `Instant` to represent: wait on.
                (Some(_), None) => {}
            }
        }
        self.batch = self.batch.wrapping_add(1);
        let mut kept = 0;
        for i in 0..self.ready.len() {
            let (token, raw) = self.ready[i];
            let Some(slot) = self.slots.get_mut(token) else {
                continue;
            };
            let Some(mask) = raw.intersection(slot.key.events) else {
                continue;
            };
            if slot.batch == self.batch {
                let seen = &mut self.ready[slot.pos as usize].1;
                *seen = *seen | mask;
            } else {
                slot.batch = self.batch;
                slot.pos = kept as u32;
                self.ready[kept] = (token, mask);
                kept += 1;
            }
        }
        self.ready.truncate(kept);
        Ok(())
    }

    /// How many keys the last `select_slots` reported.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Entry `i` of the last `select_slots` as `(slot, key, mask)`, unless
    /// that key has been unregistered since: then `None`, even if a new key
    /// took its slot (a new key was not reported by that select); `None`
    /// too if it has been paused since.
    pub(crate) fn ready_entry_mut(
        &mut self,
        i: usize,
    ) -> Option<(usize, &mut SelectorKey<F, D>, Interest)> {
        let (slot, mask) = *self.ready.get(i)?;
        let entry = self.slots.get_mut(slot)?;
        if entry.batch != self.batch || entry.pos as usize != i || entry.paused {
            return None;
        }
        Some((slot, &mut entry.key, mask))
    }

    /// The slot the next registration will take.
    pub(crate) fn vacant_slot(&self) -> usize {
        self.slots.vacant_key()
    }

    /// How many objects are registered.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The backend's short name, e.g. `"poll"`.
    pub fn backend_name(&self) -> &'static str {
        B::NAME
    }
}

impl<B: Backend, F: Source, D> Selector for BaseSelector<B, F, D> {
    type FileObj = F;
    type Data = D;

    fn register(
        &mut self,
        fileobj: F,
        events: Interest,
        data: D,
    ) -> Result<&SelectorKey<F, D>, RegisterError<F>> {
        let slot = self
            .register_slot(fileobj, events, data)
            .map_err(|e| e.map(|(fileobj, _data)| fileobj))?;
        Ok(&self.slots[slot].key)
    }

    fn unregister(&mut self, fd: Fd) -> Result<SelectorKey<F, D>> {
        let slot = self.slot_of(fd)?;
        Ok(self.unregister_slot(slot))
    }

    fn modify(&mut self, fd: Fd, events: Interest, data: D) -> Result<&SelectorKey<F, D>> {
        let slot = self.slot_of(fd)?;
        self.modify_slot(slot, events)?;
        let key = &mut self.slots[slot].key;
        key.data = data;
        Ok(key)
    }

    fn select(&mut self, timeout: Option<Duration>) -> Result<Ready<'_, F, D>> {
        self.select_slots(timeout)?;
        Ok(Ready {
            slots: &self.slots,
            iter: self.ready.iter(),
        })
    }

    fn get_key(&self, fd: Fd) -> Result<&SelectorKey<F, D>> {
        let slot = self.slot_of(fd)?;
        Ok(&self.slots[slot].key)
    }

    fn data_mut(&mut self, fd: Fd) -> Result<&mut D> {
        let slot = self.slot_of(fd)?;
        Ok(&mut self.slots[slot].key.data)
    }

    fn get_map(&self) -> Result<SelectorMap<'_, F, D>> {
        if self.backend.is_none() {
            return Err(Error::Closed);
        }
        Ok(SelectorMap {
            slots: &self.slots,
            fds: &self.fds,
        })
    }

    fn close(&mut self) -> Result<()> {
        if let Some(mut backend) = self.backend.take() {
            for (token, slot) in self.slots.iter().filter(|(_, s)| !s.paused) {
                let _ = backend.delete(&slot.key.fileobj, slot.key.fd, token);
            }
            drop(backend);
            self.fds.clear();
            self.slots.clear();
            self.ready.clear();
        }
        Ok(())
    }

    fn waker(&self) -> Result<Waker> {
        if self.backend.is_none() {
            return Err(Error::Closed);
        }
        Ok(Waker {
            inner: Arc::clone(&self.wake),
        })
    }
}

impl<B: Backend, F, D> Drop for BaseSelector<B, F, D> {
    fn drop(&mut self) {
        // The backend must forget every registration before the objects close.
        // With an `F: Source` bound unavailable here, drop the backend first:
        // releasing the kernel object forgets all registrations at once.
        drop(self.backend.take());
    }
}

impl<B: Backend, F, D> fmt::Debug for BaseSelector<B, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseSelector")
            .field("backend", &B::NAME)
            .field("closed", &self.backend.is_none())
            .field("registered", &self.slots.len())
            .finish()
    }
}

/// The keys ready after a [`Selector::select`], each with its ready events.
///
/// An iterator of `(&SelectorKey, Interest)`; `.collect::<Vec<_>>()` gives
/// Python's list.
pub struct Ready<'a, F, D> {
    slots: &'a Slab<Slot<F, D>>,
    iter: slice::Iter<'a, (usize, Interest)>,
}

impl<'a, F, D> Iterator for Ready<'a, F, D> {
    type Item = (&'a SelectorKey<F, D>, Interest);

    fn next(&mut self) -> Option<Self::Item> {
        let &(token, mask) = self.iter.next()?;
        Some((&self.slots[token].key, mask))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<F, D> ExactSizeIterator for Ready<'_, F, D> {}

impl<F, D> fmt::Debug for Ready<'_, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter.clone().map(|&(t, m)| (self.slots[t].key.fd, m)))
            .finish()
    }
}

/// A read-only view of a selector's registrations, keyed by descriptor
/// (Python's `get_map()` mapping).
pub struct SelectorMap<'a, F, D> {
    slots: &'a Slab<Slot<F, D>>,
    fds: &'a HashMap<Fd, usize>,
}

impl<'a, F, D> SelectorMap<'a, F, D> {
    /// How many objects are registered.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True if `fd` is registered.
    pub fn contains(&self, fd: Fd) -> bool {
        self.fds.contains_key(&fd)
    }

    /// The key for `fd`, if registered.
    pub fn get(&self, fd: Fd) -> Option<&'a SelectorKey<F, D>> {
        self.fds.get(&fd).map(|&t| &self.slots[t].key)
    }

    /// Every key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &'a SelectorKey<F, D>> + 'a {
        self.slots.iter().map(|(_, s)| &s.key)
    }

    /// Every registered descriptor, in no particular order.
    pub fn fds(&self) -> impl Iterator<Item = Fd> + 'a {
        self.fds.keys().copied()
    }
}

impl<F, D> fmt::Debug for SelectorMap<'_, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.fds.keys()).finish()
    }
}

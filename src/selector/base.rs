//! [`BaseSelector`]: the one selector type, generic over its [`Backend`].
//!
//! It keeps the registrations in slots (a slab: `register` takes a free
//! slot, `unregister` frees it), finds a descriptor's slot in an
//! [`FdTable`], and turns the backend's raw reports into Python's
//! `(key, mask)` list:
//!
//! 1. the backend's `wait` appends raw `(slot, readiness)` pairs to `ready`;
//! 2. `select_slots` retries the wait while it returns nothing before the
//!    deadline (a signal, a spent wake) and numbers the batch. A backend
//!    that reports each registration at most once per wait
//!    ([`REPORTS_ONCE`](super::backend::sealed::Ops::REPORTS_ONCE): epoll,
//!    poll) leaves its list as it is, raw readiness and all: every reader
//!    below masks with the key's events as it looks the key up anyway, so a
//!    second pass would only repeat that lookup. For the others (kqueue
//!    reports reading and writing apart) the pass masks each pair and merges
//!    duplicates, finding a slot's first entry through a scratch table;
//! 3. [`Selector::select`] lends `ready` out as [`Ready`];
//!    [`Selector::select_into`] copies it into the caller's [`Events`], each
//!    event stamped with its registration's generation, and the event loop
//!    walks it in place with `ready_entry_mut`: one slab lookup per event,
//!    which refuses a slot registered since the wait (`born` is this batch),
//!    so a new registration never gets an old one's event.
//!
//! Invariants: a slot's `gen` is unique to its registration (taken from a
//! process-wide counter), so an `Event` names one registration forever; a
//! slot's `born` is the batch number current when it was registered, and
//! every entry of `ready` names a slot registered before that batch's wait
//! (or one gone or re-registered since, which the readers skip); a paused
//! slot is not in the backend; every key's `fd` is in the table, pointing
//! at its slot, and nothing else is.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::fd_table::FdTable;
use super::view::{Event, Events, Ready, SelectorMap};
use super::waker::{WakeState, Waker};
use super::{AnySource, Backend, Selector};
use crate::{Error, Fd, Interest, RegisterError, Result, SelectorKey, Source};

/// One registration.
pub(crate) struct Slot<F, D> {
    pub(crate) key: SelectorKey<F, D>,
    /// This registration's generation: unique in the process.
    pub(crate) gen: u64,
    /// The batch (`select` call) current when this slot was registered:
    /// that batch's events predate it.
    born: u64,
    /// Taken out of the backend for now (the event loop's `pause`).
    paused: bool,
}

/// The generation of the next registration, in any selector (and of the
/// next event-loop source, which is one): an [`Event`] or a token from one
/// selector never names a registration of another. Starts at 1, so a zeroed
/// stamp is never live.
static NEXT_GEN: AtomicU64 = AtomicU64::new(1);

/// A generation no registration has had yet.
pub(crate) fn next_gen() -> u64 {
    NEXT_GEN.fetch_add(1, Ordering::Relaxed)
}

/// A selector over backend `B`, owning objects of type `F` registered with data `D`.
///
/// Use it through the [`Selector`] trait and its aliases
/// ([`DefaultSelector`](crate::DefaultSelector), [`NativeSelector`](super::NativeSelector),
/// [`PollSelector`](super::PollSelector), `SelectSelector`).
pub struct BaseSelector<B: Backend, F = AnySource, D = ()> {
    pub(super) backend: Option<B>,
    slots: Slab<Slot<F, D>>,
    fds: FdTable,
    ready: Vec<(usize, Interest)>,
    /// Merging backends only: scratch of `select_slots`, by slot.
    merge: Vec<u32>,
    batch: u64,
    wake: Arc<WakeState>,
}

impl<B: Backend, F: Source, D> BaseSelector<B, F, D> {
    /// Opens a selector.
    ///
    /// # Errors
    /// - [`Error::Io`] if the kernel object cannot be created (out of descriptors, say);
    /// - [`Error::FdTooLarge`] from `SelectSelector` if its own wake-up
    ///   descriptor is at or above `FD_SETSIZE`.
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use selectloop::{PollSelector, Selector, EVENT_READ};
    ///
    /// let mut sel: PollSelector<TcpListener> = PollSelector::new()?;
    /// sel.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, ())?;
    /// assert_eq!(sel.backend_name(), if cfg!(windows) { "WSAPoll" } else { "poll" });
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        let backend = B::open()?;
        let wake = WakeState::new(backend.notifier());
        Ok(BaseSelector {
            backend: Some(backend),
            slots: Slab::new(),
            fds: FdTable::new(),
            ready: Vec::new(),
            merge: Vec::new(),
            batch: 0,
            wake,
        })
    }

    fn slot_of(&self, fd: Fd) -> Result<usize> {
        if self.backend.is_none() {
            return Err(Error::Closed);
        }
        self.fds.get(fd).ok_or(Error::NotRegistered { fd })
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
        self.register_slot_gen(fileobj, events, data, next_gen())
    }

    /// [`register_slot`](Self::register_slot) with a generation from
    /// [`next_gen`] the caller took beforehand (the event loop hands a
    /// callback its own token before it is registered).
    pub(crate) fn register_slot_gen(
        &mut self,
        fileobj: F,
        events: Interest,
        data: D,
        gen: u64,
    ) -> Result<usize, RegisterError<(F, D)>> {
        let fd = fileobj.fileno();
        let checked = match self.backend.as_mut() {
            None => Err(Error::Closed),
            Some(_) if self.fds.contains(fd) => Err(Error::AlreadyRegistered { fd }),
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
            gen,
            born: self.batch,
            paused: false,
        });
        self.fds.insert(fd, token);
        debug_assert_eq!(self.fds.len(), self.slots.len());
        Ok(token)
    }

    /// Unregisters the registration in `slot`.
    pub(crate) fn unregister_slot(&mut self, slot: usize) -> SelectorKey<F, D> {
        let Slot { key, paused, .. } = self.slots.remove(slot);
        self.fds.remove(key.fd);
        debug_assert_eq!(self.fds.len(), self.slots.len());
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

    /// Waits like [`Selector::select`] and returns the ready `(slot, mask)`
    /// pairs, each slot once, masks within the registered events.
    pub(crate) fn select_slots(&mut self, timeout: Option<Duration>) -> Result<()> {
        let backend = self.backend.as_mut().ok_or(Error::Closed)?;
        self.ready.clear();
        // The deadline is only needed if a wait comes back empty-handed
        // early (a signal, a spent wake): not read from the clock before.
        let mut deadline: Option<Option<Instant>> = None;
        let mut remaining = timeout;
        loop {
            let started = match (deadline, timeout) {
                (None, Some(t)) if !t.is_zero() => Some(Instant::now()),
                _ => None,
            };
            match backend.wait(remaining, &mut self.ready) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            // A wake ends this wait even if it also had events; it must not
            // linger and cut the next, unrelated wait short.
            let woken = self.wake.take_pending();
            if !self.ready.is_empty() || woken {
                break;
            }
            let Some(t) = timeout else {
                continue; // no limit: wait on
            };
            let deadline = *deadline.get_or_insert_with(|| started.and_then(|s| s.checked_add(t)));
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    remaining = Some(deadline - now);
                }
                // A zero timeout is spent; one too large for `Instant`: wait on.
                None if t.is_zero() => break,
                None => {}
            }
        }
        self.batch += 1;
        if B::REPORTS_ONCE {
            debug_assert!(self.ready.iter().all(|&(token, raw)| self
                .slots
                .get(token)
                .is_some_and(|s| raw.intersection(s.key.events).is_some())));
            return Ok(());
        }
        // `merge[slot]` is 1 + the slot's position in the merged list while
        // this pass runs, 0 otherwise (kept off `Slot`: only merging
        // backends pay for it).
        let mut kept = 0;
        for i in 0..self.ready.len() {
            let (token, raw) = self.ready[i];
            let Some(slot) = self.slots.get(token) else {
                continue;
            };
            let Some(mask) = raw.intersection(slot.key.events) else {
                continue;
            };
            if self.merge.len() <= token {
                self.merge.resize(token + 1, 0);
            }
            match self.merge[token] {
                0 => {
                    self.ready[kept] = (token, mask);
                    kept += 1;
                    self.merge[token] = kept as u32;
                }
                at => {
                    let seen = &mut self.ready[at as usize - 1].1;
                    *seen = *seen | mask;
                }
            }
        }
        self.ready.truncate(kept);
        for &(token, _) in &self.ready {
            self.merge[token] = 0;
        }
        Ok(())
    }

    /// The backend's short name: `"epoll"`, `"kqueue"`, `"IOCP"`, `"poll"`,
    /// `"WSAPoll"`, `"select"`...
    pub fn backend_name(&self) -> &'static str {
        B::NAME
    }

    /// Lets go of everything this selector holds, in a child process made
    /// by `fork(2)` from the process that opened it: closes its kernel
    /// object, its wake-up descriptors and every registered object,
    /// *without* unregistering anything. The selector is then closed, as
    /// after [`close`](Selector::close).
    ///
    /// A forked child has copies of all its parent's descriptors, sharing
    /// their open file descriptions: on Linux the child's epoll descriptor
    /// is the parent's epoll instance, whose interest list
    /// [`close`](Selector::close), [`unregister`](Selector::unregister) or
    /// a plain drop would change (`EPOLL_CTL_DEL`), breaking the parent's
    /// selector. This makes no such call: the registered objects are
    /// dropped (closing the child's copies leaves the parent's
    /// registrations alone, since the parent still holds its own), and the
    /// kernel object is released without touching its registrations
    /// (`EpollBackend` just closes its epoll descriptor and eventfd; for
    /// epoll through `polling`, the child's descriptor is first pointed at
    /// a private placeholder, since the poller's drop deletes its own
    /// descriptors from the set; kqueue and event ports are not inherited
    /// by a child, so there the poller is leaked instead of dropped). Wake
    /// pipes (poll, select) are simply closed.
    ///
    /// [`Waker`]s of this selector still alive in the child keep the
    /// wake-up descriptor open until they are dropped, and a wake through
    /// them reaches the parent's selector (a spurious wake-up there): drop
    /// them too. Called in a process that did not fork, it is a
    /// [`close`](Selector::close) that leaves the kernel to forget the
    /// registrations as the objects close.
    ///
    /// After `fork` in a multi-threaded program the child may only run
    /// async-signal-safe code until it `exec`s, and this frees memory: call
    /// it in children of single-threaded processes (or of processes whose
    /// other threads cannot hold the allocator's lock), as with any Rust
    /// code after `fork`. Unix only.
    ///
    /// # Examples
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// use selectloop::{DefaultSelector, Selector, EVENT_READ};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut sel: DefaultSelector<TcpListener> = DefaultSelector::new()?;
    /// sel.register(listener.try_clone()?, EVENT_READ, ())?;
    /// // SAFETY: fork(2) in a doctest: the child only lets go of the
    /// // selector and leaves with _exit(2).
    /// match unsafe { libc::fork() } {
    ///     0 => {
    ///         sel.close_after_fork(); // the child: no epoll_ctl on the parent's instance
    ///         // SAFETY: _exit(2) ends the child at once.
    ///         unsafe { libc::_exit(0) }
    ///     }
    ///     -1 => return Err(std::io::Error::last_os_error().into()),
    ///     pid => {
    ///         let mut status = 0;
    ///         // SAFETY: waitpid(2) on our child with a valid pointer.
    ///         unsafe { libc::waitpid(pid, &mut status, 0) };
    ///     }
    /// }
    /// // The parent's selector still works: a connection makes the listener ready.
    /// let _client = TcpStream::connect(listener.local_addr()?)?;
    /// assert_eq!(sel.select(Some(Duration::from_secs(10)))?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(unix)]
    pub fn close_after_fork(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.forget_after_fork();
        }
        // The wake state holds the backend's notifier (the poller itself, on
        // the native backend): let go of it as well.
        self.wake = WakeState::inert();
        self.fds.clear();
        self.ready.clear();
        // Dropping the objects closes them; none is deleted from the backend.
        self.slots.clear();
    }
}

/// What only the event loop uses: pausing, slot access, and its walk of the
/// ready list. Unused (hence the allowance) when the crate is built without
/// the event loop.
#[allow(dead_code)]
impl<B: Backend, F: Source, D> BaseSelector<B, F, D> {
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

    /// The key in `slot`.
    pub(crate) fn key(&self, slot: usize) -> Option<&SelectorKey<F, D>> {
        self.slots.get(slot).map(|s| &s.key)
    }

    /// How many keys the last `select_slots` reported.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Entry `i` of the last `select_slots` as `(slot, generation, key,
    /// mask)`, the mask within the key's events as they are now. `None` if
    /// that key has been unregistered since, even if a new key took its
    /// slot (registered after the wait: `born` is this batch); `None` too
    /// if it has been paused since, or modified to drop every ready event.
    #[inline]
    pub(crate) fn ready_entry_mut(
        &mut self,
        i: usize,
    ) -> Option<(usize, u64, &mut SelectorKey<F, D>, Interest)> {
        let (slot, raw) = *self.ready.get(i)?;
        let entry = self.slots.get_mut(slot)?;
        if entry.born == self.batch || entry.paused {
            return None;
        }
        let mask = raw.intersection(entry.key.events)?;
        Some((slot, entry.gen, &mut entry.key, mask))
    }

    /// The key in `slot` if it is still the registration of generation `gen`.
    #[inline]
    pub(crate) fn live_key_mut(&mut self, slot: usize, gen: u64) -> Option<&mut SelectorKey<F, D>> {
        match self.slots.get_mut(slot) {
            Some(s) if s.gen == gen => Some(&mut s.key),
            _ => None,
        }
    }

    /// The key in `slot` if it is still the registration of generation `gen`.
    #[inline]
    pub(crate) fn live_key(&self, slot: usize, gen: u64) -> Option<&SelectorKey<F, D>> {
        match self.slots.get(slot) {
            Some(s) if s.gen == gen => Some(&s.key),
            _ => None,
        }
    }

    /// The slot the next registration will take.
    pub(crate) fn vacant_slot(&self) -> usize {
        self.slots.vacant_key()
    }

    /// How many objects are registered.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
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

    fn select_into(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        self.select_slots(timeout)?;
        let slots = &self.slots;
        events
            .list
            .extend(self.ready.iter().filter_map(|&(slot, raw)| {
                let s = &slots[slot];
                Some(Event::new(
                    s.key.fd,
                    raw.intersection(s.key.events)?,
                    slot,
                    s.gen,
                ))
            }));
        Ok(events.len())
    }

    fn key_for(&self, event: &Event) -> Option<&SelectorKey<F, D>> {
        let (slot, gen) = event.stamp();
        self.live_key(slot, gen)
    }

    fn data_for_mut(&mut self, event: &Event) -> Option<&mut D> {
        let (slot, gen) = event.stamp();
        self.live_key_mut(slot, gen).map(|key| &mut key.data)
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
        Ok(Waker::new(&self.wake))
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::{self, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::BaseSelector;
    use crate::selector::backend::sealed::{Notify, Ops};
    use crate::selector::{Events, PollBackend};
    use crate::{Error, Fd, Interest, Result, Selector, Source, EVENT_READ};

    /// What the scripted backend's next `wait` does.
    #[derive(Debug)]
    enum Step {
        /// Fails with `Interrupted`, as a signal makes a wait do.
        Interrupted,
        /// Returns at once with nothing (a spurious wake-up).
        Nothing,
        /// Reports `(token, readiness)`.
        Ready(usize, Interest),
        /// Reports all of these in one wait (a token may repeat, as kqueue's do).
        Batch(Vec<(usize, Interest)>),
        /// Fails with another error.
        Fail,
    }

    /// A backend that plays a script (then sleeps out each timeout) and
    /// records the timeouts it was given: the wait loop that `select` and
    /// `select_into` share, without a kernel or a signal.
    #[derive(Debug, Default)]
    struct Scripted {
        steps: VecDeque<Step>,
        waits: Vec<Option<Duration>>,
    }

    struct Silent;

    impl Notify for Silent {
        fn notify(&self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Ops for Scripted {
        const NAME: &'static str = "scripted";

        fn open() -> Result<Self> {
            Ok(Scripted::default())
        }

        fn notifier(&self) -> Arc<dyn Notify> {
            Arc::new(Silent)
        }

        unsafe fn add<S: Source + ?Sized>(
            &mut self,
            _: &S,
            _: Fd,
            _: usize,
            _: Interest,
        ) -> io::Result<()> {
            Ok(())
        }

        fn modify<S: Source + ?Sized>(
            &mut self,
            _: &S,
            _: Fd,
            _: usize,
            _: Interest,
        ) -> io::Result<()> {
            Ok(())
        }

        fn delete<S: Source + ?Sized>(&mut self, _: &S, _: Fd, _: usize) -> io::Result<()> {
            Ok(())
        }

        fn wait(
            &mut self,
            timeout: Option<Duration>,
            ready: &mut Vec<(usize, Interest)>,
        ) -> io::Result<()> {
            self.waits.push(timeout);
            match self.steps.pop_front() {
                Some(Step::Interrupted) => Err(io::ErrorKind::Interrupted.into()),
                Some(Step::Nothing) => Ok(()),
                Some(Step::Ready(token, readiness)) => {
                    ready.push((token, readiness));
                    Ok(())
                }
                Some(Step::Batch(batch)) => {
                    ready.extend(batch);
                    Ok(())
                }
                Some(Step::Fail) => Err(io::Error::new(io::ErrorKind::InvalidData, "scripted")),
                None => {
                    std::thread::sleep(timeout.expect("scripted tests pass a timeout"));
                    Ok(())
                }
            }
        }
    }

    type ScriptedSelector<'a> = BaseSelector<Scripted, &'a TcpListener, ()>;

    /// A way to select, as "how many keys are ready".
    type Call = fn(&mut ScriptedSelector<'_>, Option<Duration>) -> Result<usize>;

    /// The two ways to select.
    fn both_calls() -> [(&'static str, Call); 2] {
        [
            ("select", |s, t| s.select(t).map(|ready| ready.len())),
            ("select_into", |s, t| s.select_into(&mut Events::new(), t)),
        ]
    }

    /// A backend that reports a key more than once per wait (kqueue: one
    /// event per filter) gets it merged: each key once, in the order of its
    /// first report, with the union of its events within its interest; and
    /// the merge leaves nothing behind for the next wait.
    #[test]
    fn a_merging_backend_reports_each_key_once_with_the_union_of_its_events() {
        use crate::EVENT_WRITE;
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sel: ScriptedSelector<'_> = BaseSelector::new().unwrap();
        sel.register(&a, EVENT_READ | EVENT_WRITE, ()).unwrap(); // slot 0
        sel.register(&b, EVENT_READ, ()).unwrap(); // slot 1
        let both = EVENT_READ | EVENT_WRITE;
        sel.backend.as_mut().unwrap().steps = vec![
            Step::Batch(vec![
                (0, EVENT_READ),
                (1, both),
                (0, EVENT_WRITE),
                (1, EVENT_READ),
            ]),
            Step::Batch(vec![(1, EVENT_WRITE), (0, EVENT_WRITE), (1, EVENT_READ)]),
        ]
        .into();
        let (fa, fb) = (a.fileno(), b.fileno());
        let mut select = || -> Vec<(Fd, Interest)> {
            let ready = sel.select(Some(Duration::from_secs(5))).unwrap();
            ready.map(|(key, mask)| (key.fd, mask)).collect()
        };
        assert_eq!(select(), [(fa, both), (fb, EVENT_READ)]);
        // b's EVENT_WRITE is outside its interest (dropped, so a comes first),
        // and a's merge position from the last wait is gone.
        assert_eq!(select(), [(fa, EVENT_WRITE), (fb, EVENT_READ)]);
    }

    fn scripted<'a>(listener: &'a TcpListener, steps: Vec<Step>) -> ScriptedSelector<'a> {
        let mut sel: ScriptedSelector<'a> = BaseSelector::new().unwrap();
        sel.register(listener, EVENT_READ, ()).unwrap();
        sel.backend.as_mut().unwrap().steps = steps.into();
        sel
    }

    fn waits(sel: &ScriptedSelector<'_>) -> Vec<Option<Duration>> {
        sel.backend.as_ref().unwrap().waits.clone()
    }

    /// PEP 475: interrupted and spurious wake-ups are waited out with what is
    /// left of the timeout, never returned early with nothing.
    #[test]
    fn interrupted_waits_are_retried_with_what_is_left_of_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let timeout = Duration::from_millis(200);
        for (name, call) in both_calls() {
            let steps = vec![Step::Interrupted, Step::Nothing, Step::Interrupted];
            let mut sel = scripted(&listener, steps);
            let t = Instant::now();
            assert_eq!(call(&mut sel, Some(timeout)).unwrap(), 0, "{name}");
            assert!(t.elapsed() >= timeout, "{name}: {:?}", t.elapsed());
            let waits = waits(&sel);
            assert_eq!(waits.len(), 4, "{name}: {waits:?}");
            assert_eq!(waits[0], Some(timeout), "{name}");
            assert!(
                waits.windows(2).all(|w| w[1] <= w[0]),
                "{name}: the timeout left must shrink: {waits:?}"
            );
        }
    }

    #[test]
    fn an_interrupted_wait_then_events() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        for (name, call) in both_calls() {
            let steps = vec![Step::Interrupted, Step::Ready(0, Interest::BOTH)];
            let mut sel = scripted(&listener, steps);
            // Masked to the registered events, reported once.
            assert_eq!(
                call(&mut sel, Some(Duration::from_secs(30))).unwrap(),
                1,
                "{name}"
            );
            assert_eq!(waits(&sel).len(), 2, "{name}");
        }
        let steps = vec![Step::Interrupted, Step::Ready(0, Interest::BOTH)];
        let mut sel = scripted(&listener, steps);
        let mut events = Events::new();
        sel.select_into(&mut events, None).unwrap();
        let event = events.iter().next().unwrap();
        assert_eq!((event.fd(), event.mask()), (listener.fileno(), EVENT_READ));
    }

    #[test]
    fn other_errors_end_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        for (name, call) in both_calls() {
            let mut sel = scripted(&listener, vec![Step::Interrupted, Step::Fail]);
            match call(&mut sel, None) {
                Err(Error::Io(e)) => assert_eq!(e.to_string(), "scripted", "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // And the caller's list is left empty.
        let mut sel = scripted(&listener, vec![Step::Fail]);
        let mut events = Events::new();
        let mut full = scripted(&listener, vec![Step::Ready(0, EVENT_READ)]);
        full.select_into(&mut events, None).unwrap();
        assert_eq!(events.len(), 1);
        assert!(sel.select_into(&mut events, None).is_err());
        assert!(events.is_empty());
    }

    /// A pending wake ends the wait with nothing, at once, and only once.
    #[test]
    fn a_wake_ends_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        for (name, call) in both_calls() {
            let mut sel = scripted(&listener, vec![Step::Nothing]);
            sel.waker().unwrap().wake().unwrap();
            let t = Instant::now();
            assert_eq!(
                call(&mut sel, Some(Duration::from_secs(30))).unwrap(),
                0,
                "{name}"
            );
            assert!(t.elapsed() < Duration::from_secs(5), "{name}");
            // Spent: the next wait runs to its timeout.
            let t = Instant::now();
            let timeout = Duration::from_millis(50);
            assert_eq!(call(&mut sel, Some(timeout)).unwrap(), 0, "{name}");
            assert!(t.elapsed() >= timeout, "{name}");
        }
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (client, listener.accept().unwrap().0)
    }

    /// The same object registered again takes the same slot and the same
    /// descriptor, and still the old event names nothing.
    #[test]
    fn a_reused_slot_and_descriptor_do_not_revive_an_event() {
        let (mut client, server) = pair();
        let fd = server.fileno();
        let mut sel: BaseSelector<PollBackend, TcpStream, u8> = BaseSelector::new().unwrap();
        let slot = sel.register_slot(server, EVENT_READ, 1).ok().unwrap();
        client.write_all(b"x").unwrap();
        let mut events = Events::new();
        sel.select_into(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        let event = events.iter().next().unwrap();
        assert_eq!(event.stamp().0, slot);
        assert_eq!(sel.key_for(&event).map(|k| k.data), Some(1));

        let server = sel.unregister(fd).unwrap().fileobj;
        assert_eq!(sel.vacant_slot(), slot);
        assert_eq!(sel.register_slot(server, EVENT_READ, 2).ok(), Some(slot));
        assert_eq!(sel.get_key(fd).unwrap().data, 2);
        assert!(sel.key_for(&event).is_none());
        assert!(sel.data_for_mut(&event).is_none());
        // The event loop's view of the old batch agrees.
        assert!(sel.ready_entry_mut(0).is_none());
    }

    /// Two selectors hand out the same slots; their events stay apart.
    #[test]
    fn an_event_of_another_selector_names_nothing() {
        let (mut client, server) = pair();
        let (_client2, server2) = pair();
        let mut a: BaseSelector<PollBackend, TcpStream, ()> = BaseSelector::new().unwrap();
        let mut b: BaseSelector<PollBackend, TcpStream, ()> = BaseSelector::new().unwrap();
        assert_eq!(a.register_slot(server, EVENT_READ, ()).ok(), Some(0));
        assert_eq!(b.register_slot(server2, EVENT_READ, ()).ok(), Some(0));
        client.write_all(b"x").unwrap();
        let mut events = Events::new();
        a.select_into(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        let event = events.iter().next().unwrap();
        assert!(a.key_for(&event).is_some());
        assert!(b.key_for(&event).is_none());
    }

    /// A closed selector knows no event.
    #[test]
    fn close_forgets_every_event() {
        let (mut client, server) = pair();
        let mut sel: BaseSelector<PollBackend, TcpStream, ()> = BaseSelector::new().unwrap();
        sel.register(server, EVENT_READ, ()).unwrap();
        client.write_all(b"x").unwrap();
        let mut events = Events::new();
        sel.select_into(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        let event = events.iter().next().unwrap();
        sel.close().unwrap();
        assert!(sel.key_for(&event).is_none());
        assert!(sel.select_into(&mut events, Some(Duration::ZERO)).is_err());
        assert!(events.is_empty());
    }
}

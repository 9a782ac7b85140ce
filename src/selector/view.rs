//! What a selector shows of itself: [`Ready`] (the keys of the last `select`,
//! borrowed), [`Events`] and [`Event`] (the same, copied into a list the
//! caller owns), and [`SelectorMap`] (every registration, by descriptor).

use std::fmt;
use std::iter::Copied;
use std::slice;

use slab::Slab;

use super::base::Slot;
use super::fd_table::FdTable;
use crate::{Fd, Interest, SelectorKey};

/// The keys ready after a [`Selector::select`](super::Selector::select), each
/// with its ready events.
///
/// An iterator of `(&SelectorKey, Interest)`; `.collect::<Vec<_>>()` gives
/// Python's list. It borrows the selector; to register or unregister while
/// walking the ready keys, use [`Selector::select_into`](super::Selector::select_into).
pub struct Ready<'a, F, D> {
    pub(super) slots: &'a Slab<Slot<F, D>>,
    pub(super) iter: slice::Iter<'a, (usize, Interest)>,
}

impl<'a, F, D> Iterator for Ready<'a, F, D> {
    type Item = (&'a SelectorKey<F, D>, Interest);

    fn next(&mut self) -> Option<Self::Item> {
        let &(token, raw) = self.iter.next()?;
        let key = &self.slots[token].key;
        // Raw readiness from a backend that reports each key once (see
        // `base.rs`); the backend contract makes the intersection non-empty.
        let mask = raw.intersection(key.events).unwrap_or(raw);
        Some((key, mask))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<F, D> ExactSizeIterator for Ready<'_, F, D> {}

impl<F, D> fmt::Debug for Ready<'_, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter.clone().map(|&(t, m)| {
                let key = &self.slots[t].key;
                (key.fd, m.intersection(key.events).unwrap_or(m))
            }))
            .finish()
    }
}

/// One ready registration, copied out of a selector by
/// [`Selector::select_into`](super::Selector::select_into): its descriptor,
/// its ready events, and a stamp naming the registration it was reported
/// for.
///
/// An `Event` borrows nothing, so the selector is free while events are
/// walked. [`Selector::key_for`](super::Selector::key_for) turns it back
/// into the key, or into `None` if that registration is gone, even when a
/// new registration has taken the same descriptor number since: a stale
/// event never reaches a new registration.
///
/// # Examples
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use selectloop::{DefaultSelector, Events, Selector, Source, EVENT_READ};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let fd = listener.fileno();
/// let mut sel: DefaultSelector<TcpListener, &str> = DefaultSelector::new()?;
/// sel.register(listener, EVENT_READ, "accept")?;
///
/// let mut events = Events::new();
/// sel.select_into(&mut events, Some(Duration::from_secs(5)))?;
/// let event = events.iter().next().unwrap();
/// assert_eq!((event.fd(), event.mask()), (fd, EVENT_READ));
/// assert_eq!(sel.key_for(&event).map(|key| key.data), Some("accept"));
///
/// // Unregistered and registered again: a new registration, same descriptor.
/// let listener = sel.unregister(fd)?.fileobj;
/// sel.register(listener, EVENT_READ, "again")?;
/// assert!(sel.key_for(&event).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    fd: Fd,
    mask: Interest,
    /// The registration's slot in the selector, and its generation there.
    slot: usize,
    gen: u64,
}

impl Event {
    pub(super) fn new(fd: Fd, mask: Interest, slot: usize, gen: u64) -> Event {
        Event {
            fd,
            mask,
            slot,
            gen,
        }
    }

    /// The registration's slot and generation.
    pub(super) fn stamp(&self) -> (usize, u64) {
        (self.slot, self.gen)
    }

    /// The descriptor of the registered object, as it was when reported.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The ready events, within the events the object was registered for
    /// when reported (Python's `mask`).
    ///
    /// If the registration was [`modify`](super::Selector::modify)'d since,
    /// intersect with its key's `events`: a key now registered only for
    /// `EVENT_WRITE` may still come with a `mask` of `EVENT_READ` from
    /// before (as in Python).
    pub fn mask(&self) -> Interest {
        self.mask
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("fd", &self.fd)
            .field("mask", &self.mask)
            .finish()
    }
}

/// A reusable list of [`Event`]s, filled by
/// [`Selector::select_into`](super::Selector::select_into) (mio's and
/// `polling`'s `Events`).
///
/// Each `select_into` clears the list and fills it again; its memory is
/// kept, so a loop that reuses one `Events` allocates only while the number
/// of ready keys grows past what it has seen.
///
/// # Examples
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use selectloop::{DefaultSelector, Events, Selector, EVENT_READ};
///
/// let mut sel: DefaultSelector<TcpListener> = DefaultSelector::new()?;
/// sel.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, ())?;
/// let mut events = Events::with_capacity(64);
/// assert_eq!(sel.select_into(&mut events, Some(Duration::ZERO))?, 0);
/// assert!(events.is_empty());
/// assert!(events.capacity() >= 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Events {
    pub(super) list: Vec<Event>,
}

impl Events {
    /// An empty list; it grows on first use.
    pub fn new() -> Events {
        Events::default()
    }

    /// An empty list with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity),
        }
    }

    /// How many events the last `select_into` reported.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True if the last `select_into` reported nothing (a timeout or a wake).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many events the list holds without allocating.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// Empties the list, keeping its memory.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// The events, in the order the selector reported them.
    pub fn iter(&self) -> Copied<slice::Iter<'_, Event>> {
        self.list.iter().copied()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = Event;
    type IntoIter = Copied<slice::Iter<'a, Event>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

/// A read-only view of a selector's registrations, keyed by descriptor
/// (Python's `get_map()` mapping).
pub struct SelectorMap<'a, F, D> {
    pub(super) slots: &'a Slab<Slot<F, D>>,
    pub(super) fds: &'a FdTable,
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
        self.fds.contains(fd)
    }

    /// The key for `fd`, if registered.
    pub fn get(&self, fd: Fd) -> Option<&'a SelectorKey<F, D>> {
        self.fds.get(fd).map(|slot| &self.slots[slot].key)
    }

    /// Every key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &'a SelectorKey<F, D>> + 'a {
        self.slots.iter().map(|(_, s)| &s.key)
    }

    /// Every registered descriptor, in no particular order.
    pub fn fds(&self) -> impl Iterator<Item = Fd> + 'a {
        // The keys, not the table: O(registered), however large the numbers.
        self.slots.iter().map(|(_, s)| s.key.fd)
    }
}

impl<F, D> fmt::Debug for SelectorMap<'_, F, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.fds()).finish()
    }
}

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
//! # The Python loop: callbacks that register and unregister
//! [`select`](Selector::select) lends out the selector's own ready list, so
//! nothing can be registered while it is walked. Python's callback loop,
//! where the accept callback registers and the read callback unregisters
//! while the ready list is walked, uses [`select_into`](Selector::select_into)
//! instead: it copies the ready list into an [`Events`] the caller owns and
//! reuses, and [`key_for`](Selector::key_for) finds each event's key again,
//! or `None` if an earlier callback of the batch unregistered it (even if a
//! new registration has the same descriptor number by now):
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use selectloop::{DefaultSelector, Events, Fd, Interest, Selector, EVENT_READ};
//!
//! /// What is registered: the listener or a connection (both a `socket` in Python).
//! enum Sock {
//!     Listener(TcpListener),
//!     Conn(TcpStream),
//! }
//! # #[cfg(unix)]
//! # impl std::os::fd::AsFd for Sock {
//! #     fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
//! #         match self { Sock::Listener(s) => s.as_fd(), Sock::Conn(s) => s.as_fd() }
//! #     }
//! # }
//! # #[cfg(windows)]
//! # impl std::os::windows::io::AsSocket for Sock {
//! #     fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
//! #         match self { Sock::Listener(s) => s.as_socket(), Sock::Conn(s) => s.as_socket() }
//! #     }
//! # }
//!
//! // Python's callbacks reach `sel` as a global; here they are handed it.
//! struct Server {
//!     sel: DefaultSelector<Sock, Callback>,
//! }
//! type Callback = fn(&mut Server, Fd, Interest) -> io::Result<()>;
//!
//! fn accept(server: &mut Server, fd: Fd, _mask: Interest) -> io::Result<()> {
//!     let Sock::Listener(listener) = &server.sel.get_key(fd)?.fileobj else { unreachable!() };
//!     let (conn, _addr) = listener.accept()?;
//!     conn.set_nonblocking(true)?;
//!     server.sel.register(Sock::Conn(conn), EVENT_READ, read)?;
//!     Ok(())
//! }
//!
//! fn read(server: &mut Server, fd: Fd, _mask: Interest) -> io::Result<()> {
//!     let Sock::Conn(conn) = &server.sel.get_key(fd)?.fileobj else { unreachable!() };
//!     let mut buf = [0; 1024];
//!     let n = (&*conn).read(&mut buf)?;
//!     if n > 0 {
//!         (&*conn).write_all(&buf[..n])?;
//!     } else {
//!         drop(server.sel.unregister(fd)?); // and close it
//!     }
//!     Ok(())
//! }
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?;
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! let mut server = Server { sel: DefaultSelector::new()? };
//! server.sel.register(Sock::Listener(listener), EVENT_READ, accept)?;
//! client.write_all(b"hello")?;
//!
//! let mut events = Events::new();
//! let mut echoed = [0; 5];
//! client.set_nonblocking(true)?;
//! while client.peek(&mut echoed).map_or(true, |n| n < echoed.len()) {
//!     server.sel.select_into(&mut events, Some(Duration::from_secs(5)))?;
//!     for event in &events {
//!         let Some(key) = server.sel.key_for(&event) else { continue };
//!         let callback = key.data; // Python: callback = key.data
//!         callback(&mut server, event.fd(), event.mask())?;
//!     }
//! }
//! client.read_exact(&mut echoed)?;
//! assert_eq!(&echoed, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Backends
//! Every backend is a [`BaseSelector`] over a different kernel interface,
//! and all pass the same test suite (a port of CPython's `test_selectors`):
//!
//! | type | mechanism | platforms |
//! |---|---|---|
//! | `EpollSelector` (`EpollBackend`) | epoll(7) directly: one system call per wait | Linux, Android |
//! | [`NativeSelector`] (`KqueueSelector`, `IocpSelector`) | the `polling` crate: epoll, kqueue, IOCP, event ports | all |
//! | [`PollSelector`] | poll(2); `WSAPoll` on Windows | all |
//! | `SelectSelector` | select(2); descriptors below `FD_SETSIZE` only | Unix |
//!
//! `EpollSelector` exists on Linux and Android: it drives epoll itself
//! (one `epoll_wait` per wait, `epoll_pwait2` for sub-millisecond
//! timeouts; the waker is an eventfd in the same set, read only when it
//! fired), where `polling`'s epoll poller makes five system calls per wait.
//! [`NativeSelector`] remains there too, as `"epoll (polling)"`.
//! `KqueueSelector` exists on macOS, iOS, tvOS, watchOS, visionOS, FreeBSD,
//! NetBSD, OpenBSD and DragonFly, and `IocpSelector` on Windows: each is
//! [`NativeSelector`] under the name of its mechanism. `PollingSelector`, the
//! name of [`NativeSelector`] in 0.1, remains as a deprecated alias.
//!
//! [`DefaultSelector`](crate::DefaultSelector) is `EpollSelector` on Linux and Android, kqueue on macOS, iOS
//! and the BSDs, and **`WSAPoll` on Windows**. On Windows this follows the
//! project's choice of a plain readiness API whose behaviour matches Python's
//! `selectors.DefaultSelector` (which is `SelectSelector` there) without its
//! 512-socket `select()` limit; pick `IocpSelector` ([`NativeSelector`]) for
//! IOCP, which scales better with many idle sockets but costs a
//! wait-completion round trip per readiness change.
//!
//! # Inside
//! One concept per file: [`Selector`] (the API) is here; [`BaseSelector`]
//! (slots, the ready list, generations) in `base.rs`; the contract a backend
//! meets in `backend.rs`; [`Waker`] in `waker.rs`; [`Ready`], [`Events`],
//! [`Event`] and [`SelectorMap`] in `view.rs`; the descriptor-indexed table
//! `get_key` uses in `fd_table.rs`; and one file per backend (`native.rs`,
//! `poll.rs`, `select.rs`, and `epoll.rs` on Linux/Android).

use std::time::Duration;

use crate::{Fd, Interest, RegisterError, Result, SelectorKey, Source};

mod any_source;
mod backend;
mod base;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
mod fd_table;
mod native;
mod poll;
#[cfg(unix)]
mod select;
mod view;
mod waker;

pub use self::any_source::AnySource;
pub use self::backend::Backend;
#[cfg(feature = "event-loop")]
pub(crate) use self::base::next_gen;
pub use self::base::BaseSelector;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use self::epoll::EpollBackend;
pub use self::native::NativeBackend;
pub use self::poll::PollBackend;
#[cfg(unix)]
pub use self::select::SelectBackend;
pub use self::view::{Event, Events, Ready, SelectorMap};
#[cfg(all(unix, feature = "event-loop"))]
pub(crate) use self::waker::WakeState;
pub use self::waker::Waker;

pub use self::platform::*;

/// A selector on the `polling` crate in level-triggered mode: epoll on
/// Linux/Android, kqueue on macOS/iOS/BSD, IOCP on Windows, event ports
/// (re-armed after each event, as level mode is missing there) on illumos.
///
/// Also known by its mechanism's name: `KqueueSelector`, `IocpSelector`.
/// On Linux and Android, `EpollSelector` is [`EpollBackend`]'s selector
/// instead, which drives epoll directly (one system call per wait where
/// `polling` makes five); this one names itself `"epoll (polling)"` there.
pub type NativeSelector<F = AnySource, D = ()> = BaseSelector<NativeBackend, F, D>;

/// The name of [`NativeSelector`] in 0.1.
#[deprecated(since = "0.2.0", note = "renamed to NativeSelector")]
pub type PollingSelector<F = AnySource, D = ()> = NativeSelector<F, D>;

/// The name of [`NativeBackend`] in 0.1.
#[deprecated(since = "0.2.0", note = "renamed to NativeBackend")]
pub type PollingBackend = NativeBackend;

/// A selector on poll(2) (Unix) or `WSAPoll` (Windows). Each `select` passes
/// the whole set to the kernel: O(registered), no descriptor limit.
pub type PollSelector<F = AnySource, D = ()> = BaseSelector<PollBackend, F, D>;

/// A selector on select(2). Each `select` passes the whole set to the kernel,
/// and descriptors at or above `FD_SETSIZE` (1024 on Linux) are refused at
/// registration with [`Error::FdTooLarge`](crate::Error::FdTooLarge).
///
/// Unlike Python's `SelectSelector`, it keeps the mapping every backend has:
/// a hang-up is writable, although select(2) has no hang-up bit (Linux puts
/// it in the read set only). A write-interested registration that select(2)
/// finds readable but not writable is asked once more, with a zero-timeout
/// poll(2) on just those descriptors; [`SelectBackend`] tells how.
#[cfg(unix)]
pub type SelectSelector<F = AnySource, D = ()> = BaseSelector<SelectBackend, F, D>;

/// The selector named after this platform's mechanism ([`NativeSelector`]
/// under another name, except on Linux/Android where `EpollSelector` is
/// [`EpollBackend`]'s), and the name [`NativeBackend`] reports. The one
/// place that lists which platform has which; `lib.rs` re-exports it whole.
pub(crate) mod platform {
    #[allow(unused_imports)] // not every platform has an alias
    use super::{AnySource, BaseSelector, NativeSelector};

    cfg_if::cfg_if! {
        if #[cfg(any(target_os = "linux", target_os = "android"))] {
            /// epoll(7), driven directly ([`EpollBackend`](super::EpollBackend)):
            /// one system call per wait. The default on Linux and Android.
            pub type EpollSelector<F = AnySource, D = ()> = BaseSelector<super::EpollBackend, F, D>;
            /// [`NativeSelector`] is epoll through the `polling` crate here;
            /// the name tells it from [`EpollSelector`].
            pub(crate) const NATIVE_NAME: &str = "epoll (polling)";
        } else if #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "tvos",
            target_os = "watchos",
            target_os = "visionos",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        ))] {
            /// kqueue(2), through the `polling` crate: [`NativeSelector`] on macOS, iOS, tvOS,
            /// watchOS, visionOS and the BSDs.
            pub type KqueueSelector<F = AnySource, D = ()> = NativeSelector<F, D>;
            pub(crate) const NATIVE_NAME: &str = "kqueue";
        } else if #[cfg(windows)] {
            /// I/O completion ports, through the `polling` crate: [`NativeSelector`] on Windows.
            pub type IocpSelector<F = AnySource, D = ()> = NativeSelector<F, D>;
            pub(crate) const NATIVE_NAME: &str = "IOCP";
        } else if #[cfg(any(target_os = "illumos", target_os = "solaris"))] {
            pub(crate) const NATIVE_NAME: &str = "event ports";
        } else {
            pub(crate) const NATIVE_NAME: &str = "poll (polling)";
        }
    }
}

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
    /// it). On error nothing is registered and `fileobj` comes back, open
    /// and unharmed, in the [`RegisterError`]
    /// ([`into_inner`](RegisterError::into_inner)); `?` turns that into an
    /// [`Error`](crate::Error), an `io::Error` or an `anyhow::Error`.
    ///
    /// # Errors
    /// The [`RegisterError`]'s [`error()`](RegisterError::error) is:
    /// - [`Error::AlreadyRegistered`](crate::Error::AlreadyRegistered) if its
    ///   descriptor is registered already;
    /// - [`Error::FdTooLarge`](crate::Error::FdTooLarge) if the backend cannot
    ///   watch that descriptor number (`SelectSelector`: `FD_SETSIZE` and up);
    /// - [`Error::Io`](crate::Error::Io) if the kernel refuses (epoll refuses
    ///   regular files, for one);
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use selectloop::{DefaultSelector, Error, Selector, EVENT_READ};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut sel: DefaultSelector<&TcpListener> = DefaultSelector::new()?;
    /// sel.register(&listener, EVENT_READ, ())?;
    /// let err = sel.register(&listener, EVENT_READ, ()).unwrap_err();
    /// assert!(matches!(err.error(), Error::AlreadyRegistered { .. }));
    /// let handed_back: &TcpListener = err.into_inner();
    /// assert!(handed_back.local_addr().is_ok());
    /// # Ok::<(), Error>(())
    /// ```
    #[allow(clippy::type_complexity)] // spelled out, so the docs show what comes back
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
    /// - [`Error::NotRegistered`](crate::Error::NotRegistered) if `fd` is not registered;
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use selectloop::{DefaultSelector, Error, Selector, Source, EVENT_READ};
    ///
    /// let mut sel: DefaultSelector<TcpListener> = DefaultSelector::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let fd = listener.fileno();
    /// sel.register(listener, EVENT_READ, ())?;
    /// let listener: TcpListener = sel.unregister(fd)?.fileobj;
    /// assert!(matches!(sel.unregister(fd), Err(Error::NotRegistered { .. })));
    /// # drop(listener);
    /// # Ok::<(), Error>(())
    /// ```
    fn unregister(&mut self, fd: Fd) -> Result<SelectorKey<Self::FileObj, Self::Data>>;

    /// Changes the events and data of the registration for `fd`. Only a change of
    /// `events` reaches the kernel.
    ///
    /// # Errors
    /// - [`Error::NotRegistered`](crate::Error::NotRegistered) if `fd` is not registered;
    /// - [`Error::Io`](crate::Error::Io) if the kernel refuses; the registration is then unchanged;
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{DefaultSelector, Selector, Source, EVENT_READ, EVENT_WRITE};
    ///
    /// let mut sel: DefaultSelector<UdpSocket, &str> = DefaultSelector::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let fd = socket.fileno();
    /// sel.register(socket, EVENT_READ, "read")?;
    /// let key = sel.modify(fd, EVENT_WRITE, "write")?;
    /// assert_eq!((key.events, key.data), (EVENT_WRITE, "write"));
    /// # Ok::<(), selectloop::Error>(())
    /// ```
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
    /// The result borrows the selector; to register or unregister while
    /// walking it, use [`select_into`](Selector::select_into).
    ///
    /// # Errors
    /// - [`Error::Io`](crate::Error::Io) if the kernel wait fails;
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use selectloop::{DefaultSelector, Selector, EVENT_WRITE};
    ///
    /// let mut sel: DefaultSelector<UdpSocket> = DefaultSelector::new()?;
    /// sel.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_WRITE, ())?;
    /// for (key, mask) in sel.select(Some(Duration::from_secs(5)))? {
    ///     assert_eq!((key.events, mask), (EVENT_WRITE, EVENT_WRITE));
    /// }
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn select(&mut self, timeout: Option<Duration>)
        -> Result<Ready<'_, Self::FileObj, Self::Data>>;

    /// Waits like [`select`](Selector::select), then fills `events` (cleared
    /// first) with one [`Event`] per ready key and returns how many.
    ///
    /// `events` is the caller's, so the selector is free while it is walked:
    /// callbacks may register, modify and unregister. Look each event's key
    /// up with [`key_for`](Selector::key_for), which skips registrations
    /// unregistered meanwhile. Reusing one [`Events`] keeps its memory: in
    /// a steady state this allocates nothing.
    ///
    /// # Errors
    /// - [`Error::Io`](crate::Error::Io) if the kernel wait fails;
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// `events` is empty after an error.
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use selectloop::{DefaultSelector, Events, Selector, EVENT_WRITE};
    ///
    /// let mut sel: DefaultSelector<UdpSocket, u32> = DefaultSelector::new()?;
    /// sel.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_WRITE, 0)?;
    /// let mut events = Events::new();
    /// for _ in 0..3 {
    ///     sel.select_into(&mut events, Some(Duration::from_secs(5)))?;
    ///     for event in &events {
    ///         *sel.data_for_mut(&event).unwrap() += 1;
    ///         // The selector is not borrowed: unregister and register at will.
    ///         let key = sel.unregister(event.fd())?;
    ///         sel.register(key.fileobj, EVENT_WRITE, key.data)?;
    ///     }
    /// }
    /// assert_eq!(sel.get_map()?.iter().next().unwrap().data, 3);
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn select_into(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize>;

    /// The key `event` was reported for, or `None` if that registration has
    /// been unregistered since (or the selector closed), even if a new
    /// registration has the same descriptor number now: a stale event never
    /// reaches a new registration.
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use selectloop::{DefaultSelector, Events, Selector, EVENT_WRITE};
    ///
    /// let mut sel: DefaultSelector<UdpSocket, &str> = DefaultSelector::new()?;
    /// sel.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_WRITE, "first")?;
    /// let mut events = Events::new();
    /// sel.select_into(&mut events, Some(Duration::from_secs(5)))?;
    /// let event = events.iter().next().unwrap();
    /// assert_eq!(sel.key_for(&event).unwrap().data, "first");
    /// sel.unregister(event.fd())?;
    /// assert!(sel.key_for(&event).is_none());
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn key_for(&self, event: &Event) -> Option<&SelectorKey<Self::FileObj, Self::Data>>;

    /// The data of the registration `event` was reported for, mutably;
    /// `None` as for [`key_for`](Selector::key_for).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use selectloop::{DefaultSelector, Events, Selector, EVENT_WRITE};
    ///
    /// let mut sel: DefaultSelector<UdpSocket, Vec<u8>> = DefaultSelector::new()?;
    /// sel.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_WRITE, Vec::new())?;
    /// let mut events = Events::new();
    /// sel.select_into(&mut events, Some(Duration::from_secs(5)))?;
    /// for event in &events {
    ///     sel.data_for_mut(&event).unwrap().push(1);
    /// }
    /// assert_eq!(sel.get_map()?.iter().next().unwrap().data, [1]);
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn data_for_mut(&mut self, event: &Event) -> Option<&mut Self::Data>;

    /// The key registered for `fd`.
    ///
    /// # Errors
    /// - [`Error::NotRegistered`](crate::Error::NotRegistered) if `fd` is not registered;
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{DefaultSelector, Selector, Source, EVENT_READ};
    ///
    /// let mut sel: DefaultSelector<UdpSocket, &str> = DefaultSelector::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let fd = socket.fileno();
    /// sel.register(socket, EVENT_READ, "data")?;
    /// assert_eq!(sel.get_key(fd)?.data, "data");
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn get_key(&self, fd: Fd) -> Result<&SelectorKey<Self::FileObj, Self::Data>>;

    /// The data of the registration for `fd`, mutably: per-connection state
    /// kept in `data` can change without a [`modify`](Selector::modify)
    /// (Python gets this from mutable data objects).
    ///
    /// # Errors
    /// - [`Error::NotRegistered`](crate::Error::NotRegistered) if `fd` is not registered;
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
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
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close)
    ///   (Python returns `None`).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{DefaultSelector, Selector, Source, EVENT_READ};
    ///
    /// let mut sel: DefaultSelector<UdpSocket> = DefaultSelector::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let fd = socket.fileno();
    /// sel.register(socket, EVENT_READ, ())?;
    /// let map = sel.get_map()?;
    /// assert!(map.contains(fd));
    /// assert_eq!(map.fds().collect::<Vec<_>>(), [fd]);
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    fn get_map(&self) -> Result<SelectorMap<'_, Self::FileObj, Self::Data>>;

    /// Unregisters everything, drops the registered objects and releases the
    /// kernel object. Calling it again does nothing; every other call then
    /// fails with [`Error::Closed`](crate::Error::Closed). Dropping a selector closes it.
    ///
    /// # Errors
    /// - [`Error::Io`](crate::Error::Io) is reserved for backends whose release can fail; none of
    ///   today's can.
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{DefaultSelector, Error, Selector, EVENT_READ};
    ///
    /// let mut sel: DefaultSelector<UdpSocket> = DefaultSelector::new()?;
    /// sel.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, ())?;
    /// sel.close()?;
    /// sel.close()?; // again: nothing
    /// assert!(matches!(sel.get_map(), Err(Error::Closed)));
    /// # Ok::<(), Error>(())
    /// ```
    fn close(&mut self) -> Result<()>;

    /// A handle that interrupts a blocked [`select`](Selector::select) from
    /// any thread.
    ///
    /// # Errors
    /// - [`Error::Closed`](crate::Error::Closed) after [`close`](Selector::close).
    ///
    /// # Examples
    /// ```
    /// use selectloop::{DefaultSelector, Selector};
    ///
    /// let mut sel: DefaultSelector = DefaultSelector::new()?;
    /// sel.waker()?.wake()?;
    /// assert_eq!(sel.select(None)?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn waker(&self) -> Result<Waker>;
}

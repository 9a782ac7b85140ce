//! Python's `selectors` module, the Rust way, and a callback event loop on top.
//!
//! Register file objects with an event mask ([`EVENT_READ`], [`EVENT_WRITE`])
//! and some data, call [`Selector::select`], and act on each ready
//! `(key, mask)`: level-triggered, like Python. The selector owns what you
//! register, so no `unsafe` is ever needed and no descriptor can be closed
//! while registered. Here `data` is the callback, as in Python's docs:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use selectloop::{DefaultSelector, Interest, Selector, EVENT_READ};
//!
//! type Callback = fn(&TcpStream, Interest) -> std::io::Result<()>;
//! fn echo(conn: &TcpStream, _mask: Interest) -> std::io::Result<()> {
//!     let mut buf = [0; 1024];
//!     let n = (&*conn).read(&mut buf)?;
//!     (&*conn).write_all(&buf[..n])
//! }
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! let (conn, _) = listener.accept()?;
//!
//! let mut sel: DefaultSelector<TcpStream, Callback> = DefaultSelector::new()?;
//! sel.register(conn, EVENT_READ, echo)?;
//! client.write_all(b"hello")?;
//! for (key, mask) in sel.select(Some(Duration::from_secs(5)))? {
//!     (key.data)(&key.fileobj, mask)?; // Python: key.data(key.fileobj, mask)
//! }
//! let mut echoed = [0; 5];
//! client.read_exact(&mut echoed)?;
//! assert_eq!(&echoed, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See [`selector`] for the backends and the choice behind [`DefaultSelector`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_op_in_unsafe_fn
)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

mod error;
#[cfg(feature = "event-loop")]
#[cfg_attr(docsrs, doc(cfg(feature = "event-loop")))]
pub mod event_loop;
mod interest;
mod key;
#[cfg(feature = "net")]
#[cfg_attr(docsrs, doc(cfg(feature = "net")))]
pub mod net;
pub mod selector;
mod sys;

/// Crate-private functions the fuzz targets in `fuzz/` call; only with
/// `--cfg fuzzing` (set by cargo-fuzz), never part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    /// `sys::timeout_ms`: a poll(2) / WSAPoll timeout in milliseconds.
    pub fn timeout_ms(timeout: Option<std::time::Duration>) -> i32 {
        crate::sys::timeout_ms(timeout)
    }
}

pub use crate::error::{Error, RegisterError, Result};
#[cfg(feature = "signals")]
pub use crate::event_loop::Signal;
#[allow(deprecated)]
#[cfg(feature = "event-loop")]
pub use crate::event_loop::TimerHandle;
#[cfg(feature = "event-loop")]
pub use crate::event_loop::{
    CallHandle, CallbackError, EventLoop, IoEvent, LoopGroup, LoopHandle, LoopStats, Token,
};
pub use crate::interest::{Interest, EVENT_READ, EVENT_WRITE};
pub use crate::key::SelectorKey;
#[allow(deprecated)] // the 0.1 name, kept for migration
pub use crate::selector::PollingSelector;
#[cfg(unix)]
pub use crate::selector::SelectSelector;
// EpollSelector, KqueueSelector or IocpSelector: the platform list is in `selector`.
pub use crate::selector::platform::*;
pub use crate::selector::{
    AnySource, Backend, BaseSelector, Event, Events, NativeSelector, PollSelector, Ready, Selector,
    SelectorMap, Waker,
};
pub use crate::sys::{Fd, Source};

cfg_if::cfg_if! {
    if #[cfg(any(windows, selectloop_force_poll))] {
        /// The platform's best selector: epoll on Linux/Android, kqueue on
        /// macOS/iOS/BSD, `WSAPoll` ([`PollSelector`]) on Windows.
        ///
        /// This build uses [`PollSelector`] (Windows, or the test-only
        /// `--cfg selectloop_force_poll`).
        pub type DefaultSelector<F = AnySource, D = ()> = PollSelector<F, D>;
        /// The backend of [`DefaultSelector`], and of `EventLoop` by default.
        pub type DefaultBackend = selector::PollBackend;
    } else {
        /// The platform's best selector: epoll on Linux/Android, kqueue on
        /// macOS/iOS/BSD, `WSAPoll` ([`PollSelector`]) on Windows.
        ///
        /// This build uses [`NativeSelector`] (epoll or kqueue; event ports
        /// on illumos/Solaris, poll(2) elsewhere).
        pub type DefaultSelector<F = AnySource, D = ()> = NativeSelector<F, D>;
        /// The backend of [`DefaultSelector`], and of `EventLoop` by default.
        pub type DefaultBackend = selector::NativeBackend;
    }
}

/// Which public types cross threads, checked at compile time. `EventLoop`
/// and `CallHandle` are deliberately not `Send` (callbacks need not be):
/// their `compile_fail` doctests check that.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Error>();
    send_sync::<Interest>();
    send_sync::<Waker>();
    send_sync::<SelectorKey<std::net::TcpStream, ()>>();
    send_sync::<RegisterError<std::net::TcpStream>>();
    send::<DefaultSelector<std::net::TcpStream, ()>>();
    send::<PollSelector<std::net::TcpStream, ()>>();
    #[cfg(feature = "event-loop")]
    {
        send_sync::<LoopHandle>();
        send_sync::<LoopGroup>();
        send_sync::<LoopStats>();
        send_sync::<CallbackError>();
        send_sync::<Token>();
        send_sync::<Token<std::rc::Rc<()>>>();
        send_sync::<IoEvent<std::rc::Rc<()>>>();
    }
    #[cfg(feature = "signals")]
    send_sync::<Signal>();
    #[cfg(feature = "net")]
    send_sync::<net::ListenerBuilder>();
};

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "event-loop", feature = "signals", feature = "net"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

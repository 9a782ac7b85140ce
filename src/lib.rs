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
pub mod event_loop;
mod executor;
mod interest;
mod key;
pub mod net;
pub mod selector;
mod signal;
mod sys;
mod threads;
mod timer;

pub use crate::error::{Error, RegisterError, Result};
pub use crate::event_loop::{CallbackError, EventLoop, LoopHandle, LoopStats, Token};
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
pub use crate::signal::Signal;
pub use crate::sys::{Fd, Source};
pub use crate::threads::LoopGroup;
pub use crate::timer::TimerHandle;

cfg_if::cfg_if! {
    if #[cfg(any(windows, selectloop_force_poll))] {
        /// The platform's best selector: epoll on Linux/Android, kqueue on
        /// macOS/iOS/BSD, `WSAPoll` ([`PollSelector`]) on Windows.
        ///
        /// This build uses [`PollSelector`] (Windows, or the test-only
        /// `--cfg selectloop_force_poll`).
        pub type DefaultSelector<F = AnySource, D = ()> = PollSelector<F, D>;
        /// The backend of [`DefaultSelector`], and of [`EventLoop`] by default.
        pub type DefaultBackend = selector::PollBackend;
    } else {
        /// The platform's best selector: epoll on Linux/Android, kqueue on
        /// macOS/iOS/BSD, `WSAPoll` ([`PollSelector`]) on Windows.
        ///
        /// This build uses [`NativeSelector`] (epoll or kqueue; event ports
        /// on illumos/Solaris, poll(2) elsewhere).
        pub type DefaultSelector<F = AnySource, D = ()> = NativeSelector<F, D>;
        /// The backend of [`DefaultSelector`], and of [`EventLoop`] by default.
        pub type DefaultBackend = selector::NativeBackend;
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

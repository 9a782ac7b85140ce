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
//!
//! # Reliability
//! Each guarantee, and the test that pins it (`tests/`, or a unit test):
//!
//! | guarantee | pinned by |
//! |---|---|
//! | Python's semantics on every backend: end of stream, hang-up and errors readable; hang-up and errors writable; only registered keys, masks within their events | `model.rs` (proptest state machine, 10,000 cases per backend in `.ci/run`), `selectors.rs` (CPython's `test_selectors` ported) |
//! | select(2) reports a hang-up as writable, even with a full send buffer | `selectors.rs::extra_hangup_with_full_send_buffer_is_writable`, `extra_write_only_with_unread_input_waits_then_sees_hangup` |
//! | a signal never cuts a wait short (PEP 475) | `select_interrupt.rs` |
//! | epoll (Linux): a sub-millisecond timeout waits at least that long and never spins; a consumed wake never cuts the next wait short; the waker is never reported; a refused registration leaves nothing behind | `selector::epoll` unit tests (`a_sub_millisecond_timeout_waits_and_does_not_spin`, `a_notify_is_consumed_and_the_next_wait_runs_to_its_timeout`, `the_wakers_token_is_never_reported`, `a_refused_registration_leaves_nothing_behind`) |
//! | a failed `register` hands the object back | `selectors.rs::extra_register_error_hands_back_*`, `fd_setsize.rs` |
//! | no stale event reaches a new registration in a reused slot or descriptor | `selectors.rs::extra_select_into_no_stale_event_for_a_reused_descriptor`, `event_loop.rs::new_source_reusing_fd_and_slot_never_gets_stale_events`, `reentrancy_stress.rs` |
//! | a token's type is checked by the compiler | `compile_fail` doctests of `EventLoop::take` and `set_callback` |
//! | errors are visible without a logger | `report_stderr.rs` |
//! | a signal handler's `Err` or panic never disables its signal; the loop's own sources survive any error policy | `signals.rs::signal_handler_error_does_not_disable_the_signal`, `error_handler_cannot_unregister_the_signal_source`, `panicking_signal_handler_unwinds_and_stays_installed` |
//! | no write of the crate's raises SIGPIPE; dropping a loop during a signal storm is safe | `signals.rs::signal_handler_error_then_signals_do_not_kill_with_sigpipe_default`, `dropping_a_loop_with_a_signal_handler_during_a_signal_storm_does_not_kill` |
//! | a panicking error handler stays installed | `event_loop.rs::panicking_error_handler_unwinds_and_stays_installed` |
//! | one connection's set-up never takes `net::serve`'s listener down | `event_loop.rs::panicking_on_accept_keeps_the_listener_serving`, `accept_emfile.rs` (out of descriptors: paused, not spinning) |
//! | a forked child lets go of the parent's loop without touching it | `after_fork.rs`, `hotline.rs::fork_model_child_holds_only_its_connection` |
//! | no byte lost or corrupted under load with resets; descriptors back to baseline; RSS bounded | `soak.rs` (300 connections in CI, against `echo` and against `echo_protocol` on the stream transport), `.ci/soak` (10,000; `SOAK_SERVER=echo_protocol` for the transport) |
//! | the examples' parsers hold their properties on any input | `fuzz/` (`.ci/fuzz`), replayed on stable by `fuzz_corpus.rs` |
//! | a transport never blocks, buffers at most high water + one read for a flow-controlled echo to a peer that never reads, and delivers every byte | `transport.rs` (Python asyncio and socket clients, a peer that never reads, half-close, resets, failed connects), `echo_protocol.rs` |
//! | no allocation per message on a warm transport; heap per idle connection bounded | `transport_alloc.rs` |
//! | a datagram endpoint's `send_to` never blocks: straight through, queued up to its limit, then refused; an ICMP refusal is `error_received` and the endpoint goes on | `datagram.rs::bounded_send_queue_queues_refuses_drains_in_order`, `icmp_port_unreachable_is_error_received_and_the_endpoint_keeps_working` (Unix), every byte with Rust and Python clients over UDP and Unix datagrams |
//! | a child process is never left a zombie; `process_exited` comes after every pipe closed and the status is known | `subprocess.rs::no_zombie_after_dropping_loop_and_handle`, `process_exited_waits_for_pipes_a_grandchild_holds`, `many_concurrent_children` |
//! | idle chat clients are dropped | `chat.rs::an_idle_client_is_told_and_closed_while_active_ones_stay` |
//! | TLS (feature `tls`): every byte through rustls with flow control on the encrypted side; `close_notify` both ways; a truncation, an untrusted certificate, plain text or a stalled handshake fail cleanly and the server goes on; client certificates, ALPN, SNI, STARTTLS | `tls.rs` (21 tests: 8 MiB each way, 200 concurrent clients, TLS 1.2 and 1.3), `https_hello.rs` (curl, Python `ssl`, `openssl s_client`), `echo_client.rs::over_tls` |
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
#[cfg(feature = "transport")]
#[cfg_attr(docsrs, doc(cfg(feature = "transport")))]
pub mod transport;

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
    } else if #[cfg(any(target_os = "linux", target_os = "android"))] {
        /// The platform's best selector: epoll on Linux/Android, kqueue on
        /// macOS/iOS/BSD, `WSAPoll` ([`PollSelector`]) on Windows.
        ///
        /// This build uses [`EpollSelector`]: epoll driven directly, one
        /// system call per wait.
        pub type DefaultSelector<F = AnySource, D = ()> = EpollSelector<F, D>;
        /// The backend of [`DefaultSelector`], and of `EventLoop` by default.
        pub type DefaultBackend = selector::EpollBackend;
    } else {
        /// The platform's best selector: epoll on Linux/Android, kqueue on
        /// macOS/iOS/BSD, `WSAPoll` ([`PollSelector`]) on Windows.
        ///
        /// This build uses [`NativeSelector`] (kqueue; event ports on
        /// illumos/Solaris, poll(2) elsewhere).
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
#[cfg(all(doctest, feature = "transport", feature = "signals"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

//! What the loop reports: callback errors (to the
//! [error handler](EventLoop::set_error_handler)), slow callbacks, and its
//! counters ([`LoopStats`]).
//!
//! Reports go through the `log` crate when a logger takes them, and
//! otherwise to standard error, one line each, as asyncio's default
//! exception handler does: a program that installs no logger still sees
//! that a callback failed.
//!
//! ```
//! use std::time::Duration;
//! use selectloop::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let failures = std::rc::Rc::new(std::cell::Cell::new(0));
//! let seen = failures.clone();
//! lp.set_error_handler(move |_lp, failure| {
//!     assert_eq!(failure.error.to_string(), "no luck");
//!     seen.set(seen.get() + 1);
//! });
//! lp.call_soon(|_lp| Err(anyhow::anyhow!("no luck")));
//! lp.run_once(Some(Duration::ZERO))?; // `call_soon` runs on the next iteration
//! lp.run_once(Some(Duration::ZERO))?;
//! assert_eq!((failures.get(), lp.stats().callback_errors), (1, 1));
//! # Ok::<(), selectloop::Error>(())
//! ```

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::{EventLoop, Token};
use crate::{Backend, Fd};

/// The error handler.
pub(super) type ErrorHandler<B> = Box<dyn FnMut(&mut EventLoop<B>, CallbackError)>;

/// A callback's failure, as the [error handler](EventLoop::set_error_handler) gets it.
#[derive(Debug)]
pub struct CallbackError {
    /// The source whose callback failed; `None` for timers, scheduled
    /// callbacks, signal handlers (`add_signal_handler`: the loop's own
    /// source for a signal is never handed out, so that no error policy can
    /// drop it) and errors `net::serve` reports for a connection it accepted.
    pub token: Option<Token>,
    /// The source's descriptor.
    pub fd: Option<Fd>,
    /// The source's peer address, for a connected socket.
    pub peer: Option<SocketAddr>,
    /// What the callback returned.
    pub error: anyhow::Error,
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.token, self.fd, self.peer) {
            (Some(token), Some(fd), Some(peer)) => {
                write!(f, "callback of source {token} (fd {fd}, peer {peer})")?
            }
            (Some(token), Some(fd), None) => write!(f, "callback of source {token} (fd {fd})")?,
            _ => f.write_str("callback")?,
        }
        write!(f, " failed: {:#}", self.error)
    }
}

/// Counters the loop keeps, for debugging and monitoring ([`EventLoop::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// Loop iterations (one `select` each).
    pub iterations: u64,
    /// I/O callbacks run.
    pub events_dispatched: u64,
    /// Timer callbacks run (`call_later`, `call_at`, `call_every`; not `call_soon`).
    pub timers_fired: u64,
    /// Callbacks that returned an error.
    pub callback_errors: u64,
    /// Callbacks that ran longer than the [slow-callback threshold](EventLoop::set_slow_callback_threshold).
    pub slow_callbacks: u64,
}

/// Writes one report: to the `log` logger if one takes records of this
/// level, else one line to standard error (a failed write is ignored: there
/// is nowhere left to report it).
pub(crate) fn emit(level: log::Level, message: fmt::Arguments<'_>) {
    if log::log_enabled!(level) {
        log::log!(level, "{message}");
    } else {
        let level = level.as_str().to_ascii_lowercase();
        let _ = writeln!(std::io::stderr().lock(), "selectloop: {level}: {message}");
    }
}

impl<B: Backend> EventLoop<B> {
    /// Replaces the error handler, which gets every error a callback returns.
    /// The default reports it (with descriptor and peer) through the `log`
    /// crate, or as one line on standard error when no logger takes it,
    /// and unregisters the failing source; a handler of yours decides for
    /// itself (call [`unregister`](EventLoop::unregister) with `error.token` to
    /// do the same).
    ///
    /// Errors of signal handlers (`add_signal_handler`) come with
    /// `token: None`: they are reported, and the signal goes on being
    /// delivered to its handler.
    ///
    /// # Panics
    /// A panic in the error handler unwinds out of [`run`](EventLoop::run)
    /// (or `run_once`) as a callback's does, and the handler stays
    /// installed: the next error goes to it again.
    pub fn set_error_handler(
        &mut self,
        handler: impl FnMut(&mut EventLoop<B>, CallbackError) + 'static,
    ) {
        self.error_handler = Some(Box::new(handler));
    }

    /// Warns (through `log`, or on standard error without a logger) about every callback that runs longer than
    /// `threshold`, as asyncio's debug mode does (`None`, the default, turns
    /// it off; asyncio's threshold is 100 ms). Costs two clock reads per callback.
    pub fn set_slow_callback_threshold(&mut self, threshold: Option<Duration>) {
        self.slow_threshold = threshold;
    }

    /// The loop's counters.
    pub fn stats(&self) -> LoopStats {
        self.stats
    }

    /// Reports an error that belongs to no source (an accepted connection's
    /// setup in [`net::serve`](crate::net::serve), say) to the error handler.
    #[cfg(feature = "net")]
    pub(crate) fn report_detached(&mut self, error: anyhow::Error) {
        self.report(None, None, None, error);
    }

    pub(super) fn report(
        &mut self,
        token: Option<Token>,
        fd: Option<Fd>,
        peer: Option<SocketAddr>,
        error: anyhow::Error,
    ) {
        self.stats.callback_errors += 1;
        let failure = CallbackError {
            token,
            fd,
            peer,
            error,
        };
        match self.error_handler.take() {
            Some(mut handler) => {
                // Out of its place while it runs (it gets `&mut self`), and
                // put back even if it panics: a panicking handler unwinds
                // out of `run` like any callback and stays installed.
                let result = panic::catch_unwind(AssertUnwindSafe(|| handler(self, failure)));
                // Unless it installed another one meanwhile.
                if self.error_handler.is_none() {
                    self.error_handler = Some(handler);
                }
                if let Err(panic) = result {
                    panic::resume_unwind(panic);
                }
            }
            None => match token {
                Some(token) => {
                    emit(log::Level::Error, format_args!("{failure}; source dropped"));
                    let _ = self.unregister(token);
                }
                None => emit(log::Level::Error, format_args!("{failure}")),
            },
        }
    }

    /// Warns if the callback that began at `started` ran too long; `source`
    /// names its source, `None` for scheduled callbacks.
    pub(super) fn check_slow(&mut self, started: Instant, source: Option<(Token, Fd)>) {
        let Some(threshold) = self.slow_threshold else {
            return;
        };
        let took = started.elapsed();
        if took >= threshold {
            self.stats.slow_callbacks += 1;
            match source {
                Some((token, fd)) => emit(
                    log::Level::Warn,
                    format_args!(
                        "callback of source {token} (fd {fd}) took {took:?} (threshold {threshold:?})"
                    ),
                ),
                None => emit(
                    log::Level::Warn,
                    format_args!("scheduled callback took {took:?} (threshold {threshold:?})"),
                ),
            }
        }
    }
}

pub(super) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

//! The contract between [`BaseSelector`](super::BaseSelector) and the kernel
//! interfaces it drives: the sealed [`Ops`](sealed::Ops) and
//! [`Notify`](sealed::Notify) traits, and the public [`Backend`] bound.
//!
//! A backend is a thin layer over one kernel readiness API. Everything
//! Python's `selectors` promises beyond "ask the kernel" (one entry per key,
//! masks within the registered events, keys and data, descriptor lookups,
//! retrying a wait a signal cut short, coalescing wake-ups, refusing stale
//! events) is done once, in `BaseSelector`, so that every backend behaves
//! the same. Each backend must meet this contract, which the shared suite in
//! `tests/selectors.rs` checks on all of them:
//!
//! * `open` creates the kernel object and whatever another thread needs to
//!   interrupt a wait. Its errors are the crate's own and come out as they
//!   are: a wake pipe landing at a descriptor the backend cannot watch is
//!   [`Error::FdTooLarge`](crate::Error::FdTooLarge), not an I/O error.
//! * `notifier` returns a handle whose `notify`, from any thread, makes the
//!   current `wait` or the next one return. The backend consumes the
//!   notification itself and never reports it as a token. Many
//!   notifications may end one wait; [`Waker`](super::Waker) coalesces them.
//! * `check(fd)` refuses, before anything is changed, a descriptor the
//!   backend can never watch. It has no side effects.
//! * `add(src, fd, token, interest)` starts watching. On error nothing is
//!   left registered, so the selector can hand the object back unharmed.
//!   `token` is the registration's slot: unique among the current
//!   registrations, and reused after `delete`. The caller keeps the
//!   descriptor open until `delete` (or until the backend is dropped).
//! * `modify` changes the interest of a registration; on error the
//!   registration is unchanged.
//! * `delete` stops watching: no later `wait` reports that token (until a
//!   new `add` with it), and the backend no longer refers to the descriptor,
//!   which its owner may close right after. It is not called for a
//!   registration the selector has paused (deleted) already.
//! * `wait(timeout, ready)` blocks for up to `timeout` (`None`: no limit;
//!   rounded up, never down to a busy loop) and appends `(token, readiness)`
//!   for ready registrations:
//!   - only tokens currently added; one token may appear more than once (the
//!     selector merges them) and readiness may exceed the interest (the
//!     selector masks it); a backend that sets `REPORTS_ONCE` promises each
//!     token at most once, with readiness that meets its interest (a
//!     hang-up or an error counts as both), and the selector skips the merge;
//!   - level-triggered: a registration is reported by every wait while it is
//!     ready (a one-shot kernel API re-arms what it reported);
//!   - Python's mapping: end of stream, hang-up and a pending socket error
//!     are readable; hang-up and a pending error are writable too;
//!   - it may return early with nothing (a notification, a spurious
//!     wake-up), and a wait a signal interrupts may return
//!     `ErrorKind::Interrupted`: the selector retries with what is left of
//!     the timeout (PEP 475);
//!   - every registration must fit: a backend whose kernel call takes an
//!     event buffer sizes it to the number of registrations, so that no
//!     ready key is left out of a batch.
//! * `forget_after_fork` (Unix) closes the backend's descriptors in a
//!   forked child without any kernel call that could change the kernel
//!   object's registrations, which the child may share with its parent.
//! * Dropping the backend releases the kernel object and forgets every
//!   registration at once; `BaseSelector` drops it before the registered
//!   objects.
//! * A backend is `Send + 'static` and names itself in `NAME` (for `Debug`
//!   and [`BaseSelector::backend_name`](super::BaseSelector::backend_name)).

use std::fmt;

pub(crate) mod sealed {
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::{Fd, Interest, Result, Source};

    /// What a backend must do; the module documentation states the contract.
    pub trait Ops: Sized + Send + 'static {
        /// A short name for `Debug` output ("epoll", "poll", "select"...).
        const NAME: &'static str;

        /// True if one `wait` reports each registration at most once, with
        /// readiness that meets its interest (epoll, poll): the selector
        /// then uses the list as `wait` left it, masking as it reads. False
        /// (the default) has the selector mask and merge it first.
        const REPORTS_ONCE: bool = false;

        /// Creates the kernel object.
        fn open() -> Result<Self>;

        /// A handle another thread can use to interrupt `wait`.
        fn notifier(&self) -> Arc<dyn Notify>;

        /// Refuses descriptors the backend can never watch. Called before `add`.
        fn check(&self, _fd: Fd) -> Result<()> {
            Ok(())
        }

        /// Starts watching `src` (whose descriptor is `fd`) for `interest`,
        /// reporting it as `token`. On error nothing is left registered.
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

        /// Changes the events `src` (already added as `token`) is watched for;
        /// on error nothing changes.
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

        /// Lets go of the backend in a forked child: closes every descriptor
        /// it holds without changing any registration of the kernel object
        /// the child may share with its parent (no `epoll_ctl`, no kevent
        /// change). The default drops the backend, right for backends whose
        /// only descriptors are their own wake pipe (poll, select).
        #[cfg(unix)]
        fn forget_after_fork(self) {
            drop(self);
        }
    }

    /// Interrupts a backend's `wait` from any thread.
    pub trait Notify: Send + Sync {
        /// Makes the current or next `wait` return.
        fn notify(&self) -> io::Result<()>;
    }
}

/// A kernel interface a [`BaseSelector`](super::BaseSelector) can drive:
/// `EpollBackend` (Linux/Android), [`NativeBackend`](super::NativeBackend),
/// [`PollBackend`](super::PollBackend) or `SelectBackend` (Unix).
///
/// The trait is sealed. Its contract, which every backend meets and the
/// shared test suite checks (`src/selector/backend.rs` states it in full):
/// - level-triggered: a registration is reported by every `select` while it is ready;
/// - readiness is reported with Python's mapping: end of stream, hang-up and socket
///   errors count as readable, and hang-up and errors also as writable;
/// - a notification from another thread ends the current or the next wait;
/// - a wait interrupted by a signal is retried by the selector with what is left of
///   its timeout (PEP 475), so it never returns early with nothing;
/// - a refused registration leaves nothing behind, so the object comes back
///   unharmed in the [`RegisterError`](crate::RegisterError).
pub trait Backend: sealed::Ops + fmt::Debug {}

impl<B: sealed::Ops + fmt::Debug> Backend for B {}

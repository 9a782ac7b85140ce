//! [`Waker`]: interrupts a selector's blocked `select` from another thread.
//!
//! The selector and its wakers share one [`WakeState`]: a "pending" flag and
//! the backend's notifier. A wake sets the flag and, only if it was clear,
//! notifies the backend, so a burst of wakes costs one notification; the
//! selector clears the flag when a wait returns, so a spent wake never cuts
//! a later, unrelated wait short.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::backend::sealed::Notify;

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

/// What a selector shares with its wakers.
pub(crate) struct WakeState {
    pending: AtomicBool,
    notifier: Arc<dyn Notify>,
}

impl WakeState {
    pub(crate) fn new(notifier: Arc<dyn Notify>) -> Arc<WakeState> {
        Arc::new(WakeState {
            pending: AtomicBool::new(false),
            notifier,
        })
    }

    /// A state whose wakes go nowhere: what a selector keeps after
    /// `forget_after_fork`, so that it no longer holds the backend.
    #[cfg(unix)]
    pub(crate) fn inert() -> Arc<WakeState> {
        struct Inert;
        impl Notify for Inert {
            fn notify(&self) -> io::Result<()> {
                Ok(())
            }
        }
        WakeState::new(Arc::new(Inert))
    }

    /// True if a wake arrived since the last call; clears it.
    pub(crate) fn take_pending(&self) -> bool {
        // A plain load first: no atomic read-modify-write per wait while
        // nobody wakes the selector.
        self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::AcqRel)
    }
}

impl Waker {
    pub(crate) fn new(state: &Arc<WakeState>) -> Waker {
        Waker {
            inner: Arc::clone(state),
        }
    }

    /// Makes the selector's current `select`, or its next one, return.
    ///
    /// # Errors
    /// - the OS error if the notification could not be sent (it cannot fail on
    ///   today's backends short of resource exhaustion).
    ///
    /// # Examples
    /// ```
    /// use std::net::TcpListener;
    /// use std::time::{Duration, Instant};
    /// use selectloop::{DefaultSelector, Selector, EVENT_READ};
    ///
    /// let mut sel: DefaultSelector<TcpListener> = DefaultSelector::new()?;
    /// sel.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, ())?;
    /// let waker = sel.waker()?;
    /// waker.wake()?;
    /// waker.wake()?; // coalesces with the first
    /// let t = Instant::now();
    /// assert_eq!(sel.select(Some(Duration::from_secs(30)))?.len(), 0);
    /// assert!(t.elapsed() < Duration::from_secs(30));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

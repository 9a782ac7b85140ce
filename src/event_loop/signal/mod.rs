//! Signals delivered to the loop's thread: [`EventLoop::add_signal_handler`].
//!
//! On Unix a signal writes a byte to a socket pair (through `signal-hook`,
//! whose handler does only that, which is async-signal-safe); the loop
//! watches the other end like any source and runs your callback on its own
//! thread. On Windows, Ctrl-C and Ctrl-Break arrive through
//! `SetConsoleCtrlHandler` on a system thread, which forwards them to the
//! loop with [`LoopHandle::call_soon_threadsafe`](crate::LoopHandle::call_soon_threadsafe).

use std::collections::HashMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use super::{EventLoop, Token};
use crate::{Backend, Error, Result};

cfg_if::cfg_if! {
    if #[cfg(unix)] {
        mod unix;
        use self::unix as imp;
    } else {
        mod windows;
        use self::windows as imp;
    }
}

/// A signal the loop can handle.
///
/// Portable: [`Signal::INT`] (SIGINT, or Ctrl-C on Windows). On Unix, any
/// catchable signal number works through `Signal::from_raw`, and `TERM`,
/// `HUP`, `USR1` and `USR2` have names; on Windows, `BREAK` (Ctrl-Break).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// The signal's number (on Windows, the console control event).
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({})", self.0)
    }
}

/// A signal callback.
pub(crate) type SignalCallback<B> = Box<dyn FnMut(&mut EventLoop<B>) -> anyhow::Result<()>>;

/// The loop's signal registrations.
pub(crate) struct Signals<B: Backend> {
    map: HashMap<Signal, Registration<B>>,
}

impl<B: Backend> Default for Signals<B> {
    fn default() -> Self {
        Signals {
            map: HashMap::new(),
        }
    }
}

struct Registration<B: Backend> {
    /// The loop's source that receives the signal (Unix).
    token: Option<Token>,
    /// How to stop the delivery.
    id: imp::SignalId,
    /// `None` while it runs.
    callback: Option<SignalCallback<B>>,
}

impl<B: Backend> EventLoop<B> {
    /// Runs `callback` on the loop's thread each time `signal` arrives,
    /// replacing the handler the loop had for it. Signals that arrive
    /// together may be coalesced into one call. The loop's own source for
    /// the signal does not keep [`run`](EventLoop::run) going.
    ///
    /// An `Err` from `callback` goes to the
    /// [error handler](EventLoop::set_error_handler) with `token: None`; a
    /// panic unwinds out of [`run`](EventLoop::run) like any callback's. In
    /// both cases the handler stays installed and the next signal reaches it.
    ///
    /// # Errors
    /// - [`Error::Io`] if the signal cannot be caught (SIGKILL, SIGSTOP, and
    ///   signals `signal-hook` forbids, like SIGSEGV), or on Windows for a
    ///   signal other than [`Signal::INT`] and `Signal::BREAK`.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(unix)] {
    /// use selectloop::{EventLoop, Signal};
    ///
    /// let mut lp = EventLoop::new()?;
    /// lp.add_signal_handler(Signal::USR1, |lp| { lp.stop(); Ok(()) })?;
    /// // SAFETY-free: raise(3) through libc would do; here the handler is just removed.
    /// assert!(lp.remove_signal_handler(Signal::USR1)?);
    /// # }
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    pub fn add_signal_handler(
        &mut self,
        signal: Signal,
        callback: impl FnMut(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> Result<()> {
        self.remove_signal_handler(signal)?;
        let (token, id) = imp::add_signal(self, signal)?;
        let callback: SignalCallback<B> = Box::new(callback);
        self.signals.map.insert(
            signal,
            Registration {
                token,
                id,
                callback: Some(callback),
            },
        );
        Ok(())
    }

    /// Removes the loop's handler for `signal`, restoring the default
    /// disposition if no other handler remains. Returns whether there was one.
    ///
    /// # Errors
    /// - none today; the `Result` is kept for platforms whose removal can fail.
    pub fn remove_signal_handler(&mut self, signal: Signal) -> Result<bool> {
        match self.signals.map.remove(&signal) {
            Some(Registration { token, id, .. }) => {
                imp::remove_signal(id);
                match token.map(|token| self.unregister(token)) {
                    None | Some(Ok(())) | Some(Err(Error::InvalidToken)) => Ok(true),
                    Some(Err(e)) => Err(e),
                }
            }
            None => Ok(false),
        }
    }

    /// Runs the handler for `signal`, if there still is one.
    pub(crate) fn deliver_signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        let Some(mut callback) = self
            .signals
            .map
            .get_mut(&signal)
            .and_then(|r| r.callback.take())
        else {
            return Ok(());
        };
        // Put back even if the callback panics: the handler stays installed.
        let result = panic::catch_unwind(AssertUnwindSafe(|| callback(self)));
        if let Some(registration) = self.signals.map.get_mut(&signal) {
            // Unless the callback replaced its own registration.
            if registration.callback.is_none() {
                registration.callback = Some(callback);
            }
        }
        result.unwrap_or_else(|panic| panic::resume_unwind(panic))
    }
}

impl<B: Backend> Signals<B> {
    /// Stops every delivery (signal-hook no longer writes to the loop's
    /// socket pairs once this returns), so that (with no other handler left)
    /// the default action comes back, as with
    /// [`EventLoop::remove_signal_handler`]. The loop's sources for them are
    /// left to the selector, which the loop drops afterwards.
    pub(crate) fn clear(&mut self) {
        for (_, registration) in self.map.drain() {
            imp::remove_signal(registration.id);
        }
    }
}

#[cfg(unix)]
impl<B: Backend> Signals<B> {
    /// Stops every delivery (a forked child letting go of the loop): each
    /// registration's write end is dropped by signal-hook, the read ends
    /// are the selector's to close, and the default actions come back.
    pub(crate) fn release(&mut self) {
        for (_, registration) in self.map.drain() {
            imp::remove_signal(registration.id);
        }
    }
}

impl<B: Backend> Drop for Signals<B> {
    /// A dropped loop handles no signal any more (a no-op after
    /// [`Signals::clear`], which the loop's own `Drop` calls first).
    fn drop(&mut self) {
        self.clear();
    }
}

impl<B: Backend> fmt::Debug for Signals<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::panic::{self, AssertUnwindSafe};
    use std::rc::Rc;
    use std::time::Duration;

    use crate::{EventLoop, Signal};

    /// Delivers `signal` the way Windows does (Ctrl-C: a system thread calls
    /// `call_soon_threadsafe`, whose callback calls `deliver_signal`) and
    /// runs the loop until it has run.
    fn deliver_as_windows_does(lp: &mut EventLoop, signal: Signal) {
        lp.handle()
            .call_soon_threadsafe(move |lp| lp.deliver_signal(signal));
        lp.run_once(Some(Duration::ZERO)).unwrap();
    }

    // Catches (issue 9, fault 1, the Windows path): a signal handler's `Err`
    // or panic losing the handler (its callback is out of the map while it
    // runs), so that later Ctrl-C events are swallowed.
    #[test]
    fn signal_delivery_survives_err_and_panic_of_its_handler() {
        let mut lp = EventLoop::new().unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = Rc::clone(&calls);
        lp.add_signal_handler(Signal::INT, move |_| {
            c.set(c.get() + 1);
            match c.get() {
                1 => anyhow::bail!("handler failed"),
                2 => panic!("handler exploded"),
                _ => Ok(()),
            }
        })
        .unwrap();
        lp.set_error_handler(|_, failure| assert_eq!(failure.token, None));
        deliver_as_windows_does(&mut lp, Signal::INT);
        assert_eq!((calls.get(), lp.stats().callback_errors), (1, 1));
        let panicked = panic::catch_unwind(AssertUnwindSafe(|| {
            deliver_as_windows_does(&mut lp, Signal::INT)
        }));
        assert!(panicked.is_err(), "the handler's panic must unwind");
        assert_eq!(calls.get(), 2);
        deliver_as_windows_does(&mut lp, Signal::INT);
        assert_eq!(calls.get(), 3, "the handler must stay installed");
        assert!(lp.remove_signal_handler(Signal::INT).unwrap());
    }
}

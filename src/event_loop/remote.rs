//! Reaching the loop from other threads: [`LoopHandle`].
//!
//! Other threads push callbacks onto a mutex-guarded queue and wake the
//! loop's selector; the loop takes the whole queue at the start of an
//! iteration (and again after its I/O callbacks), with one atomic swap when
//! nothing was sent.
//!
//! ```
//! use selectloop::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let handle = lp.handle();
//! std::thread::spawn(move || {
//!     handle.call_soon_threadsafe(|lp| {
//!         lp.stop();
//!         Ok(())
//!     })
//! });
//! lp.run()?; // returns once the other thread's callback has run
//! # Ok::<(), selectloop::Error>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::schedule::Scheduled;
use super::EventLoop;
use crate::{Backend, DefaultBackend, Waker};

/// A callback sent from another thread.
pub(super) type RemoteCallback<B> = Box<dyn FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + Send>;

/// What the other threads share with the loop.
pub(super) struct Remote<B: Backend> {
    queue: Mutex<Vec<RemoteCallback<B>>>,
    pub(super) pending: AtomicBool,
    pub(super) stop: AtomicBool,
    waker: Waker,
}

impl<B: Backend> Remote<B> {
    pub(super) fn new(waker: Waker) -> Remote<B> {
        Remote {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker,
        }
    }

    pub(super) fn push(&self, callback: RemoteCallback<B>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(callback);
        self.pending.store(true, Ordering::Release);
        // A failed wake (out of resources) leaves the callback queued; it runs
        // on the loop's next iteration.
        let _ = self.waker.wake();
    }
}

impl<B: Backend> EventLoop<B> {
    /// A handle for other threads: [`LoopHandle::call_soon_threadsafe`] and [`LoopHandle::stop`].
    pub fn handle(&self) -> LoopHandle<B> {
        LoopHandle {
            remote: Arc::clone(&self.remote),
        }
    }

    /// Makes [`run`](EventLoop::run) return after the current iteration.
    pub fn stop(&mut self) {
        self.remote.stop.store(true, Ordering::Release);
    }

    /// Moves what other threads sent to the FIFO queue.
    #[inline]
    pub(super) fn collect_remote(&mut self) {
        // A plain load first: no atomic read-modify-write (and no call) per
        // iteration while nothing comes from other threads.
        if self.remote.pending.load(Ordering::Relaxed) {
            self.collect_remote_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn collect_remote_slow(&mut self) {
        if self.remote.pending.swap(false, Ordering::AcqRel) {
            let mut queue = self.remote.queue.lock().unwrap_or_else(|e| e.into_inner());
            self.ready.extend(queue.drain(..).map(Scheduled::Remote));
        }
    }
}

/// Reaches an [`EventLoop`] from other threads.
///
/// `Send + Sync + Clone`; it keeps working (doing nothing) after the loop is dropped.
pub struct LoopHandle<B: Backend = DefaultBackend> {
    remote: Arc<Remote<B>>,
}

impl<B: Backend> LoopHandle<B> {
    /// Runs `f` on the loop's thread, on its next iteration, waking the loop
    /// if it is blocked in `select`.
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + Send + 'static,
    ) {
        self.remote.push(Box::new(f));
    }

    /// Makes the loop's [`run`](EventLoop::run) return after its current
    /// iteration, waking it if it is blocked in `select`.
    pub fn stop(&self) {
        self.remote.stop.store(true, Ordering::Release);
        let _ = self.remote.waker.wake();
    }
}

impl<B: Backend> Clone for LoopHandle<B> {
    fn clone(&self) -> Self {
        LoopHandle {
            remote: Arc::clone(&self.remote),
        }
    }
}

impl<B: Backend> fmt::Debug for LoopHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle").finish_non_exhaustive()
    }
}

//! Scheduled callbacks: [`call_soon`](EventLoop::call_soon)'s FIFO queue
//! and the heap of deadlines behind [`call_later`](EventLoop::call_later),
//! [`call_at`](EventLoop::call_at) and [`call_every`](EventLoop::call_every);
//! each returns a [`CallHandle`] that cancels it.
//!
//! ```
//! use std::time::Duration;
//! use selectloop::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let never = lp.call_later(Duration::from_secs(3600), |_| panic!("cancelled"));
//! lp.call_soon(move |_lp| {
//!     never.cancel();
//!     Ok(())
//! });
//! lp.run()?; // returns at once: the only timer left is cancelled
//! # Ok::<(), selectloop::Error>(())
//! ```

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::remote::RemoteCallback;
use super::EventLoop;
use crate::Backend;

/// A callback the loop runs once (`call_soon`, `call_later`, `call_at`).
pub(super) type OnceCallback<B> = Box<dyn FnOnce(&mut EventLoop<B>) -> anyhow::Result<()>>;
/// A callback the loop runs repeatedly (`call_every`).
type EveryCallback<B> = Box<dyn FnMut(&mut EventLoop<B>) -> anyhow::Result<()>>;

pub(super) enum TimerCallback<B: Backend> {
    Once(OnceCallback<B>),
    Every(EveryCallback<B>),
}

/// A callback waiting in the loop's FIFO queue.
pub(super) enum Scheduled<B: Backend> {
    Soon(Rc<Shared>, OnceCallback<B>),
    Timer(Timer<TimerCallback<B>>),
    Remote(RemoteCallback<B>),
}

/// What a scheduled callback shares with its [`CallHandle`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    cancelled: Cell<bool>,
    /// True while the entry sits in the loop's deadline heap, where a
    /// cancelled entry lingers until popped and so is counted.
    in_heap: Cell<bool>,
}

impl Shared {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    pub(crate) fn set_in_heap(&self, in_heap: bool) {
        self.in_heap.set(in_heap);
    }
}

/// Cancels a callback scheduled with [`call_soon`](crate::EventLoop::call_soon),
/// [`call_later`](crate::EventLoop::call_later), [`call_at`](crate::EventLoop::call_at)
/// or [`call_every`](crate::EventLoop::call_every).
///
/// It belongs to the loop's thread (it is not `Send`); to cancel from
/// another thread, send a [`LoopHandle::call_soon_threadsafe`](crate::LoopHandle::call_soon_threadsafe)
/// callback that cancels it.
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// let mut lp = selectloop::EventLoop::new()?;
/// send(lp.call_soon(|_| Ok(()))); // error[E0277]: `Rc<..>` cannot be sent between threads
/// # Ok::<(), selectloop::Error>(())
/// ```
///
/// Dropping the handle does not cancel the callback. (asyncio has `Handle`
/// for `call_soon` and `TimerHandle` for the timers; one type does both here.)
#[derive(Clone)]
pub struct CallHandle {
    shared: Rc<Shared>,
    cancelled_count: Rc<Cell<usize>>,
}

impl CallHandle {
    pub(crate) fn new(cancelled_count: &Rc<Cell<usize>>) -> (CallHandle, Rc<Shared>) {
        let shared = Rc::new(Shared::default());
        let handle = CallHandle {
            shared: Rc::clone(&shared),
            cancelled_count: Rc::clone(cancelled_count),
        };
        (handle, shared)
    }

    /// Cancels the callback: it will not run (again). Returns `false` if it was
    /// cancelled already. Cancelling a callback that already ran once is allowed
    /// and stops a repeating one.
    pub fn cancel(&self) -> bool {
        if self.shared.cancelled.replace(true) {
            return false;
        }
        if self.shared.in_heap.get() {
            self.cancelled_count.set(self.cancelled_count.get() + 1);
        }
        true
    }

    /// True once [`cancel`](CallHandle::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }
}

/// The old name of [`CallHandle`], which cancels `call_soon` callbacks too.
#[deprecated(since = "0.2.0", note = "renamed to CallHandle")]
pub type TimerHandle = CallHandle;

impl fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallHandle")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// An entry in the deadline heap. Ordered so that `BinaryHeap` (a max-heap)
/// pops the earliest deadline first, and among equal deadlines the one
/// scheduled first (FIFO).
pub(crate) struct Timer<C> {
    pub(crate) deadline: Instant,
    pub(crate) seq: u64,
    pub(crate) every: Option<Duration>,
    pub(crate) shared: Rc<Shared>,
    pub(crate) callback: C,
}

impl<C> PartialEq for Timer<C> {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl<C> Eq for Timer<C> {}

impl<C> PartialOrd for Timer<C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<C> Ord for Timer<C> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

impl<B: Backend> EventLoop<B> {
    fn schedule(
        &mut self,
        deadline: Instant,
        every: Option<Duration>,
        callback: TimerCallback<B>,
    ) -> CallHandle {
        let (handle, shared) = CallHandle::new(&self.cancelled);
        shared.set_in_heap(true);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.timers.push(Timer {
            deadline,
            seq,
            every,
            shared,
            callback,
        });
        handle
    }

    /// Runs `f` on the next loop iteration (not now, even when called from a
    /// callback). Callbacks scheduled this way run in FIFO order.
    pub fn call_soon(
        &mut self,
        f: impl FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> CallHandle {
        let (handle, shared) = CallHandle::new(&self.cancelled);
        self.ready.push_back(Scheduled::Soon(shared, Box::new(f)));
        handle
    }

    /// Runs `f` once, `delay` from now (monotonic clock).
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> CallHandle {
        let deadline = far_deadline(Instant::now(), delay);
        self.schedule(deadline, None, TimerCallback::Once(Box::new(f)))
    }

    /// Runs `f` once at `deadline`; timers with equal deadlines run in the
    /// order they were scheduled.
    pub fn call_at(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> CallHandle {
        self.schedule(deadline, None, TimerCallback::Once(Box::new(f)))
    }

    /// Runs `f` every `period`, first `period` from now, until the handle is
    /// cancelled (from inside `f` too). Deadlines advance by `period`, so
    /// there is no drift; after a stall longer than a period, the missed
    /// runs are skipped rather than run back to back.
    pub fn call_every(
        &mut self,
        period: Duration,
        f: impl FnMut(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> CallHandle {
        let period = period.max(Duration::from_nanos(1));
        let deadline = far_deadline(Instant::now(), period);
        self.schedule(deadline, Some(period), TimerCallback::Every(Box::new(f)))
    }

    /// Drops cancelled timers from the top of the heap, and rebuilds the heap
    /// when more than half of it is cancelled (as asyncio does).
    pub(super) fn prune_cancelled(&mut self) {
        while self.timers.peek().is_some_and(|t| t.shared.is_cancelled()) {
            let timer = self.timers.pop().expect("peeked");
            timer.shared.set_in_heap(false);
            self.cancelled.set(self.cancelled.get() - 1);
        }
        let cancelled = self.cancelled.get();
        if cancelled > 64 && cancelled * 2 > self.timers.len() {
            self.timers.retain(|t| {
                let keep = !t.shared.is_cancelled();
                if !keep {
                    t.shared.set_in_heap(false);
                }
                keep
            });
            self.cancelled.set(0);
        }
    }

    /// Moves the timers due now to the FIFO queue.
    #[inline]
    pub(super) fn queue_due_timers(&mut self) {
        if !self.timers.is_empty() {
            self.queue_due_timers_slow();
        }
    }

    #[inline(never)]
    fn queue_due_timers_slow(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|t| t.deadline <= now) {
            let timer = self.timers.pop().expect("peeked");
            timer.shared.set_in_heap(false);
            if timer.shared.is_cancelled() {
                self.cancelled.set(self.cancelled.get() - 1);
            } else {
                self.ready.push_back(Scheduled::Timer(timer));
            }
        }
    }

    pub(super) fn run_scheduled(&mut self, item: Scheduled<B>) {
        let started = self.slow_threshold.map(|_| Instant::now());
        let result = match item {
            Scheduled::Soon(shared, f) => {
                if shared.is_cancelled() {
                    return;
                }
                f(self)
            }
            Scheduled::Remote(f) => f(self),
            Scheduled::Timer(mut timer) => {
                if timer.shared.is_cancelled() {
                    return;
                }
                self.stats.timers_fired += 1;
                match timer.callback {
                    TimerCallback::Once(f) => f(self),
                    TimerCallback::Every(ref mut f) => {
                        let result = f(self);
                        if !timer.shared.is_cancelled() {
                            let period = timer.every.expect("repeating timers have a period");
                            let now = Instant::now();
                            timer.deadline = far_deadline(timer.deadline, period);
                            if timer.deadline <= now {
                                timer.deadline = far_deadline(now, period);
                            }
                            timer.seq = self.next_seq;
                            self.next_seq += 1;
                            timer.shared.set_in_heap(true);
                            self.timers.push(timer);
                        }
                        result
                    }
                }
            }
        };
        if let Some(started) = started {
            self.check_slow(started, None);
        }
        if let Err(error) = result {
            self.report(None, None, None, error);
        }
    }
}

/// A deadline `delay` after `from`, or about a century later if that overflows.
pub(super) fn far_deadline(from: Instant, delay: Duration) -> Instant {
    from.checked_add(delay)
        .or_else(|| from.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BinaryHeap;

    #[test]
    fn heap_pops_earliest_first_and_fifo_among_equal_deadlines() {
        let now = Instant::now();
        let count = Rc::new(Cell::new(0));
        let mut heap = BinaryHeap::new();
        for (seq, ms) in [(0u64, 30u64), (1, 10), (2, 10), (3, 20), (4, 10)] {
            let (_h, shared) = CallHandle::new(&count);
            heap.push(Timer {
                deadline: now + Duration::from_millis(ms),
                seq,
                every: None,
                shared,
                callback: seq,
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|t| t.callback)).collect();
        assert_eq!(order, [1, 2, 4, 3, 0]);
    }

    #[test]
    fn cancel_is_counted_once() {
        let count = Rc::new(Cell::new(0));
        let (h, shared) = CallHandle::new(&count);
        shared.set_in_heap(true);
        assert!(h.cancel());
        assert!(!h.cancel());
        assert!(shared.is_cancelled() && h.is_cancelled());
        assert_eq!(count.get(), 1);
    }
}

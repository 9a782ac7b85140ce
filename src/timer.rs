//! Timers and scheduled callbacks: the loop's heap of deadlines.

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a scheduled callback shares with its [`TimerHandle`].
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
/// Dropping the handle does not cancel the callback.
#[derive(Clone)]
pub struct TimerHandle {
    shared: Rc<Shared>,
    cancelled_count: Rc<Cell<usize>>,
}

impl TimerHandle {
    pub(crate) fn new(cancelled_count: &Rc<Cell<usize>>) -> (TimerHandle, Rc<Shared>) {
        let shared = Rc::new(Shared::default());
        let handle = TimerHandle {
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

    /// True once [`cancel`](TimerHandle::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
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
            let (_h, shared) = TimerHandle::new(&count);
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
        let (h, shared) = TimerHandle::new(&count);
        shared.set_in_heap(true);
        assert!(h.cancel());
        assert!(!h.cancel());
        assert!(shared.is_cancelled() && h.is_cancelled());
        assert_eq!(count.get(), 1);
    }
}

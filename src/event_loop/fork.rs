//! Forked children: [`EventLoop::close_after_fork`].
//!
//! `fork(2)` copies the whole process into the child, the loop included:
//! its selector's kernel object (on Linux the epoll instance itself, shared
//! with the parent, not a copy of it), its wake-up descriptors, every
//! registered connection, the socket pairs of its signal handlers, its
//! timers and callbacks. Only the thread that called `fork` exists in the
//! child. A child that goes on to do something else (serve one client with
//! blocking I/O, `exec` a program) should let go of all of it, and must do
//! so without changing the parent's loop: an `epoll_ctl` on the shared
//! instance (which unregistering, closing or dropping the loop makes) would
//! remove the parent's registrations, its wake-up and its timer descriptor.
//! [`EventLoop::close_after_fork`] does that.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use super::remote::Remote;
use super::EventLoop;
use crate::selector::{WakeState, Waker};
use crate::Backend;

impl<B: Backend> EventLoop<B> {
    /// Lets go of everything this loop holds, in a child process made by
    /// `fork(2)` from the process that created it, without touching the
    /// parent's loop. Unix only.
    ///
    /// - Every descriptor the loop holds is closed: its selector's kernel
    ///   object and wake-up descriptors, every registered object (the
    ///   parent's connections and listeners, dropped with their callbacks)
    ///   and both ends of every signal handler's socket pair. Nothing is
    ///   unregistered from the kernel object first: see
    ///   [`BaseSelector::close_after_fork`](crate::BaseSelector::close_after_fork)
    ///   for how the selector is released without an `epoll_ctl` (or kevent
    ///   change) that would reach the parent's instance.
    /// - Signal handlers are removed, as by
    ///   [`remove_signal_handler`](EventLoop::remove_signal_handler): in the
    ///   child, a signal the loop handled takes its default action again.
    ///   (signal-hook's registry is process memory, so this changes only the
    ///   child's copy of it.)
    /// - Timers, scheduled callbacks and the completions of offloaded work are
    ///   dropped without running. The worker threads of
    ///   [`run_in_executor`](EventLoop::run_in_executor) do not exist in the
    ///   child (only the thread that forked is copied), so the pool is
    ///   leaked rather than joined: joining would wait forever.
    ///
    /// The loop is then empty and its selector closed: [`run`](EventLoop::run)
    /// returns `Ok(())` at once, and registering fails with
    /// [`Error::Closed`](crate::Error::Closed). Drop it whenever convenient.
    ///
    /// It may be called from one of the loop's callbacks (a server forks
    /// in its accept callback): the source whose callback is running is not
    /// in the loop at that moment (the callback holds it), so it is closed
    /// when the callback returns, or never if the child leaves with
    /// `_exit(2)`: close it yourself if the child has no use for it.
    ///
    /// [`LoopHandle`](crate::LoopHandle)s and [`Waker`]s of this loop that
    /// the child still holds keep the wake-up descriptor open until they are
    /// dropped, and waking through them wakes the *parent's* loop
    /// spuriously: drop them in the child.
    ///
    /// References to the loop's wake-up that other threads held at the
    /// moment of the fork (a worker of the pool that had just handed a
    /// result over, a thread about to use a `LoopHandle`) are never dropped
    /// in the child, since those threads are not there: the wake-up
    /// descriptors they keep alive stay open. Fork while the loop's workers
    /// are idle.
    ///
    /// After `fork` in a multi-threaded program the child may only run
    /// async-signal-safe code until it `exec`s, and this frees memory and
    /// takes locks (signal-hook's registry): call it in children of a
    /// single-threaded process, as with any Rust code after `fork`.
    ///
    /// # Examples
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use selectloop::{EventLoop, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// lp.register(listener, EVENT_READ, |lp, listener: &mut TcpListener, _| {
    ///     let (stream, _) = listener.accept()?;
    ///     // SAFETY: fork(2) from a single-threaded process; the child only
    ///     // releases the loop and leaves with _exit(2).
    ///     match unsafe { libc::fork() } {
    ///         0 => {
    ///             lp.close_after_fork(); // the parent's loop is left as it is
    ///             drop(stream); // ... serve the client here ...
    ///             // SAFETY: _exit(2) ends the child without running the
    ///             // parent's destructors a second time.
    ///             unsafe { libc::_exit(0) }
    ///         }
    ///         -1 => return Err(std::io::Error::last_os_error().into()),
    ///         pid => {
    ///             let mut status = 0;
    ///             // SAFETY: waitpid(2) on our child with a valid pointer.
    ///             unsafe { libc::waitpid(pid, &mut status, 0) };
    ///             lp.stop();
    ///         }
    ///     }
    ///     Ok(())
    /// })?;
    /// let _client = TcpStream::connect(addr)?;
    /// lp.run()?; // the parent's loop: the child did not disturb it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_after_fork(&mut self) {
        // Signal registrations first: each drops signal-hook's write end of
        // its pair (the read end is a source of the selector).
        #[cfg(feature = "signals")]
        self.signals.release();
        self.sel.close_after_fork();
        self.internal_sources = 0;
        self.ready = VecDeque::new();
        self.from_io = VecDeque::new();
        self.timers.clear();
        // Handles still out there count cancellations in the old counter.
        self.cancelled = Rc::new(Cell::new(0));
        self.jobs.clear();
        if let Some(executor) = self.executor.take() {
            // Its threads were not copied into this process: dropping it
            // would join them, forever. Leak it (memory only).
            std::mem::forget(executor);
        }
        // The remote queue's waker holds the selector's notifier; handles
        // given out keep the old one, which only they keep alive now.
        self.remote = Arc::new(Remote::new(Waker::new(&WakeState::inert())));
    }
}

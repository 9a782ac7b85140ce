//! [`EventLoop`]: register a file object with an event mask and a callback,
//! and the loop calls `callback(loop, fileobj, event)` whenever it is ready.
//!
//! ```
//! use std::time::Duration;
//! use selectloop::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let ticks = std::rc::Rc::new(std::cell::Cell::new(0));
//! let seen = ticks.clone();
//! let every = lp.call_every(Duration::from_millis(1), move |_lp| {
//!     seen.set(seen.get() + 1);
//!     Ok(())
//! });
//! lp.call_later(Duration::from_millis(20), move |_lp| {
//!     every.cancel();
//!     Ok(())
//! });
//! lp.run()?; // returns once no sources or timers are left
//! assert!(ticks.get() >= 1);
//! # Ok::<(), selectloop::Error>(())
//! ```
//!
//! [`EventLoop`]'s own documentation opens with a complete echo server.
//!
//! # Re-entrancy
//! A callback gets `&mut EventLoop` and may do anything with it: register,
//! unregister (itself included), [`modify`](EventLoop::modify), replace a
//! callback ([`set_callback`](EventLoop::set_callback)), add or cancel timers,
//! [`stop`](EventLoop::stop). The loop guarantees, for the batch of events a
//! `select` returned:
//! - a source unregistered earlier in the batch gets no callback from it;
//! - a source registered during the batch, even one that reuses the closed
//!   descriptor number or slot of an unregistered one, never gets the old
//!   source's events ([`Token`]s carry a generation);
//! - a source modified to drop an event gets no callback for that event from
//!   the rest of the batch.
//!
//! # How it works
//! One iteration ([`run_once`](EventLoop::run_once); [`run`](EventLoop::run)
//! repeats it):
//! 1. take what other threads sent (`remote.rs`); the wait's timeout is zero
//!    if callbacks are queued, else until the next timer (`schedule.rs`);
//! 2. the selector waits and leaves the ready `(slot, mask)` list in place,
//!    each slot once, masks within the registered events;
//! 3. [dispatch](EventLoop::run_once) walks that list: for each entry, the
//!    slot's generation and the batch it was reported in are checked, the
//!    handler (object + callback, one box, `registry.rs`) is taken out of its
//!    slot, called with `&mut EventLoop`, the object and an [`IoEvent`]
//!    carrying the typed [`Token`], and put back unless the source was
//!    unregistered meanwhile (then it is dropped, closing the object);
//! 4. due timers and `call_soon` callbacks queued before this iteration run
//!    in FIFO order; errors go to the error handler (`report.rs`).
//!
//! Invariants: a source's generation is unique in the process, so a token
//! never names a later source in the same slot; a handler is out of its slot
//! exactly while its callback runs (so `take`/`with_source` answer
//! [`InUse`](crate::Error::InUse) and a self-unregistration only drops it
//! after the callback returns); an entry of the batch is acted on only if
//! its slot was reported in this batch, at this position, and is not paused.
//!
//! # Errors and panics
//! A callback that returns `Err` does not stop the loop: the error goes to the
//! [error handler](EventLoop::set_error_handler), by default one that logs it
//! (with descriptor and peer address) through the `log` crate, or to standard
//! error when no logger takes it, and unregisters
//! and drops the failing source. Only a failing `select` ends
//! [`run`](EventLoop::run) with `Err`. A callback that panics unwinds out of
//! `run`; its source is unregistered and dropped on the way, and the loop
//! stays usable.
//!
//! The loop's own sources (a signal's socket pair) are never dropped that
//! way: the `Err` of a signal handler (`add_signal_handler`) reaches
//! the error handler with `token: None`, and a signal handler's panic
//! unwinds out of `run` as well; in both cases the handler stays installed
//! and later signals are delivered to it. An error handler that panics
//! unwinds out of `run` too, and stays installed.
//! `net::serve` keeps its listener through an `on_accept` that fails or
//! panics.

#[cfg(unix)]
mod fork;
mod group;
mod lend;
mod offload;
mod registry;
mod remote;
mod report;
mod schedule;
#[cfg(feature = "signals")]
mod signal;
mod token;

use std::cell::Cell;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

pub use self::group::LoopGroup;
pub use self::remote::LoopHandle;
pub use self::report::{CallbackError, LoopStats};
#[allow(deprecated)]
pub use self::schedule::{CallHandle, TimerHandle};
#[cfg(feature = "signals")]
pub use self::signal::Signal;
pub use self::token::{IoEvent, Token};

#[cfg(feature = "net")]
pub(crate) use self::report::emit;

use self::offload::{DoneCallback, Executor};
use self::registry::{Entry, Rebuild};
use self::remote::Remote;
use self::report::ErrorHandler;
use self::schedule::{Scheduled, Timer, TimerCallback};
use crate::sys::LoopFd;
use crate::{Backend, BaseSelector, DefaultBackend, Error, Result, Selector};

/// A callback event loop over a selector.
///
/// A complete echo server: `accept` registers each connection with a callback
/// that echoes what it reads, and keeps what the peer is not ready to take
/// until the socket is writable again (reading nothing meanwhile).
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// use selectloop::{EventLoop, IoEvent, EVENT_READ, EVENT_WRITE};
///
/// fn on_conn(lp: &mut EventLoop, conn: &mut TcpStream, ev: IoEvent<TcpStream>, unsent: &mut Vec<u8>) -> anyhow::Result<()> {
///     let me = ev.token(); // this connection's own token
///     if ev.is_readable() && unsent.is_empty() {
///         let mut buf = [0; 4096];
///         match conn.read(&mut buf) {
///             Ok(0) => return Ok(lp.unregister(me)?), // end of stream: close
///             Ok(n) => unsent.extend_from_slice(&buf[..n]),
///             Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
///             Err(e) => return Err(e.into()), // the loop logs it and drops the connection
///         }
///     }
///     while !unsent.is_empty() {
///         match conn.write(unsent) {
///             Ok(n) => { unsent.drain(..n); }
///             Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
///             Err(e) => return Err(e.into()),
///         }
///     }
///     // Backpressure: wait for writability while data is pending, else read.
///     lp.modify(me, if unsent.is_empty() { EVENT_READ } else { EVENT_WRITE })?;
///     Ok(())
/// }
///
/// let mut lp = EventLoop::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// let addr = listener.local_addr()?;
/// lp.register(listener, EVENT_READ, |lp, listener: &mut TcpListener, _ev| {
///     let (conn, _peer) = listener.accept()?;
///     conn.set_nonblocking(true)?;
///     let mut unsent = Vec::new();
///     lp.register(conn, EVENT_READ, move |lp, conn: &mut TcpStream, ev| {
///         on_conn(lp, conn, ev, &mut unsent)
///     })?;
///     Ok(())
/// })?;
///
/// // A client on another thread; stop the loop when it got its echo back.
/// let handle = lp.handle();
/// let client = std::thread::spawn(move || -> io::Result<Vec<u8>> {
///     let mut c = TcpStream::connect(addr)?;
///     c.write_all(b"hello, loop")?;
///     let mut echoed = vec![0; 11];
///     c.read_exact(&mut echoed)?;
///     handle.stop();
///     Ok(echoed)
/// });
/// lp.run()?;
/// assert_eq!(client.join().unwrap()?, b"hello, loop");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
///
/// # Threads
/// A loop stays on the thread that made it: it is not `Send`, so callbacks
/// need not be either (they may hold `Rc`s). Other threads reach it through a
/// [`LoopHandle`] (`Send + Sync`); [`LoopGroup`] runs one loop per thread.
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// send(selectloop::EventLoop::new()?); // error[E0277]: cannot be sent between threads
/// # Ok::<(), selectloop::Error>(())
/// ```
///
/// `B` is the selector backend; the default is
/// [`DefaultSelector`](crate::DefaultSelector)'s, and
/// [`EventLoop::with_backend`] takes any other. The [module
/// documentation](crate::event_loop) lists what callbacks may do and the
/// guarantees that hold while they do it.
pub struct EventLoop<B: Backend = DefaultBackend> {
    /// First, so that even without the explicit `Drop` below signal-hook
    /// stops writing to the loop's signal socket pairs before the selector
    /// (which owns their read ends) closes them.
    #[cfg(feature = "signals")]
    signals: signal::Signals<B>,
    sel: BaseSelector<B, LoopFd, Entry<B>>,
    internal_sources: usize,
    /// The source whose callback is running.
    current: Option<Token>,
    rebuild: Option<Rebuild<B>>,
    /// Set by a callback about to re-raise a panic that must not cost its
    /// source its registration (`net::serve`'s listener).
    keep_source_on_panic: bool,
    running: bool,

    ready: VecDeque<Scheduled<B>>,
    /// Reused: what I/O callbacks schedule, held back to the next iteration.
    from_io: VecDeque<Scheduled<B>>,
    timers: BinaryHeap<Timer<TimerCallback<B>>>,
    next_seq: u64,
    cancelled: Rc<Cell<usize>>,
    remote: Arc<Remote<B>>,

    executor: Option<Executor>,
    executor_threads: usize,
    jobs: Slab<DoneCallback<B>>,

    error_handler: Option<ErrorHandler<B>>,
    slow_threshold: Option<Duration>,
    stats: LoopStats,
}

impl<B: Backend> Drop for EventLoop<B> {
    /// Stops the loop's signal deliveries before anything else goes: a
    /// signal arriving meanwhile must never be written to a socket pair whose
    /// read end (a source in the selector) is already closed.
    fn drop(&mut self) {
        #[cfg(feature = "signals")]
        self.signals.clear();
    }
}

impl EventLoop<DefaultBackend> {
    /// Creates a loop on the platform's [`DefaultSelector`](crate::DefaultSelector).
    ///
    /// # Errors
    /// - [`Error::Io`] if the selector cannot be opened.
    pub fn new() -> Result<Self> {
        EventLoop::with_backend()
    }
}

impl<B: Backend> EventLoop<B> {
    /// Creates a loop on backend `B`, e.g.
    /// `EventLoop::<PollBackend>::with_backend()` for poll(2) / WSAPoll.
    ///
    /// # Errors
    /// - [`Error::Io`] if the selector cannot be opened.
    pub fn with_backend() -> Result<Self> {
        let sel = BaseSelector::new()?;
        let waker = sel.waker()?;
        Ok(EventLoop {
            #[cfg(feature = "signals")]
            signals: Default::default(),
            sel,
            internal_sources: 0,
            current: None,
            rebuild: None,
            keep_source_on_panic: false,
            running: false,
            ready: VecDeque::new(),
            from_io: VecDeque::new(),
            timers: BinaryHeap::new(),
            next_seq: 0,
            cancelled: Rc::new(Cell::new(0)),
            remote: Arc::new(Remote::new(waker)),
            executor: None,
            executor_threads: std::thread::available_parallelism()
                .map_or(4, |n| n.get().clamp(2, 8)),
            jobs: Slab::new(),
            error_handler: None,
            slow_threshold: None,
            stats: LoopStats::default(),
        })
    }

    // ----- running ----------------------------------------------------------

    /// True when nothing is left that could run a callback: no sources, no
    /// timers, no scheduled callbacks, no offloaded work.
    fn is_idle(&self) -> bool {
        self.source_count() == 0
            && self.ready.is_empty()
            && self.jobs.is_empty()
            && self.timers.len() == self.cancelled.get()
            && !self.remote.pending.load(Ordering::Acquire)
    }

    /// Runs until [`stop`](EventLoop::stop) (here or from a [`LoopHandle`]),
    /// or until no sources, timers, scheduled callbacks or offloaded work
    /// remain.
    ///
    /// # Errors
    /// - [`Error::Io`] if `select` fails; the loop stays usable;
    /// - [`Error::AlreadyRunning`] if called from one of the loop's callbacks.
    ///
    /// # Panics
    /// A panic in a callback unwinds out of `run`, after unregistering that
    /// callback's source; the loop can be run again afterwards.
    pub fn run(&mut self) -> Result<()> {
        self.guarded(|lp| loop {
            if lp.is_idle() {
                return Ok(());
            }
            lp.iterate(None)?;
            if lp.remote.stop.swap(false, Ordering::AcqRel) {
                return Ok(());
            }
        })
    }

    /// Runs one iteration: waits up to `timeout` for I/O (`None`: until
    /// something happens; less if a timer is due sooner or a callback is
    /// scheduled), runs the ready I/O callbacks, then the due timers and
    /// scheduled callbacks.
    ///
    /// # Errors
    /// As for [`run`](EventLoop::run).
    pub fn run_once(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.guarded(|lp| lp.iterate(timeout))
    }

    fn guarded(&mut self, body: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        if self.running {
            return Err(Error::AlreadyRunning);
        }
        self.running = true;
        let result = panic::catch_unwind(AssertUnwindSafe(|| body(self)));
        self.running = false;
        self.current = None;
        self.rebuild = None;
        self.keep_source_on_panic = false;
        result.unwrap_or_else(|panic| panic::resume_unwind(panic))
    }

    fn iterate(&mut self, max_wait: Option<Duration>) -> Result<()> {
        self.stats.iterations += 1;
        self.collect_remote();
        let timeout = if !self.ready.is_empty() || self.remote.stop.load(Ordering::Acquire) {
            Some(Duration::ZERO)
        } else {
            self.prune_cancelled();
            match self.timers.peek() {
                Some(next) => {
                    let until = next.deadline.saturating_duration_since(Instant::now());
                    Some(max_wait.map_or(until, |max| max.min(until)))
                }
                None => max_wait,
            }
        };
        let queued = self.ready.len();
        self.dispatch_io(timeout)?;
        // What the I/O callbacks just scheduled runs on the next iteration, as
        // `call_soon` promises (and asyncio does): set it aside for now.
        let mut from_io = mem::take(&mut self.from_io);
        from_io.extend(self.ready.drain(queued..));

        // Timers due now join the scheduled callbacks; only what is in the
        // queue now runs in this iteration, so neither timers nor I/O starve.
        self.queue_due_timers();
        self.collect_remote();
        let run_now = self.ready.len();
        self.ready.append(&mut from_io);
        self.from_io = from_io;
        for _ in 0..run_now {
            let Some(item) = self.ready.pop_front() else {
                break;
            };
            self.run_scheduled(item);
        }
        Ok(())
    }

    fn dispatch_io(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.sel.select_slots(timeout)?;
        // Callbacks cannot select (`AlreadyRunning`), so the selector's ready
        // list stays as it is while this walks it.
        for i in 0..self.sel.ready_len() {
            // `None` if an earlier callback of this batch unregistered the
            // source (its slot may hold a new source by now, which must not
            // see the old one's events).
            let Some((slot, key, mask)) = self.sel.ready_entry_mut(i) else {
                continue;
            };
            // Modified by an earlier callback of this batch to drop an event?
            let Some(mask) = mask.intersection(key.events) else {
                continue;
            };
            let fd = key.fd;
            let gen = key.data.gen;
            let internal = key.data.internal;
            let Some(mut handler) = key.data.handler.take() else {
                continue;
            };
            let token = Token::new(slot, gen);
            self.current = Some(token);
            self.stats.events_dispatched += 1;
            let started = self.slow_threshold.map(|_| Instant::now());
            let result =
                panic::catch_unwind(AssertUnwindSafe(|| handler.call(self, slot, gen, mask)));
            self.current = None;
            let result = match result {
                Ok(result) => result,
                Err(panic) => {
                    self.rebuild = None;
                    let keep = mem::take(&mut self.keep_source_on_panic) || internal;
                    match self.sel.key_mut(slot) {
                        // The loop's own source (a signal's) stays: dropping
                        // it would lose every later signal. So does one whose
                        // callback asked for it (`net::serve`'s listener).
                        Some(key) if keep && key.data.gen == gen => {
                            key.data.handler = Some(handler);
                        }
                        _ => {
                            // Unregister before the object closes, then unwind.
                            if self.is_registered(token) {
                                let _ = self.unregister(token);
                            }
                            drop(handler);
                        }
                    }
                    panic::resume_unwind(panic);
                }
            };
            if let Some(started) = started {
                self.check_slow(started, Some((token, fd)));
            }
            let peer = if result.is_err() {
                handler.peer()
            } else {
                None
            };
            let rebuild = self.rebuild.take();
            match self.sel.key_mut(slot) {
                Some(key) if key.data.gen == gen => {
                    key.data.handler = Some(match rebuild {
                        Some(rebuild) => rebuild(handler),
                        None => handler,
                    });
                }
                // Unregistered by its own callback: the selector no longer
                // watches it, so it may close now.
                _ => drop(handler),
            }
            if let Err(error) = result {
                if internal {
                    // A signal handler's error: no source of the user's to
                    // name, and none the error policy may drop (the loop's
                    // own source must go on delivering).
                    self.report(None, None, None, error);
                } else {
                    self.report(Some(token), Some(fd), peer, error);
                }
            }
        }
        Ok(())
    }
}

impl<B: Backend> EventLoop<B> {
    /// Called by a source's callback just before it re-raises a panic: the
    /// source stays registered (instead of being unregistered and dropped)
    /// while the panic unwinds out of `run`.
    #[cfg(feature = "net")]
    pub(crate) fn keep_source_on_panic(&mut self) {
        self.keep_source_on_panic = true;
    }
}

impl<B: Backend> fmt::Debug for EventLoop<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("backend", &self.sel.backend_name())
            .field("sources", &self.source_count())
            .field("timers", &(self.timers.len() - self.cancelled.get()))
            .field("scheduled", &self.ready.len())
            .field("stats", &self.stats)
            .finish()
    }
}

//! [`EventLoop`]: register a file object with an event mask and a callback,
//! and the loop calls `callback(loop, fileobj, mask)` whenever it is ready.
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
//! # Errors and panics
//! A callback that returns `Err` does not stop the loop: the error goes to the
//! [error handler](EventLoop::set_error_handler), by default one that logs it
//! (with descriptor and peer address) through the `log` crate and unregisters
//! and drops the failing source. Only a failing `select` ends
//! [`run`](EventLoop::run) with `Err`. A callback that panics unwinds out of
//! `run`; its source is unregistered and dropped on the way, and the loop
//! stays usable.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::mem;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::executor::Executor;
use crate::sys::LoopFd;
use crate::timer::{Shared, Timer, TimerHandle};
use crate::{Backend, BaseSelector, DefaultBackend, Error, Fd, Interest, Result, Selector, Source};

/// Names a source registered with an [`EventLoop`].
///
/// Tokens carry a generation: once a source is unregistered its token is
/// dead for good, even if a new source takes the same slot or descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    slot: usize,
    gen: u64,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.slot, self.gen)
    }
}

/// A callback the loop runs once (`call_soon`, `call_later`, `call_at`).
type OnceCallback<B> = Box<dyn FnOnce(&mut EventLoop<B>) -> anyhow::Result<()>>;
/// A callback the loop runs repeatedly (`call_every`).
type EveryCallback<B> = Box<dyn FnMut(&mut EventLoop<B>) -> anyhow::Result<()>>;
/// A callback sent from another thread.
type RemoteCallback<B> = Box<dyn FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + Send>;
/// What to do with an offloaded job's result on the loop thread.
type DoneCallback<B> =
    Box<dyn FnOnce(&mut EventLoop<B>, Box<dyn Any + Send>) -> anyhow::Result<()>>;
/// A replacement for the handler of the source whose callback is running.
type Rebuild<B> = Box<dyn FnOnce(Box<dyn Handler<B>>) -> Box<dyn Handler<B>>>;
/// The error handler.
type ErrorHandler<B> = Box<dyn FnMut(&mut EventLoop<B>, CallbackError)>;

enum TimerCallback<B: Backend> {
    Once(OnceCallback<B>),
    Every(EveryCallback<B>),
}

enum Scheduled<B: Backend> {
    Soon(Rc<Shared>, OnceCallback<B>),
    Timer(Timer<TimerCallback<B>>),
    Remote(RemoteCallback<B>),
}

/// A registered object and its callback, behind one pointer.
trait Handler<B: Backend> {
    fn call(&mut self, lp: &mut EventLoop<B>, mask: Interest) -> anyhow::Result<()>;
    fn into_obj(self: Box<Self>) -> Box<dyn Any>;
    fn obj_mut(&mut self) -> &mut dyn Any;
    fn peer(&self) -> Option<SocketAddr>;
}

struct Typed<T, C> {
    obj: T,
    callback: C,
}

impl<B, T, C> Handler<B> for Typed<T, C>
where
    B: Backend,
    T: Source + 'static,
    C: FnMut(&mut EventLoop<B>, &mut T, Interest) -> anyhow::Result<()> + 'static,
{
    fn call(&mut self, lp: &mut EventLoop<B>, mask: Interest) -> anyhow::Result<()> {
        (self.callback)(lp, &mut self.obj, mask)
    }

    fn into_obj(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.obj)
    }

    fn obj_mut(&mut self) -> &mut dyn Any {
        &mut self.obj
    }

    fn peer(&self) -> Option<SocketAddr> {
        socket2::SockRef::from(&self.obj)
            .peer_addr()
            .ok()?
            .as_socket()
    }
}

/// The selector's data for each source.
struct Entry<B: Backend> {
    gen: u64,
    type_id: TypeId,
    internal: bool,
    /// `None` while the source's callback runs.
    handler: Option<Box<dyn Handler<B>>>,
}

/// What the other threads share with the loop.
struct Remote<B: Backend> {
    queue: Mutex<Vec<RemoteCallback<B>>>,
    pending: AtomicBool,
    stop: AtomicBool,
    waker: crate::Waker,
}

impl<B: Backend> Remote<B> {
    fn push(&self, callback: RemoteCallback<B>) {
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

/// A callback's failure, as the [error handler](EventLoop::set_error_handler) gets it.
#[derive(Debug)]
pub struct CallbackError {
    /// The source whose callback failed; `None` for timers, scheduled
    /// callbacks and errors [`net::serve`](crate::net::serve) reports for a
    /// connection it accepted.
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

/// A callback event loop over a selector.
///
/// A complete echo server: `accept` registers each connection with a callback
/// that echoes what it reads, and keeps what the peer is not ready to take
/// until the socket is writable again (reading nothing meanwhile).
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// use selectloop::{EventLoop, Interest, Token, EVENT_READ, EVENT_WRITE};
///
/// fn on_conn(lp: &mut EventLoop, conn: &mut TcpStream, mask: Interest, unsent: &mut Vec<u8>) -> anyhow::Result<()> {
///     let me: Token = lp.current_token().expect("inside a callback");
///     if mask.is_readable() && unsent.is_empty() {
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
/// lp.register(listener, EVENT_READ, |lp, listener: &mut TcpListener, _mask| {
///     let (conn, _peer) = listener.accept()?;
///     conn.set_nonblocking(true)?;
///     let mut unsent = Vec::new();
///     lp.register(conn, EVENT_READ, move |lp, conn: &mut TcpStream, mask| {
///         on_conn(lp, conn, mask, &mut unsent)
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
/// `B` is the selector backend; the default is
/// [`DefaultSelector`](crate::DefaultSelector)'s, and
/// [`EventLoop::with_backend`] takes any other. The [module
/// documentation](crate::event_loop) lists what callbacks may do and the
/// guarantees that hold while they do it.
pub struct EventLoop<B: Backend = DefaultBackend> {
    sel: BaseSelector<B, LoopFd, Entry<B>>,
    next_gen: u64,
    internal_sources: usize,
    current: Option<Token>,
    rebuild: Option<Rebuild<B>>,
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
    pub(crate) signals: crate::signal::Signals<B>,
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
            sel,
            next_gen: 1,
            internal_sources: 0,
            current: None,
            rebuild: None,
            running: false,
            ready: VecDeque::new(),
            from_io: VecDeque::new(),
            timers: BinaryHeap::new(),
            next_seq: 0,
            cancelled: Rc::new(Cell::new(0)),
            remote: Arc::new(Remote {
                queue: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                waker,
            }),
            executor: None,
            executor_threads: std::thread::available_parallelism()
                .map_or(4, |n| n.get().clamp(2, 8)),
            jobs: Slab::new(),
            error_handler: None,
            slow_threshold: None,
            stats: LoopStats::default(),
            signals: Default::default(),
        })
    }

    /// Registers `fileobj` for `events`; the loop then calls
    /// `callback(loop, &mut fileobj, mask)` each time it is ready.
    ///
    /// The loop owns `fileobj` until it is unregistered; the callback gets it
    /// with its own type. Level-triggered: the callback runs on every
    /// iteration while the object stays ready.
    ///
    /// # Errors
    /// - [`Error::AlreadyRegistered`] if the descriptor is registered already;
    /// - [`Error::Io`] if the kernel refuses it (epoll refuses regular files).
    ///
    /// On error `fileobj` is dropped.
    pub fn register<T, C>(&mut self, fileobj: T, events: Interest, callback: C) -> Result<Token>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, Interest) -> anyhow::Result<()> + 'static,
    {
        self.register_inner(fileobj, events, callback, false)
    }

    /// Like [`register`](EventLoop::register), for a callback that needs its
    /// own token from the start (to keep in shared state, say): `make`
    /// receives the token the source is about to get and returns the callback.
    ///
    /// # Errors
    /// As for [`register`](EventLoop::register).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{EventLoop, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let token = lp.register_with(socket, EVENT_READ, |me| {
    ///     move |lp: &mut EventLoop, _s: &mut UdpSocket, _mask| {
    ///         assert_eq!(lp.current_token(), Some(me));
    ///         Ok(())
    ///     }
    /// })?;
    /// assert!(lp.is_registered(token));
    /// # Ok::<(), selectloop::Error>(())
    /// ```
    pub fn register_with<T, C>(
        &mut self,
        fileobj: T,
        events: Interest,
        make: impl FnOnce(Token) -> C,
    ) -> Result<Token>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, Interest) -> anyhow::Result<()> + 'static,
    {
        let expected = Token {
            slot: self.sel.vacant_slot(),
            gen: self.next_gen,
        };
        let token = self.register_inner(fileobj, events, make(expected), false)?;
        debug_assert_eq!(token, expected, "nothing registers between the two");
        Ok(token)
    }

    pub(crate) fn register_inner<T, C>(
        &mut self,
        fileobj: T,
        events: Interest,
        callback: C,
        internal: bool,
    ) -> Result<Token>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, Interest) -> anyhow::Result<()> + 'static,
    {
        let gen = self.next_gen;
        let fd = fileobj.fileno();
        let entry = Entry {
            gen,
            type_id: TypeId::of::<T>(),
            internal,
            handler: Some(Box::new(Typed {
                obj: fileobj,
                callback,
            })),
        };
        let slot = self.sel.register_slot(LoopFd(fd), events, entry).map_err(crate::Error::from)?;
        self.next_gen += 1;
        self.internal_sources += usize::from(internal);
        Ok(Token { slot, gen })
    }

    fn entry(&self, token: Token) -> Result<&Entry<B>> {
        match self.sel.key(token.slot) {
            Some(key) if key.data.gen == token.gen => Ok(&key.data),
            _ => Err(Error::InvalidToken),
        }
    }

    fn entry_mut(&mut self, token: Token) -> Result<&mut Entry<B>> {
        match self.sel.key_mut(token.slot) {
            Some(key) if key.data.gen == token.gen => Ok(&mut key.data),
            _ => Err(Error::InvalidToken),
        }
    }

    fn check_type<T: 'static>(entry: &Entry<B>) -> Result<()> {
        if entry.type_id == TypeId::of::<T>() {
            Ok(())
        } else {
            Err(Error::InvalidToken)
        }
    }

    /// Unregisters a source and drops (closes) its object. Allowed from any
    /// callback, its own included: a source unregistering itself is dropped as
    /// soon as its callback returns.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is already unregistered.
    pub fn unregister(&mut self, token: Token) -> Result<()> {
        let internal = self.entry(token)?.internal;
        self.internal_sources -= usize::from(internal);
        drop(self.sel.unregister_slot(token.slot));
        Ok(())
    }

    /// Unregisters a source and gives its object back.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is already unregistered;
    /// - [`Error::TypeMismatch`] if its object is not a `T` (it stays registered);
    /// - [`Error::InUse`] if called from the source's own callback, which
    ///   borrows the object (it stays registered; use [`unregister`](EventLoop::unregister)
    ///   there, or take it from a [`call_soon`](EventLoop::call_soon) callback).
    pub fn take<T: 'static>(&mut self, token: Token) -> Result<T> {
        let entry = self.entry(token)?;
        Self::check_type::<T>(entry)?;
        if entry.handler.is_none() {
            return Err(Error::InUse);
        }
        self.internal_sources -= usize::from(entry.internal);
        let key = self.sel.unregister_slot(token.slot);
        let handler = key.data.handler.expect("checked above");
        Ok(*handler
            .into_obj()
            .downcast::<T>()
            .expect("type checked above"))
    }

    /// Runs `f` on a source's object, e.g. to write to another client from
    /// this one's callback.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::TypeMismatch`] if its object is not a `T`;
    /// - [`Error::InUse`] if called from the source's own callback (which has
    ///   the object already).
    pub fn with_source<T: 'static, R>(
        &mut self,
        token: Token,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R> {
        let entry = self.entry_mut(token)?;
        Self::check_type::<T>(entry)?;
        let handler = entry.handler.as_mut().ok_or(Error::InUse)?;
        Ok(f(handler
            .obj_mut()
            .downcast_mut::<T>()
            .expect("type checked above")))
    }

    /// Changes the events a source is watched for. A source that drops an event
    /// gets no callback for it from the rest of the current batch.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::Io`] if the kernel refuses (the source keeps its old events).
    pub fn modify(&mut self, token: Token, events: Interest) -> Result<()> {
        match self.sel.key(token.slot) {
            // The common case on a hot path: no change, no second lookup.
            Some(key) if key.data.gen == token.gen && key.events == events => Ok(()),
            Some(key) if key.data.gen == token.gen => self.sel.modify_slot(token.slot, events),
            _ => Err(Error::InvalidToken),
        }
    }

    /// Stops watching a source without unregistering it (asyncio's
    /// `pause_reading`, for every event): it gets no callbacks until
    /// [`resume`](EventLoop::resume), keeps its token, object and callback,
    /// and still counts as a source for [`run`](EventLoop::run). Useful for a
    /// listener out of descriptors, or a peer that must wait. Pausing a
    /// paused source does nothing.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::Io`] if the kernel refuses (the source stays watched).
    pub fn pause(&mut self, token: Token) -> Result<()> {
        self.entry(token)?;
        self.sel.pause_slot(token.slot)
    }

    /// Watches a paused source again, for its current events (a
    /// [`modify`](EventLoop::modify) while paused takes effect here).
    /// Resuming a source that is not paused does nothing.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::Io`] if the kernel refuses (the source stays paused).
    pub fn resume(&mut self, token: Token) -> Result<()> {
        self.entry(token)?;
        self.sel.resume_slot(token.slot)
    }

    /// True if the source is [paused](EventLoop::pause).
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered.
    pub fn is_paused(&self, token: Token) -> Result<bool> {
        self.entry(token)?;
        Ok(self.sel.is_paused(token.slot))
    }

    /// The events a source is watched for.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered.
    pub fn events(&self, token: Token) -> Result<Interest> {
        self.entry(token)?;
        Ok(self.sel.key(token.slot).expect("checked").events)
    }

    /// Replaces a source's callback; allowed from any callback, its own included
    /// (the new one is used from the next event on).
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::TypeMismatch`] if its object is not a `T` (nothing changes).
    pub fn set_callback<T, C>(&mut self, token: Token, callback: C) -> Result<()>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, Interest) -> anyhow::Result<()> + 'static,
    {
        let current = self.current;
        let entry = self.entry_mut(token)?;
        Self::check_type::<T>(entry)?;
        let rebuild: Rebuild<B> = Box::new(move |old: Box<dyn Handler<B>>| {
            let obj = *old.into_obj().downcast::<T>().expect("type checked above");
            Box::new(Typed { obj, callback })
        });
        match entry.handler.take() {
            Some(old) => entry.handler = Some(rebuild(old)),
            None => {
                debug_assert_eq!(current, Some(token));
                self.rebuild = Some(rebuild);
            }
        }
        Ok(())
    }

    /// True while `token` names a registered source.
    pub fn is_registered(&self, token: Token) -> bool {
        self.entry(token).is_ok()
    }

    /// The source whose callback is running, if any: how a callback learns its own token.
    pub fn current_token(&self) -> Option<Token> {
        self.current
    }

    /// How many sources are registered (not counting the loop's own, such as
    /// signal pipes).
    pub fn source_count(&self) -> usize {
        self.sel.len() - self.internal_sources
    }

    // ----- scheduling -------------------------------------------------------

    fn schedule(
        &mut self,
        deadline: Instant,
        every: Option<Duration>,
        callback: TimerCallback<B>,
    ) -> TimerHandle {
        let (handle, shared) = TimerHandle::new(&self.cancelled);
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
    ) -> TimerHandle {
        let (handle, shared) = TimerHandle::new(&self.cancelled);
        self.ready.push_back(Scheduled::Soon(shared, Box::new(f)));
        handle
    }

    /// Runs `f` once, `delay` from now (monotonic clock).
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> TimerHandle {
        let deadline = far_deadline(Instant::now(), delay);
        self.schedule(deadline, None, TimerCallback::Once(Box::new(f)))
    }

    /// Runs `f` once at `deadline`; timers with equal deadlines run in the
    /// order they were scheduled.
    pub fn call_at(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&mut EventLoop<B>) -> anyhow::Result<()> + 'static,
    ) -> TimerHandle {
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
    ) -> TimerHandle {
        let period = period.max(Duration::from_nanos(1));
        let deadline = far_deadline(Instant::now(), period);
        self.schedule(deadline, Some(period), TimerCallback::Every(Box::new(f)))
    }

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

    // ----- offload ----------------------------------------------------------

    /// Sets the number of worker threads for [`run_in_executor`](EventLoop::run_in_executor)
    /// (default: the number of CPUs, between 2 and 8). Takes effect when the
    /// pool starts, on the first offload.
    pub fn set_executor_threads(&mut self, threads: usize) {
        self.executor_threads = threads.max(1);
    }

    /// Runs `work` on the loop's thread pool, then `done(loop, result)` on the
    /// loop's thread. The loop keeps serving meanwhile, and [`run`](EventLoop::run)
    /// does not return while offloaded work is pending. If `work` panics,
    /// `done` is not called and the panic goes to the error handler as an error.
    /// Dropping the loop waits for running work to finish.
    ///
    /// # Errors
    /// - [`Error::Io`] if the pool's threads cannot be started.
    pub fn run_in_executor<R, W, D>(&mut self, work: W, done: D) -> Result<()>
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
        D: FnOnce(&mut EventLoop<B>, R) -> anyhow::Result<()> + 'static,
    {
        if self.executor.is_none() {
            self.executor = Some(Executor::new(self.executor_threads)?);
        }
        let job = self.jobs.insert(Box::new(
            move |lp: &mut EventLoop<B>, result: Box<dyn Any + Send>| {
                done(
                    lp,
                    *result.downcast::<R>().expect("the job's own result type"),
                )
            },
        ));
        let remote = Arc::clone(&self.remote);
        let executor = self.executor.as_ref().expect("started above");
        executor.submit(Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(work));
            remote.push(Box::new(move |lp: &mut EventLoop<B>| {
                let done = lp.jobs.remove(job);
                match result {
                    Ok(value) => done(lp, Box::new(value)),
                    Err(panic) => Err(anyhow::anyhow!(
                        "offloaded work panicked: {}",
                        panic_message(&*panic)
                    )),
                }
            }));
        }));
        Ok(())
    }

    // ----- errors and debugging ---------------------------------------------

    /// Replaces the error handler, which gets every error a callback returns.
    /// The default logs it through the `log` crate (with descriptor and peer)
    /// and unregisters the failing source; a handler of yours decides for
    /// itself (call [`unregister`](EventLoop::unregister) with `error.token` to
    /// do the same).
    pub fn set_error_handler(
        &mut self,
        handler: impl FnMut(&mut EventLoop<B>, CallbackError) + 'static,
    ) {
        self.error_handler = Some(Box::new(handler));
    }

    /// Warns (through `log`) about every callback that runs longer than
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
    pub(crate) fn report_detached(&mut self, error: anyhow::Error) {
        self.report(None, None, None, error);
    }

    fn report(
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
                handler(self, failure);
                if self.error_handler.is_none() {
                    self.error_handler = Some(handler);
                }
            }
            None => {
                log::error!("{failure}; source dropped");
                if let Some(token) = token {
                    let _ = self.unregister(token);
                }
            }
        }
    }

    /// Warns if the callback that began at `started` ran too long; `source`
    /// names its source, `None` for scheduled callbacks.
    fn check_slow(&mut self, started: Instant, source: Option<(Token, Fd)>) {
        let Some(threshold) = self.slow_threshold else {
            return;
        };
        let took = started.elapsed();
        if took >= threshold {
            self.stats.slow_callbacks += 1;
            match source {
                Some((token, fd)) => log::warn!(
                    "callback of source {token} (fd {fd}) took {took:?} (threshold {threshold:?})"
                ),
                None => log::warn!("scheduled callback took {took:?} (threshold {threshold:?})"),
            }
        }
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
        if !self.timers.is_empty() {
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

    fn collect_remote(&mut self) {
        if self.remote.pending.swap(false, Ordering::AcqRel) {
            let mut queue = self.remote.queue.lock().unwrap_or_else(|e| e.into_inner());
            self.ready.extend(queue.drain(..).map(Scheduled::Remote));
        }
    }

    /// Drops cancelled timers from the top of the heap, and rebuilds the heap
    /// when more than half of it is cancelled (as asyncio does).
    fn prune_cancelled(&mut self) {
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

    fn run_scheduled(&mut self, item: Scheduled<B>) {
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
            let Some(mut handler) = key.data.handler.take() else {
                continue;
            };
            let token = Token { slot, gen };
            self.current = Some(token);
            self.stats.events_dispatched += 1;
            let started = self.slow_threshold.map(|_| Instant::now());
            let result = panic::catch_unwind(AssertUnwindSafe(|| handler.call(self, mask)));
            self.current = None;
            let result = match result {
                Ok(result) => result,
                Err(panic) => {
                    // Unregister before the object closes, then unwind.
                    self.rebuild = None;
                    if self.is_registered(token) {
                        let _ = self.unregister(token);
                    }
                    drop(handler);
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
                self.report(Some(token), Some(fd), peer, error);
            }
        }
        Ok(())
    }
}

/// A deadline `delay` after `from`, or about a century later if that overflows.
fn far_deadline(from: Instant, delay: Duration) -> Instant {
    from.checked_add(delay)
        .or_else(|| from.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(from)
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
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

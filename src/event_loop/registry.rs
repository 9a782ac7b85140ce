//! The loop's sources: each registered object sits with its callback behind
//! one pointer in the selector's data, next to its generation.
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use selectloop::{EventLoop, Token, EVENT_READ};
//!
//! let mut lp = EventLoop::new()?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let token: Token<TcpListener> = lp.register(listener, EVENT_READ, |_, _, _| Ok(()))?;
//! assert_eq!(lp.with_source(token, |l| l.local_addr())??, addr);
//! let listener: TcpListener = lp.take(token)?; // unregistered, and ours again
//! assert!(!lp.is_registered(token));
//! # drop((listener, TcpStream::connect(addr)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! While a source's callback runs, its handler is out of its entry (on the
//! dispatch stack): that is how the callback gets `&mut` to its own object
//! while also holding `&mut EventLoop`, and why [`take`](EventLoop::take)
//! and [`with_source`](EventLoop::with_source) answer [`Error::InUse`] for it.

use std::any::Any;
use std::net::SocketAddr;

use super::{EventLoop, IoEvent, Token};
use crate::sys::LoopFd;
use crate::{Backend, Error, Fd, Interest, RegisterError, Result, Source};

/// A registered object and its callback, behind one pointer.
pub(super) trait Handler<B: Backend> {
    /// Runs the callback for the source in `slot` of generation `gen`.
    fn call(
        &mut self,
        lp: &mut EventLoop<B>,
        slot: usize,
        gen: u64,
        mask: Interest,
    ) -> anyhow::Result<()>;
    fn into_obj(self: Box<Self>) -> Box<dyn Any>;
    fn obj_mut(&mut self) -> &mut dyn Any;
    fn peer(&self) -> Option<SocketAddr>;
    fn fd(&self) -> Fd;
}

struct Typed<T, C> {
    obj: T,
    callback: C,
}

impl<B, T, C> Handler<B> for Typed<T, C>
where
    B: Backend,
    T: Source + 'static,
    C: FnMut(&mut EventLoop<B>, &mut T, IoEvent<T>) -> anyhow::Result<()> + 'static,
{
    fn call(
        &mut self,
        lp: &mut EventLoop<B>,
        slot: usize,
        gen: u64,
        mask: Interest,
    ) -> anyhow::Result<()> {
        let event = IoEvent::new(Token::new(slot, gen), mask);
        (self.callback)(lp, &mut self.obj, event)
    }

    fn into_obj(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.obj)
    }

    fn obj_mut(&mut self) -> &mut dyn Any {
        &mut self.obj
    }

    fn fd(&self) -> Fd {
        self.obj.fileno()
    }

    fn peer(&self) -> Option<SocketAddr> {
        socket2::SockRef::from(&self.obj)
            .peer_addr()
            .ok()?
            .as_socket()
    }
}

/// A replacement for the handler of the source whose callback is running.
pub(super) type Rebuild<B> = Box<dyn FnOnce(Box<dyn Handler<B>>) -> Box<dyn Handler<B>>>;

/// The selector's data for each source (its generation is the selector
/// slot's own).
pub(super) struct Entry<B: Backend> {
    /// The loop's own (signal pipes): not counted by `source_count`, never
    /// named in an error report, never dropped by the error policy.
    pub(super) internal: bool,
    /// `None` while the source's callback runs.
    pub(super) handler: Option<Box<dyn Handler<B>>>,
}

/// The object inside a handler, by the type its token promises.
fn unbox<T: 'static>(obj: Box<dyn Any>) -> T {
    *obj.downcast::<T>()
        .expect("a Token<T> names a source whose object is a T")
}

impl<B: Backend> EventLoop<B> {
    /// Registers `fileobj` for `events`; the loop then calls
    /// `callback(loop, &mut fileobj, event)` each time it is ready, where
    /// [`event`](IoEvent) carries the ready events and the source's own token.
    ///
    /// The loop owns `fileobj` until it is unregistered; the callback gets it
    /// with its own type. Level-triggered: the callback runs on every
    /// iteration while the object stays ready.
    ///
    /// # Errors
    /// On error `fileobj` comes back in the [`RegisterError`]:
    /// - [`Error::AlreadyRegistered`] if the descriptor is registered already;
    /// - [`Error::FdTooLarge`] if the backend cannot watch that descriptor;
    /// - [`Error::Io`] if the kernel refuses it (epoll refuses regular files).
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    /// use std::net::{TcpListener, TcpStream};
    /// use selectloop::{EventLoop, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let mut client = TcpStream::connect(listener.local_addr()?)?;
    /// lp.register(listener, EVENT_READ, |lp, listener, ev| {
    ///     let (conn, _peer) = listener.accept()?;
    ///     drop(conn); // a real server registers it
    ///     lp.unregister(ev.token())?; // one connection is enough here
    ///     Ok(())
    /// })?;
    /// lp.run()?;
    /// # let _ = client.write(b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register<T, C>(
        &mut self,
        fileobj: T,
        events: Interest,
        callback: C,
    ) -> Result<Token<T>, RegisterError<T>>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, IoEvent<T>) -> anyhow::Result<()> + 'static,
    {
        self.register_inner(fileobj, events, callback, false)
    }

    /// Like [`register`](EventLoop::register), for a callback that needs its
    /// own token before its first event (to keep in shared state, say):
    /// `make` receives the token the source is about to get and returns the
    /// callback.
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
    ///     move |_lp: &mut EventLoop, _s: &mut UdpSocket, ev| {
    ///         assert_eq!(ev.token(), me);
    ///         Ok(())
    ///     }
    /// })?;
    /// assert!(lp.is_registered(token));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_with<T, C>(
        &mut self,
        fileobj: T,
        events: Interest,
        make: impl FnOnce(Token<T>) -> C,
    ) -> Result<Token<T>, RegisterError<T>>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, IoEvent<T>) -> anyhow::Result<()> + 'static,
    {
        let gen = Token::<T>::next_gen();
        let expected = Token::new(self.sel.vacant_slot(), gen);
        self.insert(fileobj, events, make(expected), false, gen)
    }

    pub(crate) fn register_inner<T, C>(
        &mut self,
        fileobj: T,
        events: Interest,
        callback: C,
        internal: bool,
    ) -> Result<Token<T>, RegisterError<T>>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, IoEvent<T>) -> anyhow::Result<()> + 'static,
    {
        self.insert(fileobj, events, callback, internal, Token::<T>::next_gen())
    }

    fn insert<T, C>(
        &mut self,
        fileobj: T,
        events: Interest,
        callback: C,
        internal: bool,
        gen: u64,
    ) -> Result<Token<T>, RegisterError<T>>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, IoEvent<T>) -> anyhow::Result<()> + 'static,
    {
        let fd = fileobj.fileno();
        let entry = Entry {
            internal,
            handler: Some(Box::new(Typed {
                obj: fileobj,
                callback,
            })),
        };
        let slot = self
            .sel
            .register_slot_gen(LoopFd(fd), events, entry, gen)
            .map_err(|e| {
                e.map(|(_fd, entry)| unbox(entry.handler.expect("not running").into_obj()))
            })?;
        self.internal_sources += usize::from(internal);
        Ok(Token::new(slot, gen))
    }

    fn entry<T: ?Sized>(&self, token: Token<T>) -> Result<&Entry<B>> {
        match self.sel.live_key(token.slot, token.gen) {
            Some(key) => Ok(&key.data),
            None => Err(Error::InvalidToken),
        }
    }

    fn entry_mut<T: ?Sized>(&mut self, token: Token<T>) -> Result<&mut Entry<B>> {
        match self.sel.live_key_mut(token.slot, token.gen) {
            Some(key) => Ok(&mut key.data),
            None => Err(Error::InvalidToken),
        }
    }

    /// Unregisters a source and drops (closes) its object. Allowed from any
    /// callback, its own included: a source unregistering itself is dropped as
    /// soon as its callback returns. Takes a typed or an erased token.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is already unregistered.
    pub fn unregister<T: ?Sized>(&mut self, token: Token<T>) -> Result<()> {
        let internal = self.entry(token)?.internal;
        self.internal_sources -= usize::from(internal);
        drop(self.sel.unregister_slot(token.slot));
        Ok(())
    }

    /// Unregisters a source and gives its object back.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is already unregistered;
    /// - [`Error::InUse`] if called from the source's own callback, which
    ///   borrows the object (it stays registered; use [`unregister`](EventLoop::unregister)
    ///   there, or take it from a [`call_soon`](EventLoop::call_soon) callback).
    ///
    /// # Examples
    /// ```
    /// use std::net::UdpSocket;
    /// use selectloop::{EventLoop, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let token = lp.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
    /// let socket: UdpSocket = lp.take(token)?;
    /// # drop(socket);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The token's type is the object's: asking for another does not compile.
    ///
    /// ```compile_fail,E0308
    /// use std::net::{TcpListener, UdpSocket};
    /// use selectloop::{EventLoop, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let token = lp.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
    /// let listener: TcpListener = lp.take(token)?; // error[E0308]: mismatched types
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Nor does taking through an erased token, which names a source of any type:
    ///
    /// ```compile_fail,E0277
    /// use std::net::UdpSocket;
    /// use selectloop::{EventLoop, Token, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let token: Token = lp.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?.erase();
    /// let socket = lp.take(token)?; // error[E0277]: `dyn Any` is not a `Source`
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take<T: Source + 'static>(&mut self, token: Token<T>) -> Result<T> {
        let entry = self.entry(token)?;
        if entry.handler.is_none() {
            return Err(Error::InUse);
        }
        self.internal_sources -= usize::from(entry.internal);
        let key = self.sel.unregister_slot(token.slot);
        let handler = key.data.handler.expect("checked above");
        Ok(unbox(handler.into_obj()))
    }

    /// Runs `f` on a source's object, e.g. to write to another client from
    /// this one's callback.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::InUse`] if called from the source's own callback (which has
    ///   the object already).
    pub fn with_source<T: Source + 'static, R>(
        &mut self,
        token: Token<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R> {
        let handler = self.entry_mut(token)?.handler.as_mut();
        let obj = handler.ok_or(Error::InUse)?.obj_mut();
        Ok(f(obj
            .downcast_mut::<T>()
            .expect("a Token<T> names a source whose object is a T")))
    }

    /// Runs `f` with the loop and a source's object, the handler out of its
    /// slot meanwhile as during the source's own callback (so `take` and
    /// `with_source` answer [`Error::InUse`] for it). If `f` unregisters the
    /// source, the object is dropped once `f` returns; if `f` panics, the
    /// source is unregistered and dropped, as for a panicking callback.
    #[cfg(feature = "transport")]
    pub(crate) fn with_source_and_loop<T: Source + 'static, R>(
        &mut self,
        token: Token<T>,
        f: impl FnOnce(&mut Self, &mut T) -> R,
    ) -> Result<R> {
        let mut handler = self.entry_mut(token)?.handler.take().ok_or(Error::InUse)?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let obj = handler
                .obj_mut()
                .downcast_mut::<T>()
                .expect("a Token<T> names a source whose object is a T");
            f(self, obj)
        }));
        let live = self.sel.live_key(token.slot, token.gen).is_some();
        match result {
            Ok(result) => {
                if live {
                    self.entry_mut(token).expect("live").handler = Some(handler);
                }
                Ok(result)
            }
            Err(panic) => {
                if live {
                    let _ = self.unregister(token);
                }
                drop(handler);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Changes the events a source is watched for. A source that drops an event
    /// gets no callback for it from the rest of the current batch.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered;
    /// - [`Error::Io`] if the kernel refuses (the source keeps its old events).
    pub fn modify<T: ?Sized>(&mut self, token: Token<T>, events: Interest) -> Result<()> {
        match self.sel.live_key(token.slot, token.gen) {
            // The common case on a hot path: no change, no second lookup.
            Some(key) if key.events == events => Ok(()),
            Some(_) => self.sel.modify_slot(token.slot, events),
            None => Err(Error::InvalidToken),
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
    pub fn pause<T: ?Sized>(&mut self, token: Token<T>) -> Result<()> {
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
    pub fn resume<T: ?Sized>(&mut self, token: Token<T>) -> Result<()> {
        self.entry(token)?;
        self.sel.resume_slot(token.slot)
    }

    /// True if the source is [paused](EventLoop::pause).
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered.
    pub fn is_paused<T: ?Sized>(&self, token: Token<T>) -> Result<bool> {
        self.entry(token)?;
        Ok(self.sel.is_paused(token.slot))
    }

    /// The events a source is watched for.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered.
    pub fn events<T: ?Sized>(&self, token: Token<T>) -> Result<Interest> {
        self.entry(token)?;
        Ok(self.sel.key(token.slot).expect("checked").events)
    }

    /// Replaces a source's callback; allowed from any callback, its own included
    /// (the new one is used from the next event on).
    ///
    /// # Errors
    /// - [`Error::InvalidToken`] if the source is unregistered.
    ///
    /// A callback for another type of object does not compile:
    ///
    /// ```compile_fail,E0631
    /// use std::net::{TcpListener, UdpSocket};
    /// use selectloop::{EventLoop, EVENT_READ};
    ///
    /// let mut lp = EventLoop::new()?;
    /// let token = lp.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
    /// lp.set_callback(token, |_, _listener: &mut TcpListener, _| Ok(()))?; // error[E0631]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_callback<T, C>(&mut self, token: Token<T>, callback: C) -> Result<()>
    where
        T: Source + 'static,
        C: FnMut(&mut EventLoop<B>, &mut T, IoEvent<T>) -> anyhow::Result<()> + 'static,
    {
        let running = self.current;
        let entry = self.entry_mut(token)?;
        let rebuild: Rebuild<B> = Box::new(move |old: Box<dyn Handler<B>>| {
            let obj: T = unbox(old.into_obj());
            Box::new(Typed { obj, callback })
        });
        match entry.handler.take() {
            Some(old) => entry.handler = Some(rebuild(old)),
            None => {
                debug_assert_eq!(running, Some(token.erase()));
                self.rebuild = Some(rebuild);
            }
        }
        Ok(())
    }

    /// True while `token` names a registered source.
    pub fn is_registered<T: ?Sized>(&self, token: Token<T>) -> bool {
        self.entry(token).is_ok()
    }

    /// The source whose callback is running, if any. A callback has its own
    /// token already, typed, in its [`IoEvent`]; this one is for code called
    /// from callbacks (diagnostics, say).
    pub fn current_token(&self) -> Option<Token> {
        self.current
    }

    /// How many sources are registered (not counting the loop's own, such as
    /// signal pipes).
    pub fn source_count(&self) -> usize {
        self.sel.len() - self.internal_sources
    }
}

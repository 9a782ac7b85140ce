//! [`Token`]: how the loop names a registered source, and [`IoEvent`]: what
//! a source's callback gets each time it is ready.
//!
//! A token knows the type of its source's object, so the calls that reach
//! the object ([`take`](crate::EventLoop::take),
//! [`with_source`](crate::EventLoop::with_source),
//! [`set_callback`](crate::EventLoop::set_callback)) are checked by the
//! compiler; [`Token::erase`] forgets the type, for storing tokens of
//! different sources side by side.
//!
//! ```
//! use std::net::{TcpListener, UdpSocket};
//! use selectloop::{EventLoop, Token, EVENT_READ};
//!
//! let mut lp = EventLoop::new()?;
//! let udp: Token<UdpSocket> = lp.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
//! let tcp: Token<TcpListener> = lp.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
//! let port = lp.with_source(udp, |socket| socket.local_addr())??.port(); // a UdpSocket, no cast
//! assert_ne!(port, 0);
//! let all: Vec<Token> = vec![udp.erase(), tcp.erase()]; // any type
//! for token in all {
//!     lp.unregister(token)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::Interest;

/// Names a source registered with an [`EventLoop`](crate::EventLoop), and
/// knows the type `T` of its object.
///
/// `Token` without a type parameter (`Token<dyn Any>`) names a source of any
/// type: [`erase`](Token::erase) turns a typed token into one. Both kinds
/// work with [`unregister`](crate::EventLoop::unregister),
/// [`modify`](crate::EventLoop::modify), [`pause`](crate::EventLoop::pause)
/// and the other calls that do not touch the object; only a typed token
/// reaches the object.
///
/// Tokens carry a generation unique in the process: once a source is
/// unregistered its token is dead for good, even if a new source takes the
/// same slot or descriptor, and a token of one loop never names a source of
/// another. Tokens are `Copy`, `Send` and `Sync` whatever `T` is.
pub struct Token<T: ?Sized = dyn Any> {
    pub(crate) slot: usize,
    pub(crate) gen: u64,
    _type: PhantomData<fn(&T)>,
}

impl<T: ?Sized> Token<T> {
    pub(crate) fn new(slot: usize, gen: u64) -> Token<T> {
        Token {
            slot,
            gen,
            _type: PhantomData,
        }
    }

    /// A generation no token (and no selector registration) has had yet:
    /// the selector's counter, so a token's generation is its slot's.
    pub(crate) fn next_gen() -> u64 {
        crate::selector::next_gen()
    }

    /// The same token, without its type: for keeping tokens of different
    /// sources together.
    pub fn erase(self) -> Token {
        Token::new(self.slot, self.gen)
    }
}

impl<T: ?Sized> Clone for Token<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Token<T> {}

impl<T: ?Sized, U: ?Sized> PartialEq<Token<U>> for Token<T> {
    fn eq(&self, other: &Token<U>) -> bool {
        (self.slot, self.gen) == (other.slot, other.gen)
    }
}

impl<T: ?Sized> Eq for Token<T> {}

impl<T: ?Sized, U: ?Sized> PartialOrd<Token<U>> for Token<T> {
    fn partial_cmp(&self, other: &Token<U>) -> Option<Ordering> {
        Some((self.gen, self.slot).cmp(&(other.gen, other.slot)))
    }
}

impl<T: ?Sized> Ord for Token<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.gen, self.slot).cmp(&(other.gen, other.slot))
    }
}

impl<T: ?Sized> Hash for Token<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.slot.hash(state);
        self.gen.hash(state);
    }
}

impl<T: ?Sized> fmt::Display for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.slot, self.gen)
    }
}

impl<T: ?Sized> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

impl<T: 'static> From<Token<T>> for Token {
    fn from(token: Token<T>) -> Token {
        token.erase()
    }
}

/// What a source's callback gets each time the source is ready: the events
/// it is ready for, and its own [`Token`] (Python's `mask`, plus the key).
///
/// ```
/// use std::net::UdpSocket;
/// use selectloop::{EventLoop, IoEvent, EVENT_WRITE};
///
/// let mut lp = EventLoop::new()?;
/// let socket = UdpSocket::bind("127.0.0.1:0")?;
/// lp.register(socket, EVENT_WRITE, |lp, _socket, ev: IoEvent<UdpSocket>| {
///     assert!(ev.is_writable() && !ev.is_readable());
///     lp.unregister(ev.token())?; // done: unregisters itself
///     Ok(())
/// })?;
/// lp.run()?; // returns once no sources are left
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IoEvent<T: ?Sized = dyn Any> {
    token: Token<T>,
    mask: Interest,
}

impl<T: ?Sized> IoEvent<T> {
    pub(crate) fn new(token: Token<T>, mask: Interest) -> IoEvent<T> {
        IoEvent { token, mask }
    }

    /// The source's own token.
    pub fn token(&self) -> Token<T> {
        self.token
    }

    /// The events the source is ready for, within those it is registered for.
    pub fn mask(&self) -> Interest {
        self.mask
    }

    /// True if the source is readable (also on end of stream, hang-up or error).
    pub fn is_readable(&self) -> bool {
        self.mask.is_readable()
    }

    /// True if the source is writable (also on hang-up or error).
    pub fn is_writable(&self) -> bool {
        self.mask.is_writable()
    }
}

impl<T: ?Sized> Clone for IoEvent<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for IoEvent<T> {}

impl<T: ?Sized> PartialEq for IoEvent<T> {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token && self.mask == other.mask
    }
}

impl<T: ?Sized> Eq for IoEvent<T> {}

impl<T: ?Sized> fmt::Debug for IoEvent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoEvent")
            .field("token", &self.token)
            .field("mask", &self.mask)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    fn assert_send_sync_copy<T: Send + Sync + Copy + 'static>() {}

    #[test]
    fn tokens_are_send_sync_copy_for_any_type() {
        assert_send_sync_copy::<Token>();
        assert_send_sync_copy::<Token<TcpStream>>();
        assert_send_sync_copy::<Token<std::rc::Rc<u8>>>();
        assert_send_sync_copy::<IoEvent<std::rc::Rc<u8>>>();
    }

    #[test]
    fn erased_and_typed_tokens_compare_equal() {
        let typed: Token<TcpStream> = Token::new(3, 9);
        let erased: Token = typed.into();
        assert_eq!(typed, erased);
        assert_eq!(erased, typed.erase());
        assert_ne!(erased, Token::<TcpStream>::new(3, 10));
        assert_eq!(typed.to_string(), "#3.9");
    }

    #[test]
    fn generations_are_unique() {
        let a = Token::<()>::next_gen();
        let b = Token::<()>::next_gen();
        assert!(b > a && a >= 1);
    }
}

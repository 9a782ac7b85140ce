//! Datagram endpoints: asyncio's `create_datagram_endpoint`, for UDP and
//! (on Unix) Unix datagram sockets.
//!
//! You implement [`DatagramProtocol`]; the loop owns the socket and calls
//! the protocol when datagrams or errors arrive, handing it a short-lived
//! [`DatagramTransport`] to send with.
//!
//! ```
//! use std::net::{SocketAddr, UdpSocket};
//! use selectloop::transport::datagram::{create_datagram_endpoint, DatagramProtocol, DatagramTransport};
//! use selectloop::EventLoop;
//!
//! /// Echoes every datagram back to its sender, and stops after the first.
//! struct Echo;
//!
//! impl DatagramProtocol<UdpSocket> for Echo {
//!     fn datagram_received(
//!         &mut self,
//!         t: &mut DatagramTransport<'_, UdpSocket>,
//!         data: &[u8],
//!         addr: SocketAddr,
//!     ) -> anyhow::Result<()> {
//!         t.send_to(data, Some(addr))?;
//!         t.close(); // flushes what is queued, then connection_lost
//!         Ok(())
//!     }
//! }
//!
//! let mut lp = EventLoop::new()?;
//! let token = create_datagram_endpoint(&mut lp, "127.0.0.1:0", None, Echo)?;
//! let server = lp.with_source(token, |ep| ep.socket().local_addr())??;
//!
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.send_to(b"ping", server)?;
//! lp.run()?; // returns once the endpoint has closed
//! let mut buf = [0; 16];
//! let (n, from) = client.recv_from(&mut buf)?;
//! assert_eq!((&buf[..n], from), (&b"ping"[..], server));
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! # asyncio names
//! | asyncio | here |
//! |---|---|
//! | `loop.create_datagram_endpoint(factory, local_addr, remote_addr)` | [`create_datagram_endpoint`] (UDP), [`create_unix_datagram_endpoint`] (Unix) |
//! | `create_datagram_endpoint(..., sock=sock)` | [`datagram_endpoint_from_socket`] |
//! | `DatagramProtocol.connection_made(transport)` | [`DatagramProtocol::connection_made`] |
//! | `datagram_received(data, addr)` | [`DatagramProtocol::datagram_received`] |
//! | `error_received(exc)` | [`DatagramProtocol::error_received`] |
//! | `connection_lost(exc)` | [`DatagramProtocol::connection_lost`] |
//! | `pause_writing()` / `resume_writing()` | a refused [`send_to`](DatagramTransport::send_to) / [`DatagramProtocol::resume_writing`] |
//! | `transport.sendto(data, addr)` | [`DatagramTransport::send_to`] |
//! | `transport.close()` / `abort()` / `is_closing()` | [`close`](DatagramTransport::close) / [`abort`](DatagramTransport::abort) / [`is_closing`](DatagramTransport::is_closing) |
//! | `transport.get_write_buffer_size()` | [`DatagramTransport::get_write_buffer_size`] |
//! | `transport.set_write_buffer_limits(high)` | [`DatagramTransport::set_write_buffer_limit`] |
//! | `get_extra_info('socket' / 'sockname' / 'peername')` | [`socket`](DatagramTransport::socket), [`remote_addr`](DatagramTransport::remote_addr) |
//!
//! Outside the protocol's own methods, [`with_transport`] lends the
//! transport and the protocol to a closure (to send from a timer, say).
//!
//! # Sending, and the bounded queue
//! [`send_to`](DatagramTransport::send_to) writes straight to the socket
//! when nothing is queued. If the socket would block (a Unix datagram peer
//! whose queue is full; rarely UDP), the datagram is copied to a queue,
//! and the endpoint watches `EVENT_WRITE` until the queue is empty again
//! (only then). Unlike asyncio, whose queue has no bound, the queue holds
//! at most [`write_buffer_limit`](DatagramTransport::write_buffer_limit)
//! bytes ([`DEFAULT_WRITE_BUFFER_LIMIT`] unless changed): a datagram that
//! would go beyond it is refused with [`io::ErrorKind::WouldBlock`], neither
//! sent nor queued, and the protocol's
//! [`resume_writing`](DatagramProtocol::resume_writing) is called once the
//! queue has drained. Datagrams may be lost on the way anyway, so the
//! sender decides: drop it, or keep it and send it again on `resume_writing`.
//!
//! # Errors from the socket
//! As in asyncio, an operating-system error of the socket is not fatal: it
//! goes to [`error_received`](DatagramProtocol::error_received) and the
//! endpoint keeps working. That includes `ECONNREFUSED` (an ICMP "port
//! unreachable" for an earlier datagram of a connected socket) and, on
//! Windows, `WSAECONNRESET` (the same for an unconnected one). An error of a
//! `send_to` is delivered after the protocol method that sent returns (a
//! method cannot be re-entered), and the datagram is dropped.
//!
//! An `Err` returned by one of the protocol's methods is fatal: the
//! endpoint is unregistered, [`connection_lost`](DatagramProtocol::connection_lost)
//! gets the error, and the error then goes to the loop's
//! [error handler](crate::EventLoop::set_error_handler).
//!
//! Each readiness event reads up to 32 datagrams into one 64 KiB buffer
//! that the endpoint reuses: receiving allocates nothing. A datagram longer
//! than 64 KiB is cut to that size (UDP's payload limit is 65,507 bytes).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(unix)]
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram};
#[cfg(windows)]
use std::os::windows::io::{AsSocket, BorrowedSocket};

use crate::{Backend, DefaultBackend, Error, EventLoop, IoEvent, Token, EVENT_READ};
use crate::{Interest, EVENT_WRITE};

/// The bytes a [`DatagramTransport`]'s send queue holds at most unless
/// [`set_write_buffer_limit`](DatagramTransport::set_write_buffer_limit)
/// changes it: 256 KiB.
pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 256 * 1024;

/// The receive buffer, reused for every datagram.
const RECV_BUFFER: usize = 64 * 1024;
/// Datagrams read per readiness event, so that one busy endpoint does not
/// starve the others.
const RECV_BATCH: usize = 32;

mod sealed {
    pub trait Sealed {}
}

/// A datagram socket an endpoint can use: [`UdpSocket`], and on Unix
/// [`UnixDatagram`]. Sealed: the crate implements it for those only.
pub trait DatagramSocket: crate::Source + sealed::Sealed + Sized + 'static {
    /// The socket's address type: [`SocketAddr`] for UDP,
    /// `std::os::unix::net::SocketAddr` for Unix datagram sockets.
    type Addr: Clone + fmt::Debug + 'static;

    #[doc(hidden)]
    fn set_nonblocking_(&self) -> io::Result<()>;
    #[doc(hidden)]
    fn connect_(&self, addr: &Self::Addr) -> io::Result<()>;
    #[doc(hidden)]
    fn recv_from_(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)>;
    #[doc(hidden)]
    fn send_to_(&self, buf: &[u8], addr: &Self::Addr) -> io::Result<usize>;
    #[doc(hidden)]
    fn send_(&self, buf: &[u8]) -> io::Result<usize>;
    #[doc(hidden)]
    fn peer_addr_(&self) -> io::Result<Self::Addr>;
    #[doc(hidden)]
    fn same_addr_(a: &Self::Addr, b: &Self::Addr) -> bool;
}

impl sealed::Sealed for UdpSocket {}

impl DatagramSocket for UdpSocket {
    type Addr = SocketAddr;

    fn set_nonblocking_(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
    fn connect_(&self, addr: &SocketAddr) -> io::Result<()> {
        self.connect(addr)
    }
    fn recv_from_(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf)
    }
    fn send_to_(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.send_to(buf, addr)
    }
    fn send_(&self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }
    fn peer_addr_(&self) -> io::Result<SocketAddr> {
        self.peer_addr()
    }
    fn same_addr_(a: &SocketAddr, b: &SocketAddr) -> bool {
        a == b
    }
}

#[cfg(unix)]
impl sealed::Sealed for UnixDatagram {}

#[cfg(unix)]
impl DatagramSocket for UnixDatagram {
    type Addr = UnixSocketAddr;

    fn set_nonblocking_(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
    fn connect_(&self, addr: &UnixSocketAddr) -> io::Result<()> {
        self.connect_addr(addr)
    }
    fn recv_from_(&self, buf: &mut [u8]) -> io::Result<(usize, UnixSocketAddr)> {
        self.recv_from(buf)
    }
    fn send_to_(&self, buf: &[u8], addr: &UnixSocketAddr) -> io::Result<usize> {
        self.send_to_addr(buf, addr)
    }
    fn send_(&self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }
    fn peer_addr_(&self) -> io::Result<UnixSocketAddr> {
        self.peer_addr()
    }
    fn same_addr_(a: &UnixSocketAddr, b: &UnixSocketAddr) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            if a.as_abstract_name().is_some() || b.as_abstract_name().is_some() {
                return a.as_abstract_name() == b.as_abstract_name();
            }
        }
        a.is_unnamed() == b.is_unnamed() && a.as_pathname() == b.as_pathname()
    }
}

/// What the loop calls on a datagram endpoint's events (asyncio's
/// `DatagramProtocol`). Only
/// [`datagram_received`](DatagramProtocol::datagram_received) is required.
///
/// Every method but `connection_lost` gets the endpoint's
/// [`DatagramTransport`], which also reaches the loop
/// ([`event_loop`](DatagramTransport::event_loop)). An `Err` from any of
/// them closes the endpoint (see the [module documentation](self)).
pub trait DatagramProtocol<S: DatagramSocket, B: Backend = DefaultBackend>: 'static {
    /// The endpoint is registered; called once, before anything else.
    fn connection_made(
        &mut self,
        transport: &mut DatagramTransport<'_, S, B>,
    ) -> anyhow::Result<()> {
        let _ = transport;
        Ok(())
    }

    /// A datagram arrived from `addr`. `data` borrows the endpoint's
    /// receive buffer: copy what you keep.
    fn datagram_received(
        &mut self,
        transport: &mut DatagramTransport<'_, S, B>,
        data: &[u8],
        addr: S::Addr,
    ) -> anyhow::Result<()>;

    /// The socket reported an error (a receive or a send failed); the
    /// endpoint keeps working. The default ignores it.
    fn error_received(
        &mut self,
        transport: &mut DatagramTransport<'_, S, B>,
        error: io::Error,
    ) -> anyhow::Result<()> {
        let _ = (transport, error);
        Ok(())
    }

    /// The send queue drained after a [`send_to`](DatagramTransport::send_to)
    /// was refused because it was full: sending works again.
    fn resume_writing(
        &mut self,
        transport: &mut DatagramTransport<'_, S, B>,
    ) -> anyhow::Result<()> {
        let _ = transport;
        Ok(())
    }

    /// The endpoint is closed and unregistered (its socket closes when this
    /// returns): after [`close`](DatagramTransport::close) once the queue is
    /// flushed, after [`abort`](DatagramTransport::abort), or with
    /// `Some(error)` when a protocol method failed. Not called when the
    /// source is simply [unregistered](EventLoop::unregister) or the loop
    /// dropped.
    fn connection_lost(
        &mut self,
        lp: &mut EventLoop<B>,
        error: Option<&anyhow::Error>,
    ) -> anyhow::Result<()> {
        let _ = (lp, error);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Open,
    /// `close()`: no more reading; lost once the queue is empty.
    Closing,
    /// `abort()`: lost as soon as the protocol method returns.
    Aborted,
    Lost,
}

struct Core<S: DatagramSocket> {
    socket: S,
    remote: Option<S::Addr>,
    queue: VecDeque<(Vec<u8>, Option<S::Addr>)>,
    queued_bytes: usize,
    limit: usize,
    /// Errors of sends, for `error_received` once the sender returns.
    errors: VecDeque<io::Error>,
    /// A send was refused since the queue last drained.
    refused: bool,
    state: State,
}

impl<S: DatagramSocket> Core<S> {
    fn send_now(&self, data: &[u8], addr: Option<&S::Addr>) -> io::Result<usize> {
        match addr {
            Some(addr) => self.socket.send_to_(data, addr),
            None => self.socket.send_(data),
        }
    }

    /// Sends from the front of the queue until it is empty or the socket
    /// would block; failed datagrams are dropped, their errors kept.
    fn flush(&mut self) {
        while let Some((data, addr)) = self.queue.front() {
            match self.send_now(data, addr.as_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.errors.push_back(e),
                Ok(_) => {}
            }
            let (data, _) = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= data.len();
        }
    }
}

/// A datagram endpoint registered with an [`EventLoop`]: its socket, send
/// queue, receive buffer and protocol, as one source. Named by a
/// [`DatagramToken`]; [`EventLoop::with_source`] reaches it (the protocol,
/// the socket), [`with_transport`] acts on it.
pub struct DatagramEndpoint<S: DatagramSocket, P, B: Backend = DefaultBackend> {
    core: Core<S>,
    buf: Box<[u8]>,
    protocol: P,
    _loop: PhantomData<fn(&mut EventLoop<B>)>,
}

/// The token of a datagram endpoint.
pub type DatagramToken<S, P, B = DefaultBackend> = Token<DatagramEndpoint<S, P, B>>;

impl<S: DatagramSocket, P, B: Backend> DatagramEndpoint<S, P, B> {
    /// The socket.
    pub fn socket(&self) -> &S {
        &self.core.socket
    }

    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The protocol, mutably.
    pub fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    /// Bytes queued for sending.
    pub fn get_write_buffer_size(&self) -> usize {
        self.core.queued_bytes
    }
}

impl<S: DatagramSocket, P, B: Backend> fmt::Debug for DatagramEndpoint<S, P, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramEndpoint")
            .field("fd", &self.core.socket.fileno())
            .field("remote", &self.core.remote)
            .field("queued", &self.core.queue.len())
            .field("queued_bytes", &self.core.queued_bytes)
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
impl<S: DatagramSocket, P, B: Backend> AsFd for DatagramEndpoint<S, P, B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.socket.as_fd()
    }
}

#[cfg(windows)]
impl<S: DatagramSocket, P, B: Backend> AsSocket for DatagramEndpoint<S, P, B> {
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.core.socket.as_socket()
    }
}

/// A datagram endpoint's transport, lent to its protocol's methods (and by
/// [`with_transport`]): sends, closes, and reaches the loop.
pub struct DatagramTransport<'a, S: DatagramSocket, B: Backend = DefaultBackend> {
    lp: &'a mut EventLoop<B>,
    core: &'a mut Core<S>,
    token: Token,
}

impl<S: DatagramSocket, B: Backend> fmt::Debug for DatagramTransport<'_, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("token", &self.token)
            .field("remote", &self.core.remote)
            .field("queued_bytes", &self.core.queued_bytes)
            .field("state", &self.core.state)
            .finish_non_exhaustive()
    }
}

impl<S: DatagramSocket, B: Backend> DatagramTransport<'_, S, B> {
    /// Sends `data` to `addr` (asyncio's `sendto`); `None` sends to the
    /// remote address of a connected endpoint. Written straight to the
    /// socket when nothing is queued; queued when the socket would block.
    ///
    /// An error of the socket is not returned: it goes to
    /// [`error_received`](DatagramProtocol::error_received) once the
    /// current protocol method (or [`with_transport`] closure) returns.
    ///
    /// # Errors
    /// The datagram is neither sent nor queued, and:
    /// - [`io::ErrorKind::WouldBlock`] if the queue cannot take it without
    ///   going beyond its [limit](DatagramTransport::write_buffer_limit);
    ///   [`resume_writing`](DatagramProtocol::resume_writing) follows once
    ///   the queue has drained;
    /// - [`io::ErrorKind::NotConnected`] if the endpoint is closing or closed;
    /// - [`io::ErrorKind::InvalidInput`] if `addr` is `None` on an endpoint
    ///   with no remote address, or names another address than a connected
    ///   endpoint's remote one.
    pub fn send_to(&mut self, data: &[u8], addr: Option<S::Addr>) -> io::Result<()> {
        let core = &mut *self.core;
        if core.state != State::Open {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the datagram transport is closing",
            ));
        }
        let addr = match (addr, &core.remote) {
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no address given and the endpoint has no remote address",
                ))
            }
            (Some(addr), Some(remote)) if !S::same_addr_(&addr, remote) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the endpoint is connected to {remote:?}, not {addr:?}"),
                ))
            }
            // Connected: send(2), as asyncio does.
            (_, Some(_)) => None,
            (Some(addr), None) => Some(addr),
        };
        if core.queue.is_empty() {
            loop {
                match core.send_now(data, addr.as_ref()) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        core.errors.push_back(e);
                        return Ok(());
                    }
                }
            }
        }
        if core.queued_bytes + data.len() > core.limit {
            core.refused = true;
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the datagram send queue is full",
            ));
        }
        core.queued_bytes += data.len();
        core.queue.push_back((data.to_vec(), addr));
        if core.queue.len() == 1 {
            self.lp.modify(self.token, EVENT_READ | EVENT_WRITE)?;
        }
        Ok(())
    }

    /// [`send_to`](DatagramTransport::send_to) the remote address of a
    /// connected endpoint.
    ///
    /// # Errors
    /// As for [`send_to`](DatagramTransport::send_to).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.send_to(data, None)
    }

    /// Stops receiving, sends what is queued, then unregisters the endpoint
    /// and calls [`connection_lost`](DatagramProtocol::connection_lost)
    /// with `None`. Closing a closing endpoint does nothing.
    pub fn close(&mut self) {
        if self.core.state == State::Open {
            self.core.state = State::Closing;
        }
    }

    /// Drops what is queued, unregisters the endpoint and calls
    /// [`connection_lost`](DatagramProtocol::connection_lost) with `None`,
    /// as soon as the current protocol method returns.
    pub fn abort(&mut self) {
        if self.core.state != State::Lost {
            self.core.state = State::Aborted;
            self.core.queue.clear();
            self.core.queued_bytes = 0;
        }
    }

    /// True once [`close`](DatagramTransport::close) or
    /// [`abort`](DatagramTransport::abort) was called.
    pub fn is_closing(&self) -> bool {
        self.core.state != State::Open
    }

    /// Bytes queued for sending (asyncio's `get_write_buffer_size`).
    pub fn get_write_buffer_size(&self) -> usize {
        self.core.queued_bytes
    }

    /// The most the send queue holds, in bytes.
    pub fn write_buffer_limit(&self) -> usize {
        self.core.limit
    }

    /// Sets the most the send queue holds, in bytes (asyncio's
    /// `set_write_buffer_limits(high)`). What is queued already stays.
    pub fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.core.limit = bytes;
    }

    /// The socket (asyncio's `get_extra_info('socket')`): its local address,
    /// options.
    pub fn socket(&self) -> &S {
        &self.core.socket
    }

    /// The remote address of a connected endpoint (asyncio's
    /// `get_extra_info('peername')`).
    pub fn remote_addr(&self) -> Option<&S::Addr> {
        self.core.remote.as_ref()
    }

    /// The endpoint's token, erased (its typed one names the protocol type).
    pub fn token(&self) -> Token {
        self.token
    }

    /// The loop, for timers, other sources, `stop`.
    pub fn event_loop(&mut self) -> &mut EventLoop<B> {
        self.lp
    }
}

impl<S: DatagramSocket, P: DatagramProtocol<S, B>, B: Backend> DatagramEndpoint<S, P, B> {
    /// Runs `f` with the transport and the protocol, then settles what it
    /// left: queued send errors, the watched events, closing.
    fn act<R>(
        &mut self,
        lp: &mut EventLoop<B>,
        token: Token,
        f: impl FnOnce(&mut DatagramTransport<'_, S, B>, &mut P, &mut [u8]) -> anyhow::Result<R>,
    ) -> anyhow::Result<Option<R>> {
        if self.core.state == State::Lost {
            return Ok(None);
        }
        let mut t = DatagramTransport {
            lp: &mut *lp,
            core: &mut self.core,
            token,
        };
        let result = f(&mut t, &mut self.protocol, &mut self.buf).and_then(|r| {
            while let Some(error) = t.core.errors.pop_front() {
                self.protocol.error_received(&mut t, error)?;
            }
            Ok(r)
        });
        match result {
            Err(error) => {
                self.lose(lp, token, Some(&error))?;
                Err(error)
            }
            Ok(r) => {
                let core = &mut self.core;
                let lost = match core.state {
                    State::Aborted => true,
                    State::Closing => core.queue.is_empty(),
                    State::Open | State::Lost => false,
                };
                if lost {
                    self.lose(lp, token, None)?;
                } else {
                    let events =
                        Interest::from_flags(core.state == State::Open, !core.queue.is_empty())
                            .expect("open, or closing with a non-empty queue");
                    lp.modify(token, events)?;
                }
                Ok(Some(r))
            }
        }
    }

    fn lose(
        &mut self,
        lp: &mut EventLoop<B>,
        token: Token,
        error: Option<&anyhow::Error>,
    ) -> anyhow::Result<()> {
        self.core.state = State::Lost;
        self.core.queue.clear();
        self.core.queued_bytes = 0;
        match lp.unregister(token) {
            Ok(()) | Err(Error::InvalidToken) => {}
            Err(e) => return Err(e.into()),
        }
        self.protocol.connection_lost(lp, error)
    }

    fn on_event(
        &mut self,
        lp: &mut EventLoop<B>,
        token: Token,
        mask: Interest,
    ) -> anyhow::Result<()> {
        self.act(lp, token, |t, protocol, buf| {
            if mask.is_writable() && !t.core.queue.is_empty() {
                t.core.flush();
                if t.core.queue.is_empty() && std::mem::take(&mut t.core.refused) {
                    protocol.resume_writing(t)?;
                }
            }
            if mask.is_readable() {
                for _ in 0..RECV_BATCH {
                    if t.core.state != State::Open {
                        break;
                    }
                    match t.core.socket.recv_from_(buf) {
                        Ok((n, addr)) => protocol.datagram_received(t, &buf[..n], addr)?,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => protocol.error_received(t, e)?,
                    }
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Creates a UDP endpoint bound to `local` (port 0: any), connected to
/// `remote` if given, and registers it with `lp`
/// (asyncio's `create_datagram_endpoint(factory, local_addr, remote_addr)`).
/// [`connection_made`](DatagramProtocol::connection_made) runs before this
/// returns.
///
/// # Errors
/// - the OS error if the socket cannot be bound or connected;
/// - [`Error::Io`] (and the others of [`EventLoop::register`]) if it
///   cannot be registered;
/// - the `Err` of `connection_made` (the endpoint is closed then).
pub fn create_datagram_endpoint<P, B>(
    lp: &mut EventLoop<B>,
    local: impl ToSocketAddrs,
    remote: Option<SocketAddr>,
    protocol: P,
) -> anyhow::Result<DatagramToken<UdpSocket, P, B>>
where
    P: DatagramProtocol<UdpSocket, B>,
    B: Backend,
{
    let socket = UdpSocket::bind(local)?;
    datagram_endpoint_from_socket(lp, socket, remote, protocol)
}

/// Creates a Unix datagram endpoint bound to `local` (`None`: unbound, so
/// unnamed), connected to `remote` if given, and registers it with `lp`.
/// On Linux an address may be abstract
/// (`SocketAddr::from_abstract_name`, from `std::os::linux::net::SocketAddrExt`).
///
/// # Errors
/// As for [`create_datagram_endpoint`].
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub fn create_unix_datagram_endpoint<P, B>(
    lp: &mut EventLoop<B>,
    local: Option<&UnixSocketAddr>,
    remote: Option<UnixSocketAddr>,
    protocol: P,
) -> anyhow::Result<DatagramToken<UnixDatagram, P, B>>
where
    P: DatagramProtocol<UnixDatagram, B>,
    B: Backend,
{
    let socket = match local {
        Some(local) => UnixDatagram::bind_addr(local)?,
        None => UnixDatagram::unbound()?,
    };
    datagram_endpoint_from_socket(lp, socket, remote, protocol)
}

/// Registers a socket you made (options, IPv6-only, broadcast, a
/// `UnixDatagram::pair` end) as a datagram endpoint (asyncio's
/// `create_datagram_endpoint(sock=...)`): it is made non-blocking, and
/// connected to `remote` if given. A socket connected already (a
/// `UnixDatagram::pair` end) keeps its peer as the remote address.
///
/// # Errors
/// As for [`create_datagram_endpoint`].
pub fn datagram_endpoint_from_socket<S, P, B>(
    lp: &mut EventLoop<B>,
    socket: S,
    remote: Option<S::Addr>,
    protocol: P,
) -> anyhow::Result<DatagramToken<S, P, B>>
where
    S: DatagramSocket,
    P: DatagramProtocol<S, B>,
    B: Backend,
{
    socket.set_nonblocking_()?;
    let remote = match remote {
        Some(remote) => {
            socket.connect_(&remote)?;
            Some(remote)
        }
        None => socket.peer_addr_().ok(),
    };
    let endpoint = DatagramEndpoint {
        core: Core {
            socket,
            remote,
            queue: VecDeque::new(),
            queued_bytes: 0,
            limit: DEFAULT_WRITE_BUFFER_LIMIT,
            errors: VecDeque::new(),
            refused: false,
            state: State::Open,
        },
        buf: vec![0; RECV_BUFFER].into_boxed_slice(),
        protocol,
        _loop: PhantomData,
    };
    let token = lp
        .register(
            endpoint,
            EVENT_READ,
            |lp, ep: &mut DatagramEndpoint<S, P, B>, ev: IoEvent<_>| {
                ep.on_event(lp, ev.token().erase(), ev.mask())
            },
        )
        .map_err(|e| e.into_error())?;
    with_transport(lp, token, |t, protocol| protocol.connection_made(t))??;
    Ok(token)
}

/// Runs `f` with an endpoint's transport and protocol, from outside the
/// protocol's methods (a timer, another source's callback). Send errors
/// reach [`error_received`](DatagramProtocol::error_received) and a
/// [`close`](DatagramTransport::close) takes effect once `f` returns.
/// Returns `Ok(None)` for an endpoint that is closed but not yet dropped.
///
/// # Errors
/// - [`Error::InvalidToken`] if the endpoint is unregistered (closed);
/// - [`Error::InUse`] from the endpoint's own protocol methods (which have
///   the transport already);
/// - the `Err` of a protocol method called on the way (the endpoint is
///   closed then).
///
/// # Examples
/// ```
/// use std::net::{SocketAddr, UdpSocket};
/// use selectloop::transport::datagram::{create_datagram_endpoint, with_transport, DatagramProtocol, DatagramTransport};
/// use selectloop::EventLoop;
///
/// struct Quiet;
/// impl DatagramProtocol<UdpSocket> for Quiet {
///     fn datagram_received(&mut self, _: &mut DatagramTransport<'_, UdpSocket>, _: &[u8], _: SocketAddr) -> anyhow::Result<()> {
///         Ok(())
///     }
/// }
///
/// let peer = UdpSocket::bind("127.0.0.1:0")?;
/// let mut lp = EventLoop::new()?;
/// let token = create_datagram_endpoint(&mut lp, "127.0.0.1:0", Some(peer.local_addr()?), Quiet)?;
/// with_transport(&mut lp, token, |t, _quiet| t.send(b"hello"))??;
/// let mut buf = [0; 8];
/// assert_eq!(peer.recv(&mut buf)?, 5);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn with_transport<S, P, B, R>(
    lp: &mut EventLoop<B>,
    token: DatagramToken<S, P, B>,
    f: impl FnOnce(&mut DatagramTransport<'_, S, B>, &mut P) -> R,
) -> anyhow::Result<R>
where
    S: DatagramSocket,
    P: DatagramProtocol<S, B>,
    B: Backend,
{
    let erased = token.erase();
    let result = lp.with_source_and_loop(token, |lp, ep| {
        ep.act(lp, erased, |t, protocol, _buf| Ok(f(t, protocol)))
    })??;
    result.ok_or_else(|| Error::InvalidToken.into())
}

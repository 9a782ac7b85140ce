//! Socket set-up: listeners, accepted and connecting streams made ready for
//! a selector (non-blocking, Nagle off), and [`stream_pair`].
//!
//! ```
//! use selectloop::net::{stream_pair, ListenerBuilder};
//!
//! let listener = ListenerBuilder::new("127.0.0.1:0").backlog(16).build()?;
//! assert_ne!(listener.local_addr()?.port(), 0); // non-blocking, SO_REUSEADDR on Unix
//! let (client, server) = stream_pair()?; // connected, non-blocking, Nagle off
//! assert!(client.nodelay()? && server.nodelay()?);
//! # std::io::Result::Ok(())
//! ```

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};

use crate::sys;

/// The listen backlog a [`ListenerBuilder`] uses unless told otherwise.
///
/// The kernel may cap it (Linux: `net.core.somaxconn`, 4096 since 5.4).
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Builds a TCP listener with the socket options a server wants, in the
/// spirit of Python's `socket.create_server`.
///
/// Defaults:
/// - backlog [`DEFAULT_BACKLOG`] (1024);
/// - **non-blocking**, ready to register with a selector;
/// - `SO_REUSEADDR` **on Unix only**: there it lets a restarted server bind
///   while connections of the old one linger in `TIME_WAIT`, and it does not
///   let two live listeners share a port. On Windows the option of that name
///   does let another socket bind the same port (port stealing), and
///   rebinding over `TIME_WAIT` works without it, so it is left off there
///   (`SO_EXCLUSIVEADDRUSE` would harden it further, but `socket2` does not
///   expose it, so the system default stands);
/// - `SO_REUSEPORT` off (see [`reuse_port`](ListenerBuilder::reuse_port));
/// - IPv6 addresses listen for IPv6 only (`IPV6_V6ONLY` set), the same on
///   every OS (the system defaults differ: Linux and macOS are dual-stack,
///   Windows and the BSDs are not), as Python's `create_server` does; see
///   [`only_v6`](ListenerBuilder::only_v6).
///
/// The builder is not consumed: [`build`](ListenerBuilder::build) can be
/// called again, for one listener per thread with `SO_REUSEPORT`.
///
/// ```
/// use selectloop::net::ListenerBuilder;
///
/// let listener = ListenerBuilder::new("127.0.0.1:0")
///     .backlog(500)
///     .nonblocking(false)
///     .build()?;
/// assert_ne!(listener.local_addr()?.port(), 0);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct ListenerBuilder {
    addrs: Result<Vec<SocketAddr>, ResolveError>,
    backlog: u32,
    reuse_port: bool,
    nonblocking: bool,
    only_v6: bool,
}

/// A failed address resolution, kept until `build` reports it.
/// (`io::Error` is not `Clone`; resolution errors carry no OS code worth keeping.)
#[derive(Debug, Clone)]
struct ResolveError {
    kind: io::ErrorKind,
    message: String,
}

impl ListenerBuilder {
    /// Starts a builder for a listener on `addr`: anything
    /// [`TcpListener::bind`] takes, such as `"127.0.0.1:0"`,
    /// `"localhost:8080"`, `([0, 0, 0, 0], 9999)` or a [`SocketAddr`].
    ///
    /// The address is resolved now; a failure is reported by
    /// [`build`](ListenerBuilder::build). Port 0 asks the OS for a free port:
    /// read it back with [`TcpListener::local_addr`].
    pub fn new<A: ToSocketAddrs>(addr: A) -> ListenerBuilder {
        let addrs = match addr.to_socket_addrs() {
            Ok(addrs) => Ok(addrs.collect()),
            Err(e) => Err(ResolveError {
                kind: e.kind(),
                message: e.to_string(),
            }),
        };
        ListenerBuilder {
            addrs,
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
            nonblocking: true,
            only_v6: true,
        }
    }

    /// Sets the listen backlog: how many connections the kernel queues
    /// before `accept` (default [`DEFAULT_BACKLOG`]; values above `i32::MAX`
    /// are clamped, and the kernel may cap it lower).
    pub fn backlog(mut self, backlog: u32) -> ListenerBuilder {
        self.backlog = backlog;
        self
    }

    /// Sets `SO_REUSEPORT` (default off), so that several listeners, each
    /// built with it, can bind the same address: one per thread or process.
    ///
    /// Linux and DragonFly spread incoming connections over them; on FreeBSD
    /// `SO_REUSEPORT_LB` is set instead, for the same effect; macOS and the
    /// other BSDs accept the shared bind but do not balance. On Windows,
    /// Solaris and illumos [`build`](ListenerBuilder::build) fails with
    /// [`io::ErrorKind::Unsupported`] when this is on.
    pub fn reuse_port(mut self, reuse_port: bool) -> ListenerBuilder {
        self.reuse_port = reuse_port;
        self
    }

    /// Sets whether the listener is non-blocking (default `true`): `accept`
    /// then fails with [`io::ErrorKind::WouldBlock`] instead of waiting.
    pub fn nonblocking(mut self, nonblocking: bool) -> ListenerBuilder {
        self.nonblocking = nonblocking;
        self
    }

    /// Sets `IPV6_V6ONLY` for IPv6 addresses (default `true`: IPv6 only).
    ///
    /// With `false`, a listener on `[::]:PORT` also accepts IPv4 clients (as
    /// IPv4-mapped addresses) where the OS supports dual-stack sockets
    /// (Linux, macOS, Windows, FreeBSD; not OpenBSD, whose `build` fails).
    /// Ignored for IPv4 addresses.
    pub fn only_v6(mut self, only_v6: bool) -> ListenerBuilder {
        self.only_v6 = only_v6;
        self
    }

    /// Creates, configures, binds and listens; returns the listener.
    ///
    /// When the address resolved to several, each is tried in turn, as
    /// [`TcpListener::bind`] does, and the first that binds is used.
    ///
    /// # Errors
    /// - the resolution error, if the address given to
    ///   [`new`](ListenerBuilder::new) did not resolve;
    /// - [`io::ErrorKind::InvalidInput`] if it resolved to no address at all;
    /// - [`io::ErrorKind::Unsupported`] if
    ///   [`reuse_port`](ListenerBuilder::reuse_port) is on where
    ///   `SO_REUSEPORT` does not exist;
    /// - the OS error of the last address tried otherwise: typically
    ///   [`io::ErrorKind::AddrInUse`] (the port is taken),
    ///   [`io::ErrorKind::AddrNotAvailable`] (not a local address) or
    ///   [`io::ErrorKind::PermissionDenied`] (a privileged port).
    pub fn build(&self) -> io::Result<TcpListener> {
        let addrs = match &self.addrs {
            Ok(addrs) => addrs,
            Err(e) => return Err(io::Error::new(e.kind, e.message.clone())),
        };
        let mut last = None;
        for &addr in addrs {
            match self.bind(addr) {
                Ok(listener) => return Ok(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any addresses",
            )
        }))
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // See the type's documentation: right on Unix, port stealing on Windows.
        if sys::LISTENERS_REUSE_ADDRESS {
            socket.set_reuse_address(true)?;
        }
        if self.reuse_port {
            sys::set_reuse_port(&socket)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(self.only_v6)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(self.backlog).unwrap_or(i32::MAX))?;
        socket.set_nonblocking(self.nonblocking)?;
        Ok(socket.into())
    }
}

/// Accepts one connection from `listener` and makes it ready for a
/// selector: non-blocking, with `TCP_NODELAY` (Nagle off, so small echoes
/// are not delayed). Returns the stream and the peer's address.
///
/// On a non-blocking listener, call it when the selector reports the
/// listener readable; level-triggered, it stays readable while connections
/// are queued.
///
/// # Errors
/// - [`io::ErrorKind::WouldBlock`] if no connection is queued (non-blocking
///   listener): wait for `EVENT_READ` again;
/// - [`io::ErrorKind::Interrupted`] if a signal arrived: try again;
/// - [`io::ErrorKind::ConnectionAborted`] (and, on some systems,
///   `ConnectionReset` or `InvalidInput` from setting an option) if the peer
///   gave up before or just after being accepted: that connection is gone,
///   keep accepting;
/// - out of descriptors (`EMFILE`/`ENFILE`) or memory: the connection stays
///   queued and the listener stays readable, so a server should log it and
///   pause accepting for a while rather than spin.
///
/// ```
/// use std::io::ErrorKind;
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
/// use selectloop::net::{accept_nonblocking, ListenerBuilder};
/// use selectloop::{DefaultSelector, Selector, EVENT_READ};
///
/// let listener = ListenerBuilder::new("127.0.0.1:0").build()?;
/// assert_eq!(accept_nonblocking(&listener).unwrap_err().kind(), ErrorKind::WouldBlock);
///
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let mut sel: DefaultSelector<&TcpListener> = DefaultSelector::new()?;
/// sel.register(&listener, EVENT_READ, ())?;
/// assert_eq!(sel.select(Some(Duration::from_secs(5)))?.len(), 1); // one queued
/// let (stream, peer) = accept_nonblocking(&listener)?;
/// assert_eq!(peer, client.local_addr()?);
/// assert!(stream.nodelay()?);
/// # Ok::<(), selectloop::Error>(())
/// ```
pub fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept()?;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    Ok((stream, peer))
}

/// Starts connecting to `addr` without waiting: returns a non-blocking
/// stream (with `TCP_NODELAY`) whose connection is in progress, or already
/// established.
///
/// Register it for `EVENT_WRITE`; when the selector reports it writable, the
/// attempt has ended: [`finish_connect`] tells how. Data written before that
/// fails with `WouldBlock` or `NotConnected`.
///
/// It takes one [`SocketAddr`], not a name to resolve: a non-blocking
/// connect cannot fall back to the next address by itself.
///
/// # Errors
/// - the OS error if the socket cannot be created (out of descriptors, say)
///   or the attempt fails at once, e.g. [`io::ErrorKind::ConnectionRefused`]
///   on some systems, or `AddrNotAvailable` for an unusable address. A
///   refusal usually arrives later, through [`finish_connect`].
///
/// ```
/// use std::time::Duration;
/// use selectloop::net::{connect_nonblocking, finish_connect, ListenerBuilder};
/// use selectloop::{DefaultSelector, Selector, EVENT_WRITE};
///
/// let listener = ListenerBuilder::new("127.0.0.1:0").build()?;
/// let stream = connect_nonblocking(listener.local_addr()?)?;
/// let mut sel: DefaultSelector<&std::net::TcpStream> = DefaultSelector::new()?;
/// sel.register(&stream, EVENT_WRITE, ())?;
/// assert_eq!(sel.select(Some(Duration::from_secs(5)))?.len(), 1);
/// finish_connect(&stream)?; // connected
/// # Ok::<(), selectloop::Error>(())
/// ```
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        // Windows: WSAEWOULDBLOCK. Unix: EINPROGRESS (EAGAIN for some
        // address families). Either way the attempt goes on in the kernel.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || sys::connect_in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// Tells how a connect started by [`connect_nonblocking`] ended, once the
/// selector has reported the stream writable.
///
/// # Errors
/// - the connect's own error, e.g. [`io::ErrorKind::ConnectionRefused`] or
///   `TimedOut` (read, and cleared, from `SO_ERROR`);
/// - [`io::ErrorKind::WouldBlock`] if the connection is still in progress
///   (the stream was not writable yet): wait for `EVENT_WRITE` again;
/// - the OS error if the socket cannot be queried.
pub fn finish_connect(stream: &TcpStream) -> io::Result<()> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "connection still in progress",
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DefaultSelector, Interest, Selector, EVENT_READ, EVENT_WRITE};
    use socket2::SockRef;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// Waits (bounded) until `stream` is ready for `events`; returns the ready mask.
    fn wait_for<S: crate::Source>(source: &S, events: Interest) -> Interest {
        let mut sel: DefaultSelector<&S> = DefaultSelector::new().unwrap();
        sel.register(source, events, ()).unwrap();
        let ready: Vec<_> = sel
            .select(Some(PATIENCE))
            .unwrap()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            ready.len(),
            1,
            "not ready for {events:?} within {PATIENCE:?}"
        );
        ready[0]
    }

    fn accept_when_ready(listener: &TcpListener) -> (TcpStream, SocketAddr) {
        wait_for(listener, EVENT_READ);
        accept_nonblocking(listener).unwrap()
    }

    #[test]
    fn builder_defaults_bind_port_zero_non_blocking() {
        let listener = ListenerBuilder::new("127.0.0.1:0").build().unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0);
        // Non-blocking: nothing queued means WouldBlock, not a hang.
        let err = listener.accept().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);

        let sock = SockRef::from(&listener);
        assert_eq!(sock.reuse_address().unwrap(), cfg!(unix));
        #[cfg(unix)]
        assert!(sock.nonblocking().unwrap());
    }

    #[test]
    fn builder_blocking_listener_accepts_queued_connection() {
        let listener = ListenerBuilder::new((Ipv4Addr::LOCALHOST, 0))
            .nonblocking(false)
            .backlog(1)
            .build()
            .unwrap();
        #[cfg(unix)]
        assert!(!SockRef::from(&listener).nonblocking().unwrap());
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // The handshake is complete, so a blocking accept returns at once.
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    }

    #[test]
    fn builder_is_reusable_and_refuses_a_taken_port_without_reuse_port() {
        let builder = ListenerBuilder::new("127.0.0.1:0");
        let first = builder.build().unwrap();
        let second = builder.build().unwrap();
        assert_ne!(
            first.local_addr().unwrap().port(),
            second.local_addr().unwrap().port()
        );
        // SO_REUSEADDR (Unix) does not let two listeners share a port.
        let taken = first.local_addr().unwrap();
        let err = ListenerBuilder::new(taken).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    }

    #[test]
    fn builder_reports_resolution_failures_at_build() {
        // No port: refused by the parser, no DNS query involved.
        let err = ListenerBuilder::new("127.0.0.1").build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let none: &[SocketAddr] = &[];
        let err = ListenerBuilder::new(none).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn builder_tries_each_address_in_turn() {
        let taken = ListenerBuilder::new("127.0.0.1:0").build().unwrap();
        let addrs = [
            taken.local_addr().unwrap(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ];
        let listener = ListenerBuilder::new(&addrs[..]).build().unwrap();
        assert_ne!(listener.local_addr().unwrap(), addrs[0]);
    }

    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    #[test]
    fn reuse_port_lets_two_listeners_share_a_port() {
        let first = ListenerBuilder::new("127.0.0.1:0")
            .reuse_port(true)
            .build()
            .unwrap();
        let addr = first.local_addr().unwrap();
        let second = ListenerBuilder::new(addr).reuse_port(true).build().unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        #[cfg(not(target_os = "freebsd"))]
        assert!(SockRef::from(&second).reuse_port().unwrap());

        // A connection lands on one of them.
        let _client = TcpStream::connect(addr).unwrap();
        let mut sel: DefaultSelector<&TcpListener, u8> = DefaultSelector::new().unwrap();
        sel.register(&first, EVENT_READ, 1).unwrap();
        sel.register(&second, EVENT_READ, 2).unwrap();
        let ready: Vec<u8> = sel
            .select(Some(PATIENCE))
            .unwrap()
            .map(|(k, _)| k.data)
            .collect();
        assert_eq!(ready.len(), 1);
        let which = if ready[0] == 1 { &first } else { &second };
        accept_nonblocking(which).unwrap();
    }

    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    #[test]
    fn reuse_port_is_unsupported_here() {
        let err = ListenerBuilder::new("127.0.0.1:0")
            .reuse_port(true)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn ipv6_listeners_are_v6_only_unless_asked() {
        // No IPv6 loopback on this machine: nothing to check.
        let Ok(v6) = ListenerBuilder::new((Ipv6Addr::LOCALHOST, 0)).build() else {
            return;
        };
        assert!(SockRef::from(&v6).only_v6().unwrap());
        // Dual-stack where the OS has it (OpenBSD does not). Linux makes a
        // socket bound to a specific IPv6 address v6-only regardless, so
        // this takes the wildcard address.
        if let Ok(dual) = ListenerBuilder::new((Ipv6Addr::UNSPECIFIED, 0))
            .only_v6(false)
            .build()
        {
            assert!(!SockRef::from(&dual).only_v6().unwrap());
            let port = dual.local_addr().unwrap().port();
            let client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            let (_server, peer) = accept_when_ready(&dual);
            assert_eq!(peer.port(), client.local_addr().unwrap().port());
        }
        // Ignored for IPv4.
        ListenerBuilder::new("127.0.0.1:0")
            .only_v6(false)
            .build()
            .unwrap();
    }

    #[test]
    fn accept_nonblocking_sets_up_the_stream() {
        let listener = ListenerBuilder::new("127.0.0.1:0").build().unwrap();
        let err = accept_nonblocking(&listener).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);

        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = accept_when_ready(&listener);
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(stream.nodelay().unwrap());
        let mut buf = [0u8; 4];
        let err = (&stream).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);

        client.write_all(b"ping").unwrap();
        wait_for(&stream, EVENT_READ);
        (&stream).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn connect_nonblocking_connects_once_writable() {
        let listener = ListenerBuilder::new("127.0.0.1:0").build().unwrap();
        let stream = connect_nonblocking(listener.local_addr().unwrap()).unwrap();
        assert!(stream.nodelay().unwrap());
        assert!(wait_for(&stream, EVENT_WRITE).is_writable());
        finish_connect(&stream).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());

        let (server, peer) = accept_when_ready(&listener);
        assert_eq!(peer, stream.local_addr().unwrap());
        (&stream).write_all(b"abc").unwrap();
        wait_for(&server, EVENT_READ);
        let mut buf = [0u8; 3];
        (&server).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        // Non-blocking: nothing more to read.
        let err = (&stream).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
    }

    #[test]
    fn connect_nonblocking_reports_a_refusal() {
        // A bound socket that does not listen: connections to it are refused,
        // and nobody else can take the port while we hold it.
        let closed = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        closed
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        let addr = closed.local_addr().unwrap().as_socket().unwrap();
        let err = match connect_nonblocking(addr) {
            Err(e) => e,
            Ok(stream) => {
                wait_for(&stream, EVENT_WRITE);
                finish_connect(&stream).unwrap_err()
            }
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    }

    #[test]
    fn finish_connect_says_would_block_while_in_progress() {
        // An accepted-but-unconnected state cannot be held still on loopback,
        // so check the other branch directly: an unconnected socket.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let stream: TcpStream = socket.into();
        let err = finish_connect(&stream).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
    }
}

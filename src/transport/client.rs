//! Clients: a non-blocking connect, each resolved address in turn, with a
//! timeout per attempt.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use super::stream::{start, Protocol, Stream, Upgrade};
use crate::net::{connect_nonblocking, finish_connect};
use crate::{Backend, CallHandle, EventLoop, Token, EVENT_WRITE};

/// An attempt in progress: the protocol waiting for its connection, the
/// addresses left, and why the last one failed.
struct Attempt<P> {
    protocol: Option<P>,
    /// A TLS connection's session, handed to the stream once connected.
    tls: Option<Upgrade>,
    addrs: std::vec::IntoIter<SocketAddr>,
    timeout: Option<Duration>,
    last_error: Option<io::Error>,
    timer: Option<CallHandle>,
}

type Shared<P> = Rc<RefCell<Attempt<P>>>;

/// Opens a TCP connection to `addr` (`"host:port"` or an IP address and
/// port) for `protocol` (asyncio's `loop.create_connection`), without
/// blocking the loop:
///
/// - a name is resolved on the loop's executor
///   ([`run_in_executor`](EventLoop::run_in_executor)); an IP address is
///   used as it is;
/// - each resolved address is tried in turn with a non-blocking connect,
///   `timeout` (if any) applying to each attempt, as Python's
///   `socket.create_connection` does;
/// - on success the stream (Nagle off) becomes a transport and the
///   protocol gets [`connection_made`](Protocol::connection_made); if every
///   address fails it gets [`connection_failed`](Protocol::connection_failed)
///   with the last error (`ConnectionRefused`, `TimedOut`, ...).
///
/// Nothing happens until the loop runs.
///
/// # Errors
/// - [`Error::Io`](crate::Error::Io) if the executor's threads cannot be
///   started (a name to resolve, on the first offload).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use selectloop::transport::{self, Protocol, Transport};
/// use selectloop::EventLoop;
///
/// struct Hello(Vec<u8>);
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
///         t.write(b"hello");
///         t.write_eof(); // sent once flushed; reading goes on
///     }
///     fn data_received(&mut self, _t: &mut Transport<'_, Self>, data: &[u8]) {
///         self.0.extend_from_slice(data);
///     }
///     fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<std::io::Error>) {
///         assert!(error.is_none());
///         assert_eq!(self.0, b"HELLO");
///     }
/// }
///
/// // A blocking server on another thread: upper-cases until end of stream.
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = std::thread::spawn(move || -> std::io::Result<()> {
///     let (mut conn, _) = listener.accept()?;
///     let mut got = Vec::new();
///     conn.read_to_end(&mut got)?;
///     conn.write_all(&got.to_ascii_uppercase())
/// });
///
/// let mut lp = EventLoop::new()?;
/// transport::connect(&mut lp, &addr.to_string(), Some(Duration::from_secs(5)), Hello(Vec::new()))?;
/// lp.run()?; // returns once the connection is closed (both sides ended)
/// server.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect<B, P>(
    lp: &mut EventLoop<B>,
    addr: &str,
    timeout: Option<Duration>,
    protocol: P,
) -> crate::Result<()>
where
    B: Backend,
    P: Protocol<B>,
{
    connect_with(lp, addr, timeout, protocol, None)
}

/// [`connect`], the stream starting with `tls` (a TLS session) if given.
pub(crate) fn connect_with<B, P>(
    lp: &mut EventLoop<B>,
    addr: &str,
    timeout: Option<Duration>,
    protocol: P,
    tls: Option<Upgrade>,
) -> crate::Result<()>
where
    B: Backend,
    P: Protocol<B>,
{
    let attempt = |addrs: Vec<SocketAddr>| {
        Rc::new(RefCell::new(Attempt {
            protocol: Some(protocol),
            tls,
            addrs: addrs.into_iter(),
            timeout,
            last_error: None,
            timer: None,
        }))
    };
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        let shared = attempt(vec![addr]);
        lp.call_soon(move |lp| {
            try_next(lp, shared);
            Ok(())
        });
        return Ok(());
    }
    let name = addr.to_owned();
    let shared = attempt(Vec::new());
    lp.run_in_executor(
        move || name.to_socket_addrs().map(Iterator::collect::<Vec<_>>),
        move |lp, resolved| {
            match resolved {
                Ok(addrs) => shared.borrow_mut().addrs = addrs.into_iter(),
                Err(e) => shared.borrow_mut().last_error = Some(e),
            }
            try_next(lp, shared);
            Ok(())
        },
    )
}

/// Starts the next address's attempt, or tells the protocol all failed.
fn try_next<B: Backend, P: Protocol<B>>(lp: &mut EventLoop<B>, shared: Shared<P>) {
    loop {
        let mut st = shared.borrow_mut();
        let Some(addr) = st.addrs.next() else {
            let error = st.last_error.take().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "no address to connect to")
            });
            let protocol = st.protocol.take();
            drop(st);
            if let Some(mut protocol) = protocol {
                protocol.connection_failed(lp, error);
            }
            return;
        };
        let stream = match connect_nonblocking(addr) {
            Ok(stream) => stream,
            Err(e) => {
                st.last_error = Some(e);
                continue;
            }
        };
        let timeout = st.timeout;
        drop(st);
        let on_ready = {
            let shared = shared.clone();
            move |lp: &mut EventLoop<B>, stream: &mut TcpStream, ev: crate::IoEvent<TcpStream>| {
                connected(lp, stream, ev.token(), &shared);
                Ok(())
            }
        };
        let token = match lp.register(stream, EVENT_WRITE, on_ready) {
            Ok(token) => token,
            Err(e) => {
                shared.borrow_mut().last_error = Some(e.into_error().into());
                continue;
            }
        };
        if let Some(timeout) = timeout {
            let shared_for_timer = shared.clone();
            let timer = lp.call_later(timeout, move |lp| {
                if lp.is_registered(token) {
                    lp.unregister(token)?;
                    shared_for_timer.borrow_mut().last_error = Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect to {addr} timed out"),
                    ));
                    try_next(lp, shared_for_timer);
                }
                Ok(())
            });
            shared.borrow_mut().timer = Some(timer);
        }
        return;
    }
}

/// The connecting socket is writable: connected, or this address failed.
fn connected<B: Backend, P: Protocol<B>>(
    lp: &mut EventLoop<B>,
    stream: &TcpStream,
    me: Token<TcpStream>,
    shared: &Shared<P>,
) {
    let outcome = finish_connect(stream);
    if matches!(&outcome, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
        return;
    }
    if let Some(timer) = shared.borrow_mut().timer.take() {
        timer.cancel();
    }
    match outcome {
        Ok(()) => {
            // The stream is ours to move once its callback has returned.
            let _ = lp.pause(me);
            let shared = shared.clone();
            lp.call_soon(move |lp| {
                let stream = lp.take(me)?;
                let (protocol, tls) = {
                    let mut st = shared.borrow_mut();
                    (st.protocol.take(), st.tls.take())
                };
                if let Some(protocol) = protocol {
                    if let Err((e, mut protocol)) = start(lp, Stream::Tcp(stream), protocol, tls) {
                        protocol.connection_failed(lp, e.into());
                    }
                }
                Ok(())
            });
        }
        Err(e) => {
            let _ = lp.unregister(me);
            shared.borrow_mut().last_error = Some(e);
            try_next(lp, shared.clone());
        }
    }
}

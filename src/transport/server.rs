//! Servers: a listener and a protocol factory, on [`net::serve`](crate::net::serve).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use super::stream::{start, Protocol, Stream, Upgrade};
use crate::net::{serve_listener, ListenerBuilder};
use crate::{Backend, EventLoop, RegisterError, Token};

/// Serves `listener` with a new protocol from `factory` for each connection
/// (asyncio's `loop.create_server`, given a socket). Built on
/// [`net::serve`](crate::net::serve): accepts in batches of up to 64,
/// connections non-blocking with Nagle off, accepting paused for
/// [`ACCEPT_PAUSE`](crate::net::ACCEPT_PAUSE) when out of descriptors
/// (`EMFILE`) instead of spinning. For a backlog or `SO_REUSEPORT` (one
/// listener per loop of a [`LoopGroup`](crate::LoopGroup)), build the
/// listener with [`ListenerBuilder`]; for a listener shared by the loops of a
/// group, give each a `try_clone`.
///
/// Returns the listener's token: unregister it to stop accepting
/// (connections already made stay).
///
/// # Errors
/// The listener comes back in the [`RegisterError`] if it cannot be made
/// non-blocking or watched.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use selectloop::transport::{self, Protocol, Transport};
/// use selectloop::EventLoop;
///
/// struct Upper;
/// impl Protocol for Upper {
///     fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
///         t.write(&data.to_ascii_uppercase());
///     }
/// }
///
/// let mut lp = EventLoop::new()?;
/// let listener = selectloop::net::ListenerBuilder::new("127.0.0.1:0").backlog(64).build()?;
/// let addr = listener.local_addr()?;
/// transport::serve(&mut lp, listener, || Upper)?;
/// let handle = lp.handle();
/// let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
///     let mut c = std::net::TcpStream::connect(addr)?;
///     c.write_all(b"shout")?;
///     let mut buf = [0; 5];
///     c.read_exact(&mut buf)?;
///     handle.stop();
///     Ok(buf.to_vec())
/// });
/// lp.run()?;
/// assert_eq!(client.join().unwrap()?, b"SHOUT");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve<B, P, F>(
    lp: &mut EventLoop<B>,
    listener: TcpListener,
    factory: F,
) -> Result<Token<TcpListener>, RegisterError<TcpListener>>
where
    B: Backend,
    P: Protocol<B>,
    F: FnMut() -> P + 'static,
{
    serve_upgraded(lp, listener, factory, || Ok(None))
}

/// [`serve`], each connection starting with what `upgrade` makes for it (a
/// TLS session: `serve_tls`, or nothing).
pub(super) fn serve_upgraded<B, P, F, U>(
    lp: &mut EventLoop<B>,
    listener: TcpListener,
    mut factory: F,
    mut upgrade: U,
) -> Result<Token<TcpListener>, RegisterError<TcpListener>>
where
    B: Backend,
    P: Protocol<B>,
    F: FnMut() -> P + 'static,
    U: FnMut() -> std::io::Result<Option<Upgrade>> + 'static,
{
    serve_listener(lp, listener, move |lp, stream, _peer| {
        let upgrade = upgrade()?;
        start(lp, Stream::Tcp(stream), factory(), upgrade).map_err(|(e, _protocol)| e)?;
        Ok(())
    })
}

/// [`serve`] on a new listener bound to `addr` (asyncio's
/// `loop.create_server(factory, host, port)`): backlog
/// [`DEFAULT_BACKLOG`](crate::net::DEFAULT_BACKLOG), `SO_REUSEADDR` on Unix
/// (see [`ListenerBuilder`]). Returns the listener's token and the address
/// it is bound to (port 0 picks one).
///
/// # Errors
/// - [`Error::Io`](crate::Error::Io) if `addr` does not resolve or cannot be
///   bound (resolution blocks: give an IP address on a running loop);
/// - as for [`serve`].
pub fn serve_addr<B, P, F>(
    lp: &mut EventLoop<B>,
    addr: impl ToSocketAddrs,
    factory: F,
) -> crate::Result<(Token<TcpListener>, SocketAddr)>
where
    B: Backend,
    P: Protocol<B>,
    F: FnMut() -> P + 'static,
{
    bind_and_serve(addr, |listener| serve(lp, listener, factory))
}

/// A listener bound to `addr` with the defaults of [`ListenerBuilder`],
/// handed to `serve`; its token and the address it is bound to.
pub(super) fn bind_and_serve(
    addr: impl ToSocketAddrs,
    serve: impl FnOnce(TcpListener) -> Result<Token<TcpListener>, RegisterError<TcpListener>>,
) -> crate::Result<(Token<TcpListener>, SocketAddr)> {
    let listener = ListenerBuilder::new(addr).build()?;
    let local = listener.local_addr()?;
    let token = serve(listener).map_err(RegisterError::into_error)?;
    Ok((token, local))
}

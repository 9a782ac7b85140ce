//! Unix stream sockets: servers on a [`UnixListener`], clients by path, and
//! on Linux and Android by abstract name.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use super::stream::{start, Protocol, Stream};
use crate::net::serve_listener;
use crate::{Backend, EventLoop, RegisterError, Token};

/// [`serve`](super::serve) for a Unix stream listener (asyncio's
/// `loop.create_unix_server`, given a socket): the same accept loop (batches,
/// `EMFILE` pause), a new protocol from `factory` per connection. A listener
/// on an abstract name (Linux, Android) comes from
/// `UnixListener::bind_addr(&SocketAddr::from_abstract_name(name)?)`.
///
/// # Errors
/// The listener comes back in the [`RegisterError`] if it cannot be made
/// non-blocking or watched.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::{UnixListener, UnixStream};
/// use selectloop::transport::{self, Protocol, Transport};
/// use selectloop::EventLoop;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
///         t.write(data);
///     }
/// }
///
/// let dir = std::env::temp_dir().join(format!("selectloop-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("echo.sock");
/// let _ = std::fs::remove_file(&path);
/// let mut lp = EventLoop::new()?;
/// transport::serve_unix(&mut lp, UnixListener::bind(&path)?, || Echo)?;
/// let handle = lp.handle();
/// let client_path = path.clone();
/// let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
///     let mut c = UnixStream::connect(client_path)?;
///     c.write_all(b"over a path")?;
///     let mut buf = [0; 11];
///     c.read_exact(&mut buf)?;
///     handle.stop();
///     Ok(buf.to_vec())
/// });
/// lp.run()?;
/// assert_eq!(client.join().unwrap()?, b"over a path");
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve_unix<B, P, F>(
    lp: &mut EventLoop<B>,
    listener: UnixListener,
    mut factory: F,
) -> Result<Token<UnixListener>, RegisterError<UnixListener>>
where
    B: Backend,
    P: Protocol<B>,
    F: FnMut() -> P + 'static,
{
    serve_listener(lp, listener, move |lp, stream, _peer| {
        start(lp, Stream::Unix(stream), factory(), None).map_err(|(e, _protocol)| e)?;
        Ok(())
    })
}

/// Connects to the Unix stream socket at `path` for `protocol` (asyncio's
/// `loop.create_unix_connection`). The connect is non-blocking: a listener
/// whose backlog is full refuses it (`WouldBlock`) instead of stalling the
/// loop. On the next loop iteration the protocol gets
/// [`connection_made`](Protocol::connection_made), or
/// [`connection_failed`](Protocol::connection_failed) with the error (no
/// such file, refused, ...).
pub fn connect_unix<B, P>(lp: &mut EventLoop<B>, path: impl AsRef<Path>, protocol: P)
where
    B: Backend,
    P: Protocol<B>,
{
    let addr = SockAddr::unix(path);
    connect_sockaddr(lp, addr, protocol);
}

/// [`connect_unix`] to a socket in Linux's abstract namespace: `name` without
/// the leading NUL (`@name` in `ss -x`).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(docsrs, doc(cfg(any(target_os = "linux", target_os = "android"))))]
pub fn connect_unix_abstract<B, P>(lp: &mut EventLoop<B>, name: &[u8], protocol: P)
where
    B: Backend,
    P: Protocol<B>,
{
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut path = Vec::with_capacity(name.len() + 1);
    path.push(0);
    path.extend_from_slice(name);
    connect_sockaddr(lp, SockAddr::unix(OsStr::from_bytes(&path)), protocol);
}

fn connect_sockaddr<B, P>(lp: &mut EventLoop<B>, addr: std::io::Result<SockAddr>, protocol: P)
where
    B: Backend,
    P: Protocol<B>,
{
    let connected = addr.and_then(|addr| {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&addr)?;
        Ok(UnixStream::from(socket))
    });
    lp.call_soon(move |lp| {
        let failure = match connected {
            Ok(stream) => start(lp, Stream::Unix(stream), protocol, None)
                .err()
                .map(|(e, protocol)| (e.into(), protocol)),
            Err(e) => Some((e, protocol)),
        };
        if let Some((error, mut protocol)) = failure {
            protocol.connection_failed(lp, error);
        }
        Ok(())
    });
}

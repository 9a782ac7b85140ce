//! [`serve`]: the event loop's accept loop (asyncio's `start_server`).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::event_loop::emit;
use crate::{Backend, EventLoop, RegisterError, Token, EVENT_READ};

/// How long [`serve`] stops accepting after an error it cannot skip.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves `listener` on `lp`: accepts each connection (non-blocking, Nagle
/// off) and hands it to `on_accept(loop, stream, peer)`. The loop's version of
/// Python's `asyncio.start_server`, and the accept loop every server here
/// would otherwise repeat.
///
/// - Accepts up to 64 connections per wake-up, so one busy listener cannot
///   starve the loop's other sources.
/// - A connection that gave up while queued (`ECONNABORTED`, `ECONNRESET`)
///   and `EINTR` are skipped; so is a connection whose non-blocking / no-delay
///   set-up fails (the error goes to the error handler, as below).
/// - Any other accept error (out of descriptors, `EMFILE`/`ENFILE`, or out of
///   memory) would leave the listener readable and the loop spinning: it is
///   reported (a warning through `log`, or on standard error without a
///   logger) and the listener [paused](EventLoop::pause) for
///   [`ACCEPT_PAUSE`], after which accepting resumes.
/// - An error returned by `on_accept` goes to the loop's
///   [error handler](EventLoop::set_error_handler) without a token: it
///   concerns that connection, and the listener keeps serving.
/// - A panic in `on_accept` (or in the error handler it reached) unwinds out
///   of [`run`](EventLoop::run) as any callback's panic does, closing the
///   connection it was given; but, unlike a source whose own callback
///   panics, the listener stays registered: one connection's set-up never
///   takes it down, and the loop serves again when it is run again.
///
/// Returns the listener's token: unregister it (or [`take`](EventLoop::take)
/// it back) to stop serving.
///
/// # Errors
/// The listener comes back in the [`RegisterError`]:
/// - [`Error::Io`](crate::Error::Io) if it cannot be made non-blocking, or
///   the kernel refuses to watch it;
/// - [`Error::AlreadyRegistered`](crate::Error::AlreadyRegistered) if its
///   descriptor is registered already.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use selectloop::net::{serve, ListenerBuilder};
/// use selectloop::{EventLoop, EVENT_READ};
///
/// let mut lp = EventLoop::new()?;
/// let listener = ListenerBuilder::new("127.0.0.1:0").build()?;
/// let addr = listener.local_addr()?;
/// let server = serve(&mut lp, listener, |lp, stream, _peer| {
///     lp.register(stream, EVENT_READ, |lp, stream: &mut TcpStream, _ev| {
///         let mut buf = [0; 64];
///         let n = stream.read(&mut buf)?;
///         stream.write_all(&buf[..n])?;
///         lp.stop();
///         Ok(())
///     })?;
///     Ok(())
/// })?;
///
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// lp.run()?;
/// let mut echoed = [0; 4];
/// client.read_exact(&mut echoed)?;
/// assert_eq!(&echoed, b"ping");
/// lp.unregister(server)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve<B, C>(
    lp: &mut EventLoop<B>,
    listener: TcpListener,
    on_accept: C,
) -> Result<Token<TcpListener>, RegisterError<TcpListener>>
where
    B: Backend,
    C: FnMut(&mut EventLoop<B>, TcpStream, SocketAddr) -> anyhow::Result<()> + 'static,
{
    serve_listener(lp, listener, on_accept)
}

/// A listening socket [`serve`] can accept on: TCP, or (for the transports)
/// a Unix stream listener.
pub(crate) trait Accept: crate::Source + 'static {
    /// The accepted connection.
    type Stream;
    /// The peer's address.
    type Addr;
    fn set_nonblocking(&self) -> io::Result<()>;
    fn accept_one(&self) -> io::Result<(Self::Stream, Self::Addr)>;
    /// Non-blocking, and for TCP Nagle off.
    fn set_up(stream: &Self::Stream) -> io::Result<()>;
    fn describe(&self) -> String;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;
    fn set_nonblocking(&self) -> io::Result<()> {
        TcpListener::set_nonblocking(self, true)
    }
    fn accept_one(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept()
    }
    fn set_up(stream: &TcpStream) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)
    }
    fn describe(&self) -> String {
        self.local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string())
    }
}

#[cfg(all(unix, feature = "transport"))]
impl Accept for std::os::unix::net::UnixListener {
    type Stream = std::os::unix::net::UnixStream;
    type Addr = std::os::unix::net::SocketAddr;
    fn set_nonblocking(&self) -> io::Result<()> {
        std::os::unix::net::UnixListener::set_nonblocking(self, true)
    }
    fn accept_one(&self) -> io::Result<(Self::Stream, Self::Addr)> {
        self.accept()
    }
    fn set_up(stream: &Self::Stream) -> io::Result<()> {
        stream.set_nonblocking(true)
    }
    fn describe(&self) -> String {
        self.local_addr()
            .map_or_else(|_| "?".into(), |a| format!("{a:?}"))
    }
}

/// [`serve`] on any listener [`Accept`] knows.
pub(crate) fn serve_listener<B, L, C>(
    lp: &mut EventLoop<B>,
    listener: L,
    mut on_accept: C,
) -> Result<Token<L>, RegisterError<L>>
where
    B: Backend,
    L: Accept,
    C: FnMut(&mut EventLoop<B>, L::Stream, L::Addr) -> anyhow::Result<()> + 'static,
{
    if let Err(e) = listener.set_nonblocking() {
        return Err(RegisterError::new(e.into(), listener));
    }
    lp.register(listener, EVENT_READ, move |lp, listener: &mut L, ev| {
        for _ in 0..64 {
            match listener.accept_one() {
                Ok((stream, peer)) => {
                    // A failed set-up concerns this connection only, and
                    // so does a panic: it unwinds out of `run`, but the
                    // listener stays registered.
                    let accepted = panic::catch_unwind(AssertUnwindSafe(|| {
                        let result = match L::set_up(&stream) {
                            Ok(()) => on_accept(lp, stream, peer),
                            Err(e) => Err(e.into()),
                        };
                        if let Err(error) = result {
                            lp.report_detached(error);
                        }
                    }));
                    if let Err(panic) = accepted {
                        lp.keep_source_on_panic();
                        panic::resume_unwind(panic);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    let me = ev.token();
                    let addr = listener.describe();
                    emit(
                        log::Level::Warn,
                        format_args!(
                            "accept on {addr} failed: {e}; pausing accepts for {ACCEPT_PAUSE:?}"
                        ),
                    );
                    lp.pause(me)?;
                    lp.call_later(ACCEPT_PAUSE, move |lp| match lp.resume(me) {
                        // Unregistered meanwhile: nothing to resume.
                        Ok(()) | Err(crate::Error::InvalidToken) => Ok(()),
                        Err(e) => Err(e.into()),
                    });
                    break;
                }
            }
        }
        Ok(())
    })
}

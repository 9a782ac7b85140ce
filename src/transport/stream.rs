//! The stream transport: a connection the loop owns, its buffers and flags,
//! and the [`Protocol`] it calls.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use socket2::SockRef;

use crate::event_loop::emit;
use crate::{Backend, DefaultBackend, EventLoop, Interest, IoEvent, Token, EVENT_READ};

/// Bytes asked for by each read of a connection, unless
/// [`Transport::set_read_size`] says otherwise (asyncio reads up to 256 KiB;
/// 64 KiB keeps the "high water + one read" bound of a paused writer small
/// and is what a loopback TCP segment train delivers at once).
pub const DEFAULT_READ_SIZE: usize = 64 * 1024;
/// asyncio's default high-water mark of the write buffer: above it the
/// protocol's [`pause_writing`](Protocol::pause_writing) is called.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// asyncio's default low-water mark: once the write buffer drains to it,
/// [`resume_writing`](Protocol::resume_writing) is called.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// The smallest chunk allocated for queued bytes (small writes share one).
const MIN_CHUNK: usize = 16 * 1024;
/// A drained chunk up to this capacity is kept for the next queued write.
const MAX_SPARE: usize = 64 * 1024;
/// Chunks handed to one vectored send.
const MAX_SLICES: usize = 16;

/// `send(2)` flags: never raise SIGPIPE (Apple: `SO_NOSIGPIPE` is set on
/// the socket by `start` instead; Windows has no SIGPIPE).
const SEND_FLAGS: i32 = crate::sys::NOSIGNAL;

/// A read buffer shared by connections.
type ReadBuf = Rc<RefCell<Vec<u8>>>;

thread_local! {
    /// The read buffer of every connection made on this thread: an idle
    /// connection owns none. Borrowed only for one read and the
    /// `data_received` it feeds; a loop run inside that callback (on the same
    /// thread) reads into a buffer of its own.
    static READ_BUF: ReadBuf = ReadBuf::default();
}

/// A protocol: what a connection does with its bytes (asyncio's
/// `asyncio.Protocol`). The loop calls it; it answers through the
/// [`Transport`] each method gets.
///
/// Methods return nothing: a protocol that wants the connection gone calls
/// [`Transport::close`] or [`Transport::abort`]. The order is asyncio's:
/// `connection_made` once; then `data_received` any number of times, and
/// `eof_received` at most once; then `connection_lost` once. A connection
/// opened with [`connect`](super::connect) that never connects gets
/// [`connection_failed`](Protocol::connection_failed) instead, and nothing
/// else.
///
/// `B` is the loop's backend; leave it out for the default loop.
pub trait Protocol<B: Backend = DefaultBackend>: Sized + 'static {
    /// The connection is up (asyncio's `connection_made`): keep
    /// [`t.token()`](Transport::token) to reach it later, set buffer limits,
    /// write a greeting.
    fn connection_made(&mut self, t: &mut Transport<'_, Self, B>) {
        let _ = t;
    }

    /// Bytes arrived (asyncio's `data_received`). `data` is never empty, and
    /// borrows a buffer reused by the next read: copy what you keep.
    fn data_received(&mut self, t: &mut Transport<'_, Self, B>, data: &[u8]);

    /// The peer closed its sending side (asyncio's `eof_received`). Return
    /// `true` to keep the connection half-open (writing still works; the
    /// transport closes once [`write_eof`](Transport::write_eof) has been
    /// flushed, or on [`close`](Transport::close)); `false`, the default,
    /// closes it once everything written has been sent.
    fn eof_received(&mut self, t: &mut Transport<'_, Self, B>) -> bool {
        let _ = t;
        false
    }

    /// The connection is closed (asyncio's `connection_lost`): `None` after a
    /// close, an abort, or both directions ended; `Some(error)` if reading or
    /// writing failed, e.g. [`io::ErrorKind::ConnectionReset`] when the peer
    /// reset it. The transport writes nothing more; its token is already
    /// unregistered; the socket closes when this returns.
    fn connection_lost(&mut self, t: &mut Transport<'_, Self, B>, error: Option<io::Error>) {
        let _ = (t, error);
    }

    /// The write buffer went above its high-water mark (asyncio's
    /// `pause_writing`): stop producing (an echo server pauses reading).
    /// Called once the callback that wrote returns, not inside
    /// [`write`](Transport::write); [`is_writing_paused`](Transport::is_writing_paused)
    /// turns true at once, for a producer that writes in a loop.
    fn pause_writing(&mut self, t: &mut Transport<'_, Self, B>) {
        let _ = t;
    }

    /// The write buffer drained to its low-water mark after a
    /// [`pause_writing`](Protocol::pause_writing) (asyncio's `resume_writing`).
    fn resume_writing(&mut self, t: &mut Transport<'_, Self, B>) {
        let _ = t;
    }

    /// A connection opened by [`connect`](super::connect) (or
    /// `connect_unix`) failed: the name did not resolve, every address
    /// refused or timed out, or the socket could not be made. asyncio raises
    /// this from `create_connection`. A TLS connection (a client's or a
    /// server's) whose handshake fails or times out gets it too, with the
    /// error: its protocol never got `connection_made`. The default logs it as a warning
    /// (through `log`, or on standard error without a logger).
    fn connection_failed(&mut self, lp: &mut EventLoop<B>, error: io::Error) {
        let _ = lp;
        emit(log::Level::Warn, format_args!("connection failed: {error}"));
    }

    /// The handshake of a [`start_tls_server`](Transport::start_tls_server)
    /// or [`start_tls_client`](Transport::start_tls_client) upgrade is done:
    /// what is read and written from here on is protected, and
    /// [`Transport::tls`] tells what was negotiated. (A connection that was
    /// TLS from the start gets [`connection_made`](Protocol::connection_made)
    /// at this point instead.) If the upgrade's handshake fails, the
    /// connection is lost with the error.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    fn tls_started(&mut self, t: &mut Transport<'_, Self, B>) {
        let _ = t;
    }
}

/// A stream socket the transport can own.
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

#[cfg(unix)]
impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Stream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        match self {
            Stream::Tcp(s) => s.as_socket(),
        }
    }
}

impl Stream {
    #[inline]
    fn send(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            // std sends with MSG_NOSIGNAL where it exists (SO_NOSIGPIPE is
            // set on Apple), and `send` is what it calls.
            Stream::Tcp(s) => (&*s).write(data),
            #[cfg(unix)]
            Stream::Unix(_) => SockRef::from(self).send_with_flags(data, SEND_FLAGS),
        }
    }

    pub(super) fn send_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        SockRef::from(self).send_vectored_with_flags(slices, SEND_FLAGS)
    }

    #[inline]
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).read(buf),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            #[cfg(unix)]
            Stream::Unix(s) => s.peer_addr().map(Addr::Unix),
        }
    }

    fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            #[cfg(unix)]
            Stream::Unix(s) => s.local_addr().map(Addr::Unix),
        }
    }
}

/// A connection's address: an IP address and port, or (on Unix) a Unix
/// socket's path or abstract name. asyncio's `get_extra_info('peername')`
/// and `('sockname')`.
#[derive(Debug, Clone)]
pub enum Addr {
    /// A TCP connection's address.
    Inet(SocketAddr),
    /// A Unix stream socket's address (unnamed for a client's own end).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    Unix(std::os::unix::net::SocketAddr),
}

impl Addr {
    /// The IP address and port, for a TCP connection.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(addr) => Some(*addr),
            #[cfg(unix)]
            Addr::Unix(_) => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(addr) => addr.fmt(f),
            #[cfg(unix)]
            Addr::Unix(addr) => {
                if let Some(path) = addr.as_pathname() {
                    return write!(f, "{}", path.display());
                }
                #[cfg(any(target_os = "linux", target_os = "android"))]
                {
                    use std::os::linux::net::SocketAddrExt;
                    if let Some(name) = addr.as_abstract_name() {
                        return write!(f, "@{}", String::from_utf8_lossy(name));
                    }
                }
                f.write_str("(unnamed)")
            }
        }
    }
}

/// What the transport knows of its connection: the socket, the bytes not yet
/// sent, and where each direction stands.
pub(super) struct State {
    stream: Stream,
    /// Queued chunks; the first one is sent from `out_off` on.
    out: VecDeque<Vec<u8>>,
    out_off: usize,
    pub(super) out_len: usize,
    /// A drained chunk, kept for the next write that has to queue.
    spare: Option<Vec<u8>>,
    high: usize,
    low: usize,
    read_size: usize,
    /// Where each direction stands: the `F_*` bits.
    flags: u16,
    /// A read or write failed: lose the connection with this error
    /// (`F_FAILED` set with it).
    error: Option<io::Error>,
    /// What the loop watches the socket for: [`WATCH_READ`] and
    /// [`WATCH_WRITE`] bits; 0 while the source is paused.
    watching: u8,
    /// The TLS session of a TLS connection: what is read goes through it
    /// before the protocol sees it, what the protocol writes before the
    /// socket does. Boxed: a plain connection pays one pointer.
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Box<super::tls::Session>>,
}

const WATCH_READ: u8 = 1;
const WATCH_WRITE: u8 = 2;

/// The protocol paused reading.
pub(super) const F_READ_PAUSED: u16 = 1;
/// The peer's end of stream arrived.
pub(super) const F_EOF_RECEIVED: u16 = 1 << 1;
/// `write_eof` was asked for ...
pub(super) const F_WRITE_EOF: u16 = 1 << 2;
/// ... and done.
const F_SHUT_WR: u16 = 1 << 3;
/// `close` was asked for: close once flushed.
pub(super) const F_CLOSING: u16 = 1 << 4;
pub(super) const F_ABORTED: u16 = 1 << 5;
/// `error` holds an error.
pub(super) const F_FAILED: u16 = 1 << 6;
/// `connection_lost` has been called (or is being called).
pub(super) const F_LOST: u16 = 1 << 7;
/// The write buffer is above the high-water mark ...
const F_WRITING_PAUSED: u16 = 1 << 8;
/// ... and the protocol has been told so.
const F_TOLD_PAUSED: u16 = 1 << 9;
/// What the socket should be watched for may have changed (reading paused
/// or resumed, end of stream, bytes queued or sent): `settle` looks.
pub(super) const F_DIRTY: u16 = 1 << 10;
/// The protocol's `connection_made` has been called (a TLS connection's is
/// called once its handshake is done): losing the connection now calls
/// `connection_lost`; before, `connection_failed`.
pub(super) const F_MADE: u16 = 1 << 11;
/// A TLS connection's `close_notify` has been queued.
#[cfg(feature = "tls")]
pub(super) const F_NOTIFIED: u16 = 1 << 12;
/// Nothing more is sent, not even a TLS alert.
#[cfg(feature = "tls")]
pub(super) const DEAD: u16 = F_ABORTED | F_FAILED | F_LOST;

/// Writes are ignored.
pub(super) const NO_WRITE: u16 = F_WRITE_EOF | F_CLOSING | F_ABORTED | F_FAILED | F_LOST;
/// A readable socket is not read.
const NO_READ: u16 = F_READ_PAUSED | F_EOF_RECEIVED | F_CLOSING | F_ABORTED | F_FAILED | F_LOST;
/// Something for `settle` to do besides watching the socket.
const UNSETTLED: u16 = F_WRITE_EOF
    | F_CLOSING
    | F_ABORTED
    | F_FAILED
    | F_LOST
    | F_WRITING_PAUSED
    | F_TOLD_PAUSED
    | F_DIRTY;

impl State {
    fn new(stream: Stream) -> State {
        State {
            stream,
            out: VecDeque::new(),
            out_off: 0,
            out_len: 0,
            spare: None,
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_LOW_WATER,
            read_size: DEFAULT_READ_SIZE,
            flags: 0,
            error: None,
            watching: WATCH_READ,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[inline(always)]
    pub(super) fn has(&self, flags: u16) -> bool {
        self.flags & flags != 0
    }

    #[inline(always)]
    pub(super) fn set(&mut self, flags: u16) {
        self.flags |= flags;
    }

    #[inline(always)]
    fn clear(&mut self, flags: u16) {
        self.flags &= !flags;
    }

    pub(super) fn fail(&mut self, error: io::Error) {
        self.set(F_FAILED);
        self.error = Some(error);
    }

    /// Whether a readable socket should be read now.
    #[inline(always)]
    fn wants_data(&self) -> bool {
        !self.has(NO_READ)
    }

    /// What the loop should watch the socket for.
    #[inline(always)]
    fn wanted(&self) -> u8 {
        let read = !self.has(F_READ_PAUSED | F_EOF_RECEIVED | F_CLOSING);
        u8::from(read) * WATCH_READ + u8::from(self.out_len > 0) * WATCH_WRITE
    }

    /// Nothing for [`Connection::settle`] to do: no request pending, nothing
    /// to tell the protocol, the socket watched as it should be (nothing
    /// changed what it should be watched for since it was last set).
    #[inline(always)]
    fn settled(&self) -> bool {
        debug_assert!(self.has(UNSETTLED) || self.watching == self.wanted());
        !self.has(UNSETTLED)
    }

    /// The common case inline: nothing queued, and the socket takes it all.
    #[inline(always)]
    fn write(&mut self, data: &[u8]) {
        if data.is_empty() || self.has(NO_WRITE) {
            return;
        }
        self.send_or_queue(data);
    }

    /// Bytes of the transport's own (a TLS record, an alert, a
    /// `close_notify`): sent after a close or `write_eof` too, but not once
    /// the connection is aborted, failed or lost.
    #[cfg(feature = "tls")]
    pub(super) fn put(&mut self, data: &[u8]) {
        if !data.is_empty() && !self.has(DEAD) {
            self.send_or_queue(data);
        }
    }

    /// [`put`](State::put) for several buffers (TLS records): one vectored
    /// send while nothing is queued, the rest queued. Takes all of them.
    #[cfg(feature = "tls")]
    pub(super) fn put_vectored(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        let total = bufs.iter().map(|b| b.len()).sum();
        if let [one] = bufs {
            self.put(one);
            return total;
        }
        if total == 0 || self.has(DEAD) {
            return total;
        }
        let mut sent = 0;
        while self.out_len == 0 {
            match self.stream.send_vectored(bufs) {
                Ok(n) => {
                    sent = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.fail(e);
                    return total;
                }
            }
        }
        for buf in bufs {
            if sent >= buf.len() {
                sent -= buf.len();
            } else {
                self.queue(&buf[sent..]);
                sent = 0;
            }
        }
        total
    }

    #[inline(always)]
    fn send_or_queue(&mut self, data: &[u8]) {
        if self.out_len > 0 {
            return self.queue(data); // behind what waits already
        }
        match self.stream.send(data) {
            Ok(n) if n == data.len() => {}
            sent => self.write_rest(data, sent),
        }
    }

    /// A direct send that did not take everything: retries what can be
    /// retried, queues the rest, or records the error.
    #[inline(never)]
    fn write_rest(&mut self, mut data: &[u8], mut sent: io::Result<usize>) {
        loop {
            match sent {
                Ok(0) => break,
                Ok(n) if n == data.len() => return,
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return self.fail(e),
            }
            sent = self.stream.send(data);
        }
        self.queue(data);
    }

    fn queue(&mut self, data: &[u8]) {
        let fits = self
            .out
            .back()
            .is_some_and(|back| back.capacity() - back.len() >= data.len());
        if !fits {
            let chunk = match self.spare.take() {
                Some(spare) if spare.capacity() >= data.len() => spare,
                _ => Vec::with_capacity(data.len().max(MIN_CHUNK)),
            };
            self.out.push_back(chunk);
        }
        self.out
            .back_mut()
            .expect("a chunk")
            .extend_from_slice(data);
        self.out_len += data.len();
        self.set(F_DIRTY);
        if self.out_len > self.high {
            self.set(F_WRITING_PAUSED);
        }
    }

    /// Sends queued chunks until the socket would block or they are gone.
    fn flush(&mut self) -> io::Result<()> {
        while self.out_len > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(&self.out) {
                let from = if count == 0 { self.out_off } else { 0 };
                *slot = IoSlice::new(&chunk[from..]);
                count += 1;
            }
            let sent = if count == 1 {
                self.stream.send(&slices[0])
            } else {
                self.stream.send_vectored(&slices[..count])
            };
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Forgets `n` sent bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        self.out_len -= n;
        self.set(F_DIRTY);
        while n > 0 {
            let front = self.out.front().expect("sent bytes were queued");
            let left = front.len() - self.out_off;
            if n < left {
                self.out_off += n;
                return;
            }
            n -= left;
            self.out_off = 0;
            let mut chunk = self.out.pop_front().expect("front");
            if self.spare.is_none() && chunk.capacity() <= MAX_SPARE {
                chunk.clear();
                self.spare = Some(chunk);
            }
        }
    }

    fn drop_buffer(&mut self) {
        self.out.clear();
        self.out_off = 0;
        self.out_len = 0;
    }
}

/// A connection registered with the loop: the socket and its state, and the
/// protocol that handles it. The loop owns it; its token is a
/// [`StreamToken<P>`], through which [`EventLoop::with_transport`] reaches it
/// from anywhere on the loop's thread.
pub struct Connection<P> {
    protocol: P,
    state: State,
    /// The thread's read buffer.
    read_buf: ReadBuf,
}

/// The token of a transport connection whose protocol is `P`.
pub type StreamToken<P> = Token<Connection<P>>;

impl<P> Connection<P> {
    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The protocol, mutably.
    pub fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    /// Bytes written and not yet sent.
    pub fn write_buffer_size(&self) -> usize {
        self.state.out_len
    }
}

impl<P> fmt::Debug for Connection<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.state.stream.peer_addr().ok())
            .field("buffered", &self.state.out_len)
            .field("reading", &!self.state.has(F_READ_PAUSED))
            .field("closing", &self.state.has(F_CLOSING))
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
impl<P> std::os::fd::AsFd for Connection<P> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.state.stream.as_fd()
    }
}

#[cfg(windows)]
impl<P> std::os::windows::io::AsSocket for Connection<P> {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.state.stream.as_socket()
    }
}

/// A protocol's handle on its connection, for the length of one call
/// (asyncio's `asyncio.Transport`), with the loop behind it.
///
/// Writing never blocks: [`write`](Transport::write) sends what the socket
/// takes at once and queues the rest, which the loop sends as the socket
/// becomes writable (watching for `EVENT_WRITE` only meanwhile).
pub struct Transport<'a, P, B: Backend = DefaultBackend> {
    lp: &'a mut EventLoop<B>,
    state: &'a mut State,
    token: StreamToken<P>,
    _protocol: PhantomData<fn(&P)>,
}

impl<P, B: Backend> fmt::Debug for Transport<'_, P, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("token", &self.token)
            .field("buffered", &self.state.out_len)
            .finish_non_exhaustive()
    }
}

impl<P, B: Backend> Transport<'_, P, B> {
    /// Sends `data` (asyncio's `write`): straight to the socket while it
    /// takes it, the rest queued and sent as the socket becomes writable.
    /// Never blocks.
    ///
    /// Ignored after [`close`](Transport::close),
    /// [`write_eof`](Transport::write_eof) or [`abort`](Transport::abort),
    /// and once the connection is lost (asyncio raises or logs there). A
    /// failing send (a reset peer) ends the connection with
    /// [`connection_lost(Some(error))`](Protocol::connection_lost) once the
    /// current callback returns.
    pub fn write(&mut self, data: &[u8]) {
        #[cfg(feature = "tls")]
        if self.state.tls.is_some() {
            return super::tls::write(self.state, &[data]);
        }
        self.state.write(data);
    }

    /// Sends several buffers as one write (asyncio's `writelines`).
    pub fn write_all_of(&mut self, bufs: &[&[u8]]) {
        #[cfg(feature = "tls")]
        if self.state.tls.is_some() {
            return super::tls::write(self.state, bufs);
        }
        for buf in bufs {
            self.state.write(buf);
        }
    }

    /// Closes the sending side once everything written is sent (asyncio's
    /// `write_eof`): the peer reads end of stream, and this side keeps
    /// reading. Later writes are ignored. On a TLS connection a
    /// `close_notify` alert goes first (asyncio's TLS transport cannot
    /// half-close; TLS 1.3 and rustls can).
    pub fn write_eof(&mut self) {
        self.state.set(F_WRITE_EOF);
    }

    /// Always true: stream sockets can half-close (asyncio's `can_write_eof`).
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the connection once everything written is sent (asyncio's
    /// `close`); reading stops now. The protocol then gets
    /// [`connection_lost(None)`](Protocol::connection_lost). A TLS
    /// connection sends its `close_notify` alert first.
    pub fn close(&mut self) {
        self.state.set(F_CLOSING);
    }

    /// Closes the connection now, dropping unsent bytes (asyncio's `abort`);
    /// [`connection_lost(None)`](Protocol::connection_lost) follows when the
    /// current callback returns.
    pub fn abort(&mut self) {
        self.state.set(F_ABORTED);
    }

    /// True once closing, aborted or lost (asyncio's `is_closing`).
    pub fn is_closing(&self) -> bool {
        self.state.has(F_CLOSING | F_ABORTED | F_LOST | F_FAILED)
    }

    /// Stops reading until [`resume_reading`](Transport::resume_reading)
    /// (asyncio's `pause_reading`): no `data_received` meanwhile, and the
    /// kernel's buffers push back on the peer.
    pub fn pause_reading(&mut self) {
        self.state.set(F_READ_PAUSED | F_DIRTY);
    }

    /// Reads again after [`pause_reading`](Transport::pause_reading)
    /// (asyncio's `resume_reading`).
    pub fn resume_reading(&mut self) {
        self.state.clear(F_READ_PAUSED);
        self.state.set(F_DIRTY);
    }

    /// True unless reading is paused (asyncio's `is_reading`).
    pub fn is_reading(&self) -> bool {
        !self.state.has(F_READ_PAUSED)
    }

    /// Bytes written and not yet sent (asyncio's `get_write_buffer_size`).
    pub fn write_buffer_size(&self) -> usize {
        self.state.out_len
    }

    /// The write buffer's `(low, high)` water marks (asyncio's
    /// `get_write_buffer_limits`); by default
    /// ([`DEFAULT_LOW_WATER`], [`DEFAULT_HIGH_WATER`]).
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        (self.state.low, self.state.high)
    }

    /// Sets the write buffer's water marks (asyncio's
    /// `set_write_buffer_limits`): above `high`, the protocol's
    /// [`pause_writing`](Protocol::pause_writing); back down to `low`,
    /// [`resume_writing`](Protocol::resume_writing). A `low` above `high`
    /// is lowered to `high`. `(0, 0)`: paused whenever anything is queued.
    pub fn set_write_buffer_limits(&mut self, high: usize, low: usize) {
        self.state.high = high;
        self.state.low = low.min(high);
        let st = &mut *self.state;
        if st.out_len > high {
            st.set(F_WRITING_PAUSED);
        } else if st.out_len <= st.low && !st.has(F_TOLD_PAUSED) {
            st.clear(F_WRITING_PAUSED);
        }
    }

    /// True while the write buffer is above its high-water mark and has not
    /// yet drained to its low-water mark. Turns true inside the
    /// [`write`](Transport::write) that crosses the mark: a producer writing
    /// in a loop stops on it.
    pub fn is_writing_paused(&self) -> bool {
        self.state.has(F_WRITING_PAUSED)
    }

    /// Sets how many bytes each read asks for (default
    /// [`DEFAULT_READ_SIZE`]; at least 1). The buffer is the thread's,
    /// shared by its connections.
    pub fn set_read_size(&mut self, size: usize) {
        self.state.read_size = size.max(1);
    }

    /// The peer's address (asyncio's `get_extra_info('peername')`).
    ///
    /// # Errors
    /// The OS error, e.g. `NotConnected` once the peer is gone.
    pub fn peer_addr(&self) -> io::Result<Addr> {
        self.state.stream.peer_addr()
    }

    /// This end's address (asyncio's `get_extra_info('sockname')`).
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<Addr> {
        self.state.stream.local_addr()
    }

    /// This connection's token: keep it to write to the connection from
    /// elsewhere ([`EventLoop::with_transport`]).
    pub fn token(&self) -> StreamToken<P> {
        self.token
    }

    /// The loop (asyncio's `get_loop`): for timers, offloaded work, or other
    /// connections.
    pub fn lp(&mut self) -> &mut EventLoop<B> {
        self.lp
    }
    /// The connection's state, for the TLS layer.
    #[cfg(feature = "tls")]
    pub(super) fn state(&self) -> &State {
        self.state
    }

    /// The loop and the connection's state, for the TLS layer.
    #[cfg(feature = "tls")]
    pub(super) fn parts(&mut self) -> (&mut EventLoop<B>, &mut State) {
        (self.lp, self.state)
    }
}

impl<P> Connection<P> {
    #[inline(always)]
    fn call<B: Backend, R>(
        &mut self,
        lp: &mut EventLoop<B>,
        token: StreamToken<P>,
        f: impl FnOnce(&mut P, &mut Transport<'_, P, B>) -> R,
    ) -> R
    where
        P: Protocol<B>,
    {
        call(&mut self.protocol, &mut self.state, lp, token, f)
    }

    /// The loop's callback for a connection.
    fn on_event<B: Backend>(
        lp: &mut EventLoop<B>,
        conn: &mut Connection<P>,
        ev: IoEvent<Connection<P>>,
    ) -> anyhow::Result<()>
    where
        P: Protocol<B>,
    {
        let token = ev.token();
        if ev.is_writable() && conn.state.out_len > 0 {
            if let Err(e) = conn.state.flush() {
                conn.state.fail(e);
            }
        }
        if ev.is_readable() && conn.state.wants_data() {
            let Connection {
                protocol,
                state,
                read_buf,
            } = conn;
            let (mut guard, mut own);
            let buf = match read_buf.try_borrow_mut() {
                Ok(borrowed) => {
                    guard = borrowed;
                    &mut *guard
                }
                Err(_) => {
                    own = Vec::new();
                    &mut own
                }
            };
            Self::read(protocol, state, lp, token, buf);
        }
        conn.settle(lp, token);
        Ok(())
    }

    /// One read, and the protocol call it leads to.
    #[inline]
    fn read<B: Backend>(
        protocol: &mut P,
        state: &mut State,
        lp: &mut EventLoop<B>,
        token: StreamToken<P>,
        buf: &mut Vec<u8>,
    ) where
        P: Protocol<B>,
    {
        let size = state.read_size;
        if buf.len() < size {
            buf.resize(size, 0);
        }
        let n = loop {
            match state.stream.read(&mut buf[..size]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return state.fail(e),
            }
        };
        #[cfg(feature = "tls")]
        if state.tls.is_some() {
            return super::tls::received(protocol, state, lp, token, buf, n);
        }
        if n == 0 {
            end_of_stream(protocol, state, lp, token);
        } else {
            call(protocol, state, lp, token, |p, t| {
                p.data_received(t, &buf[..n])
            });
        }
    }

    /// After any protocol call: finishes what the protocol asked for, tells
    /// it about its write buffer, and watches the socket for what is needed.
    #[inline]
    pub(super) fn settle<B: Backend>(&mut self, lp: &mut EventLoop<B>, token: StreamToken<P>)
    where
        P: Protocol<B>,
    {
        if !self.state.settled() {
            self.settle_slow(lp, token);
        }
    }

    #[inline(never)]
    fn settle_slow<B: Backend>(&mut self, lp: &mut EventLoop<B>, token: StreamToken<P>)
    where
        P: Protocol<B>,
    {
        loop {
            let st = &mut self.state;
            if st.has(F_LOST) {
                return;
            }
            if st.has(F_FAILED | F_ABORTED) {
                let error = st.error.take();
                return self.lose(lp, token, error);
            }
            #[cfg(feature = "tls")]
            if st.has(F_WRITE_EOF | F_CLOSING) && !st.has(F_NOTIFIED) && st.tls.is_some() {
                st.set(F_NOTIFIED);
                super::tls::close_notify(st);
                continue; // the alert's send may have failed
            }
            if st.out_len == 0 && st.has(F_WRITE_EOF) && !st.has(F_SHUT_WR) {
                st.set(F_SHUT_WR);
                match st.stream.shutdown_write() {
                    // The peer is gone already: the read side will tell.
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => {
                        st.fail(e);
                        continue;
                    }
                    _ => {}
                }
            }
            if st.out_len == 0
                && (st.has(F_CLOSING)
                    || st.flags & (F_EOF_RECEIVED | F_SHUT_WR) == F_EOF_RECEIVED | F_SHUT_WR)
            {
                return self.lose(lp, token, None);
            }
            if st.has(F_WRITING_PAUSED) && !st.has(F_TOLD_PAUSED) {
                st.set(F_TOLD_PAUSED);
                self.call(lp, token, |p, t| p.pause_writing(t));
                continue;
            }
            if st.has(F_TOLD_PAUSED) && st.out_len <= st.low {
                st.clear(F_WRITING_PAUSED | F_TOLD_PAUSED);
                self.call(lp, token, |p, t| p.resume_writing(t));
                continue;
            }
            // A TLS read held plaintext back while reading was paused:
            // delivered before the socket is read again.
            #[cfg(feature = "tls")]
            if !st.has(NO_READ) && st.tls.as_ref().is_some_and(|s| s.has_held()) {
                super::tls::release(&mut self.protocol, &mut self.state, lp, token);
                continue;
            }
            break;
        }
        let st = &mut self.state;
        st.clear(F_DIRTY);
        let want = st.wanted();
        if want == st.watching {
            return;
        }
        let result = match Interest::from_flags(want & WATCH_READ != 0, want & WATCH_WRITE != 0) {
            Some(events) => lp.modify(token, events).and_then(|()| {
                if st.watching == 0 {
                    lp.resume(token)
                } else {
                    Ok(())
                }
            }),
            None => lp.pause(token),
        };
        match result {
            Ok(()) => st.watching = want,
            Err(e) => self.lose(lp, token, Some(e.into())),
        }
    }

    /// Unregisters the connection and tells the protocol (once).
    fn lose<B: Backend>(
        &mut self,
        lp: &mut EventLoop<B>,
        token: StreamToken<P>,
        error: Option<io::Error>,
    ) where
        P: Protocol<B>,
    {
        let st = &mut self.state;
        if error.is_none() && !st.has(F_ABORTED | F_EOF_RECEIVED) {
            // A socket closed with the peer's bytes unread sends a reset,
            // which can destroy what was just written before the peer reads
            // it: end our side first, then read and discard what it sent.
            let _ = st.stream.shutdown_write();
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                match st.stream.read(&mut sink) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        st.set(F_LOST);
        st.drop_buffer();
        st.spare = None;
        #[cfg(feature = "tls")]
        super::tls::lost(st);
        let _ = lp.unregister(token);
        if !st.has(F_MADE) {
            // A TLS handshake that failed: the protocol never heard of a
            // connection.
            let error = error.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection closed during the TLS handshake",
                )
            });
            return self.protocol.connection_failed(lp, error);
        }
        self.call(lp, token, |p, t| p.connection_lost(t, error));
    }

    /// The state, for the TLS layer's timer.
    #[cfg(feature = "tls")]
    pub(super) fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// The peer's end of stream: the protocol says whether to stay half-open.
pub(super) fn end_of_stream<P: Protocol<B>, B: Backend>(
    protocol: &mut P,
    state: &mut State,
    lp: &mut EventLoop<B>,
    token: StreamToken<P>,
) {
    state.set(F_EOF_RECEIVED | F_DIRTY);
    if !call(protocol, state, lp, token, |p, t| p.eof_received(t)) {
        state.set(F_CLOSING);
    }
}

/// Calls the protocol with a [`Transport`] on `state`.
#[inline(always)]
pub(super) fn call<P, B: Backend, R>(
    protocol: &mut P,
    state: &mut State,
    lp: &mut EventLoop<B>,
    token: StreamToken<P>,
    f: impl FnOnce(&mut P, &mut Transport<'_, P, B>) -> R,
) -> R {
    let mut t = Transport {
        lp,
        state,
        token,
        _protocol: PhantomData,
    };
    f(protocol, &mut t)
}

/// What a connection starts with besides its socket: a TLS session, or
/// (without the `tls` feature) nothing.
#[cfg(feature = "tls")]
pub(crate) type Upgrade = super::tls::Session;
/// What a connection starts with besides its socket: a TLS session, or
/// (without the `tls` feature) nothing.
#[cfg(not(feature = "tls"))]
pub(crate) enum Upgrade {}

/// Registers `stream` as a transport connection for `protocol` and calls
/// its `connection_made` (a TLS connection's once its handshake is done);
/// if the loop refuses the socket, the protocol comes back with the error.
pub(crate) fn start<P: Protocol<B>, B: Backend>(
    lp: &mut EventLoop<B>,
    stream: Stream,
    protocol: P,
    tls: Option<Upgrade>,
) -> Result<StreamToken<P>, (crate::Error, P)> {
    if let Err(e) = crate::sys::no_sigpipe(SockRef::from(&stream)) {
        return Err((e.into(), protocol));
    }
    #[allow(unused_mut)] // without TLS
    let mut state = State::new(stream);
    #[cfg(feature = "tls")]
    {
        state.tls = tls.map(Box::new);
    }
    #[cfg(not(feature = "tls"))]
    if let Some(never) = tls {
        match never {}
    }
    let conn = Connection {
        protocol,
        state,
        read_buf: READ_BUF.with(Rc::clone),
    };
    let token = match lp.register(conn, EVENT_READ, Connection::<P>::on_event::<B>) {
        Ok(token) => token,
        Err(e) => {
            let (error, conn) = e.into_parts();
            return Err((error, conn.protocol));
        }
    };
    let made = lp.with_source_and_loop(token, |lp, conn| {
        #[cfg(feature = "tls")]
        if conn.state.tls.is_some() {
            // `connection_made` waits for the handshake.
            super::tls::begin(lp, token, &mut conn.state);
            return conn.settle(lp, token);
        }
        conn.state.set(F_MADE);
        conn.call(lp, token, |p, t| p.connection_made(t));
        conn.settle(lp, token);
    });
    debug_assert!(made.is_ok(), "a connection just registered is there");
    Ok(token)
}

impl<B: Backend> EventLoop<B> {
    /// Runs `f` with a connection's protocol and [`Transport`], from anywhere
    /// on the loop's thread: another connection's callback (a chat server's
    /// broadcast), a timer, an offloaded job's completion. What `f` writes is
    /// sent as [`Transport::write`] sends it, and the protocol hears of its
    /// write buffer and of a failure before this returns.
    ///
    /// # Errors
    /// - [`Error::InvalidToken`](crate::Error::InvalidToken) if the connection
    ///   is closed;
    /// - [`Error::InUse`](crate::Error::InUse) from the connection's own
    ///   callbacks, which have its transport already.
    pub fn with_transport<P: Protocol<B>, R>(
        &mut self,
        token: StreamToken<P>,
        f: impl FnOnce(&mut P, &mut Transport<'_, P, B>) -> R,
    ) -> crate::Result<R> {
        self.with_source_and_loop(token, |lp, conn| {
            let result = conn.call(lp, token, f);
            conn.settle(lp, token);
            result
        })
    }
}

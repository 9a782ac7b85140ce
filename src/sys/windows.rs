//! Windows: descriptors are `RawSocket`, sources are `AsSocket`, the wake pipe
//! is a loopback UDP socket connected to itself, and `poll` is `WSAPoll`.

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::windows::io::{AsRawSocket, AsSocket, RawSocket};

use windows_sys::Win32::Networking::WinSock;

/// What Python calls a file descriptor: a `RawFd` on Unix, a `RawSocket` on Windows.
pub type Fd = RawSocket;

/// An object a selector can watch: anything with a socket handle
/// (`AsFd` on Unix, [`AsSocket`] on Windows).
///
/// It is implemented for every such type, including references and
/// `Box<dyn Source>`, so users never implement it themselves and never need
/// `unsafe` to register a socket.
///
/// ```
/// use std::net::TcpListener;
/// use selectloop::Source;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let boxed: Box<dyn Source> = Box::new(listener);
/// assert!(boxed.fileno() > 0);
/// # std::io::Result::Ok(())
/// ```
pub trait Source: AsSocket {
    /// The socket's handle, Python's `fileno()`.
    fn fileno(&self) -> Fd {
        self.as_socket().as_raw_socket()
    }
}

impl<T: AsSocket + ?Sized> Source for T {}

/// A UDP socket on 127.0.0.1 connected to itself: a datagram sent makes it
/// readable. (WSAPoll watches sockets only, so a pipe will not do.)
#[derive(Debug)]
pub(crate) struct WakePipe {
    sock: UdpSocket,
}

impl WakePipe {
    pub(crate) fn new() -> io::Result<WakePipe> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        sock.connect(sock.local_addr()?)?;
        sock.set_nonblocking(true)?;
        Ok(WakePipe { sock })
    }

    /// The socket to watch for readability.
    pub(crate) fn fd(&self) -> Fd {
        self.sock.as_raw_socket()
    }

    /// Makes the watched socket readable. A full buffer already is, so `WouldBlock` is success.
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self.sock.send(&[1]) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads every pending datagram so the socket is no longer readable.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 16];
        while self.sock.recv(&mut buf).is_ok() {}
    }
}

/// One entry of the WSAPoll set.
pub(crate) type PollFd = WinSock::WSAPOLLFD;

pub(crate) const POLLIN: i16 = WinSock::POLLRDNORM;
pub(crate) const POLLOUT: i16 = WinSock::POLLWRNORM;

pub(crate) fn pollfd(fd: Fd, events: i16) -> PollFd {
    WinSock::WSAPOLLFD {
        fd: fd as WinSock::SOCKET,
        events,
        revents: 0,
    }
}

/// One call of `WSAPoll`.
pub(crate) fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    let len = u32::try_from(fds.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `WSAPOLLFD` whose
    // length is passed along; WSAPoll writes only the `revents` fields.
    let n = unsafe { WinSock::WSAPoll(fds.as_mut_ptr(), len, timeout_ms) };
    if n < 0 {
        // SAFETY: WSAGetLastError only reads the calling thread's last error.
        Err(io::Error::from_raw_os_error(unsafe {
            WinSock::WSAGetLastError()
        }))
    } else {
        Ok(n as usize)
    }
}

/// Borrows a registered socket by handle.
///
/// # Safety
/// `fd` must be open, and stay open while the result is used.
pub(crate) unsafe fn borrow<'a>(fd: Fd) -> std::os::windows::io::BorrowedSocket<'a> {
    // SAFETY: forwarded to our caller.
    unsafe { std::os::windows::io::BorrowedSocket::borrow_raw(fd) }
}

#[cfg(feature = "event-loop")]
/// A registered socket the event loop hands to its selector, while the
/// object that owns the socket sits beside it in the key's data.
#[derive(Debug)]
pub(crate) struct LoopFd(pub(crate) Fd);

#[cfg(feature = "event-loop")]
impl AsSocket for LoopFd {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        // SAFETY: the event loop creates a `LoopFd` only for a socket whose
        // owner it holds in the same registration's data (or, while its callback
        // runs, on the dispatch stack), and it removes the registration from the
        // selector before it lets the owner go; so the socket is open for as
        // long as this `LoopFd` is in the selector.
        unsafe { borrow(self.0) }
    }
}

/// The socket of a source, borrowed (what `polling` takes).
pub(crate) fn as_borrowed<S: Source + ?Sized>(src: &S) -> std::os::windows::io::BorrowedSocket<'_> {
    src.as_socket()
}

/// `AnySource` is a source through its box.
impl AsSocket for crate::AnySource {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.inner().as_socket()
    }
}

#[cfg(feature = "net")]
/// Whether listeners get `SO_REUSEADDR`: not on Windows, where it lets
/// another socket steal the port (and rebinding over `TIME_WAIT` works
/// without it).
pub(crate) const LISTENERS_REUSE_ADDRESS: bool = false;

/// `SO_REUSEPORT` does not exist on Windows.
#[cfg(feature = "net")]
pub(crate) fn set_reuse_port(_socket: &socket2::Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not supported on this platform",
    ))
}

#[cfg(feature = "net")]
/// True if a non-blocking `connect` failed only because it goes on in the
/// background (Windows reports `WSAEWOULDBLOCK`, which is `WouldBlock`).
pub(crate) fn connect_in_progress(_e: &io::Error) -> bool {
    false
}

/// `send` flags that keep a write from raising SIGPIPE: none needed, Windows
/// has no SIGPIPE.
#[cfg(feature = "transport")]
pub(crate) const NOSIGNAL: i32 = 0;

/// Nothing to do: Windows has no SIGPIPE.
#[cfg(feature = "transport")]
pub(crate) fn no_sigpipe(_socket: socket2::SockRef<'_>) -> io::Result<()> {
    Ok(())
}

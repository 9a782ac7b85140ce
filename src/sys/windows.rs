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

/// A registered socket the event loop hands to its selector, while the
/// object that owns the socket sits beside it in the key's data.
#[derive(Debug)]
pub(crate) struct LoopFd(pub(crate) Fd);

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

/// The console control events the loop can handle.
pub(crate) const CTRL_C: i32 = windows_sys::Win32::System::Console::CTRL_C_EVENT as i32;
pub(crate) const CTRL_BREAK: i32 = windows_sys::Win32::System::Console::CTRL_BREAK_EVENT as i32;

/// A console-event delivery set up by `add_signal`.
#[derive(Debug)]
pub(crate) struct SignalId(u64);

type Forward = Box<dyn Fn() + Send>;

/// Every delivery: `(id, event, forward-to-its-loop)`, and the next id.
static CONSOLE: std::sync::Mutex<(Vec<(u64, i32, Forward)>, u64, bool)> =
    std::sync::Mutex::new((Vec::new(), 0, false));

unsafe extern "system" fn console_handler(event: u32) -> windows_sys::core::BOOL {
    let table = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    let mut handled = 0;
    for (_, wanted, forward) in table.0.iter() {
        if *wanted as u32 == event {
            forward();
            handled = 1;
        }
    }
    // FALSE passes the event on to the next handler: the default terminates.
    handled
}

/// Forwards the console event to the loop through its handle; Windows calls
/// the console handler on a thread of its own.
pub(crate) fn add_signal<B: crate::Backend>(
    lp: &mut crate::EventLoop<B>,
    signal: crate::Signal,
) -> crate::Result<(Option<crate::Token>, SignalId)> {
    let event = signal.as_raw();
    if event != CTRL_C && event != CTRL_BREAK {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only Ctrl-C and Ctrl-Break can be handled on Windows",
        )
        .into());
    }
    let mut table = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    if !table.2 {
        // SAFETY: `console_handler` is a valid handler for the process's lifetime.
        if unsafe {
            windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(console_handler), 1)
        } == 0
        {
            return Err(io::Error::last_os_error().into());
        }
        table.2 = true;
    }
    let handle = lp.handle();
    let id = table.1;
    table.1 += 1;
    table.0.push((
        id,
        event,
        Box::new(move || handle.call_soon_threadsafe(move |lp| lp.deliver_signal(signal))),
    ));
    Ok((None, SignalId(id)))
}

/// Stops a delivery; with none left for an event, its default action returns.
pub(crate) fn remove_signal(id: SignalId) {
    let mut table = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    table.0.retain(|(i, _, _)| *i != id.0);
}

/// `AnySource` is a source through its box.
impl AsSocket for crate::AnySource {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.inner().as_socket()
    }
}

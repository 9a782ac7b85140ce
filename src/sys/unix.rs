//! Unix: descriptors are `RawFd`, sources are `AsFd`, the wake pipe is a
//! `UnixStream` pair, and `poll` is poll(2).

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// What Python calls a file descriptor: a `RawFd` on Unix, a `RawSocket` on Windows.
pub type Fd = RawFd;

/// An object a selector can watch: anything with a file descriptor
/// ([`AsFd`] on Unix, `AsSocket` on Windows).
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
/// assert!(boxed.fileno() >= 0);
/// # std::io::Result::Ok(())
/// ```
pub trait Source: AsFd {
    /// The descriptor's number, Python's `fileno()`.
    fn fileno(&self) -> Fd {
        self.as_fd().as_raw_fd()
    }
}

impl<T: AsFd + ?Sized> Source for T {}

/// A connected pair of non-blocking Unix stream sockets whose writes through
/// [`send_byte`] never raise SIGPIPE: a write to a pair whose other end is
/// closed fails with `EPIPE` instead of killing a process that has SIGPIPE
/// at its default action. (On Apple platforms, which lack a reliable
/// `MSG_NOSIGNAL`, each end gets `SO_NOSIGPIPE`.)
pub(crate) fn quiet_pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    for end in [&a, &b] {
        end.set_nonblocking(true)?;
        #[cfg(target_vendor = "apple")]
        {
            let on: libc::c_int = 1;
            // SAFETY: setsockopt(2) on an open socket, with a pointer to a
            // live c_int and its size.
            let rc = unsafe {
                libc::setsockopt(
                    end.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NOSIGPIPE,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok((a, b))
}

/// The `send(2)` flag that keeps a write to a closed peer from raising
/// SIGPIPE: `MSG_NOSIGNAL`, or none on Apple platforms, which lack a
/// reliable one and get `SO_NOSIGPIPE` on the socket instead ([`quiet_pair`],
/// [`no_sigpipe`]).
#[cfg(not(target_vendor = "apple"))]
pub(crate) const NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
pub(crate) const NOSIGNAL: libc::c_int = 0;

/// `send(2)` flags: never block, never raise SIGPIPE.
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | NOSIGNAL;

/// Makes sure no write to `socket` raises SIGPIPE however it is sent (Apple:
/// sets `SO_NOSIGPIPE`; elsewhere sends carry [`NOSIGNAL`] and this does
/// nothing).
#[cfg(feature = "transport")]
pub(crate) fn no_sigpipe(socket: socket2::SockRef<'_>) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    socket.set_nosigpipe(true)?;
    let _ = socket;
    Ok(())
}

/// Sends one byte on an end of a [`quiet_pair`]: never blocks, never raises
/// SIGPIPE. Only calls send(2), so it is async-signal-safe (the signal
/// handlers call it); the errno is left for the caller to read.
pub(crate) fn send_byte(fd: RawFd) -> isize {
    // SAFETY: send(2) reads one byte from a live static buffer; a bad or
    // closed descriptor is an error return, not undefined behaviour.
    unsafe { libc::send(fd, b"x".as_ptr().cast(), 1, SEND_FLAGS) }
}

/// A connected pair: a byte written to one end makes the other readable.
#[derive(Debug)]
pub(crate) struct WakePipe {
    rx: UnixStream,
    tx: UnixStream,
}

impl WakePipe {
    pub(crate) fn new() -> io::Result<WakePipe> {
        let (rx, tx) = quiet_pair()?;
        Ok(WakePipe { rx, tx })
    }

    /// The descriptor to watch for readability.
    pub(crate) fn fd(&self) -> Fd {
        self.rx.as_raw_fd()
    }

    /// Makes the watched end readable. A full pipe already is, so `WouldBlock` is success.
    pub(crate) fn wake(&self) -> io::Result<()> {
        if send_byte(self.tx.as_raw_fd()) >= 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            e => Err(e),
        }
    }

    /// Reads everything pending so the watched end is no longer readable.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.rx).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }
}

/// Points descriptor number `fd` at a private placeholder (one end of a
/// fresh socket pair, close-on-exec), in one atomic dup2(2): the process's
/// reference to whatever `fd` was open on is dropped, and the number stays
/// taken, so the object that owns `fd` can later close it (and make kernel
/// calls on it, which then fail) without reaching the old open file
/// description. A forked child uses it on the parent's epoll instance.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn detach_fd(fd: Fd) -> io::Result<()> {
    let (placeholder, _other_end) = UnixStream::pair()?;
    // SAFETY: dup2(2) on two descriptors: `placeholder` is open (we own it)
    // and `fd` is a number our caller owns; dup2 closes what `fd` referred
    // to and makes it a copy of `placeholder`, atomically.
    if unsafe { libc::dup2(placeholder.as_raw_fd(), fd) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl(2) F_SETFD on `fd`, which dup2 just made valid (dup2
    // clears close-on-exec; the descriptor it replaced had it).
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(())
}

/// Closes descriptor number `fd`.
///
/// # Safety
/// `fd` must be open and owned by the caller, and nothing may use or close
/// it afterwards.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) unsafe fn close_raw(fd: Fd) {
    // SAFETY: forwarded to our caller.
    unsafe { libc::close(fd) };
}

/// One entry of the poll(2) set.
pub(crate) type PollFd = libc::pollfd;

pub(crate) const POLLIN: i16 = libc::POLLIN;
pub(crate) const POLLOUT: i16 = libc::POLLOUT;

pub(crate) fn pollfd(fd: Fd, events: i16) -> PollFd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// One call of poll(2). `EINTR` comes back as `ErrorKind::Interrupted`.
pub(crate) fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `pollfd` whose
    // length is passed along; poll(2) writes only the `revents` fields.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Borrows a registered descriptor by number.
///
/// # Safety
/// `fd` must be open, and stay open while the result is used.
pub(crate) unsafe fn borrow<'a>(fd: Fd) -> std::os::fd::BorrowedFd<'a> {
    // SAFETY: forwarded to our caller.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[cfg(feature = "event-loop")]
/// A registered descriptor the event loop hands to its selector, while the
/// object that owns the descriptor sits beside it in the key's data.
#[derive(Debug)]
pub(crate) struct LoopFd(pub(crate) Fd);

#[cfg(feature = "event-loop")]
impl AsFd for LoopFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the event loop creates a `LoopFd` only for a descriptor whose
        // owner it holds in the same registration's data (or, while its callback
        // runs, on the dispatch stack), and it removes the registration from the
        // selector before it lets the owner go; so the descriptor is open for as
        // long as this `LoopFd` is in the selector.
        unsafe { borrow(self.0) }
    }
}

/// The descriptor of a source, borrowed (what `polling` takes).
pub(crate) fn as_borrowed<S: Source + ?Sized>(src: &S) -> std::os::fd::BorrowedFd<'_> {
    src.as_fd()
}

/// `AnySource` is a source through its box.
impl AsFd for crate::AnySource {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner().as_fd()
    }
}

#[cfg(feature = "net")]
/// Whether listeners get `SO_REUSEADDR`: on Unix it lets a restarted server
/// bind while old connections linger in `TIME_WAIT`.
pub(crate) const LISTENERS_REUSE_ADDRESS: bool = true;

/// Sets `SO_REUSEPORT`, or what balances connections like it.
#[cfg(all(feature = "net", target_os = "freebsd"))]
pub(crate) fn set_reuse_port(socket: &socket2::Socket) -> io::Result<()> {
    // Plain SO_REUSEPORT on FreeBSD shares the port without balancing.
    socket.set_reuse_port_lb(true)
}

/// Sets `SO_REUSEPORT`, or what balances connections like it.
// socket2 has no SO_REUSEPORT for Solaris, illumos (nor Cygwin and NuttX,
// which this crate does not target).
#[cfg(all(
    feature = "net",
    not(any(target_os = "freebsd", target_os = "solaris", target_os = "illumos"))
))]
pub(crate) fn set_reuse_port(socket: &socket2::Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

/// Sets `SO_REUSEPORT`, or what balances connections like it.
#[cfg(all(feature = "net", any(target_os = "solaris", target_os = "illumos")))]
pub(crate) fn set_reuse_port(_socket: &socket2::Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not supported on this platform",
    ))
}

#[cfg(feature = "net")]
/// True if a non-blocking `connect` failed only because it goes on in the
/// background (`EINPROGRESS`).
pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Catches (issue 9, fault 2): a write of the crate's to a socket pair
    // whose other end is closed raising SIGPIPE (death for a process that
    // has SIGPIPE at its default action). Rust ignores SIGPIPE, so the test
    // blocks it in this thread instead: Linux keeps a blocked signal
    // pending even when ignored, and SIGPIPE goes to the writing thread.
    #[test]
    #[cfg(target_os = "linux")]
    fn send_byte_to_a_closed_peer_never_raises_sigpipe() {
        // SAFETY: sigset_t values initialised by sigemptyset before use;
        // pthread_sigmask changes this test thread's mask only, and is
        // restored below; sigtimedwait with a zero timeout only consumes a
        // SIGPIPE pending for this thread.
        unsafe {
            let mut pipe_only: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pipe_only);
            libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
            assert_eq!(
                libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut old),
                0
            );

            let (rx, tx) = quiet_pair().unwrap();
            drop(rx);
            let sent = send_byte(tx.as_raw_fd());
            let err = io::Error::last_os_error();

            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            libc::sigpending(&mut pending);
            let raised = libc::sigismember(&pending, libc::SIGPIPE) == 1;
            if raised {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());

            assert_eq!(sent, -1);
            assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
            assert!(!raised, "send_byte raised SIGPIPE");
        }
    }

    // The wake pipe, which writes with `send_byte`, still wakes.
    #[test]
    fn wake_pipe_wakes_and_drains() {
        let pipe = WakePipe::new().unwrap();
        pipe.wake().unwrap();
        pipe.wake().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!((&pipe.rx).read(&mut buf).unwrap(), 2);
        pipe.wake().unwrap();
        pipe.drain();
        assert_eq!(
            (&pipe.rx).read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}

//! Unix side of `transport::subprocess`: a child's stdio as loop sources,
//! and the notice that it exited.
//!
//! - stdout and stderr are the pipes `std` makes, their read ends set
//!   non-blocking with fcntl(2);
//! - stdin: on Linux and Android a pipe too, written with SIGPIPE blocked
//!   in the writing thread for the write (and a SIGPIPE it raised consumed
//!   with `sigtimedwait`), so a child that closed its stdin never kills the
//!   parent; the loop watches the write end for readability, which the
//!   kernel reports (as an error) once the read end is closed. Elsewhere a
//!   Unix socket pair written with `send(MSG_NOSIGNAL)` (`SO_NOSIGPIPE` on
//!   Apple), whose end turns readable (end of stream) when the child's
//!   closes. (Not a socket on Linux: a child that `splice(2)`s from a
//!   socket into a pipe, as Rust's `io::copy(stdin, stdout)` does, holds
//!   that pipe's lock while it waits for input, and the loop's
//!   non-blocking read of the child's stdout would then block.)
//! - the exit notice is a socket pair whose other end a small thread holds
//!   while it blocks in `waitid(P_PID, pid, WEXITED | WNOWAIT)`: it drops
//!   its end when the child has exited, which makes the loop's end readable.
//!   `WNOWAIT` leaves the child unreaped (a zombie) until the loop thread
//!   reaps it with `Child::try_wait`, so the pid can never be recycled while
//!   the loop may still signal it, and no SIGCHLD handler (a process-wide
//!   disposition) is needed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::thread;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use super::{quiet_pair, SEND_FLAGS};

/// The loop's end of a child's stdout or stderr.
pub(crate) type ReadPipe = std::fs::File;
/// The loop's end of a child's stdin.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) type WritePipe = std::fs::File;
/// The loop's end of a child's stdin.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) type WritePipe = UnixStream;
/// Readable (end of stream) once the child has exited.
pub(crate) type ExitNotice = UnixStream;

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl(2) F_GETFL on a descriptor we own; no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, F_SETFL with an int argument.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Spawns `command` with its stdio connected to the loop, and the thread
/// that notices its exit.
pub(crate) fn spawn(mut command: Command) -> io::Result<Spawned> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    command.stdin(Stdio::piped());
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let stdin = {
        let (stdin, theirs) = quiet_pair()?;
        theirs.set_nonblocking(false)?;
        command.stdin(Stdio::from(OwnedFd::from(theirs)));
        stdin
    };
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    // The child's end of a stdin socket pair lives in `command`: close it
    // now, so that the child closing its stdin is seen as end of stream.
    drop(command);
    let taken = (|| {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let stdin = {
            let stdin = OwnedFd::from(child.stdin.take().expect("piped"));
            set_nonblocking(&stdin)?;
            WritePipe::from(stdin)
        };
        let stdout = OwnedFd::from(child.stdout.take().expect("piped"));
        let stderr = OwnedFd::from(child.stderr.take().expect("piped"));
        set_nonblocking(&stdout)?;
        set_nonblocking(&stderr)?;
        let (exit, notify) = UnixStream::pair()?;
        exit.set_nonblocking(true)?;
        spawn_waiter(child.id(), notify)?;
        Ok((stdin, stdout.into(), stderr.into(), exit))
    })();
    Spawned::new(child, taken)
}

pub(crate) use super::{reap_now, Spawned};

fn spawn_waiter(pid: u32, notify: UnixStream) -> io::Result<()> {
    let pid = libc::id_t::try_from(pid).map_err(io::Error::other)?;
    thread::Builder::new()
        .name("selectloop child waiter".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                // SAFETY: siginfo_t is plain old data, for which all zeroes
                // is a valid value.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waitid(2) writes only into `info`, which lives
                // across the call. WNOWAIT: the child stays unreaped.
                let rc = unsafe {
                    libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
                };
                // Exited, or no such child any more (reaped already): done.
                if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            drop(notify);
        })?;
    Ok(())
}

/// Writes to the child's stdin without ever raising SIGPIPE.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn write(pipe: &WritePipe, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: send(2) reads `data.len()` bytes from a live slice.
        let n = unsafe {
            libc::send(
                pipe.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                SEND_FLAGS,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes to the child's stdin pipe without ever raising SIGPIPE: the
/// signal is blocked in this thread for the write (a write's SIGPIPE goes to
/// the thread that wrote), and one the write raised is consumed before the
/// mask is restored (unless one was pending already).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn write(pipe: &WritePipe, data: &[u8]) -> io::Result<usize> {
    use std::mem::MaybeUninit;
    use std::ptr;

    let mut sigpipe = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset adds a
    // valid signal to the initialised set.
    let sigpipe = unsafe {
        libc::sigemptyset(sigpipe.as_mut_ptr());
        libc::sigaddset(sigpipe.as_mut_ptr(), libc::SIGPIPE);
        sigpipe.assume_init()
    };
    // SAFETY: pthread_sigmask reads the initialised `sigpipe` and writes the
    // old mask into `old`; sigpending fills `pending`.
    let already = unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &sigpipe, old.as_mut_ptr());
        libc::sigpending(pending.as_mut_ptr());
        libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1
    };
    let result = loop {
        // SAFETY: write(2) reads `data.len()` bytes from a live slice.
        let n = unsafe { libc::write(pipe.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            break Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            break Err(e);
        }
    };
    if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) && !already {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: takes the pending SIGPIPE (blocked, so it waits for us)
        // without waiting; `sigpipe` is initialised, the info pointer null.
        while unsafe { libc::sigtimedwait(&sigpipe, ptr::null_mut(), &zero) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
    // SAFETY: restores the mask pthread_sigmask wrote into `old`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut()) };
    result
}

/// Sends `signal` to the child (which must not have been reaped yet).
pub(crate) fn send_signal(child: &Child, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // SAFETY: kill(2) has no memory effects; the caller guarantees the pid
    // is still our unreaped child, so it names no other process.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the child to end: SIGTERM.
pub(crate) fn terminate(child: &mut Child) -> io::Result<()> {
    send_signal(child, libc::SIGTERM)
}

//! Windows side of `transport::subprocess`. WSAPoll watches sockets only,
//! never pipes, so each of a child's pipes is bridged to a loopback TCP
//! connection by a thread of its own:
//!
//! - stdout and stderr: the thread copies from the pipe (blocking reads) to
//!   its end of the connection, then shuts it down, so the loop reads the
//!   output and then end of stream from its end;
//! - stdin: the thread copies from its end of the connection to the pipe;
//!   when the loop closes its end the thread closes the pipe (end of file
//!   for the child), and when the pipe breaks (the child closed it) the
//!   thread closes its end, which the loop sees as end of stream;
//! - the exit notice: a thread waits on a duplicate of the process handle
//!   (`WaitForSingleObject`) and then closes its end of a connection.
//!
//! The threads end by themselves once the child and the loop's ends are gone.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::windows::io::{AsHandle, AsRawHandle};
use std::process::{Child, Command, Stdio};
use std::thread;

use windows_sys::Win32::System::Threading::{WaitForSingleObject, INFINITE};

/// The loop's end of a child's stdout or stderr.
pub(crate) type ReadPipe = TcpStream;
/// The loop's end of a child's stdin.
pub(crate) type WritePipe = TcpStream;
/// Readable (end of stream) once the child has exited.
pub(crate) type ExitNotice = TcpStream;

/// A connected loopback pair: (the loop's end, non-blocking; the thread's
/// end, blocking).
fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let theirs = TcpStream::connect(listener.local_addr()?)?;
    let want = theirs.local_addr()?;
    let ours = loop {
        let (ours, peer) = listener.accept()?;
        if peer == want {
            break ours;
        }
    };
    ours.set_nonblocking(true)?;
    ours.set_nodelay(true)?;
    theirs.set_nodelay(true)?;
    Ok((ours, theirs))
}

fn bridge(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("selectloop child {name}"))
        .stack_size(64 * 1024)
        .spawn(f)?;
    Ok(())
}

/// Copies `from` to `to` until either ends.
fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Spawns `command` with its stdio bridged to the loop, and the thread
/// that notices its exit.
pub(crate) fn spawn(mut command: Command) -> io::Result<Spawned> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    drop(command);
    let bridged = (|| {
        let child_in = child.stdin.take().expect("piped");
        let child_out = child.stdout.take().expect("piped");
        let child_err = child.stderr.take().expect("piped");
        let (stdin, stdin_theirs) = pair()?;
        let (stdout, stdout_theirs) = pair()?;
        let (stderr, stderr_theirs) = pair()?;
        let (exit, notify) = pair()?;
        let process = child.as_handle().try_clone_to_owned()?;
        bridge("stdin", move || {
            copy(&stdin_theirs, child_in);
            let _ = stdin_theirs.shutdown(Shutdown::Both);
        })?;
        bridge("stdout", move || {
            copy(child_out, &stdout_theirs);
            let _ = stdout_theirs.shutdown(Shutdown::Write);
        })?;
        bridge("stderr", move || {
            copy(child_err, &stderr_theirs);
            let _ = stderr_theirs.shutdown(Shutdown::Write);
        })?;
        bridge("waiter", move || {
            // SAFETY: `process` is an open handle this thread owns until
            // the wait returns.
            unsafe { WaitForSingleObject(process.as_raw_handle(), INFINITE) };
            drop(process);
            let _ = notify.shutdown(Shutdown::Both);
        })?;
        Ok((stdin, stdout, stderr, exit))
    })();
    Spawned::new(child, bridged)
}

pub(crate) use super::{reap_now, Spawned};

/// Writes to the child's stdin (its bridge).
pub(crate) fn write(pipe: &WritePipe, data: &[u8]) -> io::Result<usize> {
    (&*pipe).write(data)
}

/// Asks the child to end: `TerminateProcess`, as asyncio does on Windows.
pub(crate) fn terminate(child: &mut Child) -> io::Result<()> {
    child.kill()
}

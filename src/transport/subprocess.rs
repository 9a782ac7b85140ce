//! Child processes on the loop: asyncio's `subprocess_exec` with
//! `SubprocessProtocol`.
//!
//! [`spawn_subprocess`] starts a [`Command`] with its stdin, stdout and
//! stderr piped to the loop; you implement [`SubprocessProtocol`], and the
//! loop calls it with what each pipe delivers, when a pipe closes, and once
//! the process has exited and every pipe is closed. A short-lived
//! [`SubprocessTransport`] lets the protocol write to stdin, signal the
//! child and reach the loop.
//!
//! ```
//! # #[cfg(unix)] {
//! use std::process::Command;
//! use selectloop::transport::subprocess::{spawn_subprocess, Pipe, SubprocessProtocol, SubprocessTransport};
//! use selectloop::EventLoop;
//!
//! #[derive(Default)]
//! struct Collect {
//!     stdout: Vec<u8>,
//!     exited: bool,
//! }
//!
//! impl SubprocessProtocol for Collect {
//!     fn connection_made(&mut self, t: &mut SubprocessTransport<'_>) -> anyhow::Result<()> {
//!         t.write(b"hello, cat")?;
//!         t.close_stdin(); // cat ends at end of file
//!         Ok(())
//!     }
//!     fn pipe_data_received(&mut self, _t: &mut SubprocessTransport<'_>, pipe: Pipe, data: &[u8]) -> anyhow::Result<()> {
//!         if pipe == Pipe::Stdout {
//!             self.stdout.extend_from_slice(data);
//!         }
//!         Ok(())
//!     }
//!     fn process_exited(&mut self, t: &mut SubprocessTransport<'_>) -> anyhow::Result<()> {
//!         assert!(t.returncode().unwrap().success());
//!         self.exited = true;
//!         Ok(())
//!     }
//! }
//!
//! let mut lp = EventLoop::new()?;
//! let child = spawn_subprocess(&mut lp, Command::new("cat"), Collect::default())?;
//! lp.run()?; // returns once the child is reaped and its pipes are closed
//! child.with(&mut lp, |_t, collect| {
//!     assert_eq!(collect.stdout, b"hello, cat");
//!     assert!(collect.exited);
//! })?;
//! # }
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! # asyncio names
//! | asyncio | here |
//! |---|---|
//! | `loop.subprocess_exec(factory, *args, stdin=PIPE, stdout=PIPE, stderr=PIPE)` | [`spawn_subprocess`] (all three piped) |
//! | `SubprocessProtocol.connection_made(transport)` | [`SubprocessProtocol::connection_made`] |
//! | `pipe_data_received(fd, data)` | [`SubprocessProtocol::pipe_data_received`] ([`Pipe::fd`] is `fd`) |
//! | `pipe_connection_lost(fd, exc)` | [`SubprocessProtocol::pipe_connection_lost`] |
//! | `process_exited()` | [`SubprocessProtocol::process_exited`] |
//! | `transport.get_pid()` / `get_returncode()` | [`pid`](SubprocessTransport::pid) / [`returncode`](SubprocessTransport::returncode) (also on [`Subprocess`]) |
//! | `get_pipe_transport(0).write(data)` / `.write_eof()` | [`write`](SubprocessTransport::write) / [`close_stdin`](SubprocessTransport::close_stdin) |
//! | `get_pipe_transport(0).get_write_buffer_size()` | [`get_write_buffer_size`](SubprocessTransport::get_write_buffer_size) |
//! | `send_signal(sig)` / `terminate()` / `kill()` | [`send_signal`](SubprocessTransport::send_signal) (Unix) / [`terminate`](SubprocessTransport::terminate) / [`kill`](SubprocessTransport::kill) |
//! | `close()` | [`close`](SubprocessTransport::close) |
//!
//! # Order of calls
//! `connection_made` first (before [`spawn_subprocess`] returns), then
//! `pipe_data_received` as output arrives, `pipe_connection_lost` once per
//! pipe, and `process_exited` last, once the exit status is known **and**
//! all three pipes are closed (a grandchild that keeps stdout open delays
//! it). When the child exits, the loop closes its stdin pipe itself. An
//! `Err` from a protocol method ends the protocol's part: the child is
//! killed, its pipes closed, no further method is called, and the error goes
//! to the loop's [error handler](crate::EventLoop::set_error_handler); the
//! child is still reaped.
//!
//! # Never a zombie
//! Only the loop's thread reaps the child: on Unix a small thread per child
//! blocks in `waitid(.., WEXITED | WNOWAIT)`, which notices the exit
//! without reaping, and then wakes the loop, which reaps with
//! `Child::try_wait`. So the pid stays the child's until the loop has its
//! status (signals can never reach a recycled pid), and no process-wide
//! SIGCHLD handler is installed. If the transport is dropped with the child
//! still running (the loop dropped, then the last [`Subprocess`] handle),
//! the child is killed and reaped on the spot. (Code elsewhere in the
//! process that reaps every child, `waitpid(-1, ..)`, or SIGCHLD set to
//! `SIG_IGN`, which makes the kernel reap them, would steal the status, as
//! it would from `std::process::Child`: the loop then reports the error
//! to its error handler, and `process_exited` still comes, with
//! `returncode()` `None`.)
//!
//! # Platforms
//! On Unix stdout and stderr are pipes, and so is stdin on Linux, written
//! with SIGPIPE blocked for the write (a child that closed its stdin never
//! raises SIGPIPE in the parent); on other Unix systems stdin is a socket
//! pair written with `MSG_NOSIGNAL`. (A Linux child that `splice(2)`s from
//! a blocking socket of its own into its stdout holds that pipe's lock
//! while it waits, which blocks the loop's read of it: a kernel behaviour
//! no non-blocking descriptor avoids.) On Windows, where `WSAPoll` cannot watch pipes, each pipe
//! is bridged to a loopback TCP connection by a thread that copies between
//! them, and a thread waiting on the process handle reports the exit the
//! same way; `terminate` is `TerminateProcess`, as in asyncio.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus};
use std::rc::Rc;

use crate::sys::child::{self, ExitNotice, ReadPipe, WritePipe};
use crate::{Backend, DefaultBackend, Error, EventLoop, Interest, Token, EVENT_READ};

/// Bytes read from a pipe per readiness event (one buffer per child, reused).
const READ_CHUNK: usize = 64 * 1024;

/// One of a child's standard streams.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Pipe {
    /// Standard input (descriptor 0).
    Stdin,
    /// Standard output (descriptor 1).
    Stdout,
    /// Standard error (descriptor 2).
    Stderr,
}

impl Pipe {
    /// The descriptor number asyncio passes as `fd`: 0, 1 or 2.
    pub const fn fd(self) -> i32 {
        match self {
            Pipe::Stdin => 0,
            Pipe::Stdout => 1,
            Pipe::Stderr => 2,
        }
    }
}

/// What the loop calls on a child's events (asyncio's `SubprocessProtocol`).
/// Only [`pipe_data_received`](SubprocessProtocol::pipe_data_received) is
/// required. See the [module documentation](self) for the order of calls.
pub trait SubprocessProtocol<B: Backend = DefaultBackend>: 'static {
    /// The child is running and its pipes are registered; called once,
    /// before anything else.
    fn connection_made(
        &mut self,
        transport: &mut SubprocessTransport<'_, B>,
    ) -> anyhow::Result<()> {
        let _ = transport;
        Ok(())
    }

    /// The child wrote `data` to `pipe` (stdout or stderr). `data` borrows
    /// a buffer the child's pipes share: copy what you keep.
    fn pipe_data_received(
        &mut self,
        transport: &mut SubprocessTransport<'_, B>,
        pipe: Pipe,
        data: &[u8],
    ) -> anyhow::Result<()>;

    /// `pipe` is closed: end of stream (`None`), or an error. Called once
    /// per pipe.
    fn pipe_connection_lost(
        &mut self,
        transport: &mut SubprocessTransport<'_, B>,
        pipe: Pipe,
        error: Option<io::Error>,
    ) -> anyhow::Result<()> {
        let _ = (transport, pipe, error);
        Ok(())
    }

    /// The child has exited ([`returncode`](SubprocessTransport::returncode)
    /// has its status) and all its pipes are closed. The last call.
    fn process_exited(&mut self, transport: &mut SubprocessTransport<'_, B>) -> anyhow::Result<()> {
        let _ = transport;
        Ok(())
    }
}

/// The loop's side of a child.
struct Core {
    child: Child,
    pid: u32,
    /// Set by the loop thread when it reaps the child; shared with the
    /// [`Subprocess`] handles.
    status: Rc<Cell<Option<ExitStatus>>>,
    /// Reaped, or known to be gone (its status lost to another reaper).
    gone: bool,
    stdin: Option<Token<WritePipe>>,
    stdin_buf: Vec<u8>,
    /// `close_stdin`: close once `stdin_buf` is sent.
    stdin_closing: bool,
    stdout: Option<Token<ReadPipe>>,
    stderr: Option<Token<ReadPipe>>,
    exit: Option<Token<ExitNotice>>,
    /// Pipes closed, for `pipe_connection_lost` once the method running returns.
    lost: VecDeque<(Pipe, Option<io::Error>)>,
    exited_reported: bool,
    /// A protocol method failed: the protocol is called no more.
    failed: bool,
    closed: bool,
}

impl Drop for Core {
    fn drop(&mut self) {
        if !self.gone {
            child::reap_now(&mut self.child);
        }
    }
}

impl Core {
    fn read_token(&mut self, pipe: Pipe) -> &mut Option<Token<ReadPipe>> {
        match pipe {
            Pipe::Stdout => &mut self.stdout,
            _ => &mut self.stderr,
        }
    }

    /// Unregisters (closes) `pipe` if open, and queues its
    /// `pipe_connection_lost`.
    fn close_pipe<B: Backend>(
        &mut self,
        lp: &mut EventLoop<B>,
        pipe: Pipe,
        error: Option<io::Error>,
    ) {
        let token = match pipe {
            Pipe::Stdin => {
                self.stdin_buf = Vec::new();
                self.stdin.take().map(Token::erase)
            }
            _ => self.read_token(pipe).take().map(Token::erase),
        };
        if let Some(token) = token {
            // Unregistered already only if the loop's error policy dropped it.
            let _ = lp.unregister(token);
            self.lost.push_back((pipe, error));
        }
    }

    fn stdin_interest(&self) -> Interest {
        Interest::from_flags(true, !self.stdin_buf.is_empty()).expect("readable")
    }

    /// Sends what `stdin_buf` holds, as far as the pipe takes it.
    fn flush_stdin(&mut self, pipe: &WritePipe) -> io::Result<()> {
        while !self.stdin_buf.is_empty() {
            match child::write(pipe, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn kill_if_running(&mut self) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        self.child.kill()
    }
}

struct Inner<P> {
    core: Core,
    protocol: P,
    buf: Box<[u8]>,
}

type Shared<P> = Rc<RefCell<Inner<P>>>;

/// A child's transport, lent to its protocol's methods (and by
/// [`Subprocess::with`]).
pub struct SubprocessTransport<'a, B: Backend = DefaultBackend> {
    lp: &'a mut EventLoop<B>,
    core: &'a mut Core,
}

impl<B: Backend> fmt::Debug for SubprocessTransport<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprocessTransport")
            .field("pid", &self.core.pid)
            .field("returncode", &self.core.status.get())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> SubprocessTransport<'_, B> {
    /// The child's process id (asyncio's `get_pid`).
    pub fn pid(&self) -> u32 {
        self.core.pid
    }

    /// The child's exit status once the loop has reaped it, else `None`
    /// (asyncio's `get_returncode`).
    pub fn returncode(&self) -> Option<ExitStatus> {
        self.core.status.get()
    }

    /// Writes `data` to the child's stdin: straight to the pipe as far as
    /// it takes it, the rest queued (without bound, as asyncio's pipe
    /// transports; see [`get_write_buffer_size`](SubprocessTransport::get_write_buffer_size))
    /// and sent as the pipe drains. A failed write closes stdin:
    /// `pipe_connection_lost(Stdin, Some(error))` follows.
    ///
    /// # Errors
    /// - [`io::ErrorKind::NotConnected`] if stdin is closed or closing.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let core = &mut *self.core;
        let Some(token) = core.stdin.filter(|_| !core.stdin_closing) else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the child's stdin is closed",
            ));
        };
        core.stdin_buf.extend_from_slice(data);
        // From stdin's own callback the pipe is lent out: that callback
        // flushes when the method returns.
        if let Ok(Err(e)) = self.lp.with_source(token, |pipe| core.flush_stdin(pipe)) {
            core.close_pipe(self.lp, Pipe::Stdin, Some(e));
            return Ok(());
        }
        self.lp.modify(token, core.stdin_interest())?;
        Ok(())
    }

    /// Closes the child's stdin once what is queued is sent (asyncio's
    /// `write_eof` on the stdin pipe transport): the child reads end of file.
    pub fn close_stdin(&mut self) {
        if self.core.stdin.is_none() {
            return;
        }
        self.core.stdin_closing = true;
        if self.core.stdin_buf.is_empty() {
            self.core.close_pipe(self.lp, Pipe::Stdin, None);
        }
    }

    /// Bytes queued for the child's stdin.
    pub fn get_write_buffer_size(&self) -> usize {
        self.core.stdin_buf.len()
    }

    /// Sends signal `signal` (`libc::SIGUSR1`, say) to the child.
    /// Does nothing once the child has been reaped: its pid may belong to
    /// another process by then (asyncio raises `ProcessLookupError`).
    ///
    /// # Errors
    /// - the OS error of kill(2).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn send_signal(&mut self, signal: i32) -> io::Result<()> {
        if self.core.gone {
            return Ok(());
        }
        child::send_signal(&self.core.child, signal)
    }

    /// Asks the child to end: SIGTERM on Unix, `TerminateProcess` on
    /// Windows. Does nothing once the child has been reaped.
    ///
    /// # Errors
    /// - the OS error of the call.
    pub fn terminate(&mut self) -> io::Result<()> {
        if self.core.gone {
            return Ok(());
        }
        child::terminate(&mut self.core.child)
    }

    /// Kills the child: SIGKILL on Unix, `TerminateProcess` on Windows.
    /// Does nothing once the child has been reaped.
    ///
    /// # Errors
    /// - the OS error of the call.
    pub fn kill(&mut self) -> io::Result<()> {
        self.core.kill_if_running()
    }

    /// Closes the pipes (each gets `pipe_connection_lost`) and kills the
    /// child if it still runs (asyncio's `close`). The loop still reaps it,
    /// and `process_exited` follows.
    pub fn close(&mut self) {
        self.core.closed = true;
        // Killed first: a child that ends on end of file must not exit
        // cleanly in between.
        let _ = self.core.kill_if_running();
        for pipe in [Pipe::Stdin, Pipe::Stdout, Pipe::Stderr] {
            self.core.close_pipe(self.lp, pipe, None);
        }
    }

    /// True once [`close`](SubprocessTransport::close) was called.
    pub fn is_closing(&self) -> bool {
        self.core.closed
    }

    /// The loop, for timers, other sources, `stop`.
    pub fn event_loop(&mut self) -> &mut EventLoop<B> {
        self.lp
    }
}

/// Runs `f` with the transport and the protocol, then delivers what it
/// left (closed pipes, the exit) and updates stdin's events. An `Err` of
/// the protocol kills the child and closes its pipes.
fn act<P: SubprocessProtocol<B>, B: Backend, R>(
    lp: &mut EventLoop<B>,
    inner: &mut Inner<P>,
    f: impl FnOnce(&mut SubprocessTransport<'_, B>, &mut P, &[u8]) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    let Inner {
        core,
        protocol,
        buf,
    } = inner;
    let mut t = SubprocessTransport {
        lp: &mut *lp,
        core: &mut *core,
    };
    let result = f(&mut t, protocol, buf).and_then(|r| {
        if t.core.failed {
            t.core.lost.clear();
            return Ok(r);
        }
        loop {
            if let Some((pipe, error)) = t.core.lost.pop_front() {
                protocol.pipe_connection_lost(&mut t, pipe, error)?;
            } else if !t.core.exited_reported
                && t.core.gone
                && t.core.stdin.is_none()
                && t.core.stdout.is_none()
                && t.core.stderr.is_none()
            {
                t.core.exited_reported = true;
                protocol.process_exited(&mut t)?;
            } else {
                return Ok(r);
            }
        }
    });
    match result {
        Ok(r) => {
            if let Some(stdin) = core.stdin {
                lp.modify(stdin, core.stdin_interest())?;
            }
            Ok(r)
        }
        Err(error) => {
            core.failed = true;
            // Killed before its stdin closes, so that it cannot end on its
            // own (on end of file) first.
            let _ = core.kill_if_running();
            for pipe in [Pipe::Stdin, Pipe::Stdout, Pipe::Stderr] {
                core.close_pipe(lp, pipe, None);
            }
            core.lost.clear();
            Err(error)
        }
    }
}

fn on_output<P: SubprocessProtocol<B>, B: Backend>(
    lp: &mut EventLoop<B>,
    shared: &Shared<P>,
    pipe: Pipe,
    file: &ReadPipe,
) -> anyhow::Result<()> {
    let mut inner = shared.borrow_mut();
    let inner = &mut *inner;
    let read = loop {
        match (&*file).read(&mut inner.buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    match read {
        Ok(0) => inner.core.close_pipe(lp, pipe, None),
        Ok(n) => {
            if inner.core.failed {
                return Ok(());
            }
            return act(lp, inner, |t, protocol, buf| {
                protocol.pipe_data_received(t, pipe, &buf[..n])
            });
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) => inner.core.close_pipe(lp, pipe, Some(e)),
    }
    act(lp, inner, |_, _, _| Ok(()))
}

fn on_stdin<P: SubprocessProtocol<B>, B: Backend>(
    lp: &mut EventLoop<B>,
    shared: &Shared<P>,
    pipe: &WritePipe,
    mask: Interest,
) -> anyhow::Result<()> {
    let mut inner = shared.borrow_mut();
    let core = &mut inner.core;
    // Writable first: when the child has closed its end, the write reports
    // how (EPIPE) for what is still queued.
    if mask.is_writable() {
        match core.flush_stdin(pipe) {
            Ok(()) if core.stdin_buf.is_empty() && core.stdin_closing => {
                core.close_pipe(lp, Pipe::Stdin, None)
            }
            Ok(()) => {}
            Err(e) => core.close_pipe(lp, Pipe::Stdin, Some(e)),
        }
    }
    if mask.is_readable() && core.stdin.is_some() {
        // The child never writes here: readable means its end closed (a
        // pipe's write end reports that as an error, and cannot be read).
        let mut scratch = [0u8; 256];
        match (&*pipe).read(&mut scratch) {
            Ok(n) if n > 0 => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Ok(_) | Err(_) => {
                let error = (!core.stdin_buf.is_empty()).then(|| {
                    io::Error::new(io::ErrorKind::BrokenPipe, "the child closed its stdin")
                });
                core.close_pipe(lp, Pipe::Stdin, error);
            }
        }
    }
    act(lp, &mut inner, |_, _, _| Ok(()))
}

fn on_exit<P: SubprocessProtocol<B>, B: Backend>(
    lp: &mut EventLoop<B>,
    shared: &Shared<P>,
) -> anyhow::Result<()> {
    let mut inner = shared.borrow_mut();
    let core = &mut inner.core;
    let reaped = core.child.try_wait();
    if let Some(token) = core.exit.take() {
        lp.unregister(token)?;
    }
    let lost_status = match reaped {
        Ok(Some(status)) => {
            core.status.set(Some(status));
            None
        }
        // The waiter is gone but the child is not: wait for it on the
        // spot (after a kill, which ends it at once) rather than spin.
        Ok(None) => {
            child::reap_now(&mut core.child);
            core.status.set(core.child.try_wait().ok().flatten());
            Some(anyhow::anyhow!(
                "child {}: the exit waiter ended before the child; killed it",
                core.pid
            ))
        }
        Err(e) => Some(anyhow::Error::new(e).context(format!(
            "child {}: its exit status is lost (reaped elsewhere?)",
            core.pid
        ))),
    };
    core.gone = true;
    // Nobody reads the child's stdin any more.
    let error = (!core.stdin_buf.is_empty())
        .then(|| io::Error::new(io::ErrorKind::BrokenPipe, "the child exited"));
    core.close_pipe(lp, Pipe::Stdin, error);
    act(lp, &mut inner, |_, _, _| Ok(()))?;
    lost_status.map_or(Ok(()), Err)
}

/// A child started by [`spawn_subprocess`]: its pid and status, and
/// [`with`](Subprocess::with) to reach its transport and protocol.
///
/// Cheap to clone. Dropping it does not stop the child: the loop keeps
/// running it until it is reaped. The child is killed and reaped only when
/// the transport goes away with it still running (the loop dropped and
/// every handle too), or through [`close`](SubprocessTransport::close) /
/// [`kill`](SubprocessTransport::kill).
pub struct Subprocess<P, B: Backend = DefaultBackend> {
    shared: Shared<P>,
    pid: u32,
    status: Rc<Cell<Option<ExitStatus>>>,
    _loop: std::marker::PhantomData<fn(&mut EventLoop<B>)>,
}

impl<P, B: Backend> Clone for Subprocess<P, B> {
    fn clone(&self) -> Self {
        Subprocess {
            shared: Rc::clone(&self.shared),
            pid: self.pid,
            status: Rc::clone(&self.status),
            _loop: std::marker::PhantomData,
        }
    }
}

impl<P, B: Backend> fmt::Debug for Subprocess<P, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subprocess")
            .field("pid", &self.pid)
            .field("returncode", &self.status.get())
            .finish_non_exhaustive()
    }
}

impl<P: SubprocessProtocol<B>, B: Backend> Subprocess<P, B> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's exit status once the loop has reaped it.
    pub fn returncode(&self) -> Option<ExitStatus> {
        self.status.get()
    }

    /// Runs `f` with the child's transport and protocol, from outside the
    /// protocol's methods (a timer, another source's callback); closed
    /// pipes and the exit are delivered once `f` returns.
    ///
    /// # Errors
    /// - [`Error::InUse`] from the child's own protocol methods (which have
    ///   the transport already);
    /// - the `Err` of a protocol method called on the way.
    pub fn with<R>(
        &self,
        lp: &mut EventLoop<B>,
        f: impl FnOnce(&mut SubprocessTransport<'_, B>, &mut P) -> R,
    ) -> anyhow::Result<R> {
        let mut inner = self.shared.try_borrow_mut().map_err(|_| Error::InUse)?;
        if inner.core.failed {
            let Inner { core, protocol, .. } = &mut *inner;
            return Ok(f(&mut SubprocessTransport { lp, core }, protocol));
        }
        act(lp, &mut inner, |t, protocol, _| Ok(f(t, protocol)))
    }
}

/// Starts `command` with stdin, stdout and stderr piped to `lp`, and calls
/// `protocol` on its events (asyncio's `subprocess_exec`). Whatever stdio
/// `command` had set is replaced. The loop's [`run`](EventLoop::run)
/// keeps going until the child is reaped and its pipes closed.
///
/// # Errors
/// - the OS error if the child cannot be started (no such program), or a
///   pipe or its thread cannot be made (the child is killed and reaped);
/// - the errors of [`EventLoop::register`] (the child is killed and reaped);
/// - the `Err` of `connection_made` (the child is killed; the loop reaps it).
pub fn spawn_subprocess<P, B>(
    lp: &mut EventLoop<B>,
    command: Command,
    protocol: P,
) -> anyhow::Result<Subprocess<P, B>>
where
    P: SubprocessProtocol<B>,
    B: Backend,
{
    let spawned = child::spawn(command)?;
    let pid = spawned.child.id();
    let status = Rc::new(Cell::new(None));
    let shared: Shared<P> = Rc::new(RefCell::new(Inner {
        core: Core {
            child: spawned.child,
            pid,
            status: Rc::clone(&status),
            gone: false,
            stdin: None,
            stdin_buf: Vec::new(),
            stdin_closing: false,
            stdout: None,
            stderr: None,
            exit: None,
            lost: VecDeque::new(),
            exited_reported: false,
            failed: false,
            closed: false,
        },
        protocol,
        buf: vec![0; READ_CHUNK].into_boxed_slice(),
    }));
    let registered = register_all(
        lp,
        &shared,
        spawned.stdin,
        spawned.stdout,
        spawned.stderr,
        spawned.exit,
    );
    if let Err(e) = registered {
        let mut inner = shared.borrow_mut();
        let core = &mut inner.core;
        for token in [core.stdout.take(), core.stderr.take()]
            .into_iter()
            .flatten()
        {
            let _ = lp.unregister(token);
        }
        if let Some(token) = core.stdin.take() {
            let _ = lp.unregister(token);
        }
        if let Some(token) = core.exit.take() {
            let _ = lp.unregister(token);
        }
        // Dropping the last `shared` kills and reaps the child.
        return Err(e.into());
    }
    let handle = Subprocess {
        shared,
        pid,
        status,
        _loop: std::marker::PhantomData,
    };
    handle.with(lp, |t, protocol| protocol.connection_made(t))??;
    Ok(handle)
}

fn register_all<P: SubprocessProtocol<B>, B: Backend>(
    lp: &mut EventLoop<B>,
    shared: &Shared<P>,
    stdin: WritePipe,
    stdout: ReadPipe,
    stderr: ReadPipe,
    exit: ExitNotice,
) -> crate::Result<()> {
    for (pipe, file) in [(Pipe::Stdout, stdout), (Pipe::Stderr, stderr)] {
        let s = Rc::clone(shared);
        let token = lp
            .register(file, EVENT_READ, move |lp, file: &mut ReadPipe, _ev| {
                on_output(lp, &s, pipe, file)
            })
            .map_err(|e| e.into_error())?;
        *shared.borrow_mut().core.read_token(pipe) = Some(token);
    }
    let s = Rc::clone(shared);
    let token = lp
        .register(stdin, EVENT_READ, move |lp, pipe: &mut WritePipe, ev| {
            on_stdin(lp, &s, pipe, ev.mask())
        })
        .map_err(|e| e.into_error())?;
    shared.borrow_mut().core.stdin = Some(token);
    let s = Rc::clone(shared);
    let token = lp
        .register(
            exit,
            EVENT_READ,
            move |lp, _notice: &mut ExitNotice, _ev| on_exit(lp, &s),
        )
        .map_err(|e| e.into_error())?;
    shared.borrow_mut().core.exit = Some(token);
    Ok(())
}

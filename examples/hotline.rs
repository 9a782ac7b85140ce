//! The 10086 hotline (seed 1), one line protocol served three ways: by the
//! event loop, by a thread per client (Python's `ThreadingTCPServer`) and by
//! a process per client (`ForkingTCPServer`, Unix only).
//!
//! ```text
//! cargo run --release --example hotline -- [--addr HOST:PORT] [--model loop|threads|fork]
//! cargo run --release --example hotline -- --client HOST:PORT
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:8009`, the seed's port;
//!   port 0 picks one); the first line printed is `listening on ADDR`, the
//!   address bound.
//! - `--model loop` (default): every client on one [`EventLoop`], each a
//!   `transport::Protocol` with its own line buffer (the transport keeps its
//!   send queue).
//! - `--model threads`: a thread per client, blocking I/O.
//! - `--model fork`: a process per client (`fork(2)` after `accept`), blocking
//!   I/O in the child, which `_exit`s when its client is done; the parent
//!   closes its copy of the socket at once and reaps children on `SIGCHLD`.
//!   The child first lets go of the parent's loop with
//!   `EventLoop::close_after_fork` (no `epoll_ctl` on the shared instance),
//!   so it holds only its connection and the standard streams.
//!   Unix only: on Windows it exits with an error.
//! - `--client HOST:PORT`: the seed's client instead of a server: prints what
//!   the server says, sends each line typed on stdin, stops after `exit`
//!   (5 s timeout on every read, as the seed).
//!
//! The protocol: on connect the server sends
//! `welcome to 10086, enter 1xxx, 0 for an operator`; then for each line the
//! client sends (`\n` or `\r\n`, surrounding blanks ignored): `exit` ends the
//! session and the server closes the connection; `0` gets
//! `your call may be recorded`; anything else gets `please enter again`.
//!
//! In every model the listener is served by an [`EventLoop`] (so Ctrl-C is
//! a loop callback, on every platform); what differs is who serves an
//! accepted connection. Ctrl-C stops accepting, ends the sessions still open
//! (threads: their sockets are shut down, then the threads joined; fork: the
//! children get SIGTERM and are reaped) and exits 0.
//!
//! Better than the seed: it answers per *line*, not per `recv` (a message
//! split across two segments, or two messages in one, are answered right); a
//! line over 1024 bytes is answered once and skipped rather than buffered
//! without bound; a client that resets is dropped without taking the server
//! (or, in the loop model, any other client) with it; the loop model never
//! blocks on a client that does not read its replies (past the transport's
//! high-water mark it stops reading from that client until they drain); forked children are reaped, not left as
//! zombies.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use selectloop::net;
use selectloop::transport::{self, Protocol, Transport};
use selectloop::EventLoop;

mod support;

const WELCOME: &[u8] = b"welcome to 10086, enter 1xxx, 0 for an operator\n";
const RECORDED: &[u8] = b"your call may be recorded\n";
const AGAIN: &[u8] = b"please enter again\n";
/// The longest line kept; a longer one is answered as "anything else".
const MAX_LINE: usize = 1024;
/// Bytes read per `read` call.
const CHUNK: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Model {
    Loop,
    Threads,
    Fork,
}

struct Options {
    addr: String,
    model: Model,
    client: Option<String>,
}

const USAGE: &str = "\
usage: hotline [--addr HOST:PORT] [--model loop|threads|fork]
       hotline --client HOST:PORT

  --addr HOST:PORT  where to listen (default 127.0.0.1:8009; port 0 picks one)
  --model loop      one event loop serves every client (default)
  --model threads   a thread per client, blocking I/O (ThreadingTCPServer)
  --model fork      a process per client, blocking I/O (ForkingTCPServer);
                    Unix only, an error on Windows
  --client HOST:PORT  talk to a hotline server from the terminal instead";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:8009".into(),
        model: Model::Loop,
        client: None,
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--model" => {
                options.model = match args.value::<String>()?.as_str() {
                    "loop" => Model::Loop,
                    "threads" => Model::Threads,
                    "fork" => Model::Fork,
                    other => anyhow::bail!("unknown model {other:?}: loop, threads or fork"),
                }
            }
            "--client" => options.client = Some(args.value()?),
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

// ----- the protocol, shared by every model ----------------------------------

/// One caller's session: bytes in, replies out.
#[derive(Default)]
struct Session {
    /// The line received so far (without its `\n`).
    line: Vec<u8>,
    /// Skipping the rest of an over-long line, already answered.
    skipping: bool,
    /// `exit` was received (or the stream ended): nothing more is answered.
    over: bool,
}

impl Session {
    /// Takes received bytes and appends the replies they call for to `out`.
    /// Returns true once the session is over; bytes after `exit` are ignored.
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> bool {
        while !self.over && !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if !self.skipping {
                        self.line.extend_from_slice(&data[..end]);
                        self.answer(out);
                    }
                    self.line.clear();
                    self.skipping = false;
                    data = &data[end + 1..];
                }
                None => {
                    if !self.skipping {
                        self.line.extend_from_slice(data);
                        if self.line.len() > MAX_LINE {
                            // No command is this long: answer it now and
                            // drop the rest of the line as it arrives.
                            self.answer(out);
                            self.line.clear();
                            self.skipping = true;
                        }
                    }
                    data = &[];
                }
            }
        }
        self.over
    }

    /// The stream ended: a last line without `\n` is still answered.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.over && !self.skipping && !self.line.is_empty() {
            self.answer(out);
        }
        self.over = true;
    }

    fn answer(&mut self, out: &mut Vec<u8>) {
        match trim(&self.line) {
            b"exit" => self.over = true,
            b"0" => out.extend_from_slice(RECORDED),
            _ => out.extend_from_slice(AGAIN),
        }
    }
}

/// The line without surrounding ASCII blanks (so `\r\n` endings work).
fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &line[start..end]
}

/// Serves one client with blocking I/O until `exit`, end of stream or an
/// error: the threads and fork models.
fn serve_blocking(mut stream: TcpStream) -> io::Result<()> {
    // Accepted from a non-blocking listener, which Windows and the BSDs
    // make the accepted socket inherit.
    stream.set_nonblocking(false)?;
    stream.write_all(WELCOME)?;
    let mut session = Session::default();
    let mut buf = [0; CHUNK];
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let over = if n == 0 {
            session.finish(&mut out);
            true
        } else {
            session.feed(&buf[..n], &mut out)
        };
        stream.write_all(&out)?;
        out.clear();
        if over {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

// ----- the loop model: a transport protocol ----------------------------------

/// The loop model's connection: its session, as a `transport::Protocol`
/// (the transport keeps what the socket does not take yet).
struct Hotline {
    session: Session,
    /// The replies to one read, handed to the transport.
    out: Vec<u8>,
}

impl Protocol for Hotline {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        t.write(WELCOME);
    }

    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        let over = self.session.feed(data, &mut self.out);
        t.write(&self.out);
        self.out.clear();
        if over {
            t.close(); // once the replies are out
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_, Self>) -> bool {
        self.session.finish(&mut self.out);
        t.write(&self.out);
        false // closes once the replies are out
    }

    // A client that does not read its replies costs the transport's
    // high-water mark plus one read's worth of memory, not more.
    fn pause_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.pause_reading();
    }

    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.resume_reading();
    }
}

// ----- threads model ---------------------------------------------------------

mod threads {
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use crate::support::BlockingConns;

    /// The client threads: joined on shutdown, finished ones forgotten.
    #[derive(Default)]
    pub struct Threads {
        /// Their connections, shut down on Ctrl-C.
        pub conns: Arc<BlockingConns>,
        pub handles: std::cell::RefCell<Vec<JoinHandle<()>>>,
    }

    impl Threads {
        pub fn shutdown(&self) {
            self.conns.close_all();
            for handle in self.handles.borrow_mut().drain(..) {
                let _ = handle.join();
            }
        }
    }
}

/// The threads model's handoff: a thread for the connection.
fn threads_accept(threads: &threads::Threads, stream: TcpStream) {
    let conns = Arc::clone(&threads.conns);
    let spawned = std::thread::Builder::new()
        .name("hotline-client".into())
        .spawn(move || conns.serve(stream, serve_blocking));
    match spawned {
        Ok(handle) => {
            let mut handles = threads.handles.borrow_mut();
            handles.retain(|h| !h.is_finished());
            handles.push(handle);
        }
        Err(e) => eprintln!("client dropped: no thread for it: {e}"),
    }
}

// ----- fork model ------------------------------------------------------------

#[cfg(unix)]
mod fork {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::io;
    use std::net::TcpStream;
    use std::os::fd::RawFd;

    use selectloop::EventLoop;

    /// The children not yet reaped.
    #[derive(Default)]
    pub struct Children {
        live: RefCell<HashSet<libc::pid_t>>,
    }

    impl Children {
        /// Serves `stream` in a child process; the parent's copy is closed.
        ///
        /// Must be called from a single-threaded process (the fork model runs
        /// only the loop, on the main thread), so that the child may run
        /// ordinary code: no lock can be held by a thread that is not copied.
        pub fn spawn(
            &self,
            lp: &mut EventLoop,
            stream: TcpStream,
            listener: RawFd,
        ) -> io::Result<()> {
            // SAFETY: fork(2) has no preconditions; the process is single-
            // threaded (see above), so the child's copy of it is consistent.
            let pid = unsafe { libc::fork() };
            match pid {
                -1 => Err(io::Error::last_os_error()),
                0 => {
                    // The child. Let go of the parent's loop: its epoll
                    // instance, wake-up descriptors, connections and signal
                    // pairs are closed without touching the parent's
                    // registrations, and Ctrl-C and SIGCHLD get their default
                    // action back (the loop's handlers would wake the
                    // parent's loop, not ours).
                    lp.close_after_fork();
                    // The listener is the parent's business. Its callback is
                    // the one running, so the loop could not close it.
                    // SAFETY: close(2) on our copy of the listener's
                    // descriptor, which no object in this process will use
                    // or close again (the child ends with `_exit`).
                    unsafe { libc::close(listener) };
                    let code = match super::serve_blocking(stream) {
                        Ok(()) => 0,
                        Err(e) => {
                            if !crate::support::is_reset_io(&e) {
                                eprintln!("client dropped: {e}");
                            }
                            1
                        }
                    };
                    // SAFETY: _exit(2) ends the child without running the
                    // parent's destructors or atexit handlers twice.
                    unsafe { libc::_exit(code) }
                }
                pid => {
                    self.live.borrow_mut().insert(pid);
                    drop(stream); // the child has its own copy
                    Ok(())
                }
            }
        }

        /// Reaps every child that has exited (the SIGCHLD handler).
        pub fn reap(&self) {
            loop {
                let mut status = 0;
                // SAFETY: waitpid(2) with a valid pointer to an int.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                self.live.borrow_mut().remove(&pid);
            }
        }

        /// Ends every child still running and waits for each.
        pub fn shutdown(&self) {
            for pid in self.live.borrow_mut().drain() {
                // SAFETY: `pid` is our child and not yet reaped, so the
                // number cannot have been reused; SIGTERM's default action
                // ends it, and waitpid(2) gets a valid pointer.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                    let mut status = 0;
                    while libc::waitpid(pid, &mut status, 0) == -1
                        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                    {
                    }
                }
            }
        }
    }
}

// ----- the client ------------------------------------------------------------

/// The seed's client: prints what the server says, sends each line typed,
/// stops after `exit` (or when the server closes).
fn run_client(addr: &str) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let timeout = Duration::from_secs(5);
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr}: no address"))?;
    let stream = TcpStream::connect_timeout(&target, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut out = io::stdout();
    let mut reply = String::new();
    let read_reply = |reader: &mut BufReader<TcpStream>, reply: &mut String| {
        reply.clear();
        reader.read_line(reply).context("waiting for the server")
    };
    if read_reply(&mut reader, &mut reply)? == 0 {
        anyhow::bail!("the server closed the connection");
    }
    write!(out, "{reply}")?;
    out.flush()?;
    for line in io::stdin().lock().lines() {
        let line = line?;
        writer.write_all(format!("{line}\n").as_bytes())?;
        if read_reply(&mut reader, &mut reply)? == 0 {
            break; // closed: after `exit`, or the server went away
        }
        write!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

// ----- main ------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args()?;
    if let Some(addr) = &options.client {
        return run_client(addr);
    }
    if options.model == Model::Fork && !cfg!(unix) {
        anyhow::bail!(
            "--model fork needs fork(2), which Windows does not have; \
             use --model threads (a thread per client) or --model loop"
        );
    }

    let listener = support::listen(&options.addr)?;
    let mut lp = EventLoop::new()?;
    // A reset client is routine: dropped without a word. Any other error in
    // a callback is logged and drops its client.
    support::drop_resets_quietly(&mut lp);
    support::stop_on_ctrl_c(&mut lp)?;
    support::announce(listener.local_addr()?)?;

    match options.model {
        Model::Loop => {
            transport::serve(&mut lp, listener, || Hotline {
                session: Session::default(),
                out: Vec::new(),
            })?;
            lp.run()?;
        }
        Model::Threads => {
            let threads = Rc::new(threads::Threads::default());
            let handoff = Rc::clone(&threads);
            net::serve(&mut lp, listener, move |_lp, stream, _peer| {
                threads_accept(&handoff, stream);
                Ok(())
            })?;
            lp.run()?;
            drop(lp); // closes the listener
            threads.shutdown();
        }
        Model::Fork => {
            #[cfg(unix)]
            {
                use selectloop::Signal;
                use std::os::fd::AsRawFd;
                let children = Rc::new(fork::Children::default());
                let reaper = Rc::clone(&children);
                lp.add_signal_handler(Signal::from_raw(libc::SIGCHLD), move |_lp| {
                    reaper.reap();
                    Ok(())
                })?;
                let listener_fd = listener.as_raw_fd();
                let forks = Rc::clone(&children);
                net::serve(&mut lp, listener, move |lp, stream, _peer| {
                    if let Err(e) = forks.spawn(lp, stream, listener_fd) {
                        eprintln!("client dropped: fork failed: {e}");
                    }
                    Ok(())
                })?;
                lp.run()?;
                drop(lp);
                children.shutdown();
            }
        }
    }
    Ok(())
}

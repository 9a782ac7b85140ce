//! The upper-case echo (seed 2) served by each I/O model the tutorials
//! compare: a thread pool with blocking I/O, a busy loop over non-blocking
//! sockets, `select`, `poll` and `epoll` used directly, and the event loop.
//!
//! ```text
//! cargo run --release --example io_models -- [--addr HOST:PORT] [--model MODEL] [--pool N] [--sndbuf BYTES]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:9999`, the seed's port;
//!   port 0 picks one); the first line printed is `listening on ADDR`, the
//!   address bound.
//! - `--model pool` (default): accepted connections go to a pool of
//!   `--pool N` threads (default 3), each serving one client at a time with
//!   blocking I/O, so the (N+1)th client waits, connected but unanswered,
//!   until one of the first N leaves: the tutorial's point. (The seed blocks
//!   in `accept()`; here an [`EventLoop`] accepts, so that Ctrl-C can stop
//!   it, and the waiting client sits in the pool's channel as it sat in the
//!   seed's executor queue: the starvation is the same.)
//! - `--model nonblocking`: one thread polls the listener and every client
//!   in turn with non-blocking calls, forever, whether anything is ready or
//!   not. It answers correctly but **burns a whole CPU even when idle**, by
//!   design: that is what the tutorial shows before multiplexing.
//! - `--model select` / `poll` / `epoll`: the crate's `SelectSelector`
//!   (select(2), descriptors below `FD_SETSIZE` only) / `PollSelector`
//!   (poll(2), `WSAPoll` on Windows) / `EpollSelector` on Linux (epoll
//!   driven directly), `NativeSelector` elsewhere (kqueue on macOS and the
//!   BSDs, IOCP on Windows) used directly, without
//!   the event loop: each connection has a queue of replies and is watched
//!   for EVENT_WRITE only while its queue is not empty (seed 5's "queued
//!   echo"). `select` exits with an error on Windows, where the crate has no
//!   `SelectSelector`.
//! - `--model loop`: the same on [`EventLoop`], callbacks instead of a
//!   hand-written dispatch.
//! - `--sndbuf BYTES`: the kernel send buffer of each connection (`SO_SNDBUF`);
//!   a small one makes sends come up short, to watch (and test) the models
//!   keep what was not sent.
//!
//! Reply = the bytes received, upper-cased (ASCII, as Python's `bytes.upper`).
//! Ctrl-C exits 0 in every model: `pool`, `nonblocking` and `loop` run an
//! [`EventLoop`] that takes the signal (the pool's loop also does the
//! accepting; the busy loop runs as a callback that reschedules itself, so
//! the loop polls with a zero timeout); the selector models watch one more
//! socket, which a small control loop on another thread writes a byte to on
//! Ctrl-C (the self-pipe trick).
//!
//! Better than the seeds: a reset client is dropped, not fatal (the seeds'
//! select server dies of it); a partial send keeps the rest for later
//! instead of losing it; a client that does not read its replies stops being
//! read from (at most 80 KiB of replies is queued per client) instead of growing the
//! server's memory; a client that half-closes still gets every reply before
//! the server closes; running out of descriptors pauses accepting instead of
//! spinning; Ctrl-C closes every connection and exits 0.

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use selectloop::net;
use selectloop::{EventLoop, IoEvent, EVENT_READ, EVENT_WRITE};

mod support;

/// Bytes read per `read` call.
const CHUNK: usize = 16 * 1024;
/// Replies queued for one client before the server stops reading from it.
const HIGH_WATER: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Model {
    Pool,
    Nonblocking,
    Select,
    Poll,
    Epoll,
    Loop,
}

struct Options {
    addr: String,
    model: Model,
    pool: usize,
    sndbuf: Option<usize>,
}

const USAGE: &str = "\
usage: io_models [--addr HOST:PORT] [--model MODEL] [--pool N] [--sndbuf BYTES]

The upper-case echo server, served by the I/O model MODEL:
  pool         blocking I/O on a pool of --pool N threads (default 3), one
               client per thread at a time: client N+1 waits (the default)
  nonblocking  a busy loop over non-blocking sockets: correct, but burns a
               whole CPU even when idle, by design
  select       SelectSelector (select(2), descriptors < FD_SETSIZE); Unix
               only: on Windows this model exits with an error
  poll         PollSelector (poll(2); WSAPoll on Windows)
  epoll        EpollSelector on Linux/Android; NativeSelector (kqueue on
               macOS/BSD, IOCP on Windows) elsewhere
  loop         the EventLoop

  --addr HOST:PORT  where to listen (default 127.0.0.1:9999; port 0 picks one)
  --sndbuf BYTES    SO_SNDBUF of each connection: small makes sends partial";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:9999".into(),
        model: Model::Pool,
        pool: 3,
        sndbuf: None,
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--model" => {
                options.model = match args.value::<String>()?.as_str() {
                    "pool" => Model::Pool,
                    "nonblocking" => Model::Nonblocking,
                    "select" => Model::Select,
                    "poll" => Model::Poll,
                    "epoll" => Model::Epoll,
                    "loop" => Model::Loop,
                    other => anyhow::bail!(
                        "unknown model {other:?}: pool, nonblocking, select, poll, epoll or loop"
                    ),
                }
            }
            "--pool" => options.pool = args.positive()?,
            "--sndbuf" => options.sndbuf = Some(args.value()?),
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

/// Logs a dropped client's error, unless it merely reset (the models that
/// serve clients without the event loop).
fn report(e: &io::Error) {
    if !support::is_reset_io(e) {
        eprintln!("client dropped: {e}");
    }
}

/// `--sndbuf`, for every accepted connection (0: the system's default).
static SNDBUF: AtomicUsize = AtomicUsize::new(0);

/// Prepares an accepted connection: non-blocking or not, and `--sndbuf`.
fn prepare(stream: &TcpStream, nonblocking: bool) -> io::Result<()> {
    stream.set_nonblocking(nonblocking)?;
    match SNDBUF.load(Ordering::Relaxed) {
        0 => Ok(()),
        size => socket2::SockRef::from(stream).set_send_buffer_size(size),
    }
}

/// A loop whose Ctrl-C stops it, and whose callbacks' errors are logged
/// (unless a client merely reset) and drop their client.
fn new_loop() -> anyhow::Result<EventLoop> {
    let mut lp = EventLoop::new()?;
    support::drop_resets_quietly(&mut lp);
    support::stop_on_ctrl_c(&mut lp)?;
    Ok(lp)
}

/// Accept errors about one connection (gone before it was accepted), not
/// about the listener.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

// ----- pool: blocking I/O on N threads ---------------------------------------

mod pool {
    use std::io::{self, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{mpsc, Arc, Mutex};

    use selectloop::net;

    use crate::support::BlockingConns;

    /// One client, start to end, with blocking I/O: the worker is busy with
    /// it until it leaves.
    fn serve(mut stream: TcpStream) -> io::Result<()> {
        // Accepted from a non-blocking listener, which Windows and the BSDs
        // make the accepted socket inherit.
        super::prepare(&stream, false)?;
        let mut buf = vec![0; super::CHUNK];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf[..n].make_ascii_uppercase();
            stream.write_all(&buf[..n])?;
        }
    }

    fn worker(conns: &BlockingConns, queue: &Mutex<mpsc::Receiver<TcpStream>>) {
        loop {
            // The lock is held while waiting: one idle worker waits on the
            // channel, the others on the lock.
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok(stream) = next else {
                return; // the accepting loop is gone
            };
            conns.serve(stream, serve);
        }
    }

    pub fn run(listener: TcpListener, threads: usize) -> anyhow::Result<()> {
        // The workers' connections, shut down on Ctrl-C.
        let conns = Arc::new(BlockingConns::default());
        let (tx, rx) = mpsc::channel::<TcpStream>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..threads {
            let conns = Arc::clone(&conns);
            let rx = Arc::clone(&rx);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("pool-{i}"))
                    .spawn(move || worker(&conns, &rx))?,
            );
        }

        let mut lp = super::new_loop()?;
        crate::support::announce(listener.local_addr()?)?;
        // The (N+1)th connection waits in the channel, accepted but unread,
        // until a worker is free: as with the seed's blocking accept and
        // executor, whose queue is the executor's.
        net::serve(&mut lp, listener, move |_lp, stream, _peer| {
            let _ = tx.send(stream);
            Ok(())
        })?;
        lp.run()?;

        drop(lp); // closes the listener and the channel's sending side
        conns.close_all();
        for worker in workers {
            let _ = worker.join();
        }
        Ok(())
    }
}

// ----- nonblocking: the busy loop ------------------------------------------

mod busy {
    use std::cell::RefCell;
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use selectloop::EventLoop;

    struct Client {
        stream: TcpStream,
        /// The reply not yet sent; nothing is read while it is not empty.
        unsent: Vec<u8>,
        /// The peer sent everything: close once `unsent` is empty.
        eof: bool,
        closed: bool,
    }

    /// The seed's lists: the listener, the clients and what each is owed.
    struct Busy {
        listener: TcpListener,
        clients: Vec<Client>,
        /// After a failed accept (out of descriptors), when to try again.
        accept_after: Option<Instant>,
        buf: Vec<u8>,
    }

    impl Busy {
        /// One pass over everything: accept, read, send, drop the closed.
        fn pass(&mut self) {
            self.accept();
            for c in &mut self.clients {
                if c.unsent.is_empty() && !c.eof {
                    match c.stream.read(&mut self.buf) {
                        Ok(0) => c.eof = true,
                        Ok(n) => {
                            c.unsent.extend_from_slice(&self.buf[..n]);
                            c.unsent.make_ascii_uppercase();
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            super::report(&e);
                            c.closed = true;
                        }
                    }
                }
                if !c.unsent.is_empty() && !c.closed {
                    match c.stream.write(&c.unsent) {
                        Ok(n) => {
                            c.unsent.drain(..n);
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            super::report(&e);
                            c.closed = true;
                        }
                    }
                }
                if c.eof && c.unsent.is_empty() && !c.closed {
                    let _ = c.stream.shutdown(Shutdown::Write);
                    c.closed = true;
                }
            }
            self.clients.retain(|c| !c.closed);
        }

        fn accept(&mut self) {
            if self.accept_after.is_some_and(|t| Instant::now() < t) {
                return;
            }
            self.accept_after = None;
            loop {
                match self.listener.accept() {
                    Ok((stream, _peer)) => match super::prepare(&stream, true) {
                        Ok(()) => self.clients.push(Client {
                            stream,
                            unsent: Vec::new(),
                            eof: false,
                            closed: false,
                        }),
                        Err(e) => eprintln!("client dropped: {e}"),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if super::is_transient_accept_error(&e) => {}
                    Err(e) => {
                        eprintln!("accept failed: {e}; pausing accepts for 100 ms");
                        self.accept_after = Some(Instant::now() + Duration::from_millis(100));
                        break;
                    }
                }
            }
        }
    }

    /// Runs one pass, then schedules the next: the loop never waits, since
    /// a callback is always due, so it only polls (for Ctrl-C) between passes.
    fn spin(lp: &mut EventLoop, busy: Rc<RefCell<Busy>>) {
        lp.call_soon(move |lp| {
            busy.borrow_mut().pass();
            spin(lp, busy);
            Ok(())
        });
    }

    pub fn run(listener: TcpListener) -> anyhow::Result<()> {
        let mut lp = super::new_loop()?;
        crate::support::announce(listener.local_addr()?)?;
        let busy = Busy {
            listener,
            clients: Vec::new(),
            accept_after: None,
            buf: vec![0; super::CHUNK],
        };
        spin(&mut lp, Rc::new(RefCell::new(busy)));
        lp.run()?;
        Ok(())
    }
}

// ----- select / poll / epoll: a selector, used directly ---------------------

mod direct {
    use std::collections::{HashMap, VecDeque};
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use selectloop::{
        Backend, BaseSelector, EventLoop, Fd, Interest, Selector, Signal, Source, EVENT_READ,
    };
    use socket2::Socket;

    /// Seed 5's per-connection state: the replies queued for it.
    #[derive(Default)]
    struct Queue {
        msgs: VecDeque<Vec<u8>>,
        /// How much of the front message is sent.
        front_sent: usize,
        /// Queued bytes not yet sent.
        bytes: usize,
        /// The peer sent everything: close once the queue is empty.
        eof: bool,
    }

    impl Queue {
        /// EVENT_WRITE only while something is queued; EVENT_READ unless the
        /// queue is full or the peer is done sending. `None`: close now.
        fn interest(&self) -> Option<Interest> {
            let read = !self.eof && self.bytes < super::HIGH_WATER;
            Interest::from_flags(read, !self.msgs.is_empty())
        }
    }

    /// What happened to a connection in one dispatch.
    enum Outcome {
        Keep { was: Interest, now: Interest },
        Close,
    }

    type Sel<B> = BaseSelector<B, Socket, ()>;

    pub fn run<B: Backend>(listener: TcpListener) -> anyhow::Result<()> {
        let ctrl = ctrl_c_socket()?;
        let mut sel: Sel<B> = BaseSelector::new()?;
        let listener_fd = listener.fileno();
        let ctrl_fd = ctrl.fileno();
        crate::support::announce(listener.local_addr()?)?;
        sel.register(Socket::from(listener), EVENT_READ, ())?;
        sel.register(Socket::from(ctrl), EVENT_READ, ())?;

        let mut queues: HashMap<Fd, Queue> = HashMap::new();
        let mut buf = vec![0; super::CHUNK];
        let mut ready: Vec<(Fd, Interest)> = Vec::new();
        // The listener, unregistered while accepting is paused (out of
        // descriptors), and when to register it again.
        let mut paused: Option<(Socket, Instant)> = None;
        loop {
            let timeout = paused
                .as_ref()
                .map(|(_, until)| until.saturating_duration_since(Instant::now()));
            ready.clear();
            ready.extend(sel.select(timeout)?.map(|(key, mask)| (key.fd, mask)));
            if paused
                .as_ref()
                .is_some_and(|(_, until)| Instant::now() >= *until)
            {
                let (listener, _) = paused.take().expect("checked");
                sel.register(listener, EVENT_READ, ())?;
            }
            for &(fd, mask) in &ready {
                if fd == ctrl_fd {
                    // Ctrl-C (or the control thread is gone): dropping the
                    // selector closes every socket.
                    return Ok(());
                } else if fd == listener_fd {
                    if let Some(until) = accept(&mut sel, &mut queues, fd) {
                        let key = sel.unregister(fd)?;
                        paused = Some((key.fileobj, until));
                    }
                } else {
                    serve(&mut sel, &mut queues, fd, mask, &mut buf);
                }
            }
        }
    }

    /// Accepts what is queued and registers it; returns when to try again
    /// if accepting failed (out of descriptors).
    fn accept<B: Backend>(
        sel: &mut Sel<B>,
        queues: &mut HashMap<Fd, Queue>,
        listener_fd: Fd,
    ) -> Option<Instant> {
        for _ in 0..128 {
            let accepted = match sel.get_key(listener_fd) {
                Ok(key) => key.fileobj.accept(),
                Err(_) => return None,
            };
            match accepted {
                Ok((conn, _peer)) => {
                    let fd = conn.fileno();
                    let registered = conn
                        .set_nonblocking(true)
                        .and_then(|()| match super::SNDBUF.load(super::Ordering::Relaxed) {
                            0 => Ok(()),
                            size => conn.set_send_buffer_size(size),
                        })
                        .map_err(selectloop::Error::from)
                        .and_then(|()| {
                            // Refused, the connection is dropped (closed) here.
                            sel.register(conn, EVENT_READ, ())
                                .map(|_| ())
                                .map_err(selectloop::Error::from)
                        });
                    match registered {
                        Ok(()) => {
                            queues.insert(fd, Queue::default());
                        }
                        // select(2) refuses descriptors >= FD_SETSIZE.
                        Err(e) => eprintln!("client refused: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if super::is_transient_accept_error(&e) => {}
                Err(e) => {
                    eprintln!("accept failed: {e}; pausing accepts for 100 ms");
                    return Some(Instant::now() + Duration::from_millis(100));
                }
            }
        }
        None
    }

    /// Reads into the connection's queue, sends from it, and re-arms it.
    fn serve<B: Backend>(
        sel: &mut Sel<B>,
        queues: &mut HashMap<Fd, Queue>,
        fd: Fd,
        mask: Interest,
        buf: &mut [u8],
    ) {
        let (Ok(key), Some(q)) = (sel.get_key(fd), queues.get_mut(&fd)) else {
            return;
        };
        let sock = &key.fileobj;
        let outcome = match exchange(sock, q, mask, buf) {
            Err(e) => {
                super::report(&e);
                Outcome::Close
            }
            Ok(()) => match q.interest() {
                Some(now) => Outcome::Keep {
                    was: key.events,
                    now,
                },
                None => {
                    let _ = sock.shutdown(Shutdown::Write);
                    Outcome::Close
                }
            },
        };
        match outcome {
            Outcome::Keep { was, now } if was != now => {
                if let Err(e) = sel.modify(fd, now, ()) {
                    eprintln!("client dropped: {e}");
                    let _ = sel.unregister(fd);
                    queues.remove(&fd);
                }
            }
            Outcome::Keep { .. } => {}
            Outcome::Close => {
                let _ = sel.unregister(fd); // drops, and so closes, the socket
                queues.remove(&fd);
            }
        }
    }

    fn exchange(sock: &Socket, q: &mut Queue, mask: Interest, buf: &mut [u8]) -> io::Result<()> {
        let mut sock = sock;
        if mask.is_readable() && !q.eof && q.bytes < super::HIGH_WATER {
            match sock.read(buf) {
                Ok(0) => q.eof = true,
                Ok(n) => {
                    let mut msg = buf[..n].to_vec();
                    msg.make_ascii_uppercase();
                    q.bytes += n;
                    q.msgs.push_back(msg);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        if mask.is_writable() {
            while let Some(front) = q.msgs.front() {
                let n = crate::support::write_some(&mut sock, &front[q.front_sent..])?;
                q.front_sent += n;
                q.bytes -= n;
                if q.front_sent < front.len() {
                    break; // the socket is full
                }
                q.msgs.pop_front();
                q.front_sent = 0;
            }
        }
        Ok(())
    }

    /// A socket that becomes readable on Ctrl-C: a control loop on its own
    /// thread takes the signal and writes a byte to the other end. The
    /// control loop ends when our end closes. Returns once the handler is in
    /// place.
    fn ctrl_c_socket() -> anyhow::Result<TcpStream> {
        // Connected to each other, non-blocking.
        let (ours, theirs) = selectloop::net::stream_pair()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("ctrl-c".into())
            .spawn(move || {
                let setup = || -> anyhow::Result<EventLoop> {
                    let mut lp = EventLoop::new()?;
                    // Readable only when the main thread's end closes.
                    let token =
                        lp.register(theirs, EVENT_READ, |lp, _theirs: &mut TcpStream, ev| {
                            lp.unregister(ev.token())?;
                            Ok(())
                        })?;
                    lp.add_signal_handler(Signal::INT, move |lp| {
                        lp.with_source(token, |theirs: &mut TcpStream| theirs.write_all(b"!"))??;
                        Ok(())
                    })?;
                    Ok(lp)
                };
                match setup() {
                    Ok(mut lp) => {
                        let _ = ready_tx.send(Ok(()));
                        if let Err(e) = lp.run() {
                            eprintln!("ctrl-c loop failed: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        ready_rx
            .recv()
            .context("the ctrl-c thread ended before it was set up")??;
        Ok(ours)
    }
}

// ----- loop: the event loop ----------------------------------------------------

/// The loop model's connection: the reply not yet sent.
struct LoopConn {
    unsent: Vec<u8>,
    /// The peer sent everything: close once `unsent` is empty.
    eof: bool,
}

impl LoopConn {
    fn on_ready(
        &mut self,
        lp: &mut EventLoop,
        stream: &mut TcpStream,
        ev: IoEvent<TcpStream>,
    ) -> anyhow::Result<()> {
        let (me, mask) = (ev.token(), ev.mask());
        if mask.is_readable() && self.unsent.is_empty() && !self.eof {
            let mut buf = [0; CHUNK];
            match stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    buf[..n].make_ascii_uppercase();
                    self.unsent.extend_from_slice(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let sent = support::write_some(stream, &self.unsent)?;
        self.unsent.drain(..sent);
        if self.unsent.is_empty() && self.eof {
            let _ = stream.shutdown(Shutdown::Write);
            lp.unregister(me)?;
        } else {
            // Backpressure: wait for room while a reply is pending, else read.
            let events = if self.unsent.is_empty() {
                EVENT_READ
            } else {
                EVENT_WRITE
            };
            lp.modify(me, events)?;
        }
        Ok(())
    }
}

fn run_loop(listener: TcpListener) -> anyhow::Result<()> {
    let mut lp = new_loop()?;
    support::announce(listener.local_addr()?)?;
    // An error goes to the loop's error handler, which logs it and drops the
    // client.
    net::serve(&mut lp, listener, |lp, stream, _peer| {
        let mut conn = LoopConn {
            unsent: Vec::new(),
            eof: false,
        };
        prepare(&stream, true)?;
        lp.register(stream, EVENT_READ, move |lp, stream: &mut TcpStream, ev| {
            conn.on_ready(lp, stream, ev)
        })?;
        Ok(())
    })?;
    lp.run()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args()?;
    if let Some(size) = options.sndbuf {
        SNDBUF.store(size, Ordering::Relaxed);
    }
    if options.model == Model::Select && !cfg!(unix) {
        anyhow::bail!(
            "--model select needs SelectSelector (select(2)), which selectloop has on Unix \
             only; on Windows use --model poll (WSAPoll) or --model epoll (IOCP)"
        );
    }
    // Backlog 1024: seed 5 asks for 1000; std's `TcpListener::bind` uses 128,
    // and a burst of connects beyond the accept queue sees its SYNs dropped
    // and retried only a second later.
    let listener = support::listen(&options.addr)?;
    match options.model {
        Model::Pool => pool::run(listener, options.pool),
        Model::Nonblocking => busy::run(listener),
        Model::Select => {
            #[cfg(unix)]
            return direct::run::<selectloop::selector::SelectBackend>(listener);
            #[cfg(not(unix))]
            unreachable!("refused above");
        }
        Model::Poll => direct::run::<selectloop::selector::PollBackend>(listener),
        Model::Epoll => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            return direct::run::<selectloop::selector::EpollBackend>(listener);
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            direct::run::<selectloop::selector::NativeBackend>(listener)
        }
        Model::Loop => run_loop(listener),
    }
}

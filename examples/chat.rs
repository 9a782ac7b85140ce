//! The seeds' chat room, on `EventLoop`: every line a client sends goes to
//! every other client.
//!
//! ```text
//! cargo run --release --example chat -- [--addr HOST:PORT] [--max-queued BYTES]
//!     [--idle-timeout-ms MS]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:8008`, the seed's port;
//!   port 0 picks one); the first line printed is `listening on ADDR`;
//! - `--max-queued BYTES`: how much may wait to be sent to one client
//!   before it is dropped as not reading (default 1 MiB);
//! - `--idle-timeout-ms MS`: a client that sends nothing for this long (not
//!   even part of a line) is told `Idle Timeout` and closed, so that idle
//!   clients do not hold a descriptor forever (default 600000, ten minutes;
//!   a client that only listens must say something, an empty line will do,
//!   at least that often).
//!
//! Try it with a few `nc 127.0.0.1 8008` (or `telnet`) in other terminals.
//! The protocol is lines: a message is everything up to and including a
//! `\n`, forwarded as it is to every client but its sender. Joins, leaves
//! and drops are logged on stderr. Ctrl-C sends `Shutdown Server\n` to every
//! client, gives them up to two seconds to take what is still queued for
//! them, closes them and the listener, and exits 0 (a second Ctrl-C closes
//! at once).
//!
//! Better than the seed, which handles only the first readable socket of
//! each `select`, forwards whatever one `recv` returned (half a line, or two),
//! and blocks the whole room on a `send` to a client that does not read:
//! - each client has its own input buffer, so only whole lines are
//!   forwarded and fragments from different clients never mix; a line
//!   longer than 64 KiB is a protocol error that drops its sender;
//! - each client has its own outgoing queue, written as the socket accepts
//!   (`EVENT_WRITE` is watched only while the queue is non-empty); a line is
//!   stored once and shared by every queue it is in;
//! - a client whose queue grows past 1 MiB (it does not read) is dropped with
//!   a line on stderr, so memory stays bounded and the others keep chatting;
//! - a client that errors, resets or closes is dropped alone;
//! - a client silent for the idle timeout is sent `Idle Timeout\n` and
//!   closed (one timer per client, re-armed for the rest of the timeout when
//!   it fires on a client that spoke meanwhile, so reads cost no timer work).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use selectloop::net;
use selectloop::{CallHandle, EventLoop, IoEvent, Signal, Token, EVENT_READ, EVENT_WRITE};

mod support;
// The line framing, in a file of its own that the fuzz target and
// tests/fuzz_corpus.rs include too.
#[path = "support/lines.rs"]
mod lines;

use lines::split_lines;

/// The longest line a client may send, newline included.
const MAX_LINE: usize = 64 * 1024;
/// The most a client may have queued for it before it is dropped (default
/// of `--max-queued`).
const MAX_QUEUED: usize = 1024 * 1024;
/// Bytes read per `read` call.
const CHUNK: usize = 64 * 1024;
/// How long Ctrl-C waits for clients to take their last lines.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// What every client gets on Ctrl-C.
const SHUTDOWN_LINE: &[u8] = b"Shutdown Server\n";
/// How long a client may send nothing (default of `--idle-timeout-ms`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// What a client silent for the idle timeout gets before it is closed.
const IDLE_LINE: &[u8] = b"Idle Timeout\n";

const USAGE: &str = "usage: chat [--addr HOST:PORT] [--max-queued BYTES] [--idle-timeout-ms MS]";

struct Options {
    addr: String,
    max_queued: usize,
    idle: Duration,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:8008".to_string(),
        max_queued: MAX_QUEUED,
        idle: IDLE_TIMEOUT,
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--max-queued" => options.max_queued = args.value()?,
            "--idle-timeout-ms" => options.idle = Duration::from_millis(args.positive()?),
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

/// Lines waiting to go out to one client. Each line is shared (`Rc`) by
/// every client it is queued for.
#[derive(Default)]
struct Outbox {
    lines: VecDeque<Rc<[u8]>>,
    /// How much of the front line is already sent.
    front_sent: usize,
    /// Bytes queued and not yet sent.
    bytes: usize,
}

impl Outbox {
    fn push(&mut self, line: Rc<[u8]>) {
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Writes as much as the socket takes now.
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        while let Some(front) = self.lines.front() {
            let n = support::write_some(stream, &front[self.front_sent..])?;
            self.front_sent += n;
            self.bytes -= n;
            if self.front_sent < front.len() {
                break; // the socket is full
            }
            self.lines.pop_front();
            self.front_sent = 0;
        }
        Ok(())
    }
}

struct Client {
    /// For the log.
    peer: String,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    outbox: Outbox,
    /// When the client last sent anything.
    last_heard: Instant,
    /// The idle check (cancelled when the client goes).
    idle_check: Option<CallHandle>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(check) = self.idle_check.take() {
            check.cancel();
        }
    }
}

/// The room: every client's state, keyed by the loop's token for its socket
/// (the loop owns the sockets; [`EventLoop::with_source`] reaches another
/// client's from inside a callback).
#[derive(Default)]
struct Room {
    clients: BTreeMap<Token<TcpStream>, Client>,
    /// A client with more than this queued for it is dropped.
    max_queued: usize,
    /// A client that sends nothing for this long is closed.
    idle: Duration,
    /// The listener's token (it stays the same while `net::serve` pauses
    /// accepting); taken, and the listener closed, on Ctrl-C.
    listener: Option<Token<TcpListener>>,
    /// Ctrl-C came: clients are being sent their last lines.
    closing: bool,
    grace: Option<CallHandle>,
}

type Shared = Rc<RefCell<Room>>;

/// What `net::serve` calls for each accepted client (non-blocking, Nagle
/// off): it joins the room.
fn join(
    lp: &mut EventLoop,
    room: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    let shared = Rc::clone(room);
    let token = lp.register(stream, EVENT_READ, move |lp, stream: &mut TcpStream, ev| {
        on_client(lp, &shared, stream, ev)
    })?;
    eprintln!("chat: {peer} joined");
    room.borrow_mut().clients.insert(
        token,
        Client {
            peer: peer.to_string(),
            partial: Vec::new(),
            outbox: Outbox::default(),
            last_heard: Instant::now(),
            idle_check: None,
        },
    );
    let idle = room.borrow().idle;
    check_idle_in(lp, room, token, idle);
    Ok(())
}

/// Checks in `delay` whether the client has been silent for the idle
/// timeout.
fn check_idle_in(lp: &mut EventLoop, room: &Shared, token: Token<TcpStream>, delay: Duration) {
    let shared = Rc::clone(room);
    let check = lp.call_later(delay, move |lp| {
        check_idle(lp, &shared, token);
        Ok(())
    });
    match room.borrow_mut().clients.get_mut(&token) {
        Some(client) => client.idle_check = Some(check),
        None => {
            check.cancel();
        }
    }
}

/// The client's idle check is due: silent for the whole idle timeout, it is
/// told and closed; otherwise it is checked again when the timeout would
/// run out, counted from the last time it sent something.
fn check_idle(lp: &mut EventLoop, room: &Shared, token: Token<TcpStream>) {
    let (silent, idle) = {
        let room = room.borrow();
        let Some(client) = room.clients.get(&token) else {
            return;
        };
        if room.closing {
            return; // the shutdown grace period decides now
        }
        (client.last_heard.elapsed(), room.idle)
    };
    if silent < idle {
        check_idle_in(lp, room, token, idle - silent);
        return;
    }
    let peer = {
        let mut room = room.borrow_mut();
        let client = room.clients.get_mut(&token).expect("checked above");
        client.idle_check = None; // this very call
        client.outbox.push(Rc::from(IDLE_LINE));
        let outbox = &mut client.outbox;
        // What the socket does not take now is lost with the connection:
        // a client that is silent and does not read is not waited for.
        let _ = lp.with_source(token, |stream: &mut TcpStream| outbox.flush(stream));
        client.peer.clone()
    };
    eprintln!("chat: closing {peer}: idle for {idle:?}");
    close_client(lp, room, token, None);
}

/// A client's socket is readable or writable.
fn on_client(
    lp: &mut EventLoop,
    room: &Shared,
    stream: &mut TcpStream,
    ev: IoEvent<TcpStream>,
) -> anyhow::Result<()> {
    let (me, mask) = (ev.token(), ev.mask());
    if mask.is_writable() {
        let flushed = match room.borrow_mut().clients.get_mut(&me) {
            Some(client) => client.outbox.flush(stream),
            None => return Ok(()),
        };
        if let Err(e) = flushed {
            drop_client(lp, room, me, Some(&format!("write failed: {e}")));
            return Ok(());
        }
        if room.borrow().closing {
            if room.borrow().clients[&me].outbox.is_empty() {
                close_client(lp, room, me, Some(stream));
            }
            return Ok(());
        }
    }
    if mask.is_readable() {
        let mut buf = [0u8; CHUNK];
        match stream.read(&mut buf) {
            Ok(0) => {
                drop_client(lp, room, me, None);
                return Ok(());
            }
            Ok(n) => {
                let (lines, overlong) = match room.borrow_mut().clients.get_mut(&me) {
                    Some(client) => {
                        client.last_heard = Instant::now();
                        split_lines(&mut client.partial, &buf[..n], MAX_LINE)
                    }
                    None => return Ok(()),
                };
                broadcast(lp, room, me, lines);
                if overlong {
                    let why = format!("sent a line longer than {MAX_LINE} bytes (protocol error)");
                    drop_client(lp, room, me, Some(&why));
                    return Ok(());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                drop_client(lp, room, me, Some(&format!("read failed: {e}")));
                return Ok(());
            }
        }
    }
    watch(lp, room, me)?;
    Ok(())
}

/// Queues `lines` for every client but `from`, and writes what each socket
/// takes now; drops the clients that are over the bound or fail.
fn broadcast(lp: &mut EventLoop, room: &Shared, from: Token<TcpStream>, lines: Vec<Rc<[u8]>>) {
    if lines.is_empty() {
        return;
    }
    let mut dropped = Vec::new();
    {
        let mut room = room.borrow_mut();
        let max_queued = room.max_queued;
        for (&token, client) in room.clients.iter_mut() {
            if token == from {
                continue;
            }
            let was_empty = client.outbox.is_empty();
            for line in &lines {
                client.outbox.push(Rc::clone(line));
            }
            if client.outbox.bytes > max_queued {
                dropped.push((
                    token,
                    format!(
                        "not reading: {} bytes queued, over the {max_queued}-byte bound",
                        client.outbox.bytes
                    ),
                ));
                continue;
            }
            if !was_empty {
                continue; // already waiting for EVENT_WRITE
            }
            let outbox = &mut client.outbox;
            match lp.with_source(token, |stream: &mut TcpStream| outbox.flush(stream)) {
                Ok(Ok(())) if outbox.is_empty() => {}
                Ok(Ok(())) => {
                    // The rest goes out as the socket becomes writable.
                    if let Err(e) = lp.modify(token, EVENT_READ | EVENT_WRITE) {
                        dropped.push((token, format!("cannot watch for EVENT_WRITE: {e}")));
                    }
                }
                Ok(Err(e)) => dropped.push((token, format!("write failed: {e}"))),
                Err(e) => dropped.push((token, format!("socket unavailable: {e}"))),
            }
        }
    }
    for (token, why) in dropped {
        drop_client(lp, room, token, Some(&why));
    }
}

/// Watches a client for what it needs now: reads always (unless closing),
/// writes while something is queued for it.
fn watch(lp: &mut EventLoop, room: &Shared, token: Token<TcpStream>) -> selectloop::Result<()> {
    let room = room.borrow();
    let Some(client) = room.clients.get(&token) else {
        return Ok(());
    };
    let events = match (room.closing, client.outbox.is_empty()) {
        (true, _) => EVENT_WRITE,
        (false, true) => EVENT_READ,
        (false, false) => EVENT_READ | EVENT_WRITE,
    };
    lp.modify(token, events)
}

/// Removes a client that left (`why` is `None`) or failed, logging it, and
/// closes its socket (unregistering drops it).
fn drop_client(lp: &mut EventLoop, room: &Shared, token: Token<TcpStream>, why: Option<&str>) {
    let Some(client) = room.borrow_mut().clients.remove(&token) else {
        return;
    };
    match why {
        None => eprintln!("chat: {} left", client.peer),
        Some(why) => eprintln!("chat: dropping {}: {why}", client.peer),
    }
    let _ = lp.unregister(token);
    maybe_done(lp, room);
}

/// Closes a client whose last lines are sent (shutting down): our side is
/// shut down first, and what it sent meanwhile is read and discarded, so
/// that closing sends a FIN rather than a reset that could destroy the
/// lines it has not read yet.
fn close_client(
    lp: &mut EventLoop,
    room: &Shared,
    token: Token<TcpStream>,
    stream: Option<&mut TcpStream>,
) {
    if room.borrow_mut().clients.remove(&token).is_none() {
        return;
    }
    let goodbye = |stream: &mut TcpStream| {
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    };
    match stream {
        Some(stream) => goodbye(stream),
        None => {
            let _ = lp.with_source(token, goodbye);
        }
    }
    let _ = lp.unregister(token);
    maybe_done(lp, room);
}

/// Shutting down and nobody left: stop the loop.
fn maybe_done(lp: &mut EventLoop, room: &Shared) {
    let mut room = room.borrow_mut();
    if room.closing && room.clients.is_empty() {
        if let Some(grace) = room.grace.take() {
            grace.cancel();
        }
        lp.stop();
    }
}

/// Ctrl-C: stop accepting, queue `Shutdown Server` for everyone, close the
/// clients as their queues empty, and stop when all are closed or the grace
/// period is over. A second Ctrl-C closes everything at once.
fn shut_down(lp: &mut EventLoop, room: &Shared) {
    let already = std::mem::replace(&mut room.borrow_mut().closing, true);
    if already {
        eprintln!("chat: second Ctrl-C, closing now");
        close_everyone(lp, room);
        lp.stop();
        return;
    }
    let listener = room.borrow_mut().listener.take();
    if let Some(listener) = listener {
        let _ = lp.unregister(listener); // closes it
    }
    let tokens: Vec<Token<TcpStream>> = room.borrow().clients.keys().copied().collect();
    eprintln!(
        "chat: Ctrl-C, telling {} client(s) and shutting down",
        tokens.len()
    );
    let line: Rc<[u8]> = Rc::from(SHUTDOWN_LINE);
    for token in tokens {
        let flushed = {
            let mut room = room.borrow_mut();
            let client = room.clients.get_mut(&token).expect("listed above");
            client.partial.clear();
            client.outbox.push(Rc::clone(&line));
            let outbox = &mut client.outbox;
            match lp.with_source(token, |stream: &mut TcpStream| outbox.flush(stream)) {
                Ok(Ok(())) => Ok(outbox.is_empty()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        match flushed {
            Ok(true) => close_client(lp, room, token, None),
            Ok(false) => {
                if let Err(e) = watch(lp, room, token) {
                    drop_client(lp, room, token, Some(&e.to_string()));
                }
            }
            Err(why) => drop_client(lp, room, token, Some(&why)),
        }
    }
    let mut shared = room.borrow_mut();
    if shared.clients.is_empty() {
        lp.stop();
    } else {
        let room = Rc::clone(room);
        shared.grace = Some(lp.call_later(SHUTDOWN_GRACE, move |lp| {
            eprintln!(
                "chat: {} client(s) did not take their last lines within {SHUTDOWN_GRACE:?}",
                room.borrow().clients.len()
            );
            close_everyone(lp, &room);
            lp.stop();
            Ok(())
        }));
    }
}

fn close_everyone(lp: &mut EventLoop, room: &Shared) {
    let tokens: Vec<Token<TcpStream>> = room.borrow().clients.keys().copied().collect();
    for token in tokens {
        close_client(lp, room, token, None);
    }
}

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let Options {
        addr,
        max_queued,
        idle,
    } = parse_args()?;
    let listener = support::listen(&addr)?;

    let mut lp = EventLoop::new()?;
    let room: Shared = Rc::new(RefCell::new(Room {
        max_queued,
        idle,
        ..Room::default()
    }));
    // A callback error the code above did not handle itself: drop that
    // client (or source), never the room.
    let shared = Rc::clone(&room);
    lp.set_error_handler(move |lp, failure| {
        eprintln!("chat: {failure}");
        if let Some(token) = failure.token {
            // The failing source's token, typed again if it is a client's.
            let client = shared
                .borrow()
                .clients
                .keys()
                .find(|&&c| c == token)
                .copied();
            if let Some(client) = client {
                drop_client(lp, &shared, client, Some("callback failed"));
            } else {
                let _ = lp.unregister(token);
            }
        }
    });
    let shared = Rc::clone(&room);
    lp.add_signal_handler(Signal::INT, move |lp| {
        shut_down(lp, &shared);
        Ok(())
    })?;
    let addr = listener.local_addr()?;
    // Accepts in batches; out of descriptors, it pauses the listener a while
    // (same token) instead of spinning on it.
    let shared = Rc::clone(&room);
    let token = net::serve(&mut lp, listener, move |lp, stream, peer| {
        join(lp, &shared, stream, peer)
    })?;
    room.borrow_mut().listener = Some(token);

    support::announce(addr)?;
    lp.run()?;
    eprintln!("chat: shut down");
    Ok(())
}

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
//! - each client is a `transport::Protocol` with its own input buffer, so
//!   only whole lines are forwarded and fragments from different clients
//!   never mix; a line longer than 64 KiB is a protocol error that drops its
//!   sender;
//! - each client's transport queues what its socket does not take yet
//!   (`EVENT_WRITE` watched only meanwhile), so a write never blocks the room;
//! - a client with more than 1 MiB queued (it does not read) is dropped with
//!   a line on stderr, so memory stays bounded and the others keep chatting;
//! - a client that errors, resets or closes is dropped alone;
//! - a client silent for the idle timeout is sent `Idle Timeout\n` and
//!   closed (one timer per client, re-armed for the rest of the timeout when
//!   it fires on a client that spoke meanwhile, so reads cost no timer work).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use selectloop::transport::{self, Protocol, StreamToken, Transport};
use selectloop::{CallHandle, EventLoop, Signal, Token};

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

/// The room: who is in it (the transports own the clients; a client's
/// token reaches its transport through [`EventLoop::with_transport`]).
struct Room {
    clients: BTreeSet<Client>,
    /// A client with more than this queued for it is dropped.
    max_queued: usize,
    /// A client that sends nothing for this long is closed.
    idle: Duration,
    /// The listener's token; taken, and the listener closed, on Ctrl-C.
    listener: Option<Token<TcpListener>>,
    /// Ctrl-C came: clients are being sent their last lines.
    closing: bool,
    grace: Option<CallHandle>,
}

type Shared = Rc<RefCell<Room>>;
type Client = StreamToken<Chatter>;

/// One client's protocol.
struct Chatter {
    room: Shared,
    /// For the log.
    peer: String,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    /// When the client last sent anything.
    last_heard: Instant,
    /// The idle check (cancelled when the client goes).
    idle_check: Option<CallHandle>,
    /// What to log when the connection is lost (`None`: it left; an empty
    /// string: nothing, the server closed it on Ctrl-C).
    farewell: Option<String>,
}

impl Protocol for Chatter {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        self.peer = t.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
        eprintln!("chat: {} joined", self.peer);
        let idle = {
            let mut room = self.room.borrow_mut();
            room.clients.insert(t.token());
            room.idle
        };
        let me = t.token();
        self.idle_check = Some(check_idle_in(t.lp(), &self.room, me, idle));
    }

    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        self.last_heard = Instant::now();
        let (lines, overlong) = split_lines(&mut self.partial, data, MAX_LINE);
        let me = t.token();
        broadcast(t.lp(), &self.room, me, &lines);
        if overlong {
            self.drop_client(
                t,
                format!("sent a line longer than {MAX_LINE} bytes (protocol error)"),
            );
        }
    }

    // End of stream: the default `eof_received` closes the connection.

    fn connection_lost(&mut self, t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        if let Some(check) = self.idle_check.take() {
            check.cancel();
        }
        self.room.borrow_mut().clients.remove(&t.token());
        match (self.farewell.take(), error) {
            (Some(quiet), _) if quiet.is_empty() => {}
            (Some(why), _) => eprintln!("chat: {why}"),
            (None, Some(e)) => eprintln!("chat: dropping {}: {e}", self.peer),
            (None, None) => eprintln!("chat: {} left", self.peer),
        }
        maybe_done(t.lp(), &self.room);
    }
}

impl Chatter {
    /// Drops the client now, with `why` on stderr.
    fn drop_client(&mut self, t: &mut Transport<'_, Self>, why: String) {
        self.farewell = Some(format!("dropping {}: {why}", self.peer));
        t.abort();
    }
}

/// Queues `lines` for every client but `from`; drops the clients that are
/// over the bound.
fn broadcast(lp: &mut EventLoop, room: &Shared, from: Client, lines: &[Rc<[u8]>]) {
    if lines.is_empty() {
        return;
    }
    let (others, max_queued): (Vec<Client>, usize) = {
        let room = room.borrow();
        let others = room
            .clients
            .iter()
            .filter(|&&c| c != from)
            .copied()
            .collect();
        (others, room.max_queued)
    };
    for client in others {
        let _ = lp.with_transport(client, |chatter, t| {
            for line in lines {
                t.write(line);
            }
            let queued = t.write_buffer_size();
            if queued > max_queued {
                let why =
                    format!("not reading: {queued} bytes queued, over the {max_queued}-byte bound");
                chatter.drop_client(t, why);
            }
        });
    }
}

/// Checks in `delay` whether the client has been silent for the idle
/// timeout.
fn check_idle_in(lp: &mut EventLoop, room: &Shared, client: Client, delay: Duration) -> CallHandle {
    let room = Rc::clone(room);
    lp.call_later(delay, move |lp| {
        check_idle(lp, &room, client);
        Ok(())
    })
}

/// The client's idle check is due: silent for the whole idle timeout, it is
/// told and closed; otherwise it is checked again when the timeout would
/// run out, counted from the last time it sent something.
fn check_idle(lp: &mut EventLoop, room: &Shared, client: Client) {
    let (closing, idle) = {
        let room = room.borrow();
        (room.closing, room.idle)
    };
    if closing {
        return; // the shutdown grace period decides now
    }
    let _ = lp.with_transport(client, |chatter, t| {
        let silent = chatter.last_heard.elapsed();
        if silent < idle {
            let room = Rc::clone(&chatter.room);
            chatter.idle_check = Some(check_idle_in(t.lp(), &room, client, idle - silent));
            return;
        }
        chatter.idle_check = None; // this very call
        chatter.farewell = Some(format!("closing {}: idle for {idle:?}", chatter.peer));
        t.write(IDLE_LINE);
        // A client that is silent and does not read is not waited for.
        if t.write_buffer_size() > 0 {
            t.abort();
        } else {
            t.close();
        }
    });
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

/// Ctrl-C: stop accepting, send `Shutdown Server` to everyone and close each
/// client once it has taken its lines; stop when all are closed or the grace
/// period is over. A second Ctrl-C closes everything at once.
fn shut_down(lp: &mut EventLoop, room: &Shared) {
    let already = std::mem::replace(&mut room.borrow_mut().closing, true);
    if already {
        eprintln!("chat: second Ctrl-C, closing now");
        abort_everyone(lp, room);
        lp.stop();
        return;
    }
    let listener = room.borrow_mut().listener.take();
    if let Some(listener) = listener {
        let _ = lp.unregister(listener); // closes it
    }
    let clients: Vec<Client> = room.borrow().clients.iter().copied().collect();
    eprintln!(
        "chat: Ctrl-C, telling {} client(s) and shutting down",
        clients.len()
    );
    for client in clients {
        let _ = lp.with_transport(client, |chatter, t| {
            chatter.farewell = Some(String::new());
            t.write(SHUTDOWN_LINE);
            t.close(); // once everything queued for it is sent
        });
    }
    if room.borrow().clients.is_empty() {
        lp.stop();
        return;
    }
    let shared = Rc::clone(room);
    let grace = lp.call_later(SHUTDOWN_GRACE, move |lp| {
        eprintln!(
            "chat: {} client(s) did not take their last lines within {SHUTDOWN_GRACE:?}",
            shared.borrow().clients.len()
        );
        abort_everyone(lp, &shared);
        lp.stop();
        Ok(())
    });
    room.borrow_mut().grace = Some(grace);
}

fn abort_everyone(lp: &mut EventLoop, room: &Shared) {
    let clients: Vec<Client> = room.borrow().clients.iter().copied().collect();
    for client in clients {
        let _ = lp.with_transport(client, |chatter, t| {
            chatter.farewell = Some(String::new());
            t.abort();
        });
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
        clients: BTreeSet::new(),
        max_queued,
        idle,
        listener: None,
        closing: false,
        grace: None,
    }));
    let shared = Rc::clone(&room);
    lp.add_signal_handler(Signal::INT, move |lp| {
        shut_down(lp, &shared);
        Ok(())
    })?;
    let addr = listener.local_addr()?;
    // Accepts in batches; out of descriptors, it pauses the listener a while
    // (same token) instead of spinning on it.
    let shared = Rc::clone(&room);
    let token = transport::serve(&mut lp, listener, move || Chatter {
        room: Rc::clone(&shared),
        peer: String::new(),
        partial: Vec::new(),
        last_heard: Instant::now(),
        idle_check: None,
        farewell: None,
    })?;
    room.borrow_mut().listener = Some(token);

    support::announce(addr)?;
    lp.run()?;
    eprintln!("chat: shut down");
    Ok(())
}

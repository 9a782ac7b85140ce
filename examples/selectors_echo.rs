//! The seeds' "selectors echo" on the bare selector, `key.data` as the
//! callback, done correctly.
//!
//! ```text
//! cargo run --example selectors_echo -- [--addr HOST:PORT]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:9999`; port 0 picks one).
//!   The first line printed is `listening on ADDR`, the address bound. It
//!   runs until killed.
//!
//! The Python it mirrors:
//!
//! ```python
//! def accept(sock, mask):
//!     conn, addr = sock.accept()
//!     conn.setblocking(False)
//!     sel.register(conn, selectors.EVENT_READ, read)
//!
//! def read(conn, mask):
//!     data = conn.recv(1024)
//!     if data:
//!         conn.send(data)            # may send only part: the rest is lost
//!     else:
//!         sel.unregister(conn)
//!         conn.close()
//!
//! sel.register(sock, selectors.EVENT_READ, accept)
//! while True:
//!     events = sel.select()
//!     for key, mask in events:
//!         callback = key.data
//!         callback(key.fileobj, mask)
//! ```
//!
//! The loop below reads the same: `select_into` fills a list the loop owns
//! (Python's `events`), so the callbacks are free to register and
//! unregister while it is walked, and `key_for` skips a key an earlier
//! callback of the same batch unregistered, even if its descriptor number
//! has been reused by a connection accepted since.
//!
//! Correct where that is not:
//! - a partial send keeps the unsent rest, switches the connection to
//!   `EVENT_WRITE` with `write` as its data, and reads nothing from it until
//!   the rest is gone: each connection holds at most one read (1024 bytes);
//! - `WouldBlock` and `EINTR` are retried or waited out, never fatal;
//! - a peer that resets (`ECONNRESET`, `EPIPE`) is dropped quietly; any
//!   other error on a connection is logged and drops that connection only;
//! - accept errors are logged and the server lives on: a connection that
//!   aborted before its accept is skipped; running out of descriptors
//!   (`EMFILE`, `ENFILE`) or buffers takes the listener out of the selector
//!   for 100 ms instead of spinning on it.

mod support;

use std::collections::HashMap;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::Context;
use selectloop::net::ListenerBuilder;
use selectloop::{DefaultSelector, Events, Fd, Interest, Selector, EVENT_READ, EVENT_WRITE};
use socket2::Socket;

/// Bytes read per `read` callback, as in the seed.
const CHUNK: usize = 1024;

/// How long accepting pauses after an accept error other than an aborted connection.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Python's `key.data`: the function to call when the key is ready. The
/// Python callbacks reach the selector as a global; here they get the
/// server, selector included, as an argument.
type Callback = fn(&mut Server, Fd, Interest);

struct Server {
    /// `socket2::Socket` serves as both listener and connection, like
    /// Python's `socket.socket`.
    sel: DefaultSelector<Socket, Callback>,
    /// Echoed bytes a peer has not taken yet, for each connection whose data
    /// is `write` (never more than one read's worth).
    unsent: HashMap<Fd, Vec<u8>>,
    /// The listener while accepting is paused, and when to resume.
    paused: Option<(Socket, Instant)>,
}

/// The listener's data: Python's `accept(sock, mask)`.
fn accept(server: &mut Server, fd: Fd, _mask: Interest) {
    // Take what is queued, a bounded batch per wake-up so connections are
    // served meanwhile; level-triggered, the rest is reported again.
    for _ in 0..64 {
        let Ok(key) = server.sel.get_key(fd) else {
            return;
        };
        let conn = match key.fileobj.accept() {
            Ok((conn, _addr)) => conn,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The client gave up while queued: that connection is gone, not the server.
            Err(e) if support::is_reset_io(&e) => {
                eprintln!("accept: {e}");
                continue;
            }
            Err(e) => {
                // Out of descriptors or memory, say: the connection stays
                // queued and the listener readable, so retrying now would spin.
                eprintln!("accept: {e}; pausing accepts for {ACCEPT_PAUSE:?}");
                pause_accepting(server, fd);
                return;
            }
        };
        // Python: conn.setblocking(False); and no Nagle delay on echoes.
        if let Err(e) = conn
            .set_nonblocking(true)
            .and_then(|()| conn.set_tcp_nodelay(true))
        {
            eprintln!("accept: setting up a connection: {e}");
            continue;
        }
        if let Err(e) = server.sel.register(conn, EVENT_READ, read) {
            eprintln!("accept: registering a connection: {e}");
        }
    }
}

/// A connection's data while it has nothing pending: Python's `read(conn, mask)`.
fn read(server: &mut Server, fd: Fd, _mask: Interest) {
    let Ok(key) = server.sel.get_key(fd) else {
        return;
    };
    let mut conn = &key.fileobj;
    let mut buf = [0u8; CHUNK];
    let n = loop {
        match conn.read(&mut buf) {
            Ok(0) => return close(server, fd, None), // end of stream
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Readiness was stale: select reports it again if it is not.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => return close(server, fd, Some(e)),
        }
    };
    let sent = match support::write_some(&mut conn, &buf[..n]) {
        Ok(sent) => sent,
        Err(e) => return close(server, fd, Some(e)),
    };
    if sent < n {
        // The peer is not taking it all now: keep the rest, and wait for
        // EVENT_WRITE instead of EVENT_READ, with `write` as the data.
        server.unsent.insert(fd, buf[sent..n].to_vec());
        if let Err(e) = server.sel.modify(fd, EVENT_WRITE, write) {
            close(server, fd, Some(e.into()));
        }
    }
}

/// A connection's data while echoed bytes wait for the peer to take them.
fn write(server: &mut Server, fd: Fd, _mask: Interest) {
    let Ok(key) = server.sel.get_key(fd) else {
        return;
    };
    let unsent = server.unsent.entry(fd).or_default();
    match support::write_some(&mut &key.fileobj, unsent) {
        Ok(sent) => drop(unsent.drain(..sent)),
        Err(e) => return close(server, fd, Some(e)),
    }
    if unsent.is_empty() {
        // All delivered: read again.
        server.unsent.remove(&fd);
        if let Err(e) = server.sel.modify(fd, EVENT_READ, read) {
            close(server, fd, Some(e.into()));
        }
    }
}

/// Python's `sel.unregister(conn); conn.close()`, logging `error` unless it
/// is just the peer resetting.
fn close(server: &mut Server, fd: Fd, error: Option<io::Error>) {
    if let Some(e) = error.filter(|e| !support::is_reset_io(e)) {
        eprintln!("dropping connection {fd}: {e}");
    }
    server.unsent.remove(&fd);
    if let Ok(key) = server.sel.unregister(fd) {
        drop(key.fileobj); // conn.close()
    }
}

/// Takes the listener out of the selector until [`ACCEPT_PAUSE`] has passed.
fn pause_accepting(server: &mut Server, fd: Fd) {
    if let Ok(key) = server.sel.unregister(fd) {
        server.paused = Some((key.fileobj, Instant::now() + ACCEPT_PAUSE));
    }
}

const USAGE: &str = "usage: selectors_echo [--addr HOST:PORT]";

fn parse_args() -> anyhow::Result<String> {
    let mut addr = String::from("127.0.0.1:9999");
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => addr = args.value()?,
            _ => return Err(args.unknown()),
        }
    }
    Ok(addr)
}

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let addr = parse_args()?;
    // Python: sock.bind(addr); sock.listen(500); sock.setblocking(False)
    let listener = ListenerBuilder::new(addr.as_str())
        .backlog(500)
        .build()
        .with_context(|| format!("binding {addr}"))?;
    support::announce(listener.local_addr()?)?;

    let mut server = Server {
        sel: DefaultSelector::new()?,
        unsent: HashMap::new(),
        paused: None,
    };
    server
        .sel
        .register(Socket::from(listener), EVENT_READ, accept)?;

    let mut events = Events::new();
    loop {
        // Asleep until something is ready, or until accepting resumes.
        let timeout = server
            .paused
            .as_ref()
            .map(|(_, resume)| resume.saturating_duration_since(Instant::now()));
        server.sel.select_into(&mut events, timeout)?;
        for event in &events {
            // Unregistered by an earlier callback of this batch: skip it.
            let Some(key) = server.sel.key_for(&event) else {
                continue;
            };
            let callback = key.data;
            callback(&mut server, event.fd(), event.mask());
        }
        if let Some((_, resume)) = &server.paused {
            if Instant::now() >= *resume {
                let (listener, _) = server.paused.take().expect("checked above");
                server.sel.register(listener, EVENT_READ, accept)?;
            }
        }
    }
}

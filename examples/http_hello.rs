//! An HTTP/1.1 "Hello, world!" server on `EventLoop`: the seeds' epoll HTTP
//! server (seed 4), done correctly.
//!
//! ```text
//! cargo run --release --example http_hello -- [--addr HOST:PORT]
//!     [--idle-timeout-ms MS] [--header-timeout-ms MS]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:8080`; port 0 picks one);
//!   the first line printed is `listening on ADDR`, the address bound.
//! - `--idle-timeout-ms` (default 5000): a connection that has no request
//!   under way, or whose peer neither sends nor takes bytes while a body is
//!   being skipped or a response sent, is closed after this long.
//! - `--header-timeout-ms` (default 10000): a request head must be complete
//!   this long after its first byte arrived, however steadily it trickles
//!   in (slowloris), or the connection is closed.
//!
//! Try it with `curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/`
//! (both answered on one connection). Every request gets `200 OK`,
//! `Content-Type: text/plain`, `Content-Length: 13` and `Hello, world!`
//! (no body for `HEAD`), whatever its method and target.
//!
//! What it does that the seed does not:
//! - Parses each request head with `httparse`, instead of looking for a
//!   blank line, and answers with `HTTP/1.1` (the highest version it
//!   speaks, as RFC 9110 §2.5 asks) and a `Date` header.
//! - Keep-alive: HTTP/1.1 connections stay open unless the request says
//!   `Connection: close`. HTTP/1.0 connections close after the response,
//!   unless the request asked for `Connection: keep-alive`, which is then
//!   honoured and confirmed in the response.
//! - Pipelining: several requests in one read get their responses in order.
//!   A body announced by `Content-Length` is skipped (never buffered), so
//!   the next request starts where it ends (`Expect: 100-continue` gets
//!   its `100 Continue` first); `Transfer-Encoding` (chunked bodies) gets
//!   `411 Length Required` and the connection closes.
//! - Partial writes keep the rest and wait for EVENT_WRITE; while more than
//!   64 KiB of responses are pending, the server reads nothing more from
//!   that client (a pipelining client that never reads cannot grow memory).
//! - Limits: a head over 8 KiB (or with over 100 header fields) gets
//!   `431 Request Header Fields Too Large`; anything that is not HTTP/1.x
//!   gets `400 Bad Request` (`505` for another HTTP version); an HTTP/1.1
//!   request without exactly one `Host` gets `400`, as RFC 9112 §3.2 requires.
//!   Each closes the connection after the response.
//! - Idle and slow-header (slowloris) connections are closed (one
//!   `call_later` timer per connection, cancelled and rescheduled as the
//!   connection moves between states or makes progress).
//! - Closing after a response is graceful: the server shuts down its sending
//!   side, then reads and discards whatever the client still sends until it
//!   closes (at most 2 s, or the idle timeout if shorter), so an error
//!   response is not destroyed by a reset before the client reads it.
//! - SO_REUSEADDR (not on Windows, where it would let another socket take
//!   over the port) and TCP_NODELAY, like the seed; a reset peer is dropped
//!   quietly; running out of descriptors pauses accepting instead of
//!   spinning; Ctrl-C exits 0.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use selectloop::net;
use selectloop::{CallHandle, EventLoop, Interest, IoEvent, Token, EVENT_READ};

mod support;
// The request-head parser and framer, in a file of their own that the fuzz
// target and tests/fuzz_corpus.rs include too.
#[path = "support/http_head.rs"]
mod http_head;

use http_head::{Frame, Framer, Request, Status};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Past this many bytes of pending responses, stop reading and answering.
const OUT_HIGH: usize = 64 * 1024;
/// The longest a closing connection waits for its peer to close.
const MAX_LINGER: Duration = Duration::from_secs(2);
/// The response body.
const HELLO: &[u8] = b"Hello, world!";

#[derive(Clone, Copy)]
struct Timeouts {
    idle: Duration,
    header: Duration,
}

struct Options {
    addr: String,
    timeouts: Timeouts,
}

const USAGE: &str =
    "usage: http_hello [--addr HOST:PORT] [--idle-timeout-ms MS] [--header-timeout-ms MS]";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:8080".into(),
        timeouts: Timeouts {
            idle: Duration::from_secs(5),
            header: Duration::from_secs(10),
        },
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--idle-timeout-ms" => options.timeouts.idle = Duration::from_millis(args.positive()?),
            "--header-timeout-ms" => {
                options.timeouts.header = Duration::from_millis(args.positive()?);
            }
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

// ----- responses ------------------------------------------------------------

/// `Date: <IMF-fixdate>`, formatted at most once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != now {
            *cache = (now, http_date(now));
        }
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(cache.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil date from a day count (H. Hinnant's algorithm; years from 1970 on).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

fn push_hello(out: &mut Vec<u8>, http10: bool, close: bool, head_only: bool) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    push_date(out);
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: 13\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(HELLO);
    }
}

fn push_error(out: &mut Vec<u8>, (code, reason): Status) {
    out.extend_from_slice(format!("HTTP/1.1 {code} {reason}\r\n").as_bytes());
    push_date(out);
    out.extend_from_slice(
        format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
            reason.len() + 1
        )
        .as_bytes(),
    );
}

// ----- connections ----------------------------------------------------------

/// Which timeout a connection's timer enforces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Deadline {
    /// No progress (nothing read or written) for the idle timeout.
    Idle,
    /// The request head under way is not complete within the header timeout.
    Header,
    /// A closing connection's peer has not closed.
    Linger,
}

/// One client connection's state; owned by its callback.
struct Conn {
    token: Token<TcpStream>,
    timeouts: Timeouts,
    /// Received, not yet consumed: the start of a request head, or requests
    /// not answered yet because too much output is pending.
    input: Vec<u8>,
    /// Where `input` is: in a request head, or in a body to skip.
    framer: Framer,
    /// Responses not yet sent: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// `input` holds requests not answered because `out` is over `OUT_HIGH`.
    backlogged: bool,
    /// The last response queued closes the connection.
    close_after: bool,
    /// The peer sent end of stream.
    eof: bool,
    /// Our side is shut down; waiting for the peer to close.
    lingering: bool,
    timer: Option<(Deadline, CallHandle)>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some((_, timer)) = self.timer.take() {
            timer.cancel();
        }
    }
}

impl Conn {
    fn new(token: Token<TcpStream>, timeouts: Timeouts) -> Conn {
        Conn {
            token,
            timeouts,
            input: Vec::new(),
            framer: Framer::default(),
            out: Vec::new(),
            sent: 0,
            backlogged: false,
            close_after: false,
            eof: false,
            lingering: false,
            timer: None,
        }
    }

    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    fn can_read(&self) -> bool {
        !self.eof && !self.close_after && !self.backlogged && self.pending() <= OUT_HIGH
    }

    fn on_ready(
        &mut self,
        lp: &mut EventLoop,
        stream: &mut TcpStream,
        ev: IoEvent<TcpStream>,
    ) -> anyhow::Result<()> {
        let mask = ev.mask();
        let mut progress = self.flush(stream)?;
        if self.lingering {
            return self.discard(lp, stream);
        }
        progress |= self.pump(stream)?;
        if mask.is_readable() && self.can_read() {
            let mut buf = [0; READ_CHUNK];
            match stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    progress = true;
                    self.pump(stream)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }

        if self.pending() == 0 {
            if self.close_after {
                // Everything sent: close gracefully (see `discard`).
                let _ = stream.shutdown(Shutdown::Write);
                self.lingering = true;
                self.set_timer(lp, Deadline::Linger, false);
                lp.modify(self.token, EVENT_READ)?;
                return Ok(());
            }
            if self.eof {
                // Every complete request answered; an unfinished one is dropped.
                lp.unregister(self.token)?;
                return Ok(());
            }
        }
        let events = Interest::from_flags(self.can_read(), self.pending() > 0)
            .expect("with nothing to send, a connection that stays open reads");
        lp.modify(self.token, events)?;
        let deadline = if self.pending() == 0 && !self.framer.in_body() && !self.input.is_empty() {
            Deadline::Header
        } else {
            Deadline::Idle
        };
        self.set_timer(lp, deadline, progress);
        Ok(())
    }

    /// Answers what can be answered and sends what the socket takes, until
    /// neither makes progress. Returns whether anything was sent.
    fn pump(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        let mut progress = false;
        loop {
            self.answer();
            progress |= self.flush(stream)?;
            if !(self.backlogged && self.pending() <= OUT_HIGH) {
                return Ok(progress);
            }
        }
    }

    /// Queues a response for each complete request in `input`, in order,
    /// skipping bodies, until the input runs out, a response closes the
    /// connection, or more than `OUT_HIGH` bytes are pending.
    fn answer(&mut self) {
        let mut pos = 0;
        self.backlogged = false;
        while !self.close_after {
            pos += self.framer.skip_body(&self.input[pos..]);
            if self.framer.in_body() {
                break;
            }
            let rest = &self.input[pos..];
            if rest.is_empty() {
                break;
            }
            if self.pending() > OUT_HIGH {
                self.backlogged = true;
                break;
            }
            match self.framer.next_head(rest) {
                Frame::Partial => break,
                Frame::Refuse(status) => self.refuse(status),
                Frame::Request(Request {
                    len,
                    http10,
                    close,
                    head_only,
                    expects_continue,
                    ..
                }) => {
                    pos += len;
                    self.close_after = close;
                    if expects_continue {
                        // Let the client send the body we are about to skip.
                        self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    push_hello(&mut self.out, http10, close, head_only);
                }
            }
        }
        if self.close_after {
            // Nothing after a closing response is answered.
            self.input.clear();
        } else {
            self.input.drain(..pos);
        }
    }

    fn refuse(&mut self, status: Status) {
        push_error(&mut self.out, status);
        self.close_after = true;
    }

    /// Sends what the socket takes now; returns whether it took anything.
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        let before = self.sent;
        self.sent += support::write_some(stream, &self.out[self.sent..])?;
        let wrote = self.sent > before;
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > OUT_HIGH {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(wrote)
    }

    /// A closing connection: reads and drops what the peer still sends, so
    /// that closing with unread input does not reset the connection and
    /// destroy the response before the peer reads it. Closes at end of stream.
    fn discard(&mut self, lp: &mut EventLoop, stream: &mut TcpStream) -> anyhow::Result<()> {
        let mut buf = [0; READ_CHUNK];
        match stream.read(&mut buf) {
            Ok(0) => lp.unregister(self.token)?,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => lp.unregister(self.token)?,
        }
        Ok(())
    }

    /// Makes the timer enforce `deadline`: a new deadline starts now; the
    /// idle one also restarts on progress; the others run on regardless.
    fn set_timer(&mut self, lp: &mut EventLoop, deadline: Deadline, progress: bool) {
        if let Some((current, timer)) = &self.timer {
            if *current == deadline && !(deadline == Deadline::Idle && progress) {
                return;
            }
            timer.cancel();
        }
        let delay = match deadline {
            Deadline::Idle => self.timeouts.idle,
            Deadline::Header => self.timeouts.header,
            Deadline::Linger => self.timeouts.idle.min(MAX_LINGER),
        };
        let token = self.token;
        let timer = lp.call_later(delay, move |lp| {
            // Unregistering drops the socket (closing it) and this `Conn`.
            if lp.is_registered(token) {
                lp.unregister(token)?;
            }
            Ok(())
        });
        self.timer = Some((deadline, timer));
    }
}

// ----- accepting ------------------------------------------------------------

/// What `net::serve` calls for each accepted connection (non-blocking,
/// Nagle off): a `Conn` with its idle timer.
fn on_accept(lp: &mut EventLoop, stream: TcpStream, timeouts: Timeouts) -> anyhow::Result<()> {
    // The connection's state holds its token (for its timers), so the
    // callback is set once it exists.
    let token = lp.register(stream, EVENT_READ, |_, _: &mut TcpStream, _| Ok(()))?;
    let mut conn = Conn::new(token, timeouts);
    conn.set_timer(lp, Deadline::Idle, false);
    lp.set_callback(token, move |lp, stream: &mut TcpStream, ev| {
        conn.on_ready(lp, stream, ev)
    })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args()?;
    let listener = support::listen(&options.addr)?;
    let addr = listener.local_addr()?;

    let mut lp = EventLoop::new()?;
    // A reset peer is routine: dropped without a word. Any other error is
    // logged and closes its connection.
    support::drop_resets_quietly(&mut lp);
    support::stop_on_ctrl_c(&mut lp)?;
    // Accepts in batches; out of descriptors (EMFILE/ENFILE), it pauses the
    // listener a while instead of spinning on it.
    let timeouts = options.timeouts;
    net::serve(&mut lp, listener, move |lp, stream, _peer| {
        on_accept(lp, stream, timeouts)
    })?;
    // Only now: whoever reads this line may connect, or interrupt, at once.
    support::announce(addr)?;
    lp.run()?;
    Ok(())
}

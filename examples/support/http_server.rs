//! The HTTP/1.1 "Hello, world!" protocol that `http_hello` serves over TCP
//! and `https_hello` over TLS: one [`Http`] per connection, a
//! `transport::Protocol`, so the same code runs on either transport.
//!
//! Included with `#[path]` by both examples (it is not part of `support`,
//! which every example includes).

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use selectloop::transport::{Protocol, Transport};
use selectloop::CallHandle;

// The request-head parser and framer, in a file of their own that the fuzz
// target and tests/fuzz_corpus.rs include too.
#[path = "http_head.rs"]
mod http_head;

use http_head::{Frame, Framer, Request, Status};

/// The longest a closing connection waits for its peer to close.
const MAX_LINGER: Duration = Duration::from_secs(2);
/// The response body.
const HELLO: &[u8] = b"Hello, world!";

/// How long a connection may stay idle, and take to send a request head.
#[derive(Clone, Copy)]
pub struct Timeouts {
    /// No request under way, or no progress while one is answered.
    pub idle: Duration,
    /// A request head must be complete this long after its first byte.
    pub header: Duration,
}

impl Default for Timeouts {
    /// 5 s idle, 10 s for a request head.
    fn default() -> Timeouts {
        Timeouts {
            idle: Duration::from_secs(5),
            header: Duration::from_secs(10),
        }
    }
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
    /// No progress (nothing read, or taken by the peer) for the idle timeout.
    Idle,
    /// The request head under way is not complete within the header timeout.
    Header,
    /// A closing connection's peer has not closed.
    Linger,
}

/// One client connection's protocol.
pub struct Http {
    timeouts: Timeouts,
    /// Received, not yet consumed: the start of a request head, or requests
    /// not answered yet because too much output is pending.
    input: Vec<u8>,
    /// Where `input` is: in a request head, or in a body to skip.
    framer: Framer,
    /// One response, built here and handed to the transport.
    response: Vec<u8>,
    /// `input` holds requests not answered because writing is paused.
    backlogged: bool,
    /// The last response queued closes the connection ...
    close_after: bool,
    /// ... and has been queued: what the peer sends now is dropped.
    lingering: bool,
    timer: Option<(Deadline, CallHandle)>,
    /// Bytes pending when the idle timer was armed: fewer when it fires
    /// means the peer took some (progress).
    pending_at_arm: usize,
}

impl Protocol for Http {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        self.set_timer(t, Deadline::Idle, false);
    }

    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        if self.lingering {
            return; // read and dropped, so that closing sends no reset
        }
        self.input.extend_from_slice(data);
        self.answer(t);
    }

    // End of stream: the default `eof_received` closes once every answer is
    // sent (an unfinished request is dropped), or at once when lingering.

    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        if self.backlogged {
            self.answer(t);
        }
    }

    // Only a TLS connection fails before it is made (its handshake): an
    // untrusted certificate, plain HTTP sent to the TLS port, a timeout.
    // Logged at `info`, as nginx does: a client's mistake, not the server's.
    fn connection_failed(&mut self, _lp: &mut selectloop::EventLoop, error: std::io::Error) {
        log::info!("TLS handshake failed: {error}");
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, _error: Option<std::io::Error>) {
        if let Some((_, timer)) = self.timer.take() {
            timer.cancel();
        }
    }
}

impl Http {
    /// A new connection's protocol.
    pub fn new(timeouts: Timeouts) -> Http {
        Http {
            timeouts,
            input: Vec::new(),
            framer: Framer::default(),
            response: Vec::new(),
            backlogged: false,
            close_after: false,
            lingering: false,
            timer: None,
            pending_at_arm: 0,
        }
    }

    /// Answers each complete request in `input`, in order, skipping bodies,
    /// until the input runs out, a response closes the connection, or
    /// writing is paused (more than 64 KiB pending): then reading pauses too.
    fn answer(&mut self, t: &mut Transport<'_, Self>) {
        let mut pos = 0;
        // A request head was consumed: what is left starts a new one.
        let mut new_head = false;
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
            if t.is_writing_paused() {
                self.backlogged = true;
                break;
            }
            match self.framer.next_head(rest) {
                Frame::Partial => break,
                Frame::Refuse(status) => {
                    push_error(&mut self.response, status);
                    self.close_after = true;
                }
                Frame::Request(Request {
                    len,
                    http10,
                    close,
                    head_only,
                    expects_continue,
                    ..
                }) => {
                    pos += len;
                    new_head = true;
                    self.close_after = close;
                    if expects_continue {
                        // Let the client send the body we are about to skip.
                        self.response
                            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    push_hello(&mut self.response, http10, close, head_only);
                }
            }
            t.write(&self.response);
            self.response.clear();
        }
        if self.close_after {
            // Nothing after a closing response is answered. Once it is sent
            // our side shuts down; what the client still sends is dropped
            // until it closes too (see `Deadline::Linger`).
            self.input.clear();
            self.lingering = true;
            t.write_eof();
            return self.set_timer(t, Deadline::Linger, false);
        }
        self.input.drain(..pos);
        if self.backlogged {
            t.pause_reading();
        } else {
            t.resume_reading();
        }
        let deadline =
            if t.write_buffer_size() == 0 && !self.framer.in_body() && !self.input.is_empty() {
                Deadline::Header
            } else {
                Deadline::Idle
            };
        // The idle timer restarts on any progress; the header timer when a
        // new head began (each head gets the whole header timeout, however
        // long a pipeline of them lasts).
        let restart = deadline == Deadline::Idle || new_head;
        self.set_timer(t, deadline, restart);
    }

    /// Makes the timer enforce `deadline`: a new deadline starts now; the
    /// current one runs on unless `restart` (progress for the idle timer, a
    /// new request head for the header timer).
    fn set_timer(&mut self, t: &mut Transport<'_, Self>, deadline: Deadline, restart: bool) {
        if let Some((current, timer)) = &self.timer {
            if *current == deadline && !restart {
                return;
            }
            timer.cancel();
        }
        let delay = match deadline {
            Deadline::Idle => self.timeouts.idle,
            Deadline::Header => self.timeouts.header,
            Deadline::Linger => self.timeouts.idle.min(MAX_LINGER),
        };
        self.pending_at_arm = t.write_buffer_size();
        let token = t.token();
        let timer = t.lp().call_later(delay, move |lp| {
            let _ = lp.with_transport(token, |http, t| http.on_timer(t, deadline));
            Ok(())
        });
        self.timer = Some((deadline, timer));
    }

    /// The timer ran out: the connection closes, unless the peer has been
    /// taking a response meanwhile (idle only).
    fn on_timer(&mut self, t: &mut Transport<'_, Self>, deadline: Deadline) {
        self.timer = None;
        let pending = t.write_buffer_size();
        if deadline == Deadline::Idle && pending > 0 && pending < self.pending_at_arm {
            return self.set_timer(t, Deadline::Idle, true);
        }
        t.abort();
    }
}

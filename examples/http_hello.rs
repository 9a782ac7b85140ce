//! An HTTP/1.1 "Hello, world!" server on `EventLoop`'s transports: the seeds' epoll HTTP
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
//! - Each connection is a `transport::Protocol`: the transport keeps what
//!   the socket does not take and sends it on EVENT_WRITE; once more than
//!   64 KiB of responses are pending (the transport's high-water mark), the
//!   server answers and reads nothing more from that client until they drain
//!   (a pipelining client that never reads cannot grow memory).
//! - Limits: a head over 8 KiB (or with over 100 header fields) gets
//!   `431 Request Header Fields Too Large`; anything that is not HTTP/1.x
//!   gets `400 Bad Request` (`505` for another HTTP version); an HTTP/1.1
//!   request without exactly one `Host` gets `400`, as RFC 9112 §3.2 requires.
//!   Each closes the connection after the response.
//! - Idle and slow-header (slowloris) connections are closed (one
//!   `call_later` timer per connection, cancelled and rescheduled as the
//!   connection moves between states or makes progress).
//! - Closing after a response is graceful: the server shuts down its sending
//!   side once the response is sent (`write_eof`), then reads and discards
//!   whatever the client still sends until it closes (at most 2 s, or the
//!   idle timeout if shorter), so an error response is not destroyed by a
//!   reset before the client reads it.
//! - SO_REUSEADDR (not on Windows, where it would let another socket take
//!   over the port) and TCP_NODELAY, like the seed; a reset peer is dropped
//!   quietly; running out of descriptors pauses accepting instead of
//!   spinning; Ctrl-C exits 0.

use std::time::Duration;

use selectloop::transport;
use selectloop::EventLoop;

mod support;
// The protocol, shared with `https_hello` (which serves it over TLS).
#[path = "support/http_server.rs"]
mod http_server;

use http_server::{Http, Timeouts};

struct Options {
    addr: String,
    timeouts: Timeouts,
}

const USAGE: &str =
    "usage: http_hello [--addr HOST:PORT] [--idle-timeout-ms MS] [--header-timeout-ms MS]";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:8080".into(),
        timeouts: Timeouts::default(),
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

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args()?;
    let listener = support::listen(&options.addr)?;
    let addr = listener.local_addr()?;

    let mut lp = EventLoop::new()?;
    support::stop_on_ctrl_c(&mut lp)?;
    // Accepts in batches; out of descriptors (EMFILE/ENFILE), it pauses the
    // listener a while instead of spinning on it. A reset peer is dropped
    // quietly (the transport tells only the protocol).
    let timeouts = options.timeouts;
    transport::serve(&mut lp, listener, move || Http::new(timeouts))?;
    // Only now: whoever reads this line may connect, or interrupt, at once.
    support::announce(addr)?;
    lp.run()?;
    Ok(())
}

//! An HTTP/1.1 client for the `http_hello` and `https_hello` tests: reads
//! responses (httparse) off any byte stream, a `TcpStream` or a TLS stream.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The longest any single read from the server may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// The body of every `200` response.
pub const HELLO: &[u8] = b"Hello, world!";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A complete `200 Hello, world!` (without the body for `HEAD`).
    pub fn assert_hello(&self, head: bool) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.header("Content-Type"), Some("text/plain"), "{self:?}");
        assert_eq!(self.header("Content-Length"), Some("13"), "{self:?}");
        assert_eq!(self.body, if head { &b""[..] } else { HELLO }, "{self:?}");
    }
}

/// A client on a byte stream (a raw `TcpStream` by default), with what it
/// has read and not yet parsed.
pub struct Client<S = TcpStream> {
    pub stream: S,
    pub buf: Vec<u8>,
}

impl Client {
    /// Connects to `addr`, Nagle off, reads bounded by [`PATIENCE`].
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on a connected `TcpStream`: Nagle off, reads bounded by
    /// [`PATIENCE`].
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Client::over(stream)
    }
}

impl<S: Read + Write> Client<S> {
    /// A client on any stream (its reads should be bounded in time).
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads more into `buf`; 0 at end of stream (or reset).
    pub fn fill(&mut self) -> usize {
        let mut chunk = [0; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if is_reset(&e) => 0,
            Err(e) => panic!("no data from the server within {PATIENCE:?}: {e}"),
        }
    }

    /// Reads one response (to a `HEAD` request if `head`: no body).
    pub fn response(&mut self, head: bool) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf).expect("a valid response head") {
                httparse::Status::Complete(len) => {
                    let status = parsed.code.expect("status");
                    assert_eq!(parsed.version, Some(1), "the server answers HTTP/1.1");
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value).into_owned();
                            (h.name.to_owned(), value)
                        })
                        .collect();
                    // No body for HEAD, nor for an interim (1xx) response.
                    let body_len: usize = if head || status < 200 {
                        0
                    } else {
                        headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                            .expect("Content-Length")
                            .1
                            .parse()
                            .expect("a number")
                    };
                    while self.buf.len() < len + body_len {
                        assert!(self.fill() > 0, "end of stream inside a response body");
                    }
                    let body = self.buf[len..len + body_len].to_vec();
                    self.buf.drain(..len + body_len);
                    return Response {
                        status,
                        headers,
                        body,
                    };
                }
                httparse::Status::Partial => {
                    assert!(
                        self.fill() > 0,
                        "end of stream before a complete response; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                }
            }
        }
    }

    /// Reads until the server closes; asserts nothing more came.
    pub fn expect_closed(&mut self) {
        while self.fill() > 0 {}
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before the close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

/// A reset or abort: read as end of stream.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Reads from `stream` until the server closes or resets it (reads bounded
/// by [`PATIENCE`]); returns what came before.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut got = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if is_reset(&e) => return got,
            Err(e) => panic!("the server did not close the connection within {PATIENCE:?}: {e}"),
        }
    }
}

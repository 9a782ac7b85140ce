//! `http_hello`'s request-head handling, with no I/O: [`parse_head`] reads
//! one request head, and [`Framer`] cuts a connection's input into request
//! heads and the bodies to skip between them.
//!
//! A module file of its own (not part of `support`), so that the fuzz target
//! `fuzz/fuzz_targets/http_head.rs` and `tests/fuzz_corpus.rs` can include
//! it with `#[path]` and call exactly the code the example runs.

/// The largest request head accepted, request line and blank line included.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header fields a request head may have.
pub const MAX_HEADERS: usize = 100;

/// An error response: status code and reason phrase.
pub type Status = (u16, &'static str);
pub const BAD_REQUEST: Status = (400, "Bad Request");
pub const LENGTH_REQUIRED: Status = (411, "Length Required");
pub const HEAD_TOO_LARGE: Status = (431, "Request Header Fields Too Large");
pub const VERSION_NOT_SUPPORTED: Status = (505, "HTTP Version Not Supported");

/// What the start of the input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Not a complete head yet.
    Partial,
    /// A head to refuse with this status (then close).
    Invalid(Status),
    /// A complete request head.
    Request(Request),
}

/// A complete, valid request head: what the response depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The head's length in bytes, blank line included.
    pub len: usize,
    /// HTTP/1.0 (rather than 1.1).
    pub http10: bool,
    /// The connection closes after the response.
    pub close: bool,
    /// `HEAD`: the response has no body.
    pub head_only: bool,
    /// Body bytes that follow the head (`Content-Length`).
    pub body: u64,
    /// The client waits for `100 Continue` before sending the body.
    pub expects_continue: bool,
}

/// Parses the request head at the start of `buf` (what follows it, a body
/// or the next request, is not looked at).
pub fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Head::Partial,
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Head::Invalid(HEAD_TOO_LARGE),
        // 505 or 400 depends on the whole version: decided once the request
        // line is complete, so that how the line was cut into reads does not
        // change the answer (found by fuzzing: `HTTP/0` then `.1` got 400).
        Err(httparse::Error::Version) => {
            return match request_line(buf) {
                None => Head::Partial,
                Some(line) if names_http_version(line) => Head::Invalid(VERSION_NOT_SUPPORTED),
                Some(_) => Head::Invalid(BAD_REQUEST),
            }
        }
        Err(_) => return Head::Invalid(BAD_REQUEST),
    };
    if len > MAX_HEAD {
        return Head::Invalid(HEAD_TOO_LARGE);
    }
    let http10 = req.version == Some(0);
    let (mut close, mut keep_alive, mut hosts, mut expect) = (false, false, 0, false);
    let mut body: Option<u64> = None;
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for option in header.value.split(|&b| b == b',') {
                let option = trim(option);
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") {
            expect |= trim(header.value).eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("content-length") {
            // Digits only (no sign, no list); repeated, it must agree.
            let value = trim(header.value);
            let parsed = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (parsed, body) {
                (Some(n), None) => body = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Head::Invalid(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // A body whose end only a chunked decoder finds: refused. With a
            // Content-Length as well, the framing is ambiguous (smuggling).
            return Head::Invalid(if body.is_some() {
                BAD_REQUEST
            } else {
                LENGTH_REQUIRED
            });
        }
    }
    if hosts > 1 || (!http10 && hosts == 0) {
        return Head::Invalid(BAD_REQUEST);
    }
    Head::Request(Request {
        len,
        http10,
        close: if http10 { !keep_alive || close } else { close },
        head_only: req.method == Some("HEAD"),
        body: body.unwrap_or(0),
        expects_continue: expect && !http10 && body.unwrap_or(0) > 0,
    })
}

/// `bytes` without leading and trailing ASCII whitespace.
pub fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

/// The request line (after the empty lines a client may send before it),
/// without its `\n`; `None` while its `\n` has not arrived.
pub fn request_line(buf: &[u8]) -> Option<&[u8]> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line = &buf[start..];
    line.iter()
        .position(|&b| b == b'\n')
        .map(|end| &line[..end])
}

/// Whether a request line ends in a version of the form `HTTP/d.d` (one
/// `httparse` refuses: not 1.0 or 1.1), as opposed to not being HTTP at all.
pub fn names_http_version(line: &[u8]) -> bool {
    let version = trim(line).rsplit(|&b| b == b' ').next().unwrap_or(&[]);
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// What [`Framer::next_head`] found at the start of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The head is not complete yet: wait for more input.
    Partial,
    /// Refuse with this status, then close (nothing after it is read).
    Refuse(Status),
    /// A request: its head is the first `len` bytes (consumed), and the
    /// framer now skips its body.
    Request(Request),
}

/// Cuts one connection's input into request heads and the bodies between
/// them (skipped, never buffered). The caller keeps the input; the framer
/// keeps only where it is.
#[derive(Debug, Default)]
pub struct Framer {
    /// How much of the input was there at the last `Partial` parse: a head
    /// can only complete once a newline arrives after it.
    parsed: usize,
    /// Bytes of the current request's body still to skip.
    body_left: u64,
}

impl Framer {
    /// Whether the current request's body is still being skipped.
    pub fn in_body(&self) -> bool {
        self.body_left > 0
    }

    /// Skips what `input` (the unconsumed input) holds of the current body;
    /// returns how many bytes that consumed.
    pub fn skip_body(&mut self, input: &[u8]) -> usize {
        let skip = self.body_left.min(input.len() as u64);
        self.body_left -= skip;
        skip as usize
    }

    /// Looks at the next request head at the start of `input` (the
    /// unconsumed input, not in a body, not empty). A `Request`'s `len`
    /// bytes are consumed by the caller; after a `Partial` the caller keeps
    /// the input and calls again with more.
    pub fn next_head(&mut self, input: &[u8]) -> Frame {
        debug_assert!(!self.in_body());
        let head = if self.parsed > 0 && !input[self.parsed.min(input.len())..].contains(&b'\n') {
            Head::Partial
        } else {
            parse_head(input)
        };
        match head {
            Head::Partial if input.len() > MAX_HEAD => Frame::Refuse(HEAD_TOO_LARGE),
            Head::Partial => {
                self.parsed = input.len();
                Frame::Partial
            }
            Head::Invalid(status) => Frame::Refuse(status),
            Head::Request(request) => {
                self.parsed = 0;
                self.body_left = request.body;
                Frame::Request(request)
            }
        }
    }
}

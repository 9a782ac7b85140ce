//! Properties of `http_hello`'s request-head handling
//! (`crate::http_head`: `parse_head` and `Framer`), shared by the fuzz
//! target and `tests/fuzz_corpus.rs`.
//!
//! Input: a byte for how the rest is cut into reads, then what a client
//! sends on one connection.
//! - `parse_head` never panics; a parsed head is at most `MAX_HEAD` bytes,
//!   within the input, ends with its blank line's `\n`, and parses the
//!   same alone (what follows a head does not change it);
//! - what a parsed head says agrees with httparse's own view of it: the
//!   body length is its `Content-Length` (0 without one), there is no
//!   `Transfer-Encoding`, the version, `HEAD`, exactly one `Host` for
//!   HTTP/1.1, `100-continue` only with a body, keep-alive for HTTP/1.0
//!   only if asked for;
//! - the framer, fed read by read as the example feeds it, never consumes
//!   more than it was given, consumes each head and body exactly, and cuts
//!   the stream into the same requests and the same refusal whatever the
//!   reads (TCP segmentation must not change the answers); the only
//!   difference allowed is that with reads cut smaller an error in an
//!   unfinished head may not be reported yet (it is waited on until a
//!   newline, `MAX_HEAD` bytes or the header timeout).

use crate::http_head::{parse_head, Frame, Framer, Head, Request, MAX_HEAD, MAX_HEADERS};

include!("chunks.rs");

pub fn check(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    check_head(stream);
    let whole = frame(stream, &[stream]);
    let cut = frame(stream, &chunks(stream, seed));
    if cut != whole {
        // Allowed: the whole stream ends with a refusal the cut one has not
        // reached yet (its last head is still waiting for more input).
        let waiting = cut.last() == Some(&Step::Waiting)
            && whole.len() == cut.len()
            && matches!(whole.last(), Some(Step::Frame(Frame::Refuse(_))))
            && cut[..cut.len() - 1] == whole[..whole.len() - 1];
        assert!(
            waiting,
            "reads cut differently, different answers:\n whole: {whole:?}\n cut:   {cut:?}"
        );
    }
}

/// What the framer made of the stream: each frame, then how it ended.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Frame(Frame),
    /// Input ran out within a head.
    Waiting,
    /// Input ran out within a body, or between requests.
    Idle,
}

/// Feeds `reads` (which make up `stream`) to a framer as
/// `Conn::answer` does (never backlogged), checking each step.
fn frame(stream: &[u8], reads: &[&[u8]]) -> Vec<Step> {
    let mut framer = Framer::default();
    let mut input: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut received = 0;
    let mut steps = Vec::new();
    for read in reads {
        input.extend_from_slice(read);
        received += read.len();
        let mut pos = 0;
        loop {
            let skipped = framer.skip_body(&input[pos..]);
            assert!(skipped <= input.len() - pos, "skipped more body than given");
            pos += skipped;
            if framer.in_body() {
                assert_eq!(pos, input.len(), "a body left unskipped");
                break;
            }
            let rest = &input[pos..];
            if rest.is_empty() {
                break;
            }
            let frame = framer.next_head(rest);
            match frame {
                Frame::Partial => {
                    assert!(rest.len() <= MAX_HEAD, "a partial head over MAX_HEAD kept");
                    break;
                }
                Frame::Refuse(_) => {
                    steps.push(Step::Frame(frame));
                    // Nothing after a refusal is read.
                    assert!(consumed + pos <= received);
                    return steps;
                }
                Frame::Request(request) => {
                    assert!(request.len > 0 && request.len <= rest.len(), "{request:?}");
                    assert_eq!(parse_head(&rest[..request.len]), Head::Request(request));
                    assert_eq!(framer.in_body(), request.body > 0);
                    pos += request.len;
                    steps.push(Step::Frame(frame));
                }
            }
        }
        assert!(pos <= input.len(), "consumed more than given");
        input.drain(..pos);
        consumed += pos;
        assert_eq!(
            &stream[consumed..received],
            &input[..],
            "consumed bytes out of order"
        );
    }
    steps.push(if input.is_empty() {
        Step::Idle
    } else {
        Step::Waiting
    });
    steps
}

/// `parse_head` on the stream's start, against httparse's own parse.
fn check_head(buf: &[u8]) {
    let head = parse_head(buf);
    let Head::Request(request) = head else {
        if head == Head::Partial {
            // A head that is not complete was not complete earlier either.
            let half = &buf[..buf.len() / 2];
            assert!(
                !matches!(parse_head(half), Head::Request(_)),
                "a prefix parsed"
            );
        }
        return;
    };
    let Request {
        len,
        http10,
        close,
        head_only,
        body,
        expects_continue,
    } = request;
    assert!(
        len > 0 && len <= buf.len() && len <= MAX_HEAD,
        "{request:?}"
    );
    assert_eq!(buf[len - 1], b'\n', "a head ends with its blank line");
    assert_eq!(
        parse_head(&buf[..len]),
        head,
        "what follows the head changed it"
    );

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    assert_eq!(req.parse(buf), Ok(httparse::Status::Complete(len)));
    assert_eq!(http10, req.version == Some(0));
    assert_eq!(head_only, req.method == Some("HEAD"));
    let headers = &*req.headers;
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    assert_eq!(
        named("transfer-encoding").count(),
        0,
        "a chunked body framed by length"
    );
    let lengths: Vec<u64> = named("content-length")
        .map(|h| {
            std::str::from_utf8(h.value)
                .expect("an accepted Content-Length is ASCII")
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .parse()
                .expect("an accepted Content-Length is a number")
        })
        .collect();
    assert!(
        lengths.iter().all(|&n| n == body),
        "body {body} but Content-Length {lengths:?}"
    );
    if lengths.is_empty() {
        assert_eq!(body, 0);
    }
    let hosts = named("host").count();
    assert!(
        hosts <= 1 && (http10 || hosts == 1),
        "{hosts} Host fields accepted"
    );
    if expects_continue {
        assert!(body > 0 && !http10);
    }
    let connection = |option: &str| {
        named("connection").any(|h| {
            h.value.split(|&b| b == b',').any(|o| {
                std::str::from_utf8(o).is_ok_and(|o| {
                    o.trim_matches(|c: char| c.is_ascii_whitespace())
                        .eq_ignore_ascii_case(option)
                })
            })
        })
    };
    if !close {
        assert!(!connection("close"), "Connection: close ignored");
        assert!(
            !http10 || connection("keep-alive"),
            "HTTP/1.0 kept alive unasked"
        );
    }
}

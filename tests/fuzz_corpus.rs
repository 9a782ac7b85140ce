//! The fuzz targets' properties (`fuzz/props/`), on stable: every input of
//! the committed corpus (`fuzz/corpus/TARGET/`) and every crash that was
//! fixed (`fuzz/regressions/TARGET/`) is replayed through the same checks
//! the fuzz targets make, so CI keeps them holding without cargo-fuzz.
//!
//! The `timeout_ms` target's corpus is replayed by the crate's own unit test
//! `sys::tests::fuzz_corpus_timeout_ms` (the function is crate-private).

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../examples/support/http_head.rs"]
#[allow(dead_code)]
mod http_head;
#[path = "../examples/support/lines.rs"]
mod lines;

#[path = "../fuzz/props/chat_lines.rs"]
mod chat_lines_props;
#[path = "../fuzz/props/http_head.rs"]
mod http_head_props;
#[path = "../fuzz/props/interest_bits.rs"]
mod interest_bits_props;

/// The files of `fuzz/{corpus,regressions}/TARGET`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("read_dir").path()));
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target`, naming the one that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            eprintln!("fuzz input {} fails", file.display());
            std::panic::resume_unwind(panic);
        }
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn http_head_corpus() {
    replay("http_head", http_head_props::check);
}

#[test]
fn chat_lines_corpus() {
    replay("chat_lines", chat_lines_props::check);
}

#[test]
fn interest_bits_corpus() {
    replay("interest_bits", interest_bits_props::check);
}

/// Found by fuzzing `http_head`: a request line naming an unsupported HTTP
/// version got `505` when it arrived in one read, but `400` when a read
/// ended inside the version (`GET / HTTP/0` then `.1`): httparse refuses
/// the version at its first wrong digit, and the rest of it was not there to
/// tell `HTTP/0.1` from garbage. The version is now judged once the request
/// line is complete.
#[test]
fn http_version_status_does_not_depend_on_segmentation() {
    use http_head::{parse_head, Head, BAD_REQUEST, VERSION_NOT_SUPPORTED};
    let request = b"GET / HTTP/0.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse_head(request), Head::Invalid(VERSION_NOT_SUPPORTED));
    let line_end = request.iter().position(|&b| b == b'\n').unwrap();
    for cut in 0..=line_end {
        assert_eq!(parse_head(&request[..cut]), Head::Partial, "cut at {cut}");
    }
    assert_eq!(
        parse_head(b"GET / HTTP/0.1x\r\nHost: a\r\n\r\n"),
        Head::Invalid(BAD_REQUEST)
    );
    // Every way of cutting it into two reads gets the same answer.
    for cut in 1..request.len() {
        let mut framer = http_head::Framer::default();
        let first = framer.next_head(&request[..cut]);
        let answer = match first {
            http_head::Frame::Partial => framer.next_head(request),
            refused => refused,
        };
        assert_eq!(
            answer,
            http_head::Frame::Refuse(VERSION_NOT_SUPPORTED),
            "cut at {cut}"
        );
    }
}

//! Properties of `chat`'s line framing (`crate::lines::split_lines`), shared
//! by the fuzz target and `tests/fuzz_corpus.rs`.
//!
//! Input: a byte for the line limit (1 to 64, small so that it is hit), a
//! byte for how the rest is cut into reads, then the stream a client sends.
//! Fed read by read, as the example does, `split_lines` must give exactly
//! the lines a one-pass reference split gives, whatever the cuts:
//! - every line ends with its only `\n` and is at most the limit long;
//! - the lines, then what is left partial, give back the stream;
//! - what is left partial has no `\n` and is under the limit;
//! - the limit is reported broken exactly when the reference finds a line
//!   over it (or an unterminated one at least as long), and the lines before
//!   that one are all still returned.

use crate::lines::split_lines;

include!("chunks.rs");

/// The stream split in one pass: the lines before the first overlong one,
/// whether there is one, and the unterminated rest.
fn reference(stream: &[u8], max_line: usize) -> (Vec<&[u8]>, bool, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        let (line, tail) = rest.split_at(at + 1);
        if line.len() > max_line {
            return (lines, true, rest);
        }
        lines.push(line);
        rest = tail;
    }
    (lines, rest.len() >= max_line, rest)
}

pub fn check(data: &[u8]) {
    let [limit, seed, stream @ ..] = data else {
        return;
    };
    let max_line = 1 + usize::from(*limit % 64);
    let (expected, expected_overlong, expected_rest) = reference(stream, max_line);

    let mut partial = Vec::new();
    let mut got: Vec<std::rc::Rc<[u8]>> = Vec::new();
    let mut overlong = false;
    for chunk in chunks(stream, *seed) {
        let (lines, bad) = split_lines(&mut partial, chunk, max_line);
        for line in &lines {
            assert!(line.len() <= max_line, "a line over the limit");
            assert_eq!(line.last(), Some(&b'\n'), "a line without its newline");
            assert_eq!(
                line.iter().filter(|&&b| b == b'\n').count(),
                1,
                "two lines in one"
            );
        }
        got.extend(lines);
        if bad {
            overlong = true;
            break;
        }
        assert!(!partial.contains(&b'\n'), "a whole line left in partial");
        assert!(
            partial.len() < max_line,
            "an overlong partial line not reported"
        );
    }
    assert_eq!(overlong, expected_overlong, "limit {max_line}");
    let got: Vec<&[u8]> = got.iter().map(|l| &l[..]).collect();
    assert_eq!(got, expected, "the lines differ from one pass");
    if !overlong {
        assert_eq!(
            partial, expected_rest,
            "the partial line differs from one pass"
        );
        let mut joined = got.concat();
        joined.extend_from_slice(&partial);
        assert_eq!(
            joined, stream,
            "lines and partial do not give the stream back"
        );
    }
}

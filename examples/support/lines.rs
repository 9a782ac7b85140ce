//! `chat`'s line framing, with no I/O: the bytes a client sends, cut into
//! whole lines.
//!
//! A module file of its own (not part of `support`), so that the fuzz target
//! `fuzz/fuzz_targets/chat_lines.rs` and `tests/fuzz_corpus.rs` can include
//! it with `#[path]` and call exactly the code the example runs.

use std::rc::Rc;

/// Appends `data` to the client's `partial` line and takes out the complete
/// lines (each ends with its `\n`, and none is longer than `max_line` bytes,
/// newline included). Also says whether the client broke that limit: a line
/// over `max_line`, or `max_line` bytes with no newline yet (the lines
/// before the offending one are still returned, `partial` is then left as
/// it is: the client is to be dropped).
pub fn split_lines(partial: &mut Vec<u8>, data: &[u8], max_line: usize) -> (Vec<Rc<[u8]>>, bool) {
    let scanned = partial.len();
    partial.extend_from_slice(data);
    let mut lines = Vec::new();
    let mut start = 0;
    let mut from = scanned;
    while let Some(at) = partial[from..].iter().position(|&b| b == b'\n') {
        let end = from + at + 1;
        if end - start > max_line {
            return (lines, true);
        }
        lines.push(Rc::from(&partial[start..end]));
        start = end;
        from = end;
    }
    partial.drain(..start);
    // No newline within max_line bytes: the line will be too long.
    (lines, partial.len() >= max_line)
}

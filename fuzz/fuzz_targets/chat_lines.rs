//! `chat`'s line framing (examples/support/lines.rs) on arbitrary bytes cut
//! into arbitrary chunks: see `props/chat_lines.rs` for what is checked.
#![no_main]

#[path = "../../examples/support/lines.rs"]
mod lines;
#[path = "../props/chat_lines.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check(data));

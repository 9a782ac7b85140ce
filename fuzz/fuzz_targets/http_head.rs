//! `http_hello`'s request-head parser and framer (examples/support/http_head.rs)
//! on arbitrary bytes: see `props/http_head.rs` for what is checked.
#![no_main]

#[path = "../../examples/support/http_head.rs"]
#[allow(dead_code)]
mod http_head;
#[path = "../props/http_head.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check(data));

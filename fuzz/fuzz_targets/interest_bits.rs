//! `selectloop::Interest::from_bits` and the mask operations on arbitrary
//! bytes: see `props/interest_bits.rs` for what is checked.
#![no_main]

#[path = "../props/interest_bits.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check(data));

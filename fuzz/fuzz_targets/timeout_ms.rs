//! The crate's timeout conversion for poll(2) / WSAPoll (`sys::timeout_ms`,
//! reached through the `--cfg fuzzing` hook `selectloop::__fuzz`) on
//! arbitrary durations: see `props/timeout_ms.rs` for what is checked.
#![no_main]

#[path = "../props/timeout_ms.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check(data, selectloop::__fuzz::timeout_ms));

//! Properties of the timeout conversion for poll(2) / WSAPoll (the crate's
//! `sys::timeout_ms`, passed in as `convert`), shared by the fuzz target
//! and the crate's unit test `sys::tests::fuzz_corpus_timeout_ms`.
//!
//! Input: a byte (odd: `None`), 8 bytes of seconds, 4 of nanoseconds (taken
//! modulo 10⁹); missing bytes count as 0. Then:
//! - `None` (block) is `-1`;
//! - a duration is the whole milliseconds it spans, rounded up: never
//!   shorter than asked, less than 1 ms longer, so never 0 for a nonzero
//!   duration (a wait of 1 ns must not become a busy loop);
//! - beyond `i32::MAX` ms it is `i32::MAX`, never negative, never wrapped.

use std::time::Duration;

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

pub fn check(mut data: &[u8], convert: fn(Option<Duration>) -> i32) {
    let [flag] = take::<1>(&mut data);
    let secs = u64::from_le_bytes(take::<8>(&mut data));
    let nanos = u32::from_le_bytes(take::<4>(&mut data)) % 1_000_000_000;
    // Small durations matter most: a low flag bit picks a short one.
    let secs = if flag & 2 != 0 { secs % 4 } else { secs };
    let timeout = Duration::new(secs, nanos);

    assert_eq!(convert(None), -1, "None must block");
    if flag & 1 != 0 {
        return;
    }
    let ms = convert(Some(timeout));
    assert!(ms >= 0, "{timeout:?} gave {ms}");
    if timeout.is_zero() {
        assert_eq!(ms, 0, "a zero timeout polls");
        return;
    }
    assert!(ms > 0, "{timeout:?} became a busy loop");
    let waited = Duration::from_millis(ms as u64);
    if ms < i32::MAX {
        assert!(waited >= timeout, "{timeout:?} shortened to {ms} ms");
        assert!(
            waited - timeout < Duration::from_millis(1),
            "{timeout:?} lengthened to {ms} ms"
        );
    } else {
        // Clamped: the exact rounding is at least i32::MAX ms.
        assert!(
            timeout > Duration::from_millis(i32::MAX as u64 - 1),
            "{timeout:?} clamped to {ms}"
        );
    }
    // A longer timeout never gives a shorter wait.
    if let Some(longer) = timeout.checked_add(Duration::from_nanos(1)) {
        assert!(convert(Some(longer)) >= ms, "not monotonic at {timeout:?}");
    }
}

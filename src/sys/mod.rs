//! Operating-system bindings: the types and calls that differ between Unix and
//! Windows, with no knowledge of selectors or the loop (nothing here imports
//! them).
//!
//! Every OS call and FFI binding of the crate is here, or in a file that
//! exists for one OS or one backend: `selector/select.rs` (select(2), Unix),
//! `selector/epoll.rs` (Linux), `event_loop/signal/{unix,windows}.rs`.
//! Elsewhere a `cfg(unix)` / `cfg(windows)` only says what exists where,
//! never how it is done:
//! - the platform list of `selector/mod.rs` (which selector aliases exist)
//!   and the backend choice in `lib.rs`;
//! - API that exists on Unix only: Unix stream and datagram sockets in
//!   `transport`, `close_after_fork`, `SubprocessTransport::send_signal`;
//! - which std trait hands over a descriptor (`AsFd` or `AsSocket`) in the
//!   impls of a type that wraps one.
//!
//! Each platform file provides:
//! - `Fd`: what Python calls a file descriptor (`RawFd` on Unix, `RawSocket` on Windows);
//! - `Source`: the one trait a registrable object implements (blanket over `AsFd` / `AsSocket`);
//! - `WakePipe`: a pair of connected endpoints a poll(2)-style backend watches so that
//!   another thread can interrupt its wait;
//! - `poll`: one call of poll(2) / WSAPoll over a slice of `PollFd`, with its flag constants;
//! - `borrow` and `LoopFd` (feature `event-loop`): a registered descriptor borrowed by number;
//! - with feature `net`: `LISTENERS_REUSE_ADDRESS`, `set_reuse_port`, `connect_in_progress`.

cfg_if::cfg_if! {
    if #[cfg(unix)] {
        mod unix;
        pub use self::unix::*;
    } else if #[cfg(windows)] {
        mod windows;
        pub use self::windows::*;
    } else {
        compile_error!("selectloop supports Unix and Windows");
    }
}

/// A child process's stdio and exit as loop sources (`transport::subprocess`).
#[cfg(feature = "transport")]
#[cfg_attr(unix, path = "unix_child.rs")]
#[cfg_attr(windows, path = "windows_child.rs")]
pub(crate) mod child;

/// Kills and reaps `child` (blocking until it is gone): never a zombie.
#[cfg(feature = "transport")]
pub(crate) fn reap_now(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A spawned child with its stdio, ready to register (`child::spawn`).
#[cfg(feature = "transport")]
pub(crate) struct Spawned {
    pub(crate) child: std::process::Child,
    pub(crate) stdin: child::WritePipe,
    pub(crate) stdout: child::ReadPipe,
    pub(crate) stderr: child::ReadPipe,
    pub(crate) exit: child::ExitNotice,
}

#[cfg(feature = "transport")]
impl Spawned {
    /// The child with the loop's ends of its stdio and exit notice, or, if
    /// setting those up failed, the error after the child is killed and
    /// reaped: never a zombie.
    fn new(
        mut child: std::process::Child,
        ends: std::io::Result<(
            child::WritePipe,
            child::ReadPipe,
            child::ReadPipe,
            child::ExitNotice,
        )>,
    ) -> std::io::Result<Spawned> {
        let (stdin, stdout, stderr, exit) = ends.inspect_err(|_| reap_now(&mut child))?;
        Ok(Spawned {
            child,
            stdin,
            stdout,
            stderr,
            exit,
        })
    }
}

use std::time::Duration;

/// A timeout as poll(2) / WSAPoll / epoll want it: milliseconds, rounded up so
/// that a sub-millisecond wait does not become a busy loop (as CPython does),
/// `-1` for "block", clamped to `i32::MAX`.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

// The fuzz target `timeout_ms`'s properties, shared with it (see
// `tests::fuzz_corpus_timeout_ms`).
#[cfg(test)]
#[path = "../../fuzz/props/timeout_ms.rs"]
mod fuzz_props;

#[cfg(test)]
mod tests {
    use super::timeout_ms;
    use std::time::Duration;

    #[test]
    fn timeout_ms_rounds_up_and_clamps() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }

    /// The `timeout_ms` fuzz corpus and fixed crashes, replayed on stable
    /// (`tests/fuzz_corpus.rs` replays the other targets').
    #[test]
    fn fuzz_corpus_timeout_ms() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut replayed = 0;
        for dir in ["corpus/timeout_ms", "regressions/timeout_ms"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("read_dir").path();
                super::fuzz_props::check(&std::fs::read(&path).expect("read"), timeout_ms);
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no timeout_ms corpus");
    }
}

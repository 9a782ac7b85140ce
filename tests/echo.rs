//! `examples/echo` run as a process and driven by clients: 1,000 concurrent
//! connections multiplexed on one `EventLoop` here, every byte checked; a
//! client that resets mid-stream; one that half-closes; `--upper`;
//! `--threads 2`; SIGINT; and Python's asyncio as a client nobody here wrote.
//! The tests are in `echo_suite/`, shared with `tests/echo_protocol.rs`.
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

#[cfg(unix)]
mod common;
mod echo_suite;
mod example_util;

/// The example under test.
const EXAMPLE: &str = "echo";

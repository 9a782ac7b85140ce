//! `examples/echo_protocol` (the echo server as a `transport::Protocol`)
//! through the same tests as `examples/echo`: 1,000 concurrent connections,
//! every byte checked, resets, half-close, `--upper`, `--threads 2`,
//! SIGINT, Python's asyncio as a client (`echo_suite/`).
#![cfg(all(feature = "transport", feature = "signals"))]

#[cfg(unix)]
mod common;
mod echo_suite;
mod example_util;

/// The example under test.
const EXAMPLE: &str = "echo_protocol";

//! Transports and protocols, asyncio's model: you implement a protocol
//! trait, the loop owns the I/O and calls it, and a short-lived transport
//! handle (`&mut ...Transport<'_>`) lets the protocol send, close and reach
//! the loop.
//!
//! - [`datagram`]: UDP and Unix datagram endpoints (`DatagramProtocol`);
//! - [`subprocess`]: child processes with piped stdin, stdout and stderr
//!   (`SubprocessProtocol`).

#[cfg(feature = "net")]
#[cfg_attr(docsrs, doc(cfg(feature = "net")))]
pub mod datagram;
pub mod subprocess;

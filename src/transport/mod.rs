//! Transports and protocols, asyncio's way: the loop owns each connection,
//! buffers what it cannot send yet, and calls the user's [`Protocol`] with
//! what arrives. A server is a protocol of a few lines.
//!
//! Streams (TCP, Unix stream sockets) are here, with [`Protocol`] and
//! [`Transport`]; datagrams (UDP, Unix datagram sockets) are in
//! [`datagram`] (`DatagramProtocol`), and child processes with piped stdin,
//! stdout and stderr in [`subprocess`] (`SubprocessProtocol`). With the
//! `tls` feature, `tls` runs the same protocols over TLS (rustls): servers,
//! clients and STARTTLS upgrades.
//!
//! ```
//! use std::io::{Read, Write};
//! use selectloop::transport::{self, Protocol, Transport};
//! use selectloop::EventLoop;
//!
//! /// Echoes, with asyncio's flow control: reading pauses while the peer
//! /// is not taking what is written.
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
//!         t.write(data); // never blocks: queued if the socket is full
//!     }
//!     fn pause_writing(&mut self, t: &mut Transport<'_, Self>) {
//!         t.pause_reading();
//!     }
//!     fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
//!         t.resume_reading();
//!     }
//! }
//!
//! let mut lp = EventLoop::new()?;
//! let (_server, addr) = transport::serve_addr(&mut lp, "127.0.0.1:0", || Echo)?;
//!
//! let handle = lp.handle();
//! let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     let mut c = std::net::TcpStream::connect(addr)?;
//!     c.write_all(b"hello, protocol")?;
//!     c.shutdown(std::net::Shutdown::Write)?; // end of stream: the server closes
//!     let mut echoed = Vec::new();
//!     c.read_to_end(&mut echoed)?;
//!     handle.stop();
//!     Ok(echoed)
//! });
//! lp.run()?;
//! assert_eq!(client.join().unwrap()?, b"hello, protocol");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # asyncio's names
//!
//! | asyncio | here |
//! |---|---|
//! | `asyncio.Protocol` | [`Protocol`] (a trait; each method gets the [`Transport`]) |
//! | `connection_made(transport)` | [`Protocol::connection_made`] |
//! | `data_received(data)` | [`Protocol::data_received`] (`&[u8]`, borrowed) |
//! | `eof_received()` → keep open? | [`Protocol::eof_received`] → `bool` |
//! | `connection_lost(exc)` | [`Protocol::connection_lost`] (`Option<io::Error>`) |
//! | `pause_writing()` / `resume_writing()` | [`Protocol::pause_writing`] / [`Protocol::resume_writing`] |
//! | `create_connection` raising | [`Protocol::connection_failed`] |
//! | `asyncio.Transport` | [`Transport`] (a handle for one call; keep the [`StreamToken`] instead) |
//! | `transport.write(data)` | [`Transport::write`] |
//! | `transport.writelines(list)` | [`Transport::write_all_of`] |
//! | `transport.write_eof()` / `can_write_eof()` | [`Transport::write_eof`] / [`Transport::can_write_eof`] |
//! | `transport.close()` / `abort()` / `is_closing()` | [`Transport::close`] / [`Transport::abort`] / [`Transport::is_closing`] |
//! | `pause_reading()` / `resume_reading()` / `is_reading()` | [`Transport::pause_reading`] / [`Transport::resume_reading`] / [`Transport::is_reading`] |
//! | `get_write_buffer_size()` | [`Transport::write_buffer_size`] |
//! | `get/set_write_buffer_limits(high, low)` (64 KiB / 16 KiB) | [`Transport::write_buffer_limits`] / [`Transport::set_write_buffer_limits`] ([`DEFAULT_HIGH_WATER`], [`DEFAULT_LOW_WATER`]) |
//! | `get_extra_info('peername' / 'sockname')` | [`Transport::peer_addr`] / [`Transport::local_addr`] ([`Addr`]) |
//! | `transport.get_loop()` | [`Transport::lp`] |
//! | keeping a transport to write to it later | [`Transport::token`], then [`EventLoop::with_transport`](crate::EventLoop::with_transport) |
//! | `loop.create_server(factory, sock=...)` / `(factory, host, port)` | [`serve`] / [`serve_addr`] |
//! | `loop.create_connection(factory, host, port)` | [`connect`] |
//! | `loop.create_unix_server` / `create_unix_connection` | `serve_unix` / `connect_unix` (and `connect_unix_abstract` on Linux), Unix only |
//! | `max_size` (bytes per read, 256 KiB) | [`Transport::set_read_size`] ([`DEFAULT_READ_SIZE`], 64 KiB) |
//!
//! # How a connection runs
//! - **Reading**: one read per readiness event, into a buffer the thread's
//!   connections share (an idle connection owns no read buffer), handed to
//!   `data_received`; end of stream goes to `eof_received`; an error
//!   (a reset) to `connection_lost(Some(error))`, quietly: no log, no
//!   error-handler report.
//! - **Writing**: [`Transport::write`] sends straight to the socket while
//!   nothing is queued, and queues what it does not take; the loop watches
//!   for `EVENT_WRITE` only while the queue is not empty, and sends queued
//!   chunks with one vectored send. Above the high-water mark the protocol
//!   gets `pause_writing` (after the callback that wrote returns), at the
//!   low-water mark `resume_writing`. An echo that pauses reading on
//!   `pause_writing` buffers at most the high-water mark plus one read.
//! - **Closing**: [`close`](Transport::close) and
//!   [`write_eof`](Transport::write_eof) wait for the queue to drain;
//!   [`abort`](Transport::abort) does not. A connection whose both
//!   directions have ended (end of stream received and kept open, then
//!   `write_eof` flushed) closes by itself. A close (not an abort) before
//!   the peer's end of stream first shuts the sending side down and reads
//!   and discards what the peer already sent (a few reads at most): closing
//!   a socket with unread input would send a reset, which can destroy the
//!   last bytes written before the peer reads them. `connection_lost` is
//!   called once, after the connection is unregistered; the socket closes
//!   when it returns.
//! - **Errors**: `EINTR` is retried; `WouldBlock` waits; any other I/O
//!   error ends the connection with `connection_lost(Some(error))`.
//!   Protocol methods return nothing, so no protocol error reaches the
//!   loop's error handler; a panic unwinds out of
//!   [`run`](crate::EventLoop::run) as any callback's does, and drops the
//!   connection.
//! - **Writing elsewhere**: a protocol keeps the [`StreamToken`] of another
//!   connection (from its `connection_made`) and reaches it with
//!   [`EventLoop::with_transport`](crate::EventLoop::with_transport).

mod client;
mod server;
mod stream;
#[cfg(unix)]
mod unix;

pub use self::client::connect;
pub use self::server::{serve, serve_addr};
pub use self::stream::{
    Addr, Connection, Protocol, StreamToken, Transport, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER,
    DEFAULT_READ_SIZE,
};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use self::unix::connect_unix_abstract;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use self::unix::{connect_unix, serve_unix};

pub mod datagram;
pub mod subprocess;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

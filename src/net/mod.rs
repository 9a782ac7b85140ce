//! Networking helpers: listeners, accepted and connecting streams set up for
//! a selector, so that examples and tests never repeat socket boilerplate.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use selectloop::net::{accept_nonblocking, connect_nonblocking, finish_connect, ListenerBuilder};
//! use selectloop::{AnySource, DefaultSelector, Selector, EVENT_READ, EVENT_WRITE};
//!
//! // Non-blocking, backlog 1024, SO_REUSEADDR on Unix.
//! let listener = ListenerBuilder::new("127.0.0.1:0").build()?;
//! // Returns at once; the connection completes in the background.
//! let client = connect_nonblocking(listener.local_addr()?)?;
//!
//! let mut server = None;
//! // Two kinds of object in one selector: each registered as a boxed clone.
//! let mut sel: DefaultSelector<AnySource, &str> = DefaultSelector::new()?;
//! sel.register(AnySource::new(listener.try_clone()?), EVENT_READ, "accept")?;
//! sel.register(AnySource::new(client.try_clone()?), EVENT_WRITE, "connected")?;
//! while !sel.get_map()?.is_empty() {
//!     let ready: Vec<_> = sel.select(Some(Duration::from_secs(5)))?.map(|(k, _)| (k.fd, k.data)).collect();
//!     assert!(!ready.is_empty(), "timed out");
//!     for (fd, what) in ready {
//!         match what {
//!             "accept" => server = Some(accept_nonblocking(&listener)?.0),
//!             _ => finish_connect(&client)?, // Err if the connect failed
//!         }
//!         sel.unregister(fd)?;
//!     }
//! }
//! let mut server = server.as_ref().unwrap(); // non-blocking, Nagle off
//! assert_eq!(server.peer_addr()?, client.local_addr()?);
//!
//! (&client).write_all(b"hi")?;
//! sel.register(AnySource::new(server.try_clone()?), EVENT_READ, "read")?;
//! assert_eq!(sel.select(Some(Duration::from_secs(5)))?.len(), 1);
//! let mut buf = [0; 2];
//! server.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`serve`] is the event loop's accept loop. For tests, [`stream_pair`] gives two connected non-blocking loopback
//! streams in one call, on every platform.

mod pair;
#[cfg(feature = "event-loop")]
mod serve;
mod socket;

pub use self::pair::stream_pair;
#[cfg(feature = "transport")]
pub(crate) use self::serve::serve_listener;
#[cfg(feature = "event-loop")]
pub use self::serve::{serve, ACCEPT_PAUSE};
pub use self::socket::{
    accept_nonblocking, connect_nonblocking, finish_connect, ListenerBuilder, DEFAULT_BACKLOG,
};

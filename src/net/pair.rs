//! [`stream_pair`]: Python's `socket.socketpair()` over loopback TCP, on
//! every platform (a self-pipe on Windows, where `UnixStream::pair` does not
//! exist; two ends of a real TCP connection for tests).

use std::io;
use std::net::{Ipv4Addr, TcpStream};

use super::ListenerBuilder;

/// A connected pair of loopback TCP streams (on 127.0.0.1), both
/// non-blocking and with `TCP_NODELAY`: bytes written to one can be read
/// from the other. Returns `(client, server)`: the end that connected, then
/// the end that was accepted.
///
/// Python's `socket.socketpair()` fallback, for tests: unlike a Unix socket
/// pair it works on Windows too, and it is a real TCP connection (resets,
/// half-closes and `SO_LINGER` behave as over a network). Only the pair's
/// own client is accepted: a stranger that connects to the short-lived
/// listener first is dropped.
///
/// # Errors
/// - the OS error if a socket cannot be created, bound or connected (out of
///   descriptors, no loopback interface).
///
/// ```
/// use std::io::{ErrorKind, Read, Write};
/// use selectloop::net::stream_pair;
///
/// let (a, b) = stream_pair()?;
/// assert_eq!(a.local_addr()?, b.peer_addr()?);
/// let mut buf = [0; 5];
/// assert_eq!((&b).read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
/// (&a).write_all(b"hello")?;
/// # use selectloop::{DefaultSelector, Selector, EVENT_READ};
/// # let mut sel: DefaultSelector<&std::net::TcpStream> = DefaultSelector::new()?;
/// # sel.register(&b, EVENT_READ, ())?;
/// # assert_eq!(sel.select(Some(std::time::Duration::from_secs(5)))?.len(), 1);
/// (&b).read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), selectloop::Error>(())
/// ```
pub fn stream_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = ListenerBuilder::new((Ipv4Addr::LOCALHOST, 0))
        .backlog(1)
        .nonblocking(false)
        .build()?;
    // A blocking connect returns once the handshake is done, so the accept
    // below finds the connection queued and does not wait.
    let client = TcpStream::connect(listener.local_addr()?)?;
    let client_addr = client.local_addr()?;
    let server = loop {
        let (server, peer) = listener.accept()?;
        if peer == client_addr {
            break server;
        }
    };
    for stream in [&client, &server] {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
    }
    Ok((client, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DefaultSelector, Interest, Selector, Source, EVENT_READ};
    use std::io::{ErrorKind, Read, Write};
    use std::time::Duration;

    /// Waits (bounded) until `source` is ready for `events`.
    fn wait_for<S: Source>(source: &S, events: Interest) {
        let mut sel: DefaultSelector<&S> = DefaultSelector::new().unwrap();
        sel.register(source, events, ())
            .map_err(|e| e.into_error())
            .unwrap();
        let ready = sel.select(Some(Duration::from_secs(10))).unwrap().len();
        assert_eq!(ready, 1, "not ready for {events:?}");
    }

    #[test]
    fn stream_pair_is_connected_both_ways_and_non_blocking() {
        let (a, b) = stream_pair().unwrap();
        assert_eq!(a.local_addr().unwrap(), b.peer_addr().unwrap());
        assert_eq!(b.local_addr().unwrap(), a.peer_addr().unwrap());
        assert_eq!(a.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        assert!(a.nodelay().unwrap() && b.nodelay().unwrap());
        let mut buf = [0u8; 8];
        for (from, to) in [(&a, &b), (&b, &a)] {
            let err = (&*to).read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WouldBlock);
            (&*from).write_all(b"12345678").unwrap();
            wait_for(to, EVENT_READ);
            (&*to).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"12345678");
        }
        // End of stream reaches the other side.
        drop(a);
        wait_for(&b, EVENT_READ);
        assert_eq!((&b).read(&mut buf).unwrap(), 0);
    }
}

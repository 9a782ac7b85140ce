//! Baseline: an echo server on mio (edge-triggered epoll), by hand.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use selectloop_bench::{Echo, Want, CHUNK};

const LISTENER: Token = Token(usize::MAX);

fn main() -> std::io::Result<()> {
    selectloop_bench::raise_fd_limit();
    let std_listener = selectloop_bench::listen(&selectloop_bench::server_addr(), true)?;
    let addr = std_listener.local_addr()?;
    let mut listener = TcpListener::from_std(std_listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    selectloop_bench::announce(addr);
    // Each connection, its echo state, and whether it waits to write.
    let mut conns: Vec<Option<(TcpStream, Echo, bool)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; CHUNK];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    let key = free.pop().unwrap_or(conns.len());
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    poll.registry()
                        .register(&mut stream, Token(key), interest)?;
                    if key == conns.len() {
                        conns.push(None);
                    }
                    conns[key] = Some((stream, Echo::default(), false));
                }
                continue;
            }
            let key = ev.token().0;
            let Some((stream, echo, writing)) = conns[key].as_mut() else {
                continue;
            };
            // Edge-triggered: read until it would block. Writability is
            // asked for only while a send came up short (an edge per ACK
            // otherwise), reading nothing meanwhile.
            let want = echo.on_readable(stream, &mut buf, true);
            if let Ok(w @ (Want::Read | Want::Write)) = want {
                if (w == Want::Write) != *writing {
                    *writing = w == Want::Write;
                    let interest = if *writing {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    poll.registry().reregister(stream, Token(key), interest)?;
                }
                continue;
            }
            poll.registry().deregister(stream)?;
            conns[key] = None;
            free.push(key);
        }
    }
}

//! selectloop's bare selector: an echo server on `DefaultSelector` and
//! `select_into`, no event loop.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use selectloop::{DefaultSelector, Events, Selector, EVENT_READ, EVENT_WRITE};
use selectloop_bench::{Echo, Want, CHUNK};

enum Sock {
    Listener(TcpListener),
    Conn(TcpStream),
}

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Listener(l) => l.as_fd(),
            Sock::Conn(c) => c.as_fd(),
        }
    }
}

fn main() -> anyhow::Result<()> {
    selectloop_bench::raise_fd_limit();
    let listener = selectloop_bench::listen(&selectloop_bench::server_addr(), true)?;
    let addr = listener.local_addr()?;
    let mut sel: DefaultSelector<Sock> = DefaultSelector::new()?;
    sel.register(Sock::Listener(listener), EVENT_READ, ())?;
    selectloop_bench::announce(addr);
    // Each connection's echo state, by descriptor number.
    let mut echoes: Vec<Echo> = Vec::new();
    let mut events = Events::new();
    let mut buf = vec![0; CHUNK];
    let mut accepted = Vec::new();
    loop {
        sel.select_into(&mut events, None)?;
        for event in &events {
            let Some(key) = sel.key_for(&event) else {
                continue;
            };
            let fd = event.fd();
            let want = match &key.fileobj {
                Sock::Listener(l) => {
                    while let Ok((stream, _)) = l.accept() {
                        accepted.push(stream);
                    }
                    Ok(Want::Read)
                }
                Sock::Conn(c) => {
                    let echo = &mut echoes[fd as usize];
                    if event.mask().is_writable() {
                        echo.on_writable(&mut &*c)
                    } else {
                        echo.on_readable(&mut &*c, &mut buf, false)
                    }
                }
            };
            match want {
                Ok(Want::Read) if event.mask().is_writable() => {
                    sel.modify(fd, EVENT_READ, ()).map(|_| ())?
                }
                Ok(Want::Write) if !event.mask().is_writable() => {
                    sel.modify(fd, EVENT_WRITE, ()).map(|_| ())?
                }
                Ok(Want::Read | Want::Write) => {}
                Ok(Want::Close) | Err(_) => drop(sel.unregister(fd)?),
            }
            for stream in accepted.drain(..) {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                let fd = stream.as_raw_fd() as usize;
                if echoes.len() <= fd {
                    echoes.resize_with(fd + 1, Echo::default);
                }
                echoes[fd] = Echo::default();
                sel.register(Sock::Conn(stream), EVENT_READ, ())?;
            }
        }
    }
}

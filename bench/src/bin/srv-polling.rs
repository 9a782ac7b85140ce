//! Baseline: an echo server on the `polling` crate, level-triggered, by hand.

use std::net::TcpStream;
use std::num::NonZeroUsize;

use polling::{Event, Events, PollMode, Poller};
use selectloop_bench::{Echo, Want, CHUNK};

// polling reserves usize::MAX.
const LISTENER: usize = usize::MAX - 1;

fn main() -> std::io::Result<()> {
    selectloop_bench::raise_fd_limit();
    let listener = selectloop_bench::listen(&selectloop_bench::server_addr(), true)?;
    let poller = Poller::new()?;
    // SAFETY: every source is deleted from the poller before it is dropped.
    unsafe { poller.add_with_mode(&listener, Event::readable(LISTENER), PollMode::Level)? };
    selectloop_bench::announce(listener.local_addr()?);
    let mut conns: Vec<Option<(TcpStream, Echo)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(NonZeroUsize::new(1024).unwrap());
    let mut buf = vec![0; CHUNK];
    loop {
        events.clear();
        poller.wait(&mut events, None)?;
        for ev in events.iter() {
            if ev.key == LISTENER {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true)?;
                    stream.set_nodelay(true)?;
                    let key = free.pop().unwrap_or(conns.len());
                    // SAFETY: deleted before it is dropped, below.
                    unsafe {
                        poller.add_with_mode(&stream, Event::readable(key), PollMode::Level)?
                    };
                    if key == conns.len() {
                        conns.push(None);
                    }
                    conns[key] = Some((stream, Echo::default()));
                }
                continue;
            }
            let Some((stream, echo)) = conns[ev.key].as_mut() else {
                continue;
            };
            let want = if ev.writable {
                echo.on_writable(stream)
            } else {
                echo.on_readable(stream, &mut buf, false)
            };
            match want {
                Ok(Want::Read) if ev.writable => {
                    poller.modify_with_mode(&*stream, Event::readable(ev.key), PollMode::Level)?
                }
                Ok(Want::Write) => {
                    poller.modify_with_mode(&*stream, Event::writable(ev.key), PollMode::Level)?
                }
                Ok(Want::Read) => {}
                Ok(Want::Close) | Err(_) => {
                    poller.delete(&*stream)?;
                    conns[ev.key] = None;
                    free.push(ev.key);
                }
            }
        }
    }
}

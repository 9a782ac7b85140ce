//! selectloop's `EventLoop`: a minimal echo server, a callback per
//! connection (no `net::serve`, no signal handler, no error handler).

use std::cell::RefCell;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

use selectloop::{EventLoop, IoEvent, EVENT_READ, EVENT_WRITE};
use selectloop_bench::{Echo, Want, CHUNK};

type Buf = Rc<RefCell<Vec<u8>>>;

fn on_conn(
    lp: &mut EventLoop,
    stream: &mut TcpStream,
    ev: IoEvent<TcpStream>,
    echo: &mut Echo,
    buf: &Buf,
) -> anyhow::Result<()> {
    let want = if ev.is_writable() {
        echo.on_writable(stream)?
    } else {
        echo.on_readable(stream, &mut buf.borrow_mut(), false)?
    };
    match want {
        Want::Read if ev.is_writable() => lp.modify(ev.token(), EVENT_READ)?,
        Want::Write if !ev.is_writable() => lp.modify(ev.token(), EVENT_WRITE)?,
        Want::Read | Want::Write => {}
        Want::Close => lp.unregister(ev.token())?,
    }
    Ok(())
}

fn on_accept(lp: &mut EventLoop, listener: &mut TcpListener, buf: &Buf) -> anyhow::Result<()> {
    while let Ok((stream, _)) = listener.accept() {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let (mut echo, buf) = (Echo::default(), buf.clone());
        lp.register(stream, EVENT_READ, move |lp, stream, ev| {
            on_conn(lp, stream, ev, &mut echo, &buf)
        })?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    selectloop_bench::raise_fd_limit();
    let listener = selectloop_bench::listen(&selectloop_bench::server_addr(), true)?;
    let addr = listener.local_addr()?;
    let mut lp = EventLoop::new()?;
    let buf: Buf = Rc::new(RefCell::new(vec![0; CHUNK]));
    lp.register(listener, EVENT_READ, move |lp, listener, _ev| {
        on_accept(lp, listener, &buf)
    })?;
    selectloop_bench::announce(addr);
    lp.run()?;
    Ok(())
}

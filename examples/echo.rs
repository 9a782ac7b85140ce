//! The echo server, on `EventLoop`: the seeds' selectors echo server, done
//! correctly.
//!
//! ```text
//! cargo run --release --example echo -- [--addr HOST:PORT] [--threads N] [--upper]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:9999`; port 0 picks one);
//!   the first line printed is `listening on ADDR`, the address bound.
//! - `--threads N`: N event loops, one per thread, each accepting on a clone
//!   of the listener (default 1).
//! - `--upper`: send back the bytes upper-cased (the seeds' upper-case echo).
//!
//! Correct where the tutorial's is not: a partial send keeps the rest and
//! waits for EVENT_WRITE, reading nothing from that client meanwhile (so each
//! connection buffers at most one read); a reset peer is dropped quietly; a
//! half-closed peer gets everything echoed before the server closes its side;
//! running out of descriptors pauses accepting instead of spinning. Ctrl-C
//! stops every loop and exits 0.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;

use selectloop::net;
use selectloop::{EventLoop, IoEvent, EVENT_READ, EVENT_WRITE};

mod support;

/// Bytes read per `read` call, and so the most a connection ever buffers.
const CHUNK: usize = 64 * 1024;

#[path = "support/echo_common.rs"]
mod echo_common;

const USAGE: &str = "usage: echo [--addr HOST:PORT] [--threads N] [--upper]";

/// One client: what it sent that it has not yet taken back.
struct Conn {
    /// The loop thread's read buffer, shared by its connections.
    scratch: Scratch,
    unsent: Vec<u8>,
    upper: bool,
    /// The peer closed its sending side: finish sending, then close.
    eof: bool,
    /// Registered for EVENT_WRITE (data is waiting for the peer) rather
    /// than EVENT_READ.
    writing: bool,
}

impl Conn {
    fn on_ready(
        &mut self,
        lp: &mut EventLoop,
        stream: &mut TcpStream,
        ev: IoEvent<TcpStream>,
    ) -> anyhow::Result<()> {
        let (me, mask) = (ev.token(), ev.mask());
        if !self.unsent.is_empty() {
            self.flush(stream)?;
        } else if mask.is_readable() && !self.eof {
            self.read(stream)?;
        }
        if self.unsent.is_empty() && self.eof {
            // Everything echoed: close our side too, then forget the socket.
            let _ = stream.shutdown(Shutdown::Write);
            lp.unregister(me)?;
        } else if self.unsent.is_empty() == self.writing {
            // Backpressure, level-triggered: wait for writability while data
            // is pending (reading nothing meanwhile), else for input. Only
            // a change of state costs a call (and a syscall).
            self.writing = !self.writing;
            lp.modify(
                me,
                if self.writing {
                    EVENT_WRITE
                } else {
                    EVENT_READ
                },
            )?;
        }
        Ok(())
    }

    /// Reads one chunk into the thread's scratch buffer and sends it straight
    /// back; only what the peer does not take now is copied into `unsent`.
    fn read(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        let mut buf = self.scratch.borrow_mut();
        let n = loop {
            match stream.read(&mut buf[..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        let data = &mut buf[..n];
        if self.upper {
            data.make_ascii_uppercase();
        }
        let sent = support::write_some(stream, data)?;
        self.unsent.extend_from_slice(&data[sent..]);
        Ok(())
    }

    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if !self.unsent.is_empty() {
            let sent = support::write_some(stream, &self.unsent)?;
            self.unsent.drain(..sent);
        }
        Ok(())
    }
}

/// One read buffer per loop, shared by its connections.
type Scratch = Rc<RefCell<Box<[u8]>>>;

/// What `net::serve` calls for each accepted connection (non-blocking,
/// Nagle off): watch it for reading, with its own `Conn`.
fn on_accept(
    lp: &mut EventLoop,
    stream: TcpStream,
    upper: bool,
    scratch: &Scratch,
) -> anyhow::Result<()> {
    let mut conn = Conn {
        scratch: scratch.clone(),
        unsent: Vec::new(),
        upper,
        eof: false,
        writing: false,
    };
    lp.register(stream, EVENT_READ, move |lp, stream: &mut TcpStream, ev| {
        conn.on_ready(lp, stream, ev)
    })?;
    Ok(())
}

/// `echo` serves plain TCP only.
fn no_tls(options: &echo_common::Options) -> anyhow::Result<()> {
    if options.tls.any() {
        anyhow::bail!("echo serves plain TCP; for TLS run echo_protocol (--features tls)");
    }
    Ok(())
}

fn setup(lp: &mut EventLoop, listener: TcpListener, upper: bool, (): ()) -> anyhow::Result<()> {
    // A reset peer is routine: dropped without a word. Any other error is
    // logged and closes its connection.
    support::drop_resets_quietly(lp);
    support::stop_on_ctrl_c(lp)?;
    let scratch: Scratch = Rc::new(RefCell::new(vec![0; CHUNK].into_boxed_slice()));
    // Accepts in batches; out of descriptors, it pauses the listener a while
    // instead of spinning on it.
    net::serve(lp, listener, move |lp, stream, _peer| {
        on_accept(lp, stream, upper, &scratch)
    })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    echo_common::main(USAGE, no_tls, setup)
}

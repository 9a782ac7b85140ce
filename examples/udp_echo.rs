//! A UDP echo server on `transport::datagram`: each datagram goes back to
//! its sender.
//!
//! ```text
//! cargo run --example udp_echo -- [--addr HOST:PORT] [--upper]
//! ```
//!
//! - `--addr`: where to bind (default `127.0.0.1:9999`; port 0 picks one);
//!   the first line printed is `listening on ADDR`, the address bound.
//! - `--upper`: send back the bytes upper-cased.
//!
//! Try it with `nc -u 127.0.0.1 9999`. A datagram the send queue cannot
//! take (the queue is bounded) is dropped with a warning, as a datagram
//! lost on the way would be. ICMP errors are logged and the server goes on.
//! Ctrl-C stops it and it exits 0.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use selectloop::transport::datagram::{
    create_datagram_endpoint, DatagramProtocol, DatagramTransport,
};
use selectloop::EventLoop;

mod support;

const USAGE: &str = "usage: udp_echo [--addr HOST:PORT] [--upper]";

struct Echo {
    upper: bool,
    /// Reused for upper-casing: no allocation per datagram.
    scratch: Vec<u8>,
}

impl DatagramProtocol<UdpSocket> for Echo {
    fn datagram_received(
        &mut self,
        t: &mut DatagramTransport<'_, UdpSocket>,
        data: &[u8],
        addr: SocketAddr,
    ) -> anyhow::Result<()> {
        let reply = if self.upper {
            self.scratch.clear();
            self.scratch.extend(data.iter().map(u8::to_ascii_uppercase));
            &self.scratch[..]
        } else {
            data
        };
        match t.send_to(reply, Some(addr)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                log::warn!("send queue full: dropped a datagram for {addr}");
                Ok(())
            }
            other => Ok(other?),
        }
    }

    fn error_received(
        &mut self,
        _t: &mut DatagramTransport<'_, UdpSocket>,
        error: io::Error,
    ) -> anyhow::Result<()> {
        log::warn!("socket error (the server goes on): {error}");
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let mut addr = "127.0.0.1:9999".to_string();
    let mut upper = false;
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => addr = args.value()?,
            "--upper" => upper = true,
            _ => return Err(args.unknown()),
        }
    }
    support::init_logger();
    let mut lp = EventLoop::new()?;
    let echo = Echo {
        upper,
        scratch: Vec::new(),
    };
    let token = create_datagram_endpoint(&mut lp, addr.as_str(), None, echo)?;
    let bound = lp.with_source(token, |ep| ep.socket().local_addr())??;
    support::stop_on_ctrl_c(&mut lp)?;
    support::announce(bound)?;
    lp.run()?;
    Ok(())
}

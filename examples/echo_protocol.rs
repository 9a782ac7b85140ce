//! The echo server of `examples/echo`, as a `transport::Protocol`: same
//! flags, same output, same behaviour, and none of the buffering, flushing,
//! `EVENT_WRITE` juggling, half-close or reset handling written out (the
//! transport does it).
//!
//! ```text
//! cargo run --release --example echo_protocol -- [--addr HOST:PORT] [--threads N] [--upper]
//! cargo run --release --features tls --example echo_protocol -- --self-signed --cert-out ca.pem
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:9999`; port 0 picks one);
//!   the first line printed is `listening on ADDR`, the address bound.
//! - `--threads N`: N event loops, one per thread, each accepting on a clone
//!   of the listener (default 1).
//! - `--upper`: send back the bytes upper-cased.
//! - `--cert FILE --key FILE`, or `--self-signed [--cert-out FILE]`
//!   (feature `tls`): serve TLS instead, the same protocol behind
//!   `transport::tls::serve_tls` (try it with
//!   `echo_client --tls ca.pem --addr 127.0.0.1:9999`).
//!
//! Flow control is asyncio's: when the peer does not take what is echoed and
//! the write buffer passes its high-water mark (64 KiB), reading pauses until
//! it drains to the low-water mark (16 KiB), so a connection buffers at most
//! the high-water mark plus one read. A reset peer is dropped quietly; a
//! half-closed peer gets everything echoed before the server closes; running
//! out of descriptors pauses accepting. Ctrl-C stops every loop and exits 0.

use std::net::TcpListener;

use selectloop::transport::{self, Protocol, Transport};
use selectloop::EventLoop;

mod support;

#[path = "support/echo_common.rs"]
mod echo_common;

#[cfg(feature = "tls")]
#[path = "support/tls_identity.rs"]
mod tls_identity;

const USAGE: &str = "usage: echo_protocol [--addr HOST:PORT] [--threads N] [--upper] \
[--cert FILE --key FILE | --self-signed [--cert-out FILE]]";

/// What every loop serves with: TLS (an acceptor), or plain TCP.
#[cfg(feature = "tls")]
type Shared = Option<transport::tls::TlsAcceptor>;
#[cfg(not(feature = "tls"))]
type Shared = ();

/// The TLS acceptor the flags ask for, made once for every loop.
fn prepare(options: &echo_common::Options) -> anyhow::Result<Shared> {
    #[cfg(feature = "tls")]
    {
        if !options.tls.any() {
            return Ok(None);
        }
        let config = tls_identity::server_config(&options.tls, &[])?;
        Ok(Some(transport::tls::TlsAcceptor::new(std::sync::Arc::new(
            config,
        ))))
    }
    #[cfg(not(feature = "tls"))]
    {
        if options.tls.any() {
            anyhow::bail!(
                "TLS needs the `tls` feature: cargo run --features tls --example echo_protocol"
            );
        }
        Ok(())
    }
}

/// One client's protocol.
struct Echo {
    upper: bool,
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        if !self.upper {
            return t.write(data);
        }
        let mut upper = [0; 4096];
        for piece in data.chunks(upper.len()) {
            let upper = &mut upper[..piece.len()];
            upper.copy_from_slice(piece);
            upper.make_ascii_uppercase();
            t.write(upper);
        }
    }

    // End of stream: the default `eof_received` closes once all is echoed.

    fn pause_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.pause_reading();
    }

    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        t.resume_reading();
    }
}

fn setup(
    lp: &mut EventLoop,
    listener: TcpListener,
    upper: bool,
    shared: Shared,
) -> anyhow::Result<()> {
    support::stop_on_ctrl_c(lp)?;
    #[cfg(feature = "tls")]
    if let Some(acceptor) = shared {
        transport::tls::serve_tls(lp, listener, acceptor, move || Echo { upper })?;
        return Ok(());
    }
    #[cfg(not(feature = "tls"))]
    let () = shared;
    transport::serve(lp, listener, move || Echo { upper })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    echo_common::main(USAGE, prepare, setup)
}

//! `http_hello` over TLS: the same HTTP/1.1 "Hello, world!" protocol
//! (`examples/support/http_server.rs`), served by
//! `transport::tls::serve_tls` with rustls. Nothing in the protocol knows it
//! runs over TLS: `connection_made` comes after the handshake, and what it
//! reads and writes is plaintext.
//!
//! ```text
//! cargo run --release --features tls --example https_hello -- --self-signed --cert-out ca.pem
//! curl --cacert ca.pem https://localhost:8443/
//!
//! cargo run --release --features tls --example https_hello -- --cert cert.pem --key key.pem
//!     [--addr HOST:PORT] [--handshake-timeout-ms MS] [--no-resumption]
//!     [--idle-timeout-ms MS] [--header-timeout-ms MS]
//! ```
//!
//! - `--cert FILE --key FILE`: the certificate chain (leaf first) and its
//!   private key, PEM (as nginx's `ssl_certificate` / `ssl_certificate_key`).
//! - `--self-signed`: instead, a certificate for `localhost`, `127.0.0.1`
//!   and `::1` made at start (rcgen, ECDSA P-256); `--cert-out FILE` writes it
//!   (PEM) for clients to trust (`curl --cacert FILE`).
//! - `--addr` (default `127.0.0.1:8443`; port 0 picks one): the first line
//!   printed is `listening on ADDR`.
//! - `--handshake-timeout-ms` (default 10000): a client that has not
//!   finished its TLS handshake by then is closed (a stalled handshake
//!   holds no descriptor for ever).
//! - `--no-resumption`: no session cache and no session tickets, so every
//!   handshake is a full one (what `bench/run-https` measures; rustls
//!   otherwise keeps 256 sessions and sends two TLS 1.3 tickets per
//!   handshake, and a client that reconnects resumes).
//! - `--idle-timeout-ms`, `--header-timeout-ms`: as for `http_hello`, once
//!   the handshake is done.
//!
//! TLS 1.3 and 1.2 (rustls' safe defaults), ALPN `http/1.1`. A failed
//! handshake (an untrusted certificate, plain HTTP sent to this port, a
//! timeout) closes that connection and is logged at `info` level
//! (`RUST_LOG=info` shows it, as nginx logs it at `info`); the server goes on.
//! Ctrl-C exits 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use selectloop::transport::tls::{self, TlsAcceptor};
use selectloop::EventLoop;

mod support;
// The protocol, shared with `http_hello`.
#[path = "support/http_server.rs"]
mod http_server;

use http_server::{Http, Timeouts};

#[path = "support/tls_identity.rs"]
mod tls_identity;

const USAGE: &str =
    "usage: https_hello (--cert FILE --key FILE | --self-signed [--cert-out FILE]) \
[--addr HOST:PORT] [--handshake-timeout-ms MS] [--no-resumption] [--idle-timeout-ms MS] \
[--header-timeout-ms MS]";

struct Options {
    addr: String,
    identity: support::TlsFlags,
    handshake_timeout: Duration,
    resumption: bool,
    timeouts: Timeouts,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:8443".to_owned(),
        identity: support::TlsFlags::default(),
        handshake_timeout: Duration::from_secs(10),
        resumption: true,
        timeouts: Timeouts::default(),
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--handshake-timeout-ms" => {
                options.handshake_timeout = Duration::from_millis(args.positive()?);
            }
            "--no-resumption" => options.resumption = false,
            "--idle-timeout-ms" => options.timeouts.idle = Duration::from_millis(args.positive()?),
            "--header-timeout-ms" => {
                options.timeouts.header = Duration::from_millis(args.positive()?);
            }
            flag if options.identity.take(flag, &mut args)? => {}
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args()?;
    let mut config =
        tls_identity::server_config(&options.identity, &[b"http/1.1"]).with_context(|| USAGE)?;
    if !options.resumption {
        config.session_storage = Arc::new(tls::rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    let acceptor =
        TlsAcceptor::new(Arc::new(config)).handshake_timeout(Some(options.handshake_timeout));
    let listener = support::listen(&options.addr)?;
    let addr = listener.local_addr()?;

    let mut lp = EventLoop::new()?;
    support::stop_on_ctrl_c(&mut lp)?;
    let timeouts = options.timeouts;
    tls::serve_tls(&mut lp, listener, acceptor, move || Http::new(timeouts))?;
    support::announce(addr)?;
    lp.run()?;
    Ok(())
}

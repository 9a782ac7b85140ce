//! A TLS server's identity from the command line, for the examples that
//! serve TLS (`https_hello`, `echo_protocol --self-signed`): PEM files
//! (`--cert FILE --key FILE`, as nginx's `ssl_certificate` /
//! `ssl_certificate_key`), or a self-signed certificate for `localhost`,
//! `127.0.0.1` and `::1` made at start with rcgen (`--self-signed`),
//! written with `--cert-out FILE` for clients to trust (`curl --cacert`).
//!
//! Included with `#[path]` by those examples only (it needs the `tls`
//! feature and rcgen); the flags themselves are parsed by [`TlsFlags`],
//! which every example can name.

use anyhow::{bail, Context};
use selectloop::transport::tls::{self, ServerConfig, TlsAcceptor};

use super::support::TlsFlags;

/// The server config the flags ask for, with `alpn` offered (e.g.
/// `http/1.1`; empty for none).
pub fn server_config(flags: &TlsFlags, alpn: &[&[u8]]) -> anyhow::Result<ServerConfig> {
    let mut config = match (&flags.cert, &flags.key, flags.self_signed) {
        (Some(cert), Some(key), false) if flags.cert_out.is_none() => {
            let acceptor = TlsAcceptor::from_pem_files(cert, key)
                .with_context(|| format!("loading {cert} and {key}"))?;
            (**acceptor.config()).clone()
        }
        (None, None, true) => {
            let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            let made = rcgen::generate_simple_self_signed(names)
                .context("generating a self-signed certificate")?;
            if let Some(path) = &flags.cert_out {
                std::fs::write(path, made.cert.pem()).with_context(|| format!("writing {path}"))?;
            }
            let key = tls::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
            tls::server_config(vec![made.cert.der().clone()], key)?
        }
        _ => bail!("give --cert and --key, or --self-signed (with --cert-out FILE)"),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

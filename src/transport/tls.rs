//! TLS on the stream transport, with [rustls](https://docs.rs/rustls)
//! (feature `tls`): servers ([`serve_tls`]), clients ([`connect_tls`]) and
//! STARTTLS-style upgrades of a plain connection
//! ([`Transport::start_tls_server`], [`Transport::start_tls_client`]).
//!
//! A TLS connection runs the same [`Protocol`] as a plain one: the loop reads
//! ciphertext, rustls decrypts it, the protocol gets plaintext in
//! `data_received`; what it writes is encrypted and sent (or queued) at once.
//! `connection_made` waits for the handshake, so a protocol written for
//! plain TCP serves TLS unchanged. [`Transport::tls`] tells what was
//! negotiated (ALPN, SNI, version, the peer's certificates).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use selectloop::transport::tls::{self, TlsAcceptor, TlsConnector};
//! use selectloop::transport::{Protocol, Transport};
//! use selectloop::EventLoop;
//!
//! /// Answers every message with it upper-cased.
//! struct Upper;
//! impl Protocol for Upper {
//!     fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
//!         t.write(&data.to_ascii_uppercase());
//!     }
//! }
//!
//! /// Says hello, reads the answer, closes (with a close_notify).
//! struct Hello(Vec<u8>);
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
//!         let alpn = t.tls().and_then(|c| c.alpn_protocol()).map(<[u8]>::to_vec);
//!         assert_eq!(alpn.as_deref(), Some(&b"demo"[..]));
//!         t.write(b"hello over tls");
//!     }
//!     fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
//!         self.0.extend_from_slice(data);
//!         if self.0.len() == 14 {
//!             assert_eq!(self.0, b"HELLO OVER TLS");
//!             t.close();
//!             t.lp().stop();
//!         }
//!     }
//! }
//!
//! // A self-signed certificate for "localhost", trusted by the client.
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! let mut server = tls::server_config(
//!     vec![cert.cert.der().clone()],
//!     tls::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
//! )?;
//! server.alpn_protocols = vec![b"demo".to_vec()];
//! let mut client = tls::client_config([cert.cert.der().clone()])?;
//! client.alpn_protocols = vec![b"demo".to_vec()];
//!
//! let mut lp = EventLoop::new()?;
//! let (_listener, addr) =
//!     tls::serve_tls_addr(&mut lp, "127.0.0.1:0", TlsAcceptor::new(Arc::new(server)), || Upper)?;
//! let connector = TlsConnector::new(Arc::new(client)).server_name("localhost");
//! tls::connect_tls(&mut lp, &addr.to_string(), Some(Duration::from_secs(5)), &connector, Hello(Vec::new()))?;
//! lp.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it maps to asyncio and to TLS
//! | asyncio / TLS | here |
//! |---|---|
//! | `create_server(..., ssl=ctx)` | [`serve_tls`] / [`serve_tls_addr`] with a [`TlsAcceptor`] |
//! | `create_connection(..., ssl=ctx, server_hostname=)` | [`connect_tls`] with a [`TlsConnector`] (the host of the address, or [`TlsConnector::server_name`]) |
//! | `loop.start_tls(transport, protocol, ctx)` | [`Transport::start_tls_server`] / [`Transport::start_tls_client`], then [`Protocol::tls_started`] |
//! | `ssl_handshake_timeout` (60 s) | [`TlsAcceptor::handshake_timeout`] / [`TlsConnector::handshake_timeout`] ([`DEFAULT_HANDSHAKE_TIMEOUT`]) |
//! | `get_extra_info('ssl_object')` | [`Transport::tls`] (rustls' [`Connection`]) |
//! | a failed handshake | [`Protocol::connection_failed`] (`connection_made` was never called) |
//! | an alert or a bad record after the handshake | [`Protocol::connection_lost`] with `ErrorKind::InvalidData` (its source is the [`rustls::Error`]) |
//! | `close()` | `close_notify`, then the TCP close |
//! | the peer's `close_notify` | [`Protocol::eof_received`] |
//! | TCP end of stream without `close_notify` (truncation) | [`Protocol::connection_lost`] with `ErrorKind::UnexpectedEof` |
//!
//! # Flow control
//! The write buffer and its water marks count encrypted bytes: what the
//! socket has not taken yet. The plaintext side has no buffer of its own
//! once the handshake is done (each write is encrypted at once); before it,
//! rustls holds what is written (only a
//! [`start_tls`](Transport::start_tls_client) upgrade can write then), and
//! those bytes count against the water marks only once the handshake is
//! done and they are encrypted: a protocol that writes during an upgrade's
//! handshake is not paused by it.
//! Pausing reading stops reading the socket, as on a plain connection: the
//! plaintext of one read is delivered in one `data_received`. Plaintext (or
//! a `close_notify`) that arrived in the read that finished the handshake,
//! after `connection_made` or `tls_started` paused reading, waits for
//! `resume_reading`.
//!
//! # Crypto provider
//! rustls with ring: ring builds with the C compiler rustc already links
//! with, on every platform this crate runs on. The configs made by
//! [`server_config`] and [`client_config`] use ring's provider explicitly,
//! so a process with another provider installed is not affected.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use rustls;
use rustls::pki_types::pem::PemObject;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
pub use rustls::{ClientConfig, Connection, ServerConfig};

use super::stream::{
    call, end_of_stream, Connection as StreamConnection, State, StreamToken, DEAD, F_CLOSING,
    F_EOF_RECEIVED, F_MADE, F_READ_PAUSED, NO_WRITE,
};
use super::{Protocol, Transport};
use crate::{Backend, CallHandle, EventLoop, RegisterError, Token};

/// asyncio's default TLS handshake timeout (`ssl_handshake_timeout`): a
/// connection whose handshake is not done by then is closed.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest plaintext of one TLS record, plus room for its header: a
/// record begun in one read and finished in the next can yield this much
/// beyond the second read's own size.
const RECORD_PLAINTEXT: usize = 16 * 1024 + 2048;

/// The server side of TLS: a rustls [`ServerConfig`] (certificates, ALPN,
/// client authentication) and a handshake timeout.
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    handshake_timeout: Option<Duration>,
}

impl TlsAcceptor {
    /// An acceptor for `config`, with the [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn new(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor {
            config,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// An acceptor with the certificate chain and private key of two PEM
    /// files (as nginx's `ssl_certificate` and `ssl_certificate_key`): see
    /// [`server_config`].
    ///
    /// # Errors
    /// - [`io::ErrorKind::NotFound`] and the other OS errors of reading a file;
    /// - [`io::ErrorKind::InvalidData`] if a file holds no certificate or no
    ///   key, or the key does not suit the certificate.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<TlsAcceptor> {
        let certs = CertificateDer::pem_file_iter(cert_chain.as_ref())
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem_error(cert_chain.as_ref(), e))?;
        let key =
            PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|e| pem_error(key.as_ref(), e))?;
        Ok(TlsAcceptor::new(Arc::new(server_config(certs, key)?)))
    }

    /// Sets the handshake timeout (`None`: no limit, which lets a client
    /// that stalls in its handshake hold a descriptor for ever).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> TlsAcceptor {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    fn session(&self) -> io::Result<Session> {
        let conn = rustls::ServerConnection::new(self.config.clone()).map_err(tls_error)?;
        Ok(Session::new(conn.into(), self.handshake_timeout))
    }
}

/// The client side of TLS: a rustls [`ClientConfig`] (trusted roots, ALPN,
/// a client certificate), the server name to ask for and verify, and a
/// handshake timeout.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
    handshake_timeout: Option<Duration>,
}

impl TlsConnector {
    /// A connector for `config`, with the [`DEFAULT_HANDSHAKE_TIMEOUT`];
    /// [`connect_tls`] verifies the host of the address it is given.
    pub fn new(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            config,
            server_name: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// A connector that trusts the certificates of a PEM file (as curl's
    /// `--cacert`): see [`client_config`].
    ///
    /// # Errors
    /// - the OS errors of reading the file;
    /// - [`io::ErrorKind::InvalidData`] if it holds no usable certificate.
    pub fn from_ca_file(path: impl AsRef<Path>) -> io::Result<TlsConnector> {
        let certs = CertificateDer::pem_file_iter(path.as_ref())
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem_error(path.as_ref(), e))?;
        Ok(TlsConnector::new(Arc::new(client_config(certs)?)))
    }

    /// The name sent as SNI and checked against the server's certificate,
    /// instead of the host of the address: a DNS name or an IP address. An
    /// invalid one makes [`connect_tls`] fail with
    /// [`io::ErrorKind::InvalidInput`].
    pub fn server_name(mut self, name: &str) -> TlsConnector {
        self.server_name = Some(name.to_owned());
        self
    }

    /// Sets the handshake timeout (`None`: no limit).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> TlsConnector {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    fn session(&self, host: &str) -> io::Result<Session> {
        let host = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a valid TLS server name: {e}"),
            )
        })?;
        let conn = rustls::ClientConnection::new(self.config.clone(), name).map_err(tls_error)?;
        Ok(Session::new(conn.into(), self.handshake_timeout))
    }
}

/// A rustls [`ServerConfig`] with ring's provider, its safe default protocol
/// versions (TLS 1.3 and 1.2), no client authentication, and `cert_chain`
/// (leaf first) with its `key`. Set `alpn_protocols` on it, or build one
/// with a client verifier for client certificates (rustls'
/// `WebPkiClientVerifier`).
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if the key is not usable or does not suit
/// the certificate.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<ServerConfig> {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)
        .map_err(tls_error)
}

/// A rustls [`ClientConfig`] with ring's provider that trusts `roots` (CA
/// or self-signed certificates) and sends no client certificate.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if no certificate of `roots` can be used
/// as a trust anchor.
pub fn client_config(
    roots: impl IntoIterator<Item = CertificateDer<'static>>,
) -> io::Result<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(roots);
    if added == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no usable root certificate",
        ));
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// ring's crypto provider, as the configs here use it.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves `listener` over TLS: [`serve`](super::serve), with each accepted
/// connection's handshake done before its protocol (from `factory`) gets
/// `connection_made`. A connection whose handshake fails or times out gets
/// [`connection_failed`](Protocol::connection_failed) (by default a logged
/// warning) and is closed; the server goes on serving.
///
/// # Errors
/// The listener comes back in the [`RegisterError`] if it cannot be made
/// non-blocking or watched.
pub fn serve_tls<B, P, F>(
    lp: &mut EventLoop<B>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    factory: F,
) -> Result<Token<TcpListener>, RegisterError<TcpListener>>
where
    B: Backend,
    P: Protocol<B>,
    F: FnMut() -> P + 'static,
{
    super::server::serve_upgraded(lp, listener, factory, move || acceptor.session().map(Some))
}

/// [`serve_tls`] on a new listener bound to `addr` (as
/// [`serve_addr`](super::serve_addr)); returns its token and address.
///
/// # Errors
/// - [`Error::Io`](crate::Error::Io) if `addr` does not resolve or cannot be
///   bound;
/// - as for [`serve_tls`].
pub fn serve_tls_addr<B, P, F>(
    lp: &mut EventLoop<B>,
    addr: impl ToSocketAddrs,
    acceptor: TlsAcceptor,
    factory: F,
) -> crate::Result<(Token<TcpListener>, SocketAddr)>
where
    B: Backend,
    P: Protocol<B>,
    F: FnMut() -> P + 'static,
{
    super::server::bind_and_serve(addr, |listener| serve_tls(lp, listener, acceptor, factory))
}

/// Opens a TLS connection to `addr` (`"host:port"`) for `protocol`
/// (asyncio's `create_connection(..., ssl=...)`): [`connect`](super::connect),
/// then the handshake, verifying the server's certificate for the host of
/// `addr` (or the connector's [`server_name`](TlsConnector::server_name)).
/// The protocol gets `connection_made` once the handshake is done, or
/// [`connection_failed`](Protocol::connection_failed) if the connect, the
/// verification or the handshake fails or times out.
///
/// # Errors
/// - [`Error::Io`](crate::Error::Io) with [`io::ErrorKind::InvalidInput`]
///   if the host is not a valid server name and none was set;
/// - as for [`connect`](super::connect).
pub fn connect_tls<B, P>(
    lp: &mut EventLoop<B>,
    addr: &str,
    timeout: Option<Duration>,
    connector: &TlsConnector,
    protocol: P,
) -> crate::Result<()>
where
    B: Backend,
    P: Protocol<B>,
{
    let session = connector.session(host_of(addr))?;
    super::client::connect_with(lp, addr, timeout, protocol, Some(session))
}

/// The host of `"host:port"` or `"[v6]:port"` (the whole string if it has
/// no port).
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, _port)) if !host.contains(':') => host,
        _ => addr,
    }
}

/// A connection's TLS state: rustls' connection and the handshake timer.
pub(crate) struct Session {
    conn: Connection,
    /// The protocol has not yet been told the handshake is done.
    handshaking: bool,
    timeout: Option<Duration>,
    timer: Option<CallHandle>,
    /// Plaintext that came in the read that finished the handshake, after
    /// `connection_made` (or `tls_started`) paused reading: delivered once
    /// reading resumes, as a plain connection's unread bytes would be.
    held: Vec<u8>,
    /// The peer's `close_notify` came while reading was paused: its
    /// `eof_received` waits for reading to resume (after `held`).
    held_eof: bool,
}

impl Session {
    fn new(mut conn: Connection, timeout: Option<Duration>) -> Session {
        // The transport's own queue holds what the socket has not taken, and
        // counts it against the write buffer's water marks: rustls only
        // passes records through (and holds what is written before the
        // handshake is done), so its buffers need no limit of their own.
        conn.set_buffer_limit(None);
        Session {
            conn,
            handshaking: true,
            timeout,
            timer: None,
            held: Vec::new(),
            held_eof: false,
        }
    }

    /// Something was held back while reading was paused.
    pub(super) fn has_held(&self) -> bool {
        !self.held.is_empty() || self.held_eof
    }
}

/// Where rustls writes records: the transport's send-or-queue path, which
/// takes everything (a failed send marks the connection failed).
struct Sink<'a>(&'a mut State);

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.put(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(self.0.put_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands rustls' pending records to the socket (or the queue).
fn send_records(session: &mut Session, state: &mut State) {
    while session.conn.wants_write() {
        if session.conn.write_tls(&mut Sink(state)).is_err() {
            break; // the sink takes everything; nothing to retry
        }
    }
}

/// Encrypts and sends what the protocol writes.
pub(super) fn write(state: &mut State, bufs: &[&[u8]]) {
    if state.has(NO_WRITE) {
        return;
    }
    let Some(mut session) = state.tls.take() else {
        return;
    };
    for buf in bufs {
        // Without a buffer limit rustls takes everything.
        let _ = session.conn.writer().write_all(buf);
    }
    send_records(&mut session, state);
    state.tls = Some(session);
}

/// Queues a `close_notify` alert (on close or `write_eof`).
pub(super) fn close_notify(state: &mut State) {
    if let Some(mut session) = state.tls.take() {
        session.conn.send_close_notify();
        send_records(&mut session, state);
        state.tls = Some(session);
    }
}

/// The connection is lost: the handshake timer goes.
pub(super) fn lost(state: &mut State) {
    if let Some(timer) = state.tls.as_mut().and_then(|s| s.timer.take()) {
        timer.cancel();
    }
}

/// A new TLS connection (or an upgrade): a client's hello goes out, and the
/// handshake timer starts.
pub(super) fn begin<P: Protocol<B>, B: Backend>(
    lp: &mut EventLoop<B>,
    token: StreamToken<P>,
    state: &mut State,
) {
    let Some(mut session) = state.tls.take() else {
        return;
    };
    send_records(&mut session, state);
    if let Some(timeout) = session.timeout {
        session.timer = Some(lp.call_later(timeout, move |lp| {
            let _ = lp.with_source_and_loop(token, |lp, conn: &mut StreamConnection<P>| {
                let state = conn.state_mut();
                if state.tls.as_ref().is_some_and(|s| s.handshaking) {
                    state.fail(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the TLS handshake took longer than {timeout:?}"),
                    ));
                    conn.settle(lp, token);
                }
            });
            Ok(())
        }));
    }
    state.tls = Some(session);
}

/// `n` bytes read from a TLS connection's socket (0: end of stream) are in
/// `buf`: decrypts them and tells the protocol what happened, in order:
/// the handshake done, the plaintext, then an error or the peer's
/// `close_notify`.
pub(super) fn received<P: Protocol<B>, B: Backend>(
    protocol: &mut P,
    state: &mut State,
    lp: &mut EventLoop<B>,
    token: StreamToken<P>,
    buf: &mut Vec<u8>,
    n: usize,
) {
    let Some(mut session) = state.tls.take() else {
        return;
    };
    if n == 0 {
        let error = if session.handshaking {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer closed the connection during the TLS handshake",
            )
        } else {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection without a TLS close_notify",
            )
        };
        state.tls = Some(session);
        return state.fail(error);
    }
    // The plaintext goes after the ciphertext: at most as long as it, plus
    // the rest of a record begun in the previous read.
    if buf.len() < 2 * n + RECORD_PLAINTEXT {
        buf.resize(2 * n + RECORD_PLAINTEXT, 0);
    }
    let (cipher, plain) = buf.split_at_mut(n);
    let mut rd: &[u8] = cipher;
    let mut got = 0;
    let mut peer_closed = false;
    let mut error = None;
    // Never with an empty reader: rustls takes that as end of stream.
    while !rd.is_empty() {
        match session.conn.read_tls(&mut rd) {
            Ok(0) => break, // after a close_notify: the rest is dropped
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        match session.conn.process_new_packets() {
            Ok(io_state) => peer_closed = io_state.peer_has_closed(),
            Err(e) => {
                error = Some(tls_error(e));
                break;
            }
        }
        while got < plain.len() {
            match session.conn.reader().read(&mut plain[got..]) {
                Ok(0) | Err(_) => break, // closed, or nothing more for now
                Ok(m) => got += m,
            }
        }
    }
    // Handshake replies, session tickets, or the alert for an error.
    send_records(&mut session, state);
    let done = session.handshaking && !session.conn.is_handshaking();
    if done {
        session.handshaking = false;
        if let Some(timer) = session.timer.take() {
            timer.cancel();
        }
    }
    let handshaking = session.handshaking;
    state.tls = Some(session);
    if done && error.is_none() {
        if state.has(F_MADE) {
            call(protocol, state, lp, token, |p, t| p.tls_started(t));
        } else {
            state.set(F_MADE);
            call(protocol, state, lp, token, |p, t| p.connection_made(t));
        }
    }
    if got > 0 && state.has(F_MADE) && !state.has(F_CLOSING | DEAD) {
        if state.has(F_READ_PAUSED) {
            // Paused by connection_made or tls_started, just called: the
            // plaintext waits for resume_reading, as unread bytes would.
            if let Some(session) = state.tls.as_mut() {
                session.held.extend_from_slice(&plain[..got]);
            }
        } else {
            call(protocol, state, lp, token, |p, t| {
                p.data_received(t, &plain[..got])
            });
        }
    }
    if let Some(error) = error {
        state.fail(error);
    } else if peer_closed && !state.has(F_EOF_RECEIVED | DEAD) {
        if handshaking {
            state.fail(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer closed the connection during the TLS handshake",
            ));
        } else if state.has(F_READ_PAUSED) {
            // A plain connection would not read its end of stream while
            // paused either.
            if let Some(session) = state.tls.as_mut() {
                session.held_eof = true;
            }
        } else {
            end_of_stream(protocol, state, lp, token);
        }
    }
}

/// Reading resumed with something held back by [`received`]: the
/// plaintext, then the peer's `close_notify`.
pub(super) fn release<P: Protocol<B>, B: Backend>(
    protocol: &mut P,
    state: &mut State,
    lp: &mut EventLoop<B>,
    token: StreamToken<P>,
) {
    let Some(session) = state.tls.as_mut() else {
        return;
    };
    let held = std::mem::take(&mut session.held);
    let eof = std::mem::take(&mut session.held_eof);
    if !held.is_empty() {
        call(protocol, state, lp, token, |p, t| p.data_received(t, &held));
    }
    if eof && !state.has(F_EOF_RECEIVED | F_CLOSING | DEAD) {
        if state.has(F_READ_PAUSED) {
            if let Some(session) = state.tls.as_mut() {
                session.held_eof = true;
            }
        } else {
            end_of_stream(protocol, state, lp, token);
        }
    }
}

impl<P: Protocol<B>, B: Backend> Transport<'_, P, B> {
    /// The TLS connection (asyncio's `get_extra_info('ssl_object')`): the
    /// negotiated ALPN protocol, version and cipher suite, the peer's
    /// certificates, the server name asked for (a server's
    /// `rustls::ServerConnection::server_name`). `None` on a plain
    /// connection.
    pub fn tls(&self) -> Option<&Connection> {
        self.state().tls.as_deref().map(|s| &s.conn)
    }

    /// Upgrades this plain connection to TLS as its server side (asyncio's
    /// `loop.start_tls(..., server_side=True)`, STARTTLS): from now on what
    /// is read is the client's handshake, and what is written is encrypted
    /// (rustls holds it until the handshake is done). The protocol gets
    /// [`tls_started`](Protocol::tls_started) when the handshake is done;
    /// if it fails, [`connection_lost`](Protocol::connection_lost) with the
    /// error.
    ///
    /// Call it once the plain exchange is over and before the client's
    /// hello can arrive (after answering its STARTTLS): bytes already read
    /// were handed over as plaintext.
    ///
    /// # Errors
    /// - [`io::ErrorKind::AlreadyExists`] if the connection is TLS already;
    /// - [`io::ErrorKind::NotConnected`] if it is closing;
    /// - [`io::ErrorKind::InvalidData`] if rustls refuses the config.
    pub fn start_tls_server(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.check_upgrade()?;
        let session = acceptor.session()?;
        self.upgrade(session);
        Ok(())
    }

    /// Upgrades this plain connection to TLS as its client side, verifying
    /// the server's certificate for `server_name` (or the connector's
    /// [`server_name`](TlsConnector::server_name)): the hello goes out now.
    /// As [`start_tls_server`](Transport::start_tls_server) otherwise.
    ///
    /// # Errors
    /// - as for [`start_tls_server`](Transport::start_tls_server);
    /// - [`io::ErrorKind::InvalidInput`] if `server_name` is not a valid name.
    pub fn start_tls_client(
        &mut self,
        connector: &TlsConnector,
        server_name: &str,
    ) -> io::Result<()> {
        self.check_upgrade()?;
        let session = connector.session(server_name)?;
        self.upgrade(session);
        Ok(())
    }

    fn check_upgrade(&self) -> io::Result<()> {
        if self.tls().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the connection is TLS already",
            ));
        }
        if self.is_closing() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        Ok(())
    }

    fn upgrade(&mut self, session: Session) {
        let token = self.token();
        let (lp, state) = self.parts();
        state.tls = Some(Box::new(session));
        begin(lp, token, state);
    }
}

/// A rustls error as an I/O error (`InvalidData`, the rustls error as its
/// source).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> io::Error {
    match e {
        rustls::pki_types::pem::Error::Io(e) => {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
        e => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("example.com:443"), "example.com");
        assert_eq!(host_of("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("::1"), "::1");
    }
}

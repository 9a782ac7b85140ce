//! `selectloop::transport::tls` with real rustls peers: clients on the loop
//! (`connect_tls`, STARTTLS upgrades) and blocking rustls clients on threads
//! (`StreamOwned` over a `TcpStream`), raw sockets that stall, truncate or
//! speak plain HTTP. Certificates from rcgen; loopback only, port 0; every
//! byte checked; every wait bounded (the loop by a deadline, threads by
//! socket timeouts, the whole test by a watchdog).
#![cfg(feature = "tls")]

mod common;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use selectloop::transport::tls::{
    self, rustls, CertificateDer, PrivateKeyDer, ServerName, TlsAcceptor, TlsConnector,
};
use selectloop::transport::{self, Protocol, StreamToken, Transport};
use selectloop::EventLoop;

use common::{pattern, quiet_loop, run_until};
use rustls::{ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConfig};

/// How long any one step may take before the test fails.
const PATIENCE: Duration = common::LOOP_PATIENCE;
/// The whole test, past which the watchdog aborts the process.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs a test under the [`WATCHDOG`], with a localhost identity and a
/// quiet loop.
fn tls_test(body: impl FnOnce(&Identity, &mut EventLoop)) {
    common::with_timeout(WATCHDOG, || {
        body(&Identity::localhost(), &mut quiet_loop());
    });
}

/// Runs the loop until the thread is done, then joins it.
fn run_until_joined<T>(lp: &mut EventLoop, what: &str, thread: JoinHandle<T>) -> T {
    run_until(lp, what, || thread.is_finished());
    thread.join().expect("client thread panicked")
}

// ---------------------------------------------------------------------------
// Certificates and configs

/// A self-signed certificate for "localhost" and its key.
struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Identity {
    fn localhost() -> Identity {
        Identity::named("selectloop test server")
    }

    /// A self-signed certificate for "localhost" whose subject (and so
    /// issuer) is `cn`: another name is another trust anchor.
    fn named(cn: &str) -> Identity {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Identity {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone().into())
    }

    fn server_config(&self) -> ServerConfig {
        tls::server_config(vec![self.cert.clone()], self.key()).expect("server config")
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::new(Arc::new(self.server_config()))
    }

    /// A client config that trusts this certificate.
    fn client_config(&self) -> ClientConfig {
        tls::client_config([self.cert.clone()]).expect("client config")
    }

    fn connector(&self) -> TlsConnector {
        TlsConnector::new(Arc::new(self.client_config())).server_name("localhost")
    }
}

/// A test CA, and a client certificate it signed.
struct ClientPki {
    ca: CertificateDer<'static>,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
}

fn client_pki() -> ClientPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "selectloop test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let client_key = KeyPair::generate().expect("client key");
    let mut params = CertificateParams::new(vec!["client.test".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "selectloop test client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = params.signed_by(&client_key, &issuer).expect("client cert");
    ClientPki {
        ca: ca.der().clone(),
        client_cert: client_cert.der().clone(),
        client_key: client_key.serialize_der(),
    }
}

// ---------------------------------------------------------------------------
// One protocol that records what it sees, in several roles

/// What a connection showed of its TLS session.
#[derive(Debug, Clone, Default)]
struct TlsInfo {
    alpn: Option<Vec<u8>>,
    sni: Option<String>,
    version: Option<ProtocolVersion>,
    peer_certs: Option<Vec<CertificateDer<'static>>>,
}

fn tls_info(conn: Option<&Connection>) -> TlsInfo {
    let conn = conn.expect("a TLS connection has a TLS session");
    TlsInfo {
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        sni: match conn {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            Connection::Client(_) => None,
        },
        version: conn.protocol_version(),
        peer_certs: conn.peer_certificates().map(<[_]>::to_vec),
    }
}

/// What a [`Recorder`] saw, shared with the test.
#[derive(Default, Debug)]
struct Seen {
    made: usize,
    /// The session of each connection made over TLS (not of STARTTLS ones).
    tls: Vec<TlsInfo>,
    tokens: Vec<StreamToken<Recorder>>,
    /// Plaintext that came over TLS.
    data: Vec<u8>,
    /// Plaintext that came before any TLS (STARTTLS).
    plain: Vec<u8>,
    /// What came while reading was paused.
    data_while_paused: Vec<u8>,
    eof: usize,
    tls_started: usize,
    /// What a second `start_tls_*` from `tls_started` said.
    already: Vec<io::ErrorKind>,
    lost: Vec<Option<io::Error>>,
    failed: Vec<io::Error>,
    paused: usize,
    resumed: usize,
    max_buffered: usize,
}

type Shared = Rc<RefCell<Seen>>;

impl Seen {
    fn lost_kinds(&self) -> Vec<Option<io::ErrorKind>> {
        self.lost
            .iter()
            .map(|e| e.as_ref().map(io::Error::kind))
            .collect()
    }

    fn failed_kinds(&self) -> Vec<io::ErrorKind> {
        self.failed.iter().map(io::Error::kind).collect()
    }

    /// Lost or failed: nothing more will happen.
    fn ended(&self) -> bool {
        !self.lost.is_empty() || !self.failed.is_empty()
    }

    /// Asserts one connection that never failed, got `data` over TLS and
    /// ended cleanly.
    #[track_caller]
    fn assert_clean(&self, data: &[u8]) {
        assert!(self.failed.is_empty(), "failed: {:?}", self.failed);
        assert_eq!(self.data, data);
        assert_eq!(self.lost_kinds(), vec![None], "{:?}", self.lost);
    }

    /// Asserts one connection that failed its handshake with `kind` (and
    /// so was never made nor lost); returns the error.
    #[track_caller]
    fn handshake_failure(&self, kind: io::ErrorKind) -> &io::Error {
        assert_eq!(self.made, 0, "connection_made despite a failed handshake");
        assert!(self.lost.is_empty(), "lost: {:?}", self.lost);
        assert_eq!(self.failed_kinds(), vec![kind], "{:?}", self.failed);
        &self.failed[0]
    }
}

/// The rustls error an I/O error carries, if any.
fn rustls_source(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Asserts that an `&io::Error` carries a rustls error matching a pattern.
macro_rules! assert_rustls {
    // `match`, not `let`: a temporary in `$error` (a `borrow()`) lives on.
    ($error:expr, $pattern:pat) => {
        match $error {
            e => {
                let e: &io::Error = e;
                assert!(matches!(rustls_source(e), Some($pattern)), "{e:?}");
            }
        }
    };
}

/// What a [`Recorder`] does besides recording.
#[derive(Clone)]
enum Role {
    /// Echoes, with asyncio's flow control (reading paused while writing
    /// is). At the end of stream, writes `Some(reply)` and stays open;
    /// with `None`, closes.
    Echo {
        keep_open_on_eof: Option<&'static [u8]>,
    },
    /// A client: sends its message once the handshake is done, closes once
    /// it has as much back.
    Hello(Vec<u8>),
    /// Writes its message and closes, at once.
    SayThenClose(&'static [u8]),
    /// Writes its message and aborts, at once.
    SayThenAbort(&'static [u8]),
    /// Pauses reading as soon as it is made; echoes once resumed; the end
    /// of stream must come after the data, and not while paused.
    PausedAtFirst,
    /// Sends a request, half-closes (close_notify, then the TCP write side;
    /// a write after that is ignored), and reads the reply to the server's
    /// close_notify, after which it closes by itself.
    HalfClose,
    /// A plain line protocol: "STARTTLS\n" is answered "OK\n" and upgrades;
    /// what comes after the handshake is echoed.
    StartTlsServer(TlsAcceptor),
    /// Asks for STARTTLS, upgrades on "OK\n", sends `secret` over TLS and
    /// closes once it is echoed.
    StartTlsClient {
        connector: TlsConnector,
        secret: &'static [u8],
    },
}

impl Role {
    fn is_start_tls(&self) -> bool {
        matches!(self, Role::StartTlsServer(_) | Role::StartTlsClient { .. })
    }
}

/// Plays a [`Role`], recording every callback in a [`Seen`].
struct Recorder {
    seen: Shared,
    role: Role,
}

impl Recorder {
    /// Connections playing `role`, all recording into `seen`.
    fn factory(seen: &Shared, role: Role) -> impl FnMut() -> Recorder + 'static {
        let seen = seen.clone();
        move || Recorder {
            seen: seen.clone(),
            role: role.clone(),
        }
    }

    /// Upgrades a STARTTLS connection (again, from `tls_started`).
    fn start_tls(&self, t: &mut Transport<'_, Self>) -> io::Result<()> {
        match &self.role {
            Role::StartTlsServer(acceptor) => t.start_tls_server(acceptor),
            Role::StartTlsClient { connector, .. } => t.start_tls_client(connector, "localhost"),
            _ => unreachable!("not a STARTTLS role"),
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        if let Role::PausedAtFirst = self.role {
            t.pause_reading();
        }
        {
            let mut seen = self.seen.borrow_mut();
            seen.made += 1;
            seen.tokens.push(t.token());
            if self.role.is_start_tls() {
                assert!(t.tls().is_none(), "STARTTLS begins in plaintext");
            } else {
                seen.tls.push(tls_info(t.tls()));
            }
        }
        match &self.role {
            Role::Hello(msg) => t.write(msg),
            Role::SayThenClose(msg) => {
                t.write(msg);
                t.close();
            }
            Role::SayThenAbort(msg) => {
                t.write(msg);
                t.abort();
            }
            Role::HalfClose => {
                t.write(b"request, then end of stream");
                t.write_eof();
                t.write(b"ignored");
            }
            Role::StartTlsClient { .. } => t.write(b"EHLO test\nSTARTTLS\n"),
            _ => {}
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        let over_tls = t.tls().is_some();
        // Recorded first, and not borrowed across the transport's calls
        // (a write may call pause_writing at once).
        let (upgrade, data_len) = {
            let mut seen = self.seen.borrow_mut();
            if over_tls {
                if self.role.is_start_tls() {
                    assert!(seen.tls_started > 0, "data before tls_started");
                }
                if !t.is_reading() {
                    seen.data_while_paused.extend_from_slice(data);
                }
                seen.data.extend_from_slice(data);
            } else {
                assert!(
                    self.role.is_start_tls(),
                    "plaintext before the handshake is done"
                );
                seen.plain.extend_from_slice(data);
            }
            let upgrade = match self.role {
                Role::StartTlsServer(_) => seen.plain.ends_with(b"STARTTLS\n"),
                Role::StartTlsClient { .. } => seen.plain == b"OK\n",
                _ => false,
            };
            (upgrade, seen.data.len())
        };
        if !over_tls {
            if upgrade {
                if let Role::StartTlsServer(_) = self.role {
                    t.write(b"OK\n");
                }
                self.start_tls(t).expect("start_tls");
            }
            return;
        }
        match &self.role {
            Role::Echo { .. } | Role::PausedAtFirst | Role::StartTlsServer(_) => {
                t.write(data);
                let mut seen = self.seen.borrow_mut();
                seen.max_buffered = seen.max_buffered.max(t.write_buffer_size());
            }
            Role::Hello(msg) if data_len >= msg.len() => t.close(),
            Role::StartTlsClient { secret, .. } if data_len >= secret.len() => t.close(),
            _ => {}
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_, Self>) -> bool {
        let data_before = {
            let mut seen = self.seen.borrow_mut();
            seen.eof += 1;
            !seen.data.is_empty()
        };
        match self.role {
            Role::Echo {
                keep_open_on_eof: Some(reply),
            } => {
                t.write(reply);
                true
            }
            Role::PausedAtFirst => {
                assert!(t.is_reading(), "eof_received while reading is paused");
                assert!(data_before, "eof_received before the data");
                false
            }
            Role::HalfClose => true, // closes by itself: both directions have ended
            _ => false,
        }
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error);
    }

    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.seen.borrow_mut().failed.push(error);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_, Self>) {
        self.seen.borrow_mut().paused += 1;
        if let Role::Echo { .. } = self.role {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        self.seen.borrow_mut().resumed += 1;
        if let Role::Echo { .. } = self.role {
            t.resume_reading();
        }
    }

    fn tls_started(&mut self, t: &mut Transport<'_, Self>) {
        self.seen.borrow_mut().tls_started += 1;
        assert!(t.tls().is_some_and(|c| !c.is_handshaking()));
        if let Err(e) = self.start_tls(t) {
            self.seen.borrow_mut().already.push(e.kind());
        }
        if let Role::StartTlsClient { secret, .. } = self.role {
            t.write(secret);
        }
    }
}

/// The echo server's role.
const ECHO: Role = Role::Echo {
    keep_open_on_eof: None,
};

// ---------------------------------------------------------------------------
// Servers and clients on the loop

/// A TLS server on the loop whose connections play `role`; its address,
/// and what they all see.
fn serve(lp: &mut EventLoop, acceptor: TlsAcceptor, role: Role) -> (SocketAddr, Shared) {
    let seen = Shared::default();
    let (_listener, addr) =
        tls::serve_tls_addr(lp, "127.0.0.1:0", acceptor, Recorder::factory(&seen, role))
            .expect("serve_tls");
    (addr, seen)
}

/// A TLS client on the loop to `addr` playing `role`; what it will see.
fn connect(lp: &mut EventLoop, addr: &str, connector: &TlsConnector, role: Role) -> Shared {
    let seen = Shared::default();
    let protocol = Recorder {
        seen: seen.clone(),
        role,
    };
    tls::connect_tls(lp, addr, Some(PATIENCE), connector, protocol).expect("connect_tls");
    seen
}

/// Starts a [`Role::Hello`] client to `addr` and returns what it will see.
fn hello(lp: &mut EventLoop, addr: SocketAddr, connector: &TlsConnector, msg: &[u8]) -> Shared {
    connect(lp, &addr.to_string(), connector, Role::Hello(msg.to_vec()))
}

/// Runs the loop until `seen`'s connection is lost or has failed.
fn run_until_ended(lp: &mut EventLoop, what: &str, seen: &Shared) {
    run_until(lp, what, || seen.borrow().ended());
}

/// Runs the loop until both sides' connections are lost.
fn run_until_both_lost(lp: &mut EventLoop, client: &Shared, server: &Shared) {
    run_until(lp, "both sides to be lost", || {
        !client.borrow().lost.is_empty() && !server.borrow().lost.is_empty()
    });
}

/// Runs a [`Role::Hello`] to completion and checks that it got its echo back.
fn assert_served(lp: &mut EventLoop, addr: SocketAddr, connector: &TlsConnector, msg: &[u8]) {
    let seen = hello(lp, addr, connector, msg);
    run_until_ended(lp, "a good client to be served", &seen);
    let s = seen.borrow();
    s.assert_clean(msg);
    assert_eq!(s.made, 1);
}

// ---------------------------------------------------------------------------
// Blocking rustls clients on threads

type BlockingClient = rustls::StreamOwned<ClientConnection, TcpStream>;

/// A blocking rustls client for `name` at `addr`, with socket timeouts.
fn blocking_client(addr: SocketAddr, config: ClientConfig, name: &str) -> BlockingClient {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    sock.set_write_timeout(Some(PATIENCE)).unwrap();
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let conn = ClientConnection::new(Arc::new(config), name).expect("client connection");
    rustls::StreamOwned::new(conn, sock)
}

/// A thread running `session` on a blocking client of `addr` ("localhost"),
/// configured by `config`.
fn spawn_client<T: Send + 'static>(
    addr: SocketAddr,
    config: ClientConfig,
    session: impl FnOnce(&mut BlockingClient) -> io::Result<T> + Send + 'static,
) -> JoinHandle<io::Result<T>> {
    thread::spawn(move || session(&mut blocking_client(addr, config, "localhost")))
}

/// A raw TCP connection to `addr` from a thread, with a read timeout;
/// `session` is what the thread does with it.
fn spawn_raw<T: Send + 'static>(
    addr: SocketAddr,
    session: impl FnOnce(TcpStream) -> io::Result<T> + Send + 'static,
) -> JoinHandle<io::Result<T>> {
    thread::spawn(move || {
        let raw = TcpStream::connect(addr)?;
        raw.set_read_timeout(Some(PATIENCE))?;
        session(raw)
    })
}

/// Reads exactly `len` bytes of plaintext.
fn read_exactly(c: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    c.read_exact(&mut buf)?;
    Ok(buf)
}

/// Writes `msg` and reads as many bytes back: what the echo sent.
fn round_trip(c: &mut (impl Read + Write), msg: &[u8]) -> io::Result<Vec<u8>> {
    c.write_all(msg)?;
    read_exactly(c, msg.len())
}

/// Sends close_notify and reads what is left up to the server's own: an
/// `UnexpectedEof` error if the server ends the TCP stream without one.
fn close_notify_and_read_rest(c: &mut BlockingClient) -> io::Result<Vec<u8>> {
    c.conn.send_close_notify();
    c.flush()?;
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)?;
    Ok(rest)
}

/// Reads to the end, which must be a truncation (no close_notify).
#[track_caller]
fn expect_truncation(c: &mut impl Read) {
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected a truncation, got {other:?} after {rest:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. Large echo with flow control

/// One 8 MiB stream each way through a rustls client whose connection is
/// shared by a writer and a reader thread (never locked across a blocking
/// socket call). The reader starts only once the server has paused, so the
/// server's flow control is exercised for certain.
#[test]
fn echo_8_mib_each_way_with_flow_control() {
    tls_test(|id, lp| {
        const TOTAL: usize = 8 << 20;
        let (addr, seen) = serve(lp, id.acceptor(), ECHO);

        // A small receive buffer: the server's send buffer (4 MiB at most
        // on Linux) and ours together cannot hold 8 MiB, so the server
        // has to queue and pause.
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(32 * 1024).expect("SO_RCVBUF");
        sock.connect(&addr.into()).expect("connect");
        let sock: TcpStream = sock.into();
        sock.set_read_timeout(Some(PATIENCE)).unwrap();
        sock.set_write_timeout(Some(PATIENCE)).unwrap();

        let data = Arc::new(pattern(TOTAL, 0x7115));
        let (go, wait_go) = mpsc::channel::<()>();
        let config = Arc::new(id.client_config());
        let writer_sock = sock.try_clone().unwrap();
        let written = data.clone();
        // Handshake, then split: the writer encrypts under the lock and
        // sends outside it; the reader receives outside it and decrypts
        // under it.
        let client = thread::spawn(move || -> io::Result<Vec<u8>> {
            let name = ServerName::try_from("localhost").unwrap();
            let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
            conn.set_buffer_limit(None);
            let mut s = &sock;
            while conn.is_handshaking() {
                conn.complete_io(&mut s)?;
            }
            let conn = Arc::new(Mutex::new(conn));
            let writer_conn = conn.clone();
            let writer = thread::spawn(move || -> io::Result<()> {
                let mut records = Vec::new();
                for chunk in written.chunks(100_000).chain([&[][..]]) {
                    {
                        let mut c = writer_conn.lock().unwrap();
                        if chunk.is_empty() {
                            c.send_close_notify();
                        } else {
                            c.writer().write_all(chunk)?;
                        }
                        while c.wants_write() {
                            c.write_tls(&mut records)?;
                        }
                    }
                    (&writer_sock).write_all(&records)?;
                    records.clear();
                }
                Ok(())
            });
            wait_go
                .recv_timeout(PATIENCE)
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "server never paused"))?;
            let mut got = Vec::with_capacity(TOTAL);
            let mut buf = vec![0u8; 64 * 1024];
            let mut plain = vec![0u8; 64 * 1024];
            'read: loop {
                let n = (&sock).read(&mut buf)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("TCP end of stream without close_notify after {}", got.len()),
                    ));
                }
                let mut c = conn.lock().unwrap();
                let mut rd = &buf[..n];
                while !rd.is_empty() {
                    c.read_tls(&mut rd)?;
                    let state = c.process_new_packets().map_err(io::Error::other)?;
                    loop {
                        match c.reader().read(&mut plain) {
                            Ok(0) => break 'read, // close_notify
                            Ok(m) => got.extend_from_slice(&plain[..m]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                    if state.peer_has_closed() {
                        break 'read;
                    }
                }
            }
            writer.join().expect("writer thread")?;
            Ok(got)
        });

        run_until(lp, "the server to pause writing", || {
            seen.borrow().paused > 0
        });
        go.send(()).unwrap();
        let got = run_until_joined(lp, "the client to finish", client).expect("client");
        assert!(
            got.len() == TOTAL && got == *data,
            "echoed {} of {TOTAL} bytes, or corrupted (first difference at {:?})",
            got.len(),
            got.iter().zip(data.iter()).position(|(a, b)| a != b)
        );
        run_until_ended(lp, "connection_lost", &seen);
        let s = seen.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.data.len(), TOTAL);
        assert_eq!(s.eof, 1, "the client's close_notify is eof_received");
        assert_eq!(s.lost_kinds(), vec![None]);
        assert!(s.failed.is_empty());
        assert!(s.paused > 0 && s.resumed > 0, "{s:?}");
        // The echo pauses reading on pause_writing: its buffer holds at
        // most the high-water mark plus the ciphertext of one read's
        // plaintext (a read's worth, plus the rest of a record begun in
        // the previous read, plus each record's overhead).
        const RECORD: usize = 16 * 1024;
        const OVERHEAD: usize = 256; // the most a record may grow by
        let one_read = transport::DEFAULT_READ_SIZE + RECORD;
        let bound = transport::DEFAULT_HIGH_WATER + one_read + (one_read / RECORD + 1) * OVERHEAD;
        assert!(
            s.max_buffered <= bound,
            "buffered {} > {bound}",
            s.max_buffered
        );
        // And it did buffer: the flow control was exercised.
        assert!(s.max_buffered > transport::DEFAULT_HIGH_WATER);
    });
}

// ---------------------------------------------------------------------------
// 2. close_notify both ways

#[test]
fn close_sends_close_notify_and_the_client_reads_a_clean_end() {
    tls_test(|id, lp| {
        let (addr, _) = serve(lp, id.acceptor(), Role::SayThenClose(b"bye"));
        let client = spawn_client(addr, id.client_config(), |c| {
            let mut got = Vec::new();
            // A TCP end of stream without close_notify would make this
            // fail with UnexpectedEof.
            c.read_to_end(&mut got)?;
            // And reading again still says a clean end.
            let again = c.read(&mut [0u8; 16])?;
            Ok((got, again))
        });
        let (got, again) = run_until_joined(lp, "the client", client).expect("client");
        assert_eq!(got, b"bye");
        assert_eq!(again, 0);
    });
}

#[test]
fn client_close_notify_is_eof_received_and_the_server_still_writes_then_write_eof() {
    tls_test(|id, lp| {
        let keep_open = Role::Echo {
            keep_open_on_eof: Some(b"[eof seen]"),
        };
        let (addr, seen) = serve(lp, id.acceptor(), keep_open);
        let client = spawn_client(addr, id.client_config(), |c| {
            assert_eq!(round_trip(c, b"hello")?, b"hello");
            close_notify_and_read_rest(c)
        });
        run_until(lp, "eof_received", || seen.borrow().eof == 1);
        assert!(seen.borrow().lost.is_empty(), "half-open: not lost yet");
        // eof_received has returned true: writing still works, from
        // anywhere, until write_eof.
        let token = seen.borrow().tokens[0];
        lp.with_transport(token, |_p, t| {
            assert!(!t.is_closing());
            t.write(b"[after eof]");
            t.write_eof();
            t.write(b"[ignored after write_eof]");
        })
        .expect("with_transport");
        let rest = run_until_joined(lp, "the client", client).expect("client");
        assert_eq!(rest, b"[eof seen][after eof]");
        run_until_ended(lp, "connection_lost", &seen);
        let s = seen.borrow();
        assert_eq!(s.data, b"hello");
        assert_eq!(s.eof, 1);
        assert_eq!(s.lost_kinds(), vec![None], "both directions ended cleanly");
    });
}

// ---------------------------------------------------------------------------
// 3. Truncation

#[test]
fn tcp_eof_without_close_notify_is_unexpected_eof() {
    tls_test(|id, lp| {
        let (addr, seen) = serve(lp, id.acceptor(), ECHO);
        let client = spawn_client(addr, id.client_config(), |c| {
            assert_eq!(round_trip(c, b"ping")?, b"ping");
            // The raw socket's end of stream, no close_notify.
            c.sock.shutdown(Shutdown::Write)?;
            // The server closes (without a close_notify of its own, so
            // this end sees a truncation too).
            expect_truncation(c);
            Ok(())
        });
        run_until_joined(lp, "the client", client).expect("client");
        run_until_ended(lp, "connection_lost", &seen);
        let s = seen.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.data, b"ping");
        assert_eq!(s.eof, 0, "a truncation is not an end of stream");
        assert_eq!(
            s.lost_kinds(),
            vec![Some(io::ErrorKind::UnexpectedEof)],
            "{:?}",
            s.lost
        );
    });
}

// ---------------------------------------------------------------------------
// 4. An untrusted certificate

#[test]
fn untrusted_server_certificate_fails_both_sides_and_the_server_keeps_serving() {
    tls_test(|id, lp| {
        // Also for "localhost", but issued by someone the client does not
        // know.
        let stranger = Identity::named("stranger");
        let (addr, server) = serve(lp, id.acceptor(), ECHO);
        let client = hello(lp, addr, &stranger.connector(), b"secret");
        run_until(lp, "both sides to fail", || {
            !client.borrow().failed.is_empty() && !server.borrow().failed.is_empty()
        });
        {
            let c = client.borrow();
            assert_rustls!(
                c.handshake_failure(io::ErrorKind::InvalidData),
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            );
            let s = server.borrow();
            assert_rustls!(
                s.handshake_failure(io::ErrorKind::InvalidData),
                rustls::Error::AlertReceived(_)
            );
            assert!(s.data.is_empty(), "nothing was decrypted");
        }
        assert_served(lp, addr, &id.connector(), b"trusted");
        let s = server.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.failed.len(), 1);
    });
}

// ---------------------------------------------------------------------------
// 5. Handshake timeouts

#[test]
fn server_handshake_timeout_fails_a_silent_client() {
    tls_test(|id, lp| {
        let acceptor = id
            .acceptor()
            .handshake_timeout(Some(Duration::from_millis(200)));
        let (addr, seen) = serve(lp, acceptor, ECHO);
        let start = Instant::now();
        let raw = TcpStream::connect(addr).expect("connect");
        run_until_ended(lp, "the handshake timeout", &seen);
        let elapsed = start.elapsed();
        seen.borrow().handshake_failure(io::ErrorKind::TimedOut);
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        // The server closed the socket.
        raw.set_read_timeout(Some(PATIENCE)).unwrap();
        match (&raw).read(&mut [0u8; 64]) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
        // Only the handshake was timed: a client that completes it is served.
        assert_served(lp, addr, &id.connector(), b"in time");
    });
}

#[test]
fn client_handshake_timeout_against_a_listener_that_never_answers() {
    tls_test(|id, lp| {
        // The kernel completes the TCP handshake; nobody accepts or answers.
        let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = mute.local_addr().unwrap();
        let connector = id
            .connector()
            .handshake_timeout(Some(Duration::from_millis(200)));
        let start = Instant::now();
        let client = hello(lp, addr, &connector, b"unheard");
        run_until_ended(lp, "the client's handshake timeout", &client);
        let elapsed = start.elapsed();
        client.borrow().handshake_failure(io::ErrorKind::TimedOut);
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        // The client hello was sent, and the socket closed after it.
        let (accepted, _) = mute.accept().expect("accept");
        let got = common::read_to_eof(&accepted);
        assert_eq!(got.first(), Some(&0x16), "a TLS handshake record");
    });
}

// ---------------------------------------------------------------------------
// 6. Plain HTTP to the TLS port

#[test]
fn plain_http_to_the_tls_port_fails_the_handshake_and_the_server_keeps_serving() {
    tls_test(|id, lp| {
        let (addr, seen) = serve(lp, id.acceptor(), ECHO);
        let client = spawn_raw(addr, |mut raw| {
            raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut got = Vec::new();
            match raw.read_to_end(&mut got) {
                Ok(_) => Ok(got),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(got),
                Err(e) => Err(e), // a timeout: the server hung
            }
        });
        let answer = run_until_joined(lp, "the HTTP client", client).expect("no answer");
        // An alert record (content type 21), or nothing: never HTTP.
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "answered {:?}",
            String::from_utf8_lossy(&answer)
        );
        run_until_ended(lp, "connection_failed", &seen);
        {
            let s = seen.borrow();
            let e = s.handshake_failure(io::ErrorKind::InvalidData);
            assert!(rustls_source(e).is_some(), "{e:?}");
        }
        assert_served(lp, addr, &id.connector(), b"GET / over TLS");
    });
}

// ---------------------------------------------------------------------------
// 7. ALPN and SNI

#[test]
fn alpn_and_sni_are_seen_on_both_sides() {
    tls_test(|id, lp| {
        let mut config = id.server_config();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let (addr, server) = serve(lp, TlsAcceptor::new(Arc::new(config)), ECHO);
        let mut client_config = id.client_config();
        client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // The address is an IP: the name verified and sent as SNI is the
        // override.
        let connector = TlsConnector::new(Arc::new(client_config)).server_name("localhost");
        let client = hello(lp, addr, &connector, b"GET / HTTP/1.1\r\n\r\n");
        run_until_ended(lp, "the client to finish", &client);
        let c = client.borrow();
        c.assert_clean(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(c.tls[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(c.tls[0].peer_certs.as_deref(), Some(&[id.cert.clone()][..]));
        let s = server.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.tls[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(s.tls[0].sni.as_deref(), Some("localhost"));
        assert_eq!(s.tls[0].peer_certs, None, "no client certificate");
    });
}

#[test]
fn the_host_of_the_address_is_the_default_server_name() {
    tls_test(|id, lp| {
        let (addr, server) = serve(lp, id.acceptor(), ECHO);
        // "localhost:port": the name comes from the address (connect tries
        // each of its addresses; the server is on 127.0.0.1).
        let connector = TlsConnector::new(Arc::new(id.client_config()));
        let by_name = format!("localhost:{}", addr.port());
        let client = connect(lp, &by_name, &connector, Role::Hello(b"by name".to_vec()));
        run_until_ended(lp, "the client to finish", &client);
        client.borrow().assert_clean(b"by name");
        assert_eq!(server.borrow().tls[0].sni.as_deref(), Some("localhost"));

        // "127.0.0.1:port" with no override: the certificate is not valid
        // for that IP address.
        let client = hello(lp, addr, &connector, b"by address");
        run_until_ended(lp, "the client to fail", &client);
        assert_rustls!(
            client
                .borrow()
                .handshake_failure(io::ErrorKind::InvalidData),
            rustls::Error::InvalidCertificate(_)
        );
    });
}

#[test]
fn a_wrong_server_name_fails_verification() {
    tls_test(|id, lp| {
        let (addr, server) = serve(lp, id.acceptor(), ECHO);
        let connector = TlsConnector::new(Arc::new(id.client_config())).server_name("wrong.test");
        let client = hello(lp, addr, &connector, b"misdirected");
        run_until(lp, "both sides to fail", || {
            !client.borrow().failed.is_empty() && !server.borrow().failed.is_empty()
        });
        assert_rustls!(
            client
                .borrow()
                .handshake_failure(io::ErrorKind::InvalidData),
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            )
        );
        let s = server.borrow();
        assert_eq!(s.made, 0);
        assert_eq!(s.failed.len(), 1, "{:?}", s.failed);
    });
}

// ---------------------------------------------------------------------------
// 8. Client certificates

fn mtls_server_config(id: &Identity, pki: &ClientPki) -> ServerConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("CA root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        tls::provider(),
    )
    .build()
    .expect("client verifier");
    ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key())
        .expect("server config")
}

fn client_config_with(
    id: &Identity,
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(id.cert.clone()).expect("root");
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    match cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(vec![cert], key)
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    }
}

/// A connector for "localhost" from [`client_config_with`].
fn connector_with(
    id: &Identity,
    version: &'static rustls::SupportedProtocolVersion,
    cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> TlsConnector {
    TlsConnector::new(Arc::new(client_config_with(id, &[version], cert))).server_name("localhost")
}

#[test]
fn client_certificates_are_required_and_seen() {
    tls_test(|id, lp| {
        let pki = client_pki();
        let mtls = TlsAcceptor::new(Arc::new(mtls_server_config(id, &pki)));
        let (addr, server) = serve(lp, mtls, ECHO);
        let versions: &[&'static rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];

        // TLS 1.2 without a certificate: the server refuses before its
        // Finished, so neither side completes the handshake.
        let connector = connector_with(id, &rustls::version::TLS12, None);
        let client = hello(lp, addr, &connector, b"anonymous 1.2");
        run_until(lp, "both sides to fail (1.2)", || {
            !client.borrow().failed.is_empty() && server.borrow().failed.len() == 1
        });
        {
            assert_rustls!(
                client
                    .borrow()
                    .handshake_failure(io::ErrorKind::InvalidData),
                rustls::Error::AlertReceived(_)
            );
            let s = server.borrow();
            assert_eq!(s.made, 0);
            assert_rustls!(&s.failed[0], rustls::Error::NoCertificatesPresented);
        }

        // TLS 1.3 without a certificate: the client's handshake is done
        // once it sends its (empty) Certificate and Finished, so it gets
        // connection_made; the server's alert then loses its connection.
        // The server's protocol never hears of a connection.
        let connector = connector_with(id, &rustls::version::TLS13, None);
        let client = hello(lp, addr, &connector, b"anonymous 1.3");
        run_until(lp, "both sides to fail (1.3)", || {
            client.borrow().ended() && server.borrow().failed.len() == 2
        });
        {
            let c = client.borrow();
            let error = c
                .lost
                .first()
                .and_then(Option::as_ref)
                .or(c.failed.first())
                .expect("the client's error");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
            assert_rustls!(
                error,
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
            );
            assert!(c.data.is_empty(), "no echo without a certificate");
            let s = server.borrow();
            assert_eq!(s.made, 0);
            assert!(s.lost.is_empty());
            assert_rustls!(&s.failed[1], rustls::Error::NoCertificatesPresented);
        }

        // With the certificate the CA signed: served, and seen.
        for version in versions {
            let key = PrivateKeyDer::Pkcs8(pki.client_key.clone().into());
            let connector = connector_with(id, version, Some((pki.client_cert.clone(), key)));
            assert_served(lp, addr, &connector, b"authenticated");
        }
        let s = server.borrow();
        assert_eq!(s.made, 2);
        assert_eq!(s.failed.len(), 2);
        for info in &s.tls {
            assert_eq!(
                info.peer_certs.as_deref(),
                Some(&[pki.client_cert.clone()][..])
            );
        }
        assert_eq!(
            s.tls.iter().map(|i| i.version).collect::<Vec<_>>(),
            vec![
                Some(ProtocolVersion::TLSv1_3),
                Some(ProtocolVersion::TLSv1_2)
            ]
        );
    });
}

// ---------------------------------------------------------------------------
// 9. STARTTLS

/// A plain server on the loop whose connections play
/// [`Role::StartTlsServer`] with `id`; what they see, and its address.
fn serve_starttls(lp: &mut EventLoop, id: &Identity) -> (Shared, SocketAddr) {
    let seen = Shared::default();
    let role = Role::StartTlsServer(id.acceptor());
    let (_listener, addr) =
        transport::serve_addr(lp, "127.0.0.1:0", Recorder::factory(&seen, role)).expect("serve");
    (seen, addr)
}

/// A plain client on the loop to `addr` playing [`Role::StartTlsClient`];
/// what it will see.
fn connect_starttls(
    lp: &mut EventLoop,
    addr: SocketAddr,
    connector: TlsConnector,
    secret: &'static [u8],
) -> Shared {
    let seen = Shared::default();
    let protocol = Recorder {
        seen: seen.clone(),
        role: Role::StartTlsClient { connector, secret },
    };
    transport::connect(lp, &addr.to_string(), Some(PATIENCE), protocol).expect("connect");
    seen
}

#[test]
fn start_tls_upgrades_both_sides_on_the_loop() {
    tls_test(|id, lp| {
        let (server, addr) = serve_starttls(lp, id);
        let client = connect_starttls(lp, addr, id.connector(), b"the secret, encrypted");
        run_until_both_lost(lp, &client, &server);
        for (side, seen) in [("client", &client), ("server", &server)] {
            let s = seen.borrow();
            assert_eq!(s.made, 1, "{side}");
            assert_eq!(s.tls_started, 1, "{side}");
            assert_eq!(s.already, vec![io::ErrorKind::AlreadyExists], "{side}");
            // `data` is only what came over TLS.
            assert_eq!(s.data, b"the secret, encrypted", "{side}");
            assert_eq!(s.lost_kinds(), vec![None], "{side}");
            assert!(s.failed.is_empty(), "{side}");
        }
        assert_eq!(server.borrow().plain, b"EHLO test\nSTARTTLS\n");
        assert_eq!(client.borrow().plain, b"OK\n");
    });
}

/// The server side against a blocking client that does its own upgrade:
/// what follows "OK\n" on the wire is real TLS.
#[test]
fn start_tls_server_speaks_tls_to_a_blocking_client() {
    tls_test(|id, lp| {
        let (server, addr) = serve_starttls(lp, id);
        let config = Arc::new(id.client_config());
        let client = spawn_raw(addr, |mut raw| {
            raw.write_all(b"STARTTLS\n")?;
            assert_eq!(read_exactly(&mut raw, 3)?, b"OK\n");
            let name = ServerName::try_from("localhost").unwrap();
            let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
            let mut c = rustls::StreamOwned::new(conn, raw);
            let echoed = round_trip(&mut c, b"over tls")?;
            assert!(close_notify_and_read_rest(&mut c)?.is_empty());
            Ok(echoed)
        });
        let echoed = run_until_joined(lp, "the client", client).expect("client");
        assert_eq!(echoed, b"over tls");
        run_until_ended(lp, "connection_lost", &server);
        let s = server.borrow();
        assert_eq!(s.tls_started, 1);
        assert_eq!(s.data, b"over tls");
        assert_eq!(s.lost_kinds(), vec![None]);
    });
}

// ---------------------------------------------------------------------------
// 10. Many concurrent keep-alive clients

const CLIENTS: usize = 200;
const ROUNDS: usize = 3;

#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    bad: Vec<String>,
    lost: usize,
    failed: Vec<io::Error>,
}

/// Sends ROUNDS requests one after another on one connection, each only
/// once the previous reply is back and checked.
struct KeepAlive {
    id: usize,
    round: usize,
    request: Vec<u8>,
    got: Vec<u8>,
    tally: Rc<RefCell<Tally>>,
}

impl KeepAlive {
    fn request(id: usize, round: usize) -> Vec<u8> {
        let len = 1 + (id * 7919 + round * 104_729) % 40_000;
        pattern(len, (id * ROUNDS + round) as u64 + 1)
    }

    fn send(&mut self, t: &mut Transport<'_, Self>) {
        self.request = KeepAlive::request(self.id, self.round);
        self.got.clear();
        t.write(&self.request);
    }
}

impl Protocol for KeepAlive {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        self.send(t);
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() < self.request.len() {
            return;
        }
        if self.got != self.request {
            self.tally.borrow_mut().bad.push(format!(
                "client {} round {}: {} bytes back for {}",
                self.id,
                self.round,
                self.got.len(),
                self.request.len()
            ));
            t.abort();
            return;
        }
        self.round += 1;
        if self.round == ROUNDS {
            self.tally.borrow_mut().ok += 1;
            t.close();
        } else {
            self.send(t);
        }
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        let mut tally = self.tally.borrow_mut();
        tally.lost += 1;
        if let Some(e) = error {
            tally.bad.push(format!("client {}: lost with {e}", self.id));
        }
    }
    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.tally.borrow_mut().failed.push(error);
    }
}

#[test]
fn two_hundred_concurrent_keep_alive_clients() {
    tls_test(|id, lp| {
        #[cfg(unix)]
        common::raise_nofile_limit(4096).expect("RLIMIT_NOFILE");
        let (addr, server) = serve(lp, id.acceptor(), ECHO);
        let connector = id.connector();
        let tally = Rc::new(RefCell::new(Tally::default()));
        for id in 0..CLIENTS {
            tls::connect_tls(
                lp,
                &addr.to_string(),
                Some(PATIENCE),
                &connector,
                KeepAlive {
                    id,
                    round: 0,
                    request: Vec::new(),
                    got: Vec::new(),
                    tally: tally.clone(),
                },
            )
            .expect("connect_tls");
        }
        run_until(lp, "every client to finish", || {
            let t = tally.borrow();
            t.lost + t.failed.len() == CLIENTS
        });
        run_until(lp, "the server side to close", || {
            server.borrow().lost.len() + server.borrow().failed.len() == CLIENTS
        });
        let t = tally.borrow();
        assert!(t.failed.is_empty(), "{:?}", t.failed);
        assert!(t.bad.is_empty(), "{:?}", t.bad);
        assert_eq!(t.ok, CLIENTS);
        let s = server.borrow();
        assert_eq!(s.made, CLIENTS);
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(s.eof, CLIENTS, "each client's close_notify");
        assert_eq!(s.lost_kinds(), vec![None; CLIENTS]);
        let expected: usize = (0..CLIENTS)
            .flat_map(|id| (0..ROUNDS).map(move |r| KeepAlive::request(id, r).len()))
            .sum();
        assert_eq!(s.data.len(), expected);
    });
}

// ---------------------------------------------------------------------------
// 11. TLS 1.2

#[test]
fn a_tls12_only_client_is_served() {
    tls_test(|id, lp| {
        let (addr, server) = serve(lp, id.acceptor(), ECHO);

        // On the loop.
        let connector = connector_with(id, &rustls::version::TLS12, None);
        let client = hello(lp, addr, &connector, &pattern(100_000, 12));
        run_until_ended(lp, "the loop client", &client);
        {
            let c = client.borrow();
            c.assert_clean(&pattern(100_000, 12));
            assert_eq!(c.tls[0].version, Some(ProtocolVersion::TLSv1_2));
        }

        // And a blocking one on a thread.
        let config = client_config_with(id, &[&rustls::version::TLS12], None);
        let thread_client = spawn_client(addr, config, |c| {
            let echoed = round_trip(c, b"one-two")?;
            assert_eq!(c.conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
            close_notify_and_read_rest(c)?;
            Ok(echoed)
        });
        let echoed = run_until_joined(lp, "the blocking client", thread_client).expect("client");
        assert_eq!(echoed, b"one-two");
        run_until(lp, "both server sides to close", || {
            server.borrow().lost.len() == 2
        });
        let s = server.borrow();
        assert_eq!(s.made, 2);
        assert_eq!(
            s.tls.iter().map(|i| i.version).collect::<Vec<_>>(),
            vec![Some(ProtocolVersion::TLSv1_2); 2]
        );
        assert_eq!(s.lost_kinds(), vec![None, None]);
    });
}

// ---------------------------------------------------------------------------
// Reading paused from connection_made

/// A TLS 1.3 client's Finished, its first application data and its
/// close_notify leave in one send, so the server reads them in one read: a
/// protocol that pauses reading in `connection_made` must get neither the
/// data nor the end of stream until it resumes, and then in that order.
#[test]
fn pause_reading_in_connection_made_holds_data_that_came_with_the_handshake() {
    tls_test(|id, lp| {
        let (addr, seen) = serve(lp, id.acceptor(), Role::PausedAtFirst);
        let config = Arc::new(id.client_config());
        let client = thread::spawn(move || -> io::Result<Vec<u8>> {
            let sock = TcpStream::connect(addr)?;
            sock.set_read_timeout(Some(PATIENCE))?;
            let name = ServerName::try_from("localhost").unwrap();
            let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
            let mut s = &sock;
            while conn.wants_write() {
                conn.write_tls(&mut s)?; // ClientHello
            }
            while conn.is_handshaking() {
                if conn.read_tls(&mut s)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                conn.process_new_packets().map_err(io::Error::other)?;
            }
            // Finished is queued; the data and the close_notify go behind
            // it, in one send.
            conn.writer().write_all(b"early bird")?;
            conn.send_close_notify();
            let mut flight = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut flight)?;
            }
            (&sock).write_all(&flight)?;
            let mut c = rustls::StreamOwned::new(conn, sock);
            let mut echoed = Vec::new();
            c.read_to_end(&mut echoed)?; // and the server's close_notify
            Ok(echoed)
        });
        run_until(lp, "connection_made", || seen.borrow().made == 1);
        // Give the loop some turns: a paused connection reads nothing.
        for _ in 0..10 {
            lp.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        {
            let s = seen.borrow();
            assert_eq!(
                String::from_utf8_lossy(&s.data_while_paused),
                "",
                "data_received while reading is paused"
            );
            assert!(s.data.is_empty());
            assert_eq!(s.eof, 0, "eof_received while paused");
            assert!(s.lost.is_empty());
        }
        let token = seen.borrow().tokens[0];
        lp.with_transport(token, |_p, t| t.resume_reading())
            .expect("with_transport");
        let echoed = run_until_joined(lp, "the echo", client).expect("client");
        assert_eq!(echoed, b"early bird");
        run_until_ended(lp, "connection_lost", &seen);
        let s = seen.borrow();
        s.assert_clean(b"early bird");
        assert_eq!(s.eof, 1);
    });
}

// ---------------------------------------------------------------------------
// A failed STARTTLS upgrade, and abort

#[test]
fn a_failed_start_tls_handshake_loses_both_connections_with_the_error() {
    tls_test(|id, lp| {
        let stranger = Identity::named("stranger");
        let (server, addr) = serve_starttls(lp, id);
        // The client does not trust the server.
        let client = connect_starttls(lp, addr, stranger.connector(), b"never sent");
        run_until_both_lost(lp, &client, &server);
        for (side, seen) in [("client", &client), ("server", &server)] {
            let s = seen.borrow();
            assert_eq!(
                s.made, 1,
                "{side}: connection_made was for the plain connection"
            );
            assert_eq!(s.tls_started, 0, "{side}");
            assert!(s.data.is_empty(), "{side}");
            assert_eq!(
                s.lost_kinds(),
                vec![Some(io::ErrorKind::InvalidData)],
                "{side}"
            );
            assert!(s.failed.is_empty(), "{side}");
        }
    });
}

#[test]
fn abort_sends_no_close_notify() {
    tls_test(|id, lp| {
        let (addr, _) = serve(lp, id.acceptor(), Role::SayThenAbort(b"lost"));
        let client = spawn_client(addr, id.client_config(), |c| {
            expect_truncation(c);
            Ok(())
        });
        run_until_joined(lp, "the client", client).expect("client");
    });
}

// ---------------------------------------------------------------------------
// After the handshake: a bad record, and a half-close from the loop

#[test]
fn a_bad_record_after_the_handshake_is_connection_lost_with_invalid_data() {
    tls_test(|id, lp| {
        let (addr, seen) = serve(lp, id.acceptor(), ECHO);
        let client = spawn_client(addr, id.client_config(), |c| {
            assert_eq!(round_trip(c, b"fine")?, b"fine");
            // An application-data record that does not decrypt.
            let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x40];
            forged.extend(pattern(0x40, 99));
            c.sock.write_all(&forged)?;
            // The server's alert.
            let mut rest = Vec::new();
            Ok(c.read_to_end(&mut rest).expect_err("an alert, not an end"))
        });
        let client_error = run_until_joined(lp, "the client", client).expect("client");
        assert_eq!(
            client_error.kind(),
            io::ErrorKind::InvalidData,
            "{client_error}"
        );
        run_until_ended(lp, "connection_lost", &seen);
        let s = seen.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.data, b"fine");
        assert_eq!(s.lost.len(), 1);
        let e = s.lost[0].as_ref().expect("an error");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert_rustls!(e, rustls::Error::DecryptError);
    });
}

#[test]
fn write_eof_on_a_loop_client_is_a_tls_half_close() {
    tls_test(|id, lp| {
        let (addr, server) = serve(lp, id.acceptor(), ECHO);
        let client = connect(lp, &addr.to_string(), &id.connector(), Role::HalfClose);
        run_until_both_lost(lp, &client, &server);
        let c = client.borrow();
        c.assert_clean(b"request, then end of stream");
        assert_eq!(c.eof, 1, "the server's close_notify");
        let s = server.borrow();
        assert_eq!(s.data, b"request, then end of stream");
        assert_eq!(s.eof, 1, "the client's close_notify");
        assert_eq!(s.lost_kinds(), vec![None]);
    });
}

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

use rustls::{ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConfig};

/// How long any one step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The whole test, past which the watchdog aborts the process.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs the loop until `done()` holds; panics after [`PATIENCE`].
fn run_until(lp: &mut EventLoop, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        lp.run_once(Some(Duration::from_millis(50)))
            .expect("run_once");
    }
}

/// Runs the loop until the thread is done, then joins it.
fn run_until_joined<T>(lp: &mut EventLoop, what: &str, thread: JoinHandle<T>) -> T {
    run_until(lp, what, || thread.is_finished());
    thread.join().expect("client thread panicked")
}

/// A loop whose error handler fails the test: TLS failures go to the
/// protocols, never there.
fn quiet_loop() -> EventLoop {
    let mut lp = EventLoop::new().expect("loop");
    lp.set_error_handler(|_lp, failure| panic!("error handler reached: {failure}"));
    lp
}

/// Reproducible bytes: xorshift from `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
// Protocols that record what they see

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

/// What protocols saw, shared with the test.
#[derive(Default, Debug)]
struct Seen {
    made: usize,
    tls: Vec<TlsInfo>,
    data: Vec<u8>,
    eof: usize,
    lost: Vec<Option<io::Error>>,
    failed: Vec<io::Error>,
    paused: usize,
    resumed: usize,
    max_buffered: usize,
    tokens: Vec<StreamToken<Echo>>,
    tokens_paused: Vec<StreamToken<PausedAtFirst>>,
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
}

/// The rustls error an I/O error carries, if any.
fn rustls_source(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A server: echoes with asyncio's flow control, and records everything.
struct Echo {
    seen: Shared,
    /// What `eof_received` returns (and writes, if anything).
    keep_open_on_eof: Option<&'static [u8]>,
}

impl Echo {
    fn factory(seen: &Shared) -> impl FnMut() -> Echo + 'static {
        let seen = seen.clone();
        move || Echo {
            seen: seen.clone(),
            keep_open_on_eof: None,
        }
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        let info = tls_info(t.tls());
        let mut seen = self.seen.borrow_mut();
        seen.made += 1;
        seen.tls.push(info);
        seen.tokens.push(t.token());
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        assert!(t.tls().is_some(), "plaintext before the handshake is done");
        t.write(data);
        let mut seen = self.seen.borrow_mut();
        seen.data.extend_from_slice(data);
        seen.max_buffered = seen.max_buffered.max(t.write_buffer_size());
    }
    fn eof_received(&mut self, t: &mut Transport<'_, Self>) -> bool {
        self.seen.borrow_mut().eof += 1;
        match self.keep_open_on_eof {
            Some(reply) => {
                t.write(reply);
                true
            }
            None => false,
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
        t.pause_reading();
    }
    fn resume_writing(&mut self, t: &mut Transport<'_, Self>) {
        self.seen.borrow_mut().resumed += 1;
        t.resume_reading();
    }
}

/// A client on the loop: sends `msg` once the handshake is done, closes
/// once it has it back.
struct Hello {
    msg: Vec<u8>,
    seen: Shared,
}

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        let info = tls_info(t.tls());
        {
            let mut seen = self.seen.borrow_mut();
            seen.made += 1;
            seen.tls.push(info);
        }
        t.write(&self.msg);
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        seen.data.extend_from_slice(data);
        if seen.data.len() >= self.msg.len() {
            t.close();
        }
    }
    fn eof_received(&mut self, _t: &mut Transport<'_, Self>) -> bool {
        self.seen.borrow_mut().eof += 1;
        false
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error);
    }
    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.seen.borrow_mut().failed.push(error);
    }
}

/// Starts a [`Hello`] client to `addr` and returns what it will see.
fn hello(lp: &mut EventLoop, addr: SocketAddr, connector: &TlsConnector, msg: &[u8]) -> Shared {
    let seen = Shared::default();
    tls::connect_tls(
        lp,
        &addr.to_string(),
        Some(PATIENCE),
        connector,
        Hello {
            msg: msg.to_vec(),
            seen: seen.clone(),
        },
    )
    .expect("connect_tls");
    seen
}

/// Runs a [`Hello`] to completion and checks that it got its echo back.
fn assert_served(lp: &mut EventLoop, addr: SocketAddr, connector: &TlsConnector, msg: &[u8]) {
    let seen = hello(lp, addr, connector, msg);
    run_until(lp, "a good client to be served", || {
        let s = seen.borrow();
        !s.lost.is_empty() || !s.failed.is_empty()
    });
    let s = seen.borrow();
    assert!(s.failed.is_empty(), "good client failed: {:?}", s.failed);
    assert_eq!(s.made, 1);
    assert_eq!(s.data, msg);
    assert_eq!(s.lost_kinds(), vec![None]);
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

/// Reads exactly `len` bytes of plaintext.
fn read_exactly(c: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    c.read_exact(&mut buf)?;
    Ok(buf)
}

// ---------------------------------------------------------------------------
// 1. Large echo with flow control

/// One 8 MiB stream each way through a rustls client whose connection is
/// shared by a writer and a reader thread (never locked across a blocking
/// socket call). The reader starts only once the server has paused, so the
/// server's flow control is exercised for certain.
#[test]
fn echo_8_mib_each_way_with_flow_control() {
    common::with_timeout(WATCHDOG, || {
        const TOTAL: usize = 8 << 20;
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let (_server, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), Echo::factory(&seen))
                .expect("serve_tls");

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

        run_until(&mut lp, "the server to pause writing", || {
            seen.borrow().paused > 0
        });
        go.send(()).unwrap();
        let got = run_until_joined(&mut lp, "the client to finish", client).expect("client");
        assert!(
            got.len() == TOTAL && got == *data,
            "echoed {} of {TOTAL} bytes, or corrupted (first difference at {:?})",
            got.len(),
            got.iter().zip(data.iter()).position(|(a, b)| a != b)
        );
        run_until(&mut lp, "connection_lost", || {
            !seen.borrow().lost.is_empty()
        });
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

/// Says `bye`, closes.
struct SayBye;

impl Protocol for SayBye {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        t.write(b"bye");
        t.close();
    }
    fn data_received(&mut self, _t: &mut Transport<'_, Self>, _data: &[u8]) {}
}

#[test]
fn close_sends_close_notify_and_the_client_reads_a_clean_end() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let (_server, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), || SayBye).expect("serve");
        let config = id.client_config();
        let client = thread::spawn(move || -> io::Result<(Vec<u8>, usize)> {
            let mut c = blocking_client(addr, config, "localhost");
            let mut got = Vec::new();
            // A TCP end of stream without close_notify would make this
            // fail with UnexpectedEof.
            c.read_to_end(&mut got)?;
            // And reading again still says a clean end.
            let again = c.read(&mut [0u8; 16])?;
            Ok((got, again))
        });
        let (got, again) = run_until_joined(&mut lp, "the client", client).expect("client");
        assert_eq!(got, b"bye");
        assert_eq!(again, 0);
    });
}

#[test]
fn client_close_notify_is_eof_received_and_the_server_still_writes_then_write_eof() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let factory_seen = seen.clone();
        let (_server, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), move || Echo {
                seen: factory_seen.clone(),
                keep_open_on_eof: Some(b"[eof seen]"),
            })
            .expect("serve");
        let config = id.client_config();
        let client = thread::spawn(move || -> io::Result<Vec<u8>> {
            let mut c = blocking_client(addr, config, "localhost");
            c.write_all(b"hello")?;
            let echoed = read_exactly(&mut c, 5)?;
            assert_eq!(echoed, b"hello");
            c.conn.send_close_notify();
            c.flush()?;
            let mut rest = Vec::new();
            c.read_to_end(&mut rest)?; // Err(UnexpectedEof) without close_notify
            Ok(rest)
        });
        run_until(&mut lp, "eof_received", || seen.borrow().eof == 1);
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
        let rest = run_until_joined(&mut lp, "the client", client).expect("client");
        assert_eq!(rest, b"[eof seen][after eof]");
        run_until(&mut lp, "connection_lost", || {
            !seen.borrow().lost.is_empty()
        });
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
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let (_server, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), Echo::factory(&seen))
                .expect("serve");
        let config = id.client_config();
        let client = thread::spawn(move || -> io::Result<()> {
            let mut c = blocking_client(addr, config, "localhost");
            c.write_all(b"ping")?;
            assert_eq!(read_exactly(&mut c, 4)?, b"ping");
            // The raw socket's end of stream, no close_notify.
            c.sock.shutdown(Shutdown::Write)?;
            // The server closes (without a close_notify of its own, so
            // this end sees a truncation too).
            let mut rest = Vec::new();
            match c.read_to_end(&mut rest) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                other => panic!("expected a truncation, got {other:?} ({rest:?})"),
            }
            Ok(())
        });
        run_until_joined(&mut lp, "the client", client).expect("client");
        run_until(&mut lp, "connection_lost", || {
            !seen.borrow().lost.is_empty()
        });
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
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        // Also for "localhost", but issued by someone the client does not
        // know.
        let stranger = Identity::named("stranger");
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            id.acceptor(),
            Echo::factory(&server),
        )
        .expect("serve");
        let client = hello(&mut lp, addr, &stranger.connector(), b"secret");
        run_until(&mut lp, "both sides to fail", || {
            !client.borrow().failed.is_empty() && !server.borrow().failed.is_empty()
        });
        {
            let c = client.borrow();
            assert_eq!(c.made, 0);
            assert!(c.lost.is_empty());
            assert_eq!(c.failed.len(), 1);
            let e = &c.failed[0];
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            assert!(
                matches!(
                    rustls_source(e),
                    Some(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::UnknownIssuer
                    ))
                ),
                "{e:?}"
            );
            let s = server.borrow();
            assert_eq!(s.made, 0);
            assert!(s.lost.is_empty());
            assert_eq!(s.failed.len(), 1);
            let e = &s.failed[0];
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            assert!(
                matches!(rustls_source(e), Some(rustls::Error::AlertReceived(_))),
                "{e:?}"
            );
            assert!(s.data.is_empty(), "nothing was decrypted");
        }
        assert_served(&mut lp, addr, &id.connector(), b"trusted");
        let s = server.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.failed.len(), 1);
    });
}

// ---------------------------------------------------------------------------
// 5. Handshake timeouts

#[test]
fn server_handshake_timeout_fails_a_silent_client() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let acceptor = id
            .acceptor()
            .handshake_timeout(Some(Duration::from_millis(200)));
        let (_listener, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", acceptor, Echo::factory(&seen))
                .expect("serve");
        let start = Instant::now();
        let raw = TcpStream::connect(addr).expect("connect");
        run_until(&mut lp, "the handshake timeout", || {
            !seen.borrow().failed.is_empty()
        });
        let elapsed = start.elapsed();
        {
            let s = seen.borrow();
            assert_eq!(
                s.failed_kinds(),
                vec![io::ErrorKind::TimedOut],
                "{:?}",
                s.failed
            );
            assert_eq!(s.made, 0);
            assert!(s.lost.is_empty());
        }
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        // The server closed the socket.
        raw.set_read_timeout(Some(PATIENCE)).unwrap();
        match (&raw).read(&mut [0u8; 64]) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
        // Only the handshake was timed: a client that completes it is served.
        assert_served(&mut lp, addr, &id.connector(), b"in time");
    });
}

#[test]
fn client_handshake_timeout_against_a_listener_that_never_answers() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        // The kernel completes the TCP handshake; nobody accepts or answers.
        let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = mute.local_addr().unwrap();
        let connector = id
            .connector()
            .handshake_timeout(Some(Duration::from_millis(200)));
        let start = Instant::now();
        let client = hello(&mut lp, addr, &connector, b"unheard");
        run_until(&mut lp, "the client's handshake timeout", || {
            !client.borrow().failed.is_empty()
        });
        let elapsed = start.elapsed();
        let c = client.borrow();
        assert_eq!(
            c.failed_kinds(),
            vec![io::ErrorKind::TimedOut],
            "{:?}",
            c.failed
        );
        assert_eq!(c.made, 0);
        assert!(c.lost.is_empty());
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
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let (_listener, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), Echo::factory(&seen))
                .expect("serve");
        let client = thread::spawn(move || -> io::Result<Vec<u8>> {
            let mut raw = TcpStream::connect(addr)?;
            raw.set_read_timeout(Some(PATIENCE))?;
            raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut got = Vec::new();
            match raw.read_to_end(&mut got) {
                Ok(_) => Ok(got),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(got),
                Err(e) => Err(e), // a timeout: the server hung
            }
        });
        let answer = run_until_joined(&mut lp, "the HTTP client", client).expect("no answer");
        // An alert record (content type 21), or nothing: never HTTP.
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "answered {:?}",
            String::from_utf8_lossy(&answer)
        );
        run_until(&mut lp, "connection_failed", || {
            !seen.borrow().failed.is_empty()
        });
        {
            let s = seen.borrow();
            assert_eq!(
                s.failed_kinds(),
                vec![io::ErrorKind::InvalidData],
                "{:?}",
                s.failed
            );
            assert!(rustls_source(&s.failed[0]).is_some(), "{:?}", s.failed);
            assert_eq!(s.made, 0);
            assert!(s.lost.is_empty());
        }
        assert_served(&mut lp, addr, &id.connector(), b"GET / over TLS");
    });
}

// ---------------------------------------------------------------------------
// 7. ALPN and SNI

#[test]
fn alpn_and_sni_are_seen_on_both_sides() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let mut config = id.server_config();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            TlsAcceptor::new(Arc::new(config)),
            Echo::factory(&server),
        )
        .expect("serve");
        let mut client_config = id.client_config();
        client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // The address is an IP: the name verified and sent as SNI is the
        // override.
        let connector = TlsConnector::new(Arc::new(client_config)).server_name("localhost");
        let client = hello(&mut lp, addr, &connector, b"GET / HTTP/1.1\r\n\r\n");
        run_until(&mut lp, "the client to finish", || {
            !client.borrow().lost.is_empty() || !client.borrow().failed.is_empty()
        });
        let c = client.borrow();
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        assert_eq!(c.data, b"GET / HTTP/1.1\r\n\r\n");
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
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            id.acceptor(),
            Echo::factory(&server),
        )
        .expect("serve");
        // "localhost:port": the name comes from the address (connect tries
        // each of its addresses; the server is on 127.0.0.1).
        let connector = TlsConnector::new(Arc::new(id.client_config()));
        let client = Shared::default();
        tls::connect_tls(
            &mut lp,
            &format!("localhost:{}", addr.port()),
            Some(PATIENCE),
            &connector,
            Hello {
                msg: b"by name".to_vec(),
                seen: client.clone(),
            },
        )
        .expect("connect_tls");
        run_until(&mut lp, "the client to finish", || {
            !client.borrow().lost.is_empty() || !client.borrow().failed.is_empty()
        });
        assert!(client.borrow().failed.is_empty(), "{:?}", client.borrow());
        assert_eq!(client.borrow().data, b"by name");
        assert_eq!(server.borrow().tls[0].sni.as_deref(), Some("localhost"));

        // "127.0.0.1:port" with no override: the certificate is not valid
        // for that IP address.
        let client = hello(&mut lp, addr, &connector, b"by address");
        run_until(&mut lp, "the client to fail", || {
            !client.borrow().failed.is_empty()
        });
        let c = client.borrow();
        assert_eq!(c.made, 0);
        assert!(
            matches!(
                rustls_source(&c.failed[0]),
                Some(rustls::Error::InvalidCertificate(_))
            ),
            "{:?}",
            c.failed
        );
    });
}

#[test]
fn a_wrong_server_name_fails_verification() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            id.acceptor(),
            Echo::factory(&server),
        )
        .expect("serve");
        let connector = TlsConnector::new(Arc::new(id.client_config())).server_name("wrong.test");
        let client = hello(&mut lp, addr, &connector, b"misdirected");
        run_until(&mut lp, "both sides to fail", || {
            !client.borrow().failed.is_empty() && !server.borrow().failed.is_empty()
        });
        let c = client.borrow();
        assert_eq!(c.made, 0);
        assert!(c.lost.is_empty());
        assert_eq!(c.failed_kinds(), vec![io::ErrorKind::InvalidData]);
        assert!(
            matches!(
                rustls_source(&c.failed[0]),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{:?}",
            c.failed
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

#[test]
fn client_certificates_are_required_and_seen() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let pki = client_pki();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            TlsAcceptor::new(Arc::new(mtls_server_config(&id, &pki))),
            Echo::factory(&server),
        )
        .expect("serve");
        let versions: &[&'static rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];

        // TLS 1.2 without a certificate: the server refuses before its
        // Finished, so neither side completes the handshake.
        let connector = TlsConnector::new(Arc::new(client_config_with(
            &id,
            &[&rustls::version::TLS12],
            None,
        )))
        .server_name("localhost");
        let client = hello(&mut lp, addr, &connector, b"anonymous 1.2");
        run_until(&mut lp, "both sides to fail (1.2)", || {
            !client.borrow().failed.is_empty() && server.borrow().failed.len() == 1
        });
        {
            let c = client.borrow();
            assert_eq!(c.made, 0);
            assert!(c.lost.is_empty());
            assert_eq!(c.failed_kinds(), vec![io::ErrorKind::InvalidData]);
            assert!(
                matches!(
                    rustls_source(&c.failed[0]),
                    Some(rustls::Error::AlertReceived(_))
                ),
                "{:?}",
                c.failed
            );
            let s = server.borrow();
            assert_eq!(s.made, 0);
            assert!(
                matches!(
                    rustls_source(&s.failed[0]),
                    Some(rustls::Error::NoCertificatesPresented)
                ),
                "{:?}",
                s.failed
            );
        }

        // TLS 1.3 without a certificate: the client's handshake is done
        // once it sends its (empty) Certificate and Finished, so it gets
        // connection_made; the server's alert then loses its connection.
        // The server's protocol never hears of a connection.
        let connector = TlsConnector::new(Arc::new(client_config_with(
            &id,
            &[&rustls::version::TLS13],
            None,
        )))
        .server_name("localhost");
        let client = hello(&mut lp, addr, &connector, b"anonymous 1.3");
        run_until(&mut lp, "both sides to fail (1.3)", || {
            let c = client.borrow();
            (!c.failed.is_empty() || !c.lost.is_empty()) && server.borrow().failed.len() == 2
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
            assert!(
                matches!(
                    rustls_source(error),
                    Some(rustls::Error::AlertReceived(
                        rustls::AlertDescription::CertificateRequired
                    ))
                ),
                "{error:?}"
            );
            assert!(c.data.is_empty(), "no echo without a certificate");
            let s = server.borrow();
            assert_eq!(s.made, 0);
            assert!(s.lost.is_empty());
            assert!(
                matches!(
                    rustls_source(&s.failed[1]),
                    Some(rustls::Error::NoCertificatesPresented)
                ),
                "{:?}",
                s.failed
            );
        }

        // With the certificate the CA signed: served, and seen.
        for version in versions {
            let config = client_config_with(
                &id,
                &[*version],
                Some((
                    pki.client_cert.clone(),
                    PrivateKeyDer::Pkcs8(pki.client_key.clone().into()),
                )),
            );
            let connector = TlsConnector::new(Arc::new(config)).server_name("localhost");
            assert_served(&mut lp, addr, &connector, b"authenticated");
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

/// What a STARTTLS side saw.
#[derive(Default, Debug)]
struct StartTlsSeen {
    made: usize,
    plain: Vec<u8>,
    tls_started: usize,
    already: Vec<io::ErrorKind>,
    secret: Vec<u8>,
    secret_over_tls: bool,
    lost: Vec<Option<io::ErrorKind>>,
    failed: Vec<io::ErrorKind>,
}

/// A line protocol: "STARTTLS\n" is answered "OK\n" and upgrades; what
/// comes after the handshake is echoed.
struct StartTlsServer {
    acceptor: TlsAcceptor,
    seen: Rc<RefCell<StartTlsSeen>>,
}

impl Protocol for StartTlsServer {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        assert!(t.tls().is_none());
        self.seen.borrow_mut().made += 1;
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        if t.tls().is_none() {
            seen.plain.extend_from_slice(data);
            if seen.plain.ends_with(b"STARTTLS\n") {
                t.write(b"OK\n");
                t.start_tls_server(&self.acceptor)
                    .expect("start_tls_server");
            }
        } else {
            assert!(seen.tls_started > 0, "data before tls_started");
            seen.secret_over_tls = true;
            seen.secret.extend_from_slice(data);
            t.write(data);
        }
    }
    fn tls_started(&mut self, t: &mut Transport<'_, Self>) {
        let mut seen = self.seen.borrow_mut();
        seen.tls_started += 1;
        assert!(t.tls().is_some_and(|c| !c.is_handshaking()));
        if let Err(e) = t.start_tls_server(&self.acceptor) {
            seen.already.push(e.kind());
        }
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error.map(|e| e.kind()));
    }
    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.seen.borrow_mut().failed.push(error.kind());
    }
}

/// Asks for STARTTLS, upgrades on "OK\n", sends a secret over TLS and
/// closes once it is echoed.
struct StartTlsClient {
    connector: TlsConnector,
    secret: &'static [u8],
    seen: Rc<RefCell<StartTlsSeen>>,
}

impl Protocol for StartTlsClient {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        assert!(t.tls().is_none());
        self.seen.borrow_mut().made += 1;
        t.write(b"EHLO test\nSTARTTLS\n");
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        if t.tls().is_none() {
            seen.plain.extend_from_slice(data);
            if seen.plain == b"OK\n" {
                t.start_tls_client(&self.connector, "localhost")
                    .expect("start_tls_client");
            }
        } else {
            seen.secret_over_tls = true;
            seen.secret.extend_from_slice(data);
            if seen.secret.len() >= self.secret.len() {
                t.close();
            }
        }
    }
    fn tls_started(&mut self, t: &mut Transport<'_, Self>) {
        let mut seen = self.seen.borrow_mut();
        seen.tls_started += 1;
        assert!(t.tls().is_some_and(|c| !c.is_handshaking()));
        if let Err(e) = t.start_tls_client(&self.connector, "localhost") {
            seen.already.push(e.kind());
        }
        t.write(self.secret);
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error.map(|e| e.kind()));
    }
    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.seen.borrow_mut().failed.push(error.kind());
    }
}

fn serve_starttls(lp: &mut EventLoop, id: &Identity) -> (Rc<RefCell<StartTlsSeen>>, SocketAddr) {
    let seen = Rc::new(RefCell::new(StartTlsSeen::default()));
    let factory_seen = seen.clone();
    let acceptor = id.acceptor();
    let (_listener, addr) = transport::serve_addr(lp, "127.0.0.1:0", move || StartTlsServer {
        acceptor: acceptor.clone(),
        seen: factory_seen.clone(),
    })
    .expect("serve");
    (seen, addr)
}

#[test]
fn start_tls_upgrades_both_sides_on_the_loop() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let (server, addr) = serve_starttls(&mut lp, &id);
        let client = Rc::new(RefCell::new(StartTlsSeen::default()));
        transport::connect(
            &mut lp,
            &addr.to_string(),
            Some(PATIENCE),
            StartTlsClient {
                connector: id.connector(),
                secret: b"the secret, encrypted",
                seen: client.clone(),
            },
        )
        .expect("connect");
        run_until(&mut lp, "both sides to close", || {
            !client.borrow().lost.is_empty() && !server.borrow().lost.is_empty()
        });
        for (side, seen) in [("client", &client), ("server", &server)] {
            let s = seen.borrow();
            assert_eq!(s.made, 1, "{side}");
            assert_eq!(s.tls_started, 1, "{side}");
            assert_eq!(s.already, vec![io::ErrorKind::AlreadyExists], "{side}");
            assert!(s.secret_over_tls, "{side}");
            assert_eq!(s.secret, b"the secret, encrypted", "{side}");
            assert_eq!(s.lost, vec![None], "{side}");
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
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let (server, addr) = serve_starttls(&mut lp, &id);
        let config = Arc::new(id.client_config());
        let client = thread::spawn(move || -> io::Result<Vec<u8>> {
            let mut raw = TcpStream::connect(addr)?;
            raw.set_read_timeout(Some(PATIENCE))?;
            raw.write_all(b"STARTTLS\n")?;
            assert_eq!(read_exactly(&mut raw, 3)?, b"OK\n");
            let name = ServerName::try_from("localhost").unwrap();
            let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
            let mut c = rustls::StreamOwned::new(conn, raw);
            c.write_all(b"over tls")?;
            let echoed = read_exactly(&mut c, 8)?;
            c.conn.send_close_notify();
            c.flush()?;
            let mut rest = Vec::new();
            c.read_to_end(&mut rest)?; // the server's close_notify
            assert!(rest.is_empty());
            Ok(echoed)
        });
        let echoed = run_until_joined(&mut lp, "the client", client).expect("client");
        assert_eq!(echoed, b"over tls");
        run_until(&mut lp, "connection_lost", || {
            !server.borrow().lost.is_empty()
        });
        let s = server.borrow();
        assert_eq!(s.tls_started, 1);
        assert_eq!(s.secret, b"over tls");
        assert_eq!(s.lost, vec![None]);
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
    common::with_timeout(WATCHDOG, || {
        #[cfg(unix)]
        common::raise_nofile_limit(4096).expect("RLIMIT_NOFILE");
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            id.acceptor(),
            Echo::factory(&server),
        )
        .expect("serve");
        let connector = id.connector();
        let tally = Rc::new(RefCell::new(Tally::default()));
        for id in 0..CLIENTS {
            tls::connect_tls(
                &mut lp,
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
        run_until(&mut lp, "every client to finish", || {
            let t = tally.borrow();
            t.lost + t.failed.len() == CLIENTS
        });
        run_until(&mut lp, "the server side to close", || {
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
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            id.acceptor(),
            Echo::factory(&server),
        )
        .expect("serve");

        // On the loop.
        let config = client_config_with(&id, &[&rustls::version::TLS12], None);
        let connector = TlsConnector::new(Arc::new(config.clone())).server_name("localhost");
        let client = hello(&mut lp, addr, &connector, &pattern(100_000, 12));
        run_until(&mut lp, "the loop client", || {
            !client.borrow().lost.is_empty() || !client.borrow().failed.is_empty()
        });
        {
            let c = client.borrow();
            assert!(c.failed.is_empty(), "{:?}", c.failed);
            assert_eq!(c.data, pattern(100_000, 12));
            assert_eq!(c.tls[0].version, Some(ProtocolVersion::TLSv1_2));
            assert_eq!(c.lost_kinds(), vec![None]);
        }

        // And a blocking one on a thread.
        let thread_client = thread::spawn(move || -> io::Result<Vec<u8>> {
            let mut c = blocking_client(addr, config, "localhost");
            c.write_all(b"one-two")?;
            let echoed = read_exactly(&mut c, 7)?;
            assert_eq!(c.conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
            c.conn.send_close_notify();
            c.flush()?;
            let mut rest = Vec::new();
            c.read_to_end(&mut rest)?;
            Ok(echoed)
        });
        let echoed =
            run_until_joined(&mut lp, "the blocking client", thread_client).expect("client");
        assert_eq!(echoed, b"one-two");
        run_until(&mut lp, "both server sides to close", || {
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

/// Pauses reading as soon as it is made; echoes once resumed.
struct PausedAtFirst {
    seen: Shared,
    data_while_paused: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for PausedAtFirst {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        t.pause_reading();
        self.seen.borrow_mut().made += 1;
        self.seen.borrow_mut().tokens_paused.push(t.token());
    }
    fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
        if !t.is_reading() {
            self.data_while_paused.borrow_mut().extend_from_slice(data);
        }
        self.seen.borrow_mut().data.extend_from_slice(data);
        t.write(data);
    }
    fn eof_received(&mut self, t: &mut Transport<'_, Self>) -> bool {
        assert!(t.is_reading(), "eof_received while reading is paused");
        let mut seen = self.seen.borrow_mut();
        assert!(!seen.data.is_empty(), "eof_received before the data");
        seen.eof += 1;
        false
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error);
    }
    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.seen.borrow_mut().failed.push(error);
    }
}

/// A TLS 1.3 client's Finished, its first application data and its
/// close_notify leave in one send, so the server reads them in one read: a
/// protocol that pauses reading in `connection_made` must get neither the
/// data nor the end of stream until it resumes, and then in that order.
#[test]
fn pause_reading_in_connection_made_holds_data_that_came_with_the_handshake() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let while_paused = Rc::new(RefCell::new(Vec::new()));
        let (factory_seen, factory_paused) = (seen.clone(), while_paused.clone());
        let (_listener, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), move || {
                PausedAtFirst {
                    seen: factory_seen.clone(),
                    data_while_paused: factory_paused.clone(),
                }
            })
            .expect("serve");
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
        run_until(&mut lp, "connection_made", || seen.borrow().made == 1);
        // Give the loop some turns: a paused connection reads nothing.
        for _ in 0..10 {
            lp.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        assert_eq!(
            String::from_utf8_lossy(&while_paused.borrow()),
            "",
            "data_received while reading is paused"
        );
        assert!(seen.borrow().data.is_empty());
        assert_eq!(seen.borrow().eof, 0, "eof_received while paused");
        assert!(seen.borrow().lost.is_empty());
        let token = seen.borrow().tokens_paused[0];
        lp.with_transport(token, |_p, t| t.resume_reading())
            .expect("with_transport");
        let echoed = run_until_joined(&mut lp, "the echo", client).expect("client");
        assert_eq!(echoed, b"early bird");
        run_until(&mut lp, "connection_lost", || {
            !seen.borrow().lost.is_empty()
        });
        let s = seen.borrow();
        assert_eq!(s.data, b"early bird");
        assert_eq!(s.eof, 1);
        assert_eq!(s.lost_kinds(), vec![None]);
    });
}

// ---------------------------------------------------------------------------
// A failed STARTTLS upgrade, and abort

#[test]
fn a_failed_start_tls_handshake_loses_both_connections_with_the_error() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let stranger = Identity::named("stranger");
        let mut lp = quiet_loop();
        let (server, addr) = serve_starttls(&mut lp, &id);
        let client = Rc::new(RefCell::new(StartTlsSeen::default()));
        transport::connect(
            &mut lp,
            &addr.to_string(),
            Some(PATIENCE),
            StartTlsClient {
                connector: stranger.connector(), // does not trust the server
                secret: b"never sent",
                seen: client.clone(),
            },
        )
        .expect("connect");
        run_until(&mut lp, "both sides to be lost", || {
            !client.borrow().lost.is_empty() && !server.borrow().lost.is_empty()
        });
        for (side, seen) in [("client", &client), ("server", &server)] {
            let s = seen.borrow();
            assert_eq!(
                s.made, 1,
                "{side}: connection_made was for the plain connection"
            );
            assert_eq!(s.tls_started, 0, "{side}");
            assert!(s.secret.is_empty(), "{side}");
            assert_eq!(s.lost, vec![Some(io::ErrorKind::InvalidData)], "{side}");
            assert!(s.failed.is_empty(), "{side}");
        }
    });
}

/// Aborts as soon as it is made.
struct AbortAtOnce;

impl Protocol for AbortAtOnce {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        t.write(b"lost");
        t.abort();
    }
    fn data_received(&mut self, _t: &mut Transport<'_, Self>, _data: &[u8]) {}
}

#[test]
fn abort_sends_no_close_notify() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let (_listener, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), || AbortAtOnce)
                .expect("serve");
        let config = id.client_config();
        let client = thread::spawn(move || -> io::Result<()> {
            let mut c = blocking_client(addr, config, "localhost");
            let mut got = Vec::new();
            match c.read_to_end(&mut got) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
                other => panic!("expected a truncation, got {other:?} after {got:?}"),
            }
        });
        run_until_joined(&mut lp, "the client", client).expect("client");
    });
}

// ---------------------------------------------------------------------------
// After the handshake: a bad record, and a half-close from the loop

#[test]
fn a_bad_record_after_the_handshake_is_connection_lost_with_invalid_data() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let seen = Shared::default();
        let (_listener, addr) =
            tls::serve_tls_addr(&mut lp, "127.0.0.1:0", id.acceptor(), Echo::factory(&seen))
                .expect("serve");
        let config = id.client_config();
        let client = thread::spawn(move || -> io::Result<io::Error> {
            let mut c = blocking_client(addr, config, "localhost");
            c.write_all(b"fine")?;
            assert_eq!(read_exactly(&mut c, 4)?, b"fine");
            // An application-data record that does not decrypt.
            let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x40];
            forged.extend(pattern(0x40, 99));
            c.sock.write_all(&forged)?;
            // The server's alert.
            let mut rest = Vec::new();
            Ok(c.read_to_end(&mut rest).expect_err("an alert, not an end"))
        });
        let client_error = run_until_joined(&mut lp, "the client", client).expect("client");
        assert_eq!(
            client_error.kind(),
            io::ErrorKind::InvalidData,
            "{client_error}"
        );
        run_until(&mut lp, "connection_lost", || {
            !seen.borrow().lost.is_empty()
        });
        let s = seen.borrow();
        assert_eq!(s.made, 1);
        assert_eq!(s.data, b"fine");
        assert_eq!(s.lost.len(), 1);
        let e = s.lost[0].as_ref().expect("an error");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(
            matches!(rustls_source(e), Some(rustls::Error::DecryptError)),
            "{e:?}"
        );
    });
}

/// Sends a request, half-closes (close_notify, then the TCP write side),
/// and reads the reply to the server's close_notify.
struct HalfClose {
    seen: Shared,
}

impl Protocol for HalfClose {
    fn connection_made(&mut self, t: &mut Transport<'_, Self>) {
        t.write(b"request, then end of stream");
        t.write_eof();
        t.write(b"ignored");
        self.seen.borrow_mut().made += 1;
    }
    fn data_received(&mut self, _t: &mut Transport<'_, Self>, data: &[u8]) {
        self.seen.borrow_mut().data.extend_from_slice(data);
    }
    fn eof_received(&mut self, _t: &mut Transport<'_, Self>) -> bool {
        self.seen.borrow_mut().eof += 1;
        true // closes by itself: both directions have ended
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_, Self>, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error);
    }
    fn connection_failed(&mut self, _lp: &mut EventLoop, error: io::Error) {
        self.seen.borrow_mut().failed.push(error);
    }
}

#[test]
fn write_eof_on_a_loop_client_is_a_tls_half_close() {
    common::with_timeout(WATCHDOG, || {
        let id = Identity::localhost();
        let mut lp = quiet_loop();
        let server = Shared::default();
        let (_listener, addr) = tls::serve_tls_addr(
            &mut lp,
            "127.0.0.1:0",
            id.acceptor(),
            Echo::factory(&server),
        )
        .expect("serve");
        let client = Shared::default();
        tls::connect_tls(
            &mut lp,
            &addr.to_string(),
            Some(PATIENCE),
            &id.connector(),
            HalfClose {
                seen: client.clone(),
            },
        )
        .expect("connect_tls");
        run_until(&mut lp, "both sides to close", || {
            !client.borrow().lost.is_empty() && !server.borrow().lost.is_empty()
        });
        let c = client.borrow();
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        assert_eq!(c.data, b"request, then end of stream");
        assert_eq!(c.eof, 1, "the server's close_notify");
        assert_eq!(c.lost_kinds(), vec![None]);
        let s = server.borrow();
        assert_eq!(s.data, b"request, then end of stream");
        assert_eq!(s.eof, 1, "the client's close_notify");
        assert_eq!(s.lost_kinds(), vec![None]);
    });
}

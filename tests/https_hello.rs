//! examples/https_hello.rs as a real process, driven by rustls clients
//! written here, by `curl --cacert`, Python's `ssl` module and
//! `openssl s_client`. The server makes a self-signed certificate at start
//! (`--self-signed`) and writes it where the clients are told to trust it.
//!
//! Every wait is bounded: reads time out after [`PATIENCE`], and the
//! timeout tests use short timeouts set by the server's flags.
#![cfg(all(feature = "tls", feature = "signals"))]

mod example_util;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use example_util::http_client::{read_until_closed, Client, PATIENCE};
use example_util::{curl, python3, run_curl, run_python, Server};
use selectloop::transport::tls::rustls::pki_types::pem::PemObject;
use selectloop::transport::tls::rustls::{ClientConnection, StreamOwned};
use selectloop::transport::tls::{self, CertificateDer, ServerName};

/// A TLS client's stream: rustls over a blocking `TcpStream`.
type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A running `https_hello` and the certificate it serves (its own CA).
struct Https {
    server: Server,
    ca: PathBuf,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca);
    }
}

/// Starts `https_hello --self-signed` with `flags`, its certificate written
/// to a file of this test's own.
fn server(flags: &[&str]) -> Https {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ca = std::env::temp_dir().join(format!(
        "selectloop-https-{}-{}.pem",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let ca_arg = ca.to_str().expect("a UTF-8 temp path").to_owned();
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--self-signed",
        "--cert-out",
        &ca_arg,
    ];
    args.extend_from_slice(flags);
    let server = Server::start("https_hello", &args);
    Https { server, ca }
}

impl Https {
    fn port(&self) -> String {
        self.server.addr.port().to_string()
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port())
    }

    /// A rustls client config that trusts this server's certificate, with
    /// ALPN `http/1.1`.
    fn client_config(&self) -> Arc<tls::ClientConfig> {
        let cert = CertificateDer::from_pem_file(&self.ca).expect("the server's certificate");
        let mut config = tls::client_config([cert]).expect("a client config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A connected TLS client (the handshake runs on its first read or
    /// write), verifying the server as `localhost`.
    fn connect(&self, config: &Arc<tls::ClientConfig>) -> Client<TlsStream> {
        let tcp = TcpStream::connect(self.server.addr).expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let name = ServerName::try_from("localhost").expect("a name");
        let conn = ClientConnection::new(config.clone(), name).expect("a TLS client");
        Client::over(StreamOwned::new(conn, tcp))
    }
}

fn get(extra: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}

/// Runs the handshake of a client that has not written yet.
fn handshake(c: &mut Client<TlsStream>) -> io::Result<()> {
    let TlsStream { conn, sock } = &mut c.stream;
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    Ok(())
}

#[test]
fn a_rustls_client_gets_hello_over_tls13_with_alpn_http11() {
    let server = server(&[]);
    let mut c = server.connect(&server.client_config());
    c.send(get("").as_bytes());
    c.response(false).assert_hello(false);
    let conn = &c.stream.conn;
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        conn.protocol_version(),
        Some(tls::rustls::ProtocolVersion::TLSv1_3)
    );
    // Keep-alive: a second request on the same connection.
    c.send(
        format!(
            "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n{}",
            get("Connection: close\r\n")
        )
        .as_bytes(),
    );
    c.response(true).assert_hello(true);
    c.response(false).assert_hello(false);
    // The server closes with a close_notify: a clean end, not a truncation.
    let mut rest = Vec::new();
    c.stream
        .read_to_end(&mut rest)
        .expect("a clean close_notify");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn a_tls12_client_is_served_too() {
    let server = server(&[]);
    let cert = CertificateDer::from_pem_file(&server.ca).unwrap();
    let mut roots = tls::rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = tls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&tls::rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c = server.connect(&Arc::new(config));
    c.send(get("").as_bytes());
    c.response(false).assert_hello(false);
    assert_eq!(
        c.stream.conn.protocol_version(),
        Some(tls::rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn a_thousand_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = server(&[]);
    let mut c = server.connect(&server.client_config());
    let is_head = |i: usize| i % 7 == 3;
    let mut requests = String::new();
    for i in 0..1000 {
        let method = if is_head(i) { "HEAD" } else { "GET" };
        requests.push_str(&format!("{method} /{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    c.send(requests.as_bytes());
    for i in 0..1000 {
        c.response(is_head(i)).assert_hello(is_head(i));
    }
}

#[test]
fn two_hundred_concurrent_tls_keep_alive_clients() {
    let server = server(&[]);
    let config = server.client_config();
    let mut clients: Vec<_> = (0..200).map(|_| server.connect(&config)).collect();
    for c in &mut clients {
        handshake(c).expect("handshake");
    }
    // Each round sends on every connection, then reads every answer: all
    // 200 are open (and past their handshakes) at once.
    for round in 0..3 {
        for c in &mut clients {
            let method = if round == 1 { "HEAD" } else { "GET" };
            c.send(format!("{method} /{round} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        for c in &mut clients {
            c.response(round == 1).assert_hello(round == 1);
        }
    }
}

#[test]
fn a_client_that_does_not_trust_the_certificate_fails_and_the_server_goes_on() {
    let server = server(&[]);
    // Another self-signed certificate as the only root.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let config = Arc::new(tls::client_config([other.cert.der().clone()]).unwrap());
    let mut c = server.connect(&config);
    let error = handshake(&mut c).expect_err("an untrusted certificate");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    let inner = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<tls::rustls::Error>());
    assert!(
        matches!(inner, Some(tls::rustls::Error::InvalidCertificate(_))),
        "{error:?}"
    );
    // A client that trusts it is served.
    let mut good = server.connect(&server.client_config());
    good.send(get("").as_bytes());
    good.response(false).assert_hello(false);
}

#[test]
fn plain_http_sent_to_the_tls_port_fails_cleanly_and_the_server_goes_on() {
    let server = server(&[]);
    let mut plain = TcpStream::connect(server.server.addr).unwrap();
    plain.write_all(get("").as_bytes()).unwrap();
    let got = read_until_closed(&mut plain);
    // At most a TLS alert record (content type 21), never an HTTP answer.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    assert!(!got.windows(5).any(|w| w == b"HTTP/"), "{got:?}");
    let mut good = server.connect(&server.client_config());
    good.send(get("").as_bytes());
    good.response(false).assert_hello(false);
}

#[test]
fn a_client_stalling_in_the_handshake_is_closed_after_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let server = server(&[
        "--handshake-timeout-ms",
        "300",
        "--idle-timeout-ms",
        "60000",
    ]);
    let connected = Instant::now();
    let mut silent = TcpStream::connect(server.server.addr).unwrap();
    // The first 5 bytes of a ClientHello record, then nothing.
    silent.write_all(&[22, 3, 1, 2, 0]).unwrap();
    // Meanwhile another client is served at once.
    let mut good = server.connect(&server.client_config());
    good.send(get("").as_bytes());
    good.response(false).assert_hello(false);
    assert_eq!(read_until_closed(&mut silent), b"");
    assert!(
        connected.elapsed() >= timeout,
        "closed before the handshake timeout"
    );
}

#[test]
fn curl_with_cacert_reuses_one_tls_connection() {
    let Some(curl) = curl("curl_with_cacert_reuses_one_tls_connection") else {
        return;
    };
    let server = server(&[]);
    let ca = server.ca.to_str().unwrap();
    let url = server.url();
    // `num_connects` is 0 for a transfer that reused the connection.
    let out = run_curl(&curl, &["--http1.1", "--cacert", ca, &url, &url, &url]);
    assert_eq!(
        out,
        "Hello, world!\n200 1.1 1\nHello, world!\n200 1.1 0\nHello, world!\n200 1.1 0\n"
    );
    // Without the certificate, curl refuses the server (exit 60).
    let status = Command::new(&curl)
        .args(["-sS", "--max-time", "10", "-o"])
        .arg(if cfg!(windows) { "NUL" } else { "/dev/null" })
        .arg(&url)
        .stderr(Stdio::null())
        .status()
        .expect("run curl");
    assert_eq!(status.code(), Some(60), "curl without --cacert: {status:?}");
}

#[test]
fn python_ssl_clients_with_tls13_and_tls12_keep_one_connection() {
    let Some(python) = python3("python_ssl_clients_with_tls13_and_tls12_keep_one_connection")
    else {
        return;
    };
    let server = server(&[]);
    let script = r#"
import http.client, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    ports = set()
    for method in ("GET", "HEAD", "GET"):
        conn.request(method, "/")
        ports.add(conn.sock.getsockname()[1])
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, r.status
        assert data == (b"" if method == "HEAD" else b"Hello, world!"), data
    assert conn.sock.selected_alpn_protocol() == "http/1.1", conn.sock.selected_alpn_protocol()
    print(conn.sock.version(), len(ports))
    conn.close()
"#;
    let args = [
        "localhost".to_owned(),
        server.port(),
        server.ca.to_str().unwrap().to_owned(),
    ];
    // "localhost" may resolve to ::1 first; the server is on 127.0.0.1 and
    // http.client falls back to it.
    let (ok, stdout, stderr) = run_python(&python, script, &args);
    assert!(ok, "python failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout, "TLSv1.3 1\nTLSv1.2 1\n");
}

#[test]
fn openssl_s_client_verifies_the_certificate_and_gets_hello() {
    let Ok(out) = Command::new("openssl").arg("version").output() else {
        eprintln!("SKIPPED openssl_s_client_verifies_the_certificate_and_gets_hello: no openssl");
        return;
    };
    assert!(out.status.success());
    let server = server(&[]);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-alpn",
            "http/1.1",
        ])
        .arg("-CAfile")
        .arg(&server.ca)
        // Keep reading after our input ends, until the server closes.
        .arg("-ign_eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(get("Connection: close\r\n").as_bytes())
        .unwrap();
    let watchdog = Instant::now();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(watchdog.elapsed() < PATIENCE, "openssl s_client hangs");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
    assert!(stdout.contains("ALPN protocol: http/1.1"), "{stdout}");
    assert!(stdout.contains("HTTP/1.1 200 OK"), "{stdout}");
    assert!(stdout.contains("\r\n\r\nHello, world!"), "{stdout}");
}

#[cfg(unix)] // Signals a child process with SIGINT.
#[test]
fn ctrl_c_exits_0_with_tls_connections_open() {
    let mut server = server(&[]);
    let mut c = server.connect(&server.client_config());
    c.send(get("").as_bytes());
    c.response(false).assert_hello(false);
    let status = server.server.interrupt();
    assert!(status.success(), "exit status {status:?}");
}

/// The kind of handshake a fresh connection with `config` makes.
fn handshake_kind(server: &Https, config: &Arc<tls::ClientConfig>) -> tls::rustls::HandshakeKind {
    let mut c = server.connect(config);
    c.send(get("").as_bytes());
    c.response(false).assert_hello(false);
    c.stream
        .conn
        .handshake_kind()
        .expect("the handshake is done")
}

#[test]
fn a_reconnecting_client_resumes_unless_resumption_is_off() {
    use tls::rustls::HandshakeKind::{Full, Resumed};
    let resuming = server(&[]);
    let config = resuming.client_config();
    assert_eq!(handshake_kind(&resuming, &config), Full);
    assert_eq!(handshake_kind(&resuming, &config), Resumed);

    let full_only = server(&["--no-resumption"]);
    let config = full_only.client_config();
    assert_eq!(handshake_kind(&full_only, &config), Full);
    assert_eq!(handshake_kind(&full_only, &config), Full);
}

//! `examples/echo_client` run as a process: against `examples/echo` it
//! verifies and exits 0; against servers written here to be wrong (a
//! corrupted byte, an early close, an extra byte, no reply, nobody
//! listening) it exits non-zero and says what went wrong.
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

mod example_util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use example_util::{run_example, Finished, Server};

/// How long one echo_client run may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);
/// How long a wrong server's connection thread waits on its client.
const PATIENCE: Duration = Duration::from_secs(20);
/// The seed's three messages, as echo_client sends them.
const SENT: &[u8] = b"This is the message. It will be sent in parts.";

fn client(addr: SocketAddr, extra: &[&str]) -> Finished {
    let addr = addr.to_string();
    let mut args = vec!["--addr", addr.as_str()];
    args.extend_from_slice(extra);
    run_example("echo_client", &args, LIMIT)
}

fn describe(out: &Finished) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status, out.stdout, out.stderr
    )
}

#[test]
fn two_hundred_connections_to_echo_are_verified_and_exit_0() {
    let server = Server::start("echo", &["--addr", "127.0.0.1:0"]);
    let out = client(server.addr, &["--conns", "200"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(out.stdout.lines().count(), 1, "{}", describe(&out));
    assert!(
        out.stdout.contains("200 connections to 127.0.0.1:")
            && out.stdout.contains("46 bytes each sent and verified"),
        "{}",
        describe(&out)
    );
}

#[test]
fn default_is_one_hundred_connections() {
    let server = Server::start("echo", &["--addr", "127.0.0.1:0"]);
    let out = client(server.addr, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(out.stdout.contains("100 connections"), "{}", describe(&out));
}

#[test]
fn upper_expects_the_upper_case_echo() {
    let server = Server::start("echo", &["--addr", "127.0.0.1:0", "--upper"]);
    let out = client(server.addr, &["--conns", "50", "--upper"]);
    assert!(out.status.success(), "{}", describe(&out));

    // And without --upper, the upper-case reply is a mismatch at byte 1 ('h' vs 'H').
    let out = client(server.addr, &["--conns", "3"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        out.stderr.contains("byte 1 is 0x48 'H', expected 0x68 'h'"),
        "{}",
        describe(&out)
    );
}

/// A deliberately wrong server: one thread accepting, one per connection
/// running `behave(accept_index, stream)`. Stopped and joined on drop.
struct WrongServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl WrongServer {
    fn start(behave: fn(usize, TcpStream)) -> WrongServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            let mut workers = Vec::new();
            for (index, conn) in listener.incoming().enumerate() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
                stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
                workers.push(thread::spawn(move || behave(index, stream)));
            }
            workers
        });
        WrongServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for WrongServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept; the acceptor sees the flag and ends.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            if let Ok(workers) = acceptor.join() {
                for worker in workers {
                    if worker.join().is_err() && !thread::panicking() {
                        panic!("a wrong server's connection thread panicked");
                    }
                }
            }
        }
    }
}

/// Reads everything the client sends, up to its half-close.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let _ = stream.read_to_end(&mut request);
    request
}

#[test]
fn a_corrupted_byte_makes_it_exit_non_zero() {
    let server = WrongServer::start(|index, mut stream| {
        let mut reply = read_request(&mut stream);
        if index == 2 && reply.len() > 30 {
            reply[30] ^= 0x20; // 'e' of "sent" becomes 'E'
        }
        let _ = stream.write_all(&reply);
    });
    let out = client(server.addr, &["--conns", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        out.stderr
            .contains("byte 30 is 0x45 'E', expected 0x65 'e'"),
        "{}",
        describe(&out)
    );
    assert!(
        out.stderr
            .contains("FAILED: 1 of 5 connections to 127.0.0.1:"),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty(), "{}", describe(&out));
}

#[test]
fn an_early_close_makes_it_exit_non_zero() {
    let server = WrongServer::start(|_, mut stream| {
        let request = read_request(&mut stream);
        // Ten bytes back, then a clean close: the rest never comes.
        let _ = stream.write_all(&request[..10.min(request.len())]);
        let _ = stream.shutdown(Shutdown::Both);
    });
    let out = client(server.addr, &["--conns", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        out.stderr
            .matches("server closed after 10 of 46 bytes")
            .count(),
        4,
        "{}",
        describe(&out)
    );
}

#[test]
fn an_extra_byte_makes_it_exit_non_zero() {
    let server = WrongServer::start(|_, mut stream| {
        let mut reply = read_request(&mut stream);
        assert_eq!(reply, SENT, "echo_client sends the seed's three messages");
        reply.push(b'!');
        let _ = stream.write_all(&reply);
    });
    let out = client(server.addr, &["--conns", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        out.stderr
            .contains("server sent 1 bytes more than the 46 expected"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_server_that_never_replies_times_out_non_zero() {
    // Connections complete in the kernel's accept queue; nobody answers.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let out = client(addr, &["--conns", "3", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        out.stderr.matches("not finished after 1s").count(),
        3,
        "{}",
        describe(&out)
    );
    drop(listener);
}

#[test]
fn a_refused_connect_makes_it_exit_non_zero() {
    // A port that was just free: bind port 0, note it, close.
    let addr = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.local_addr().expect("local_addr")
    };
    let out = client(addr, &["--conns", "2", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        out.stderr.matches("connect failed").count(),
        2,
        "{}",
        describe(&out)
    );
}

/// `--tls`: a TLS echo server on a loop of this process (the transport's
/// echo over `serve_tls`, with a self-signed certificate for 127.0.0.1).
#[cfg(feature = "tls")]
mod over_tls {
    use std::sync::Arc;

    use selectloop::transport::tls::{self, TlsAcceptor};
    use selectloop::transport::{Protocol, Transport};
    use selectloop::EventLoop;

    use super::*;

    /// Echoes; `corrupt` flips the first byte of each reply.
    struct Echo {
        corrupt: bool,
    }

    impl Protocol for Echo {
        fn data_received(&mut self, t: &mut Transport<'_, Self>, data: &[u8]) {
            let mut reply = data.to_vec();
            if self.corrupt {
                reply[0] ^= 0x20;
            }
            t.write(&reply);
        }
    }

    /// A TLS echo server on a thread; the path of its certificate (PEM).
    fn tls_echo(corrupt: bool) -> (SocketAddr, std::path::PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let ca = std::env::temp_dir().join(format!(
            "selectloop-echo-client-{}-{corrupt}.pem",
            std::process::id()
        ));
        std::fs::write(&ca, made.cert.pem()).unwrap();
        let key = tls::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let config = tls::server_config(vec![made.cert.der().clone()], key).unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut lp = EventLoop::new().unwrap();
            tls::serve_tls(
                &mut lp,
                listener,
                TlsAcceptor::new(Arc::new(config)),
                move || Echo { corrupt },
            )
            .unwrap();
            lp.run().unwrap();
        });
        (addr, ca)
    }

    #[test]
    fn tls_mode_verifies_fifty_connections_over_tls_and_exits_0() {
        let (addr, ca) = tls_echo(false);
        let out = client(addr, &["--conns", "50", "--tls", ca.to_str().unwrap()]);
        let _ = std::fs::remove_file(&ca);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(
            out.stdout.starts_with(&format!(
                "echo_client: 50 connections to {addr}, 46 bytes each sent and verified"
            )),
            "{}",
            describe(&out)
        );
    }

    #[test]
    fn tls_mode_against_echo_protocol_serving_tls_with_threads() {
        let ca = std::env::temp_dir().join(format!(
            "selectloop-echo-protocol-{}.pem",
            std::process::id()
        ));
        let ca_arg = ca.to_str().unwrap().to_owned();
        let server = Server::start(
            "echo_protocol",
            &[
                "--addr",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--self-signed",
                "--cert-out",
                &ca_arg,
            ],
        );
        let out = client(server.addr, &["--conns", "200", "--tls", &ca_arg]);
        let _ = std::fs::remove_file(&ca);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(out.stdout.contains("200 connections"), "{}", describe(&out));
    }

    #[test]
    fn tls_mode_catches_a_corrupted_byte_and_an_untrusted_server() {
        let (addr, ca) = tls_echo(true);
        let out = client(addr, &["--conns", "3", "--tls", ca.to_str().unwrap()]);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(out.stderr.contains("byte 0 is 0x74"), "{}", describe(&out));
        // Verified as another name, the certificate does not match.
        let out = client(
            addr,
            &[
                "--conns",
                "2",
                "--tls",
                ca.to_str().unwrap(),
                "--server-name",
                "example.com",
            ],
        );
        let _ = std::fs::remove_file(&ca);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(out.stderr.contains("connect failed"), "{}", describe(&out));
        assert!(
            out.stderr.contains("2 of 2 connections"),
            "{}",
            describe(&out)
        );
    }
}

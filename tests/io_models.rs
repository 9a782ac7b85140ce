//! `examples/io_models.rs` run as a process: the upper-case echo under every
//! I/O model (`pool`, `nonblocking`, `select` on Unix, `poll`, `epoll`,
//! `loop`), the pool's starvation of client N+1, a Python `selectors` client,
//! and Ctrl-C.
//!
//! Every read has a timeout (10 s where data is expected), so a server that
//! stops answering fails the test instead of hanging it.
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

mod example_util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use example_util::Server;

/// How long a read waits for something that should arrive at once.
const PATIENCE: Duration = Duration::from_secs(10);

fn start(model: &str) -> Server {
    // `--pool 3` only matters to the pool model; the others ignore it.
    Server::start(
        "io_models",
        &["--addr", "127.0.0.1:0", "--model", model, "--pool", "3"],
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect to the server");
    c.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    c.set_nodelay(true).expect("nodelay");
    c
}

/// [`connect`] with a 4 KiB receive buffer, set before connecting so that
/// the window the server sees is small from the start.
fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect to the server");
    let c: TcpStream = socket.into();
    c.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    c.set_nodelay(true).expect("nodelay");
    c
}

/// Sends `msg` and checks that exactly its upper-case comes back.
fn roundtrip(c: &mut TcpStream, msg: &str) {
    c.write_all(msg.as_bytes()).expect("send");
    let mut got = vec![0; msg.len()];
    c.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reply to {msg:?}: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&got),
        msg.to_ascii_uppercase(),
        "reply to {msg:?}"
    );
}

/// Three clients at once, several messages each, interleaved.
fn three_concurrent_clients(model: &str) {
    let server = start(model);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for round in 0..5 {
        // All three send before any reply is read.
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("round {round}, client {i}: Hello, World; ").as_bytes())
                .expect("send");
        }
        for (i, c) in clients.iter_mut().enumerate().rev() {
            let want = format!("ROUND {round}, CLIENT {i}: HELLO, WORLD; ");
            let mut got = vec![0; want.len()];
            c.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("{model}: client {i}, round {round}: {e}"));
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
    }
    for c in &mut clients {
        roundtrip(c, "bye now");
    }
}

/// A message much larger than the socket buffers comes back whole and in
/// order: the server's sends stop short and what is left must be kept and
/// resumed, not lost (the seeds lose it).
///
/// The server runs with `--sndbuf 4096` and the client with a 4 KiB receive
/// buffer, so nearly every reply is sent in pieces; the client sends 1 MiB
/// from one thread while it reads the replies on another.
fn large_message_is_echoed_whole(model: &str) {
    let server = Server::start(
        "io_models",
        &[
            "--addr",
            "127.0.0.1:0",
            "--model",
            model,
            "--pool",
            "3",
            "--sndbuf",
            "4096",
        ],
    );
    let mut c = connect_small_window(server.addr);
    let msg: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 "[(i % 37) as usize])
        .collect();
    let mut writer = c.try_clone().expect("clone");
    let sent = msg.clone();
    let sender = std::thread::spawn(move || writer.write_all(&sent));
    let mut got = vec![0; msg.len()];
    c.read_exact(&mut got).expect("the whole reply");
    sender.join().expect("sender thread").expect("send");
    assert!(
        got == msg.to_ascii_uppercase(),
        "reply differs from the upper-cased message"
    );
}

/// Ctrl-C with a client connected: exit status 0, the client's connection
/// is closed.
#[cfg(unix)]
fn sigint_exits_zero(model: &str) {
    let mut server = start(model);
    let mut c = connect(server.addr);
    roundtrip(&mut c, "before ctrl-c");
    let status = server.interrupt();
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
    let mut buf = [0; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the client's connection should be closed, got {other:?}"),
    }
}

macro_rules! model_tests {
    ($module:ident, $model:literal) => {
        mod $module {
            #[test]
            fn three_concurrent_clients() {
                super::three_concurrent_clients($model);
            }

            #[test]
            fn large_message_is_echoed_whole() {
                super::large_message_is_echoed_whole($model);
            }

            #[cfg(unix)]
            #[test]
            fn sigint_exits_zero() {
                super::sigint_exits_zero($model);
            }
        }
    };
}

model_tests!(pool_model, "pool");
model_tests!(nonblocking_model, "nonblocking");
#[cfg(unix)]
model_tests!(select_model, "select");
model_tests!(poll_model, "poll");
model_tests!(epoll_model, "epoll");
model_tests!(loop_model, "loop");

/// The tutorial's point: a pool of 3 workers serving blocking clients
/// leaves a 4th client unanswered while the first 3 stay connected, and
/// serves it as soon as one of them leaves.
#[test]
fn pool_of_three_starves_the_fourth_client() {
    let server = start("pool");
    let mut first: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    // A reply proves a worker has taken the client; all 3 are taken now.
    for (i, c) in first.iter_mut().enumerate() {
        roundtrip(c, &format!("client {i} is in"));
    }

    let mut fourth = connect(server.addr);
    fourth.write_all(b"anyone there?").expect("send");
    // Asserting an absence needs a wait: 500 ms is ample for a loopback
    // reply (the other models answer in well under a millisecond).
    fourth
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("read timeout");
    let mut buf = [0; 64];
    match fourth.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the 4th client should get no reply while 3 workers are busy: {other:?}"),
    }
    // The first three, idle meanwhile, are still served.
    for c in &mut first {
        roundtrip(c, "still here");
    }

    // One leaves: its worker takes the 4th, whose message was waiting.
    drop(first.remove(0));
    fourth
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut got = [0; 13];
    fourth
        .read_exact(&mut got)
        .expect("the 4th client is served once a worker is free");
    assert_eq!(&got, b"ANYONE THERE?");
    roundtrip(&mut fourth, "and again");
    for c in &mut first {
        roundtrip(c, "the others too");
    }
}

/// Seed 7's client in Python, with `selectors`: 20 connections, each of the
/// three messages sent on every one, then every reply read and checked.
const PYTHON_CLIENT: &str = r#"
import selectors, socket, sys, time

host, port = sys.argv[1], int(sys.argv[2])
messages = [b"This is the message. ", b"It will be sent ", b"in parts."]
expected = b"".join(messages).upper()

sel = selectors.DefaultSelector()
socks = []
for i in range(20):
    s = socket.create_connection((host, port), timeout=10)
    sel.register(s, selectors.EVENT_READ, bytearray())
    socks.append(s)
for m in messages:
    for s in socks:
        s.sendall(m)

deadline = time.monotonic() + 10
left = len(socks)
while left:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        sys.exit("timed out with %d connections still waiting" % left)
    for key, mask in sel.select(remaining):
        data = key.fileobj.recv(4096)
        if not data:
            sys.exit("server closed early after %r" % bytes(key.data))
        key.data.extend(data)
        if len(key.data) >= len(expected):
            if bytes(key.data) != expected:
                sys.exit("bad reply %r" % bytes(key.data))
            sel.unregister(key.fileobj)
            key.fileobj.close()
            left -= 1
print("ok", len(socks))
"#;

fn python_selectors_client(model: &str, test: &str) {
    let Some(python) = example_util::python3(test) else {
        return;
    };
    let server = start(model);
    let (ok, stdout, stderr) = example_util::run_python(
        &python,
        PYTHON_CLIENT,
        &[server.addr.ip().to_string(), server.addr.port().to_string()],
    );
    assert!(ok, "python client failed against {model}: {stderr}");
    assert_eq!(stdout.trim(), "ok 20");
}

#[test]
fn python_selectors_client_against_loop() {
    python_selectors_client("loop", "python_selectors_client_against_loop");
}

#[test]
fn python_selectors_client_against_epoll() {
    python_selectors_client("epoll", "python_selectors_client_against_epoll");
}

/// On Windows `--model select` is refused with a clear message.
#[cfg(windows)]
#[test]
fn select_model_refused_on_windows() {
    let out = std::process::Command::new(example_util::example_path("io_models"))
        .args(["--addr", "127.0.0.1:0", "--model", "select"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run io_models");
    assert!(
        !out.status.success(),
        "--model select should fail on Windows"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("select"), "stderr should say why: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "it must not start listening"
    );
}

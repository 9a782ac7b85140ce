//! `examples/selectors_echo` as a real process, driven over loopback TCP:
//! concurrent clients that send before they read (so the server's sends come
//! back partial), peers that reset mid-stream, and running out of
//! descriptors.
//!
//! Every wait is bounded: sockets carry read and write timeouts, the server's
//! first line is awaited with a timeout, and the server process is killed
//! when a test ends, passing or not.
#![cfg(feature = "net")]

use std::env;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Longest any single socket operation, connect or first line may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// Concurrent clients in the main test, and the largest message each sends.
const CLIENTS: usize = 20;
const MAX_MESSAGE: usize = 256 * 1024;

/// One client sends this much, and reads its start slowly: more than the
/// kernel buffers on the way hold, so the server has to wait for
/// `EVENT_WRITE` with unsent bytes (seen with strace: a few `EAGAIN` sends
/// per run).
const BULK_MESSAGE: usize = 8 * 1024 * 1024;

// ---------------------------------------------------------------- the server

/// The example's executable: built once per test run by `cargo build
/// --example`, so it is never stale, with the fallback of the one `cargo
/// test` builds beside this test (when cargo cannot be run from here, as
/// under Wine).
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match build_example() {
        Ok(path) => path,
        Err(why) => {
            let beside = beside_this_test();
            assert!(
                beside.is_file(),
                "cannot build the example ({why}), and {} does not exist: \
                 run `cargo build --example selectors_echo` or plain `cargo test`",
                beside.display()
            );
            beside
        }
    })
}

/// Runs `$CARGO build --example selectors_echo` and returns the executable
/// it reports. The environment (`RUSTFLAGS`, `CARGO_TARGET_DIR`...) is this
/// run's, and the target dir, target and profile are this test's own, so
/// the example matches this test and is usually fresh already.
fn build_example() -> Result<PathBuf, String> {
    let cargo = PathBuf::from(env::var_os("CARGO").ok_or("CARGO is not set")?);
    // Cargo sets an absolute path. One that is not absolute here is another
    // system's: a Linux cargo running this Windows test under Wine, which
    // would build for the wrong platform (and take our paths for relative).
    if !cargo.is_absolute() {
        return Err(format!(
            "CARGO={} is not a path on this system",
            cargo.display()
        ));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["build", "--quiet", "--example", "selectors_echo"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(this_tests_layout())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = example_executable(&stdout).ok_or("cargo reported no executable")?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "cargo reported {}, which is missing",
            path.display()
        ))
    }
}

/// `--target-dir`, `--target` and `--profile` arguments naming where this
/// test binary lives, `<target dir>/[<target>/]<profile dir>/deps/`, so that
/// a `--target-dir` given to `cargo test` on the command line (which the
/// environment does not pass on) is honoured too. Cargo keeps
/// `.rustc_info.json` at the root of a target dir; in an unrecognised
/// layout this returns nothing and cargo's own settings decide.
fn this_tests_layout() -> Vec<OsString> {
    let Ok(exe) = env::current_exe() else {
        return Vec::new();
    };
    let Some(profile_dir) = exe.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    let (Some(profile), Some(above)) = (
        profile_dir.file_name().and_then(|name| name.to_str()),
        profile_dir.parent(),
    ) else {
        return Vec::new();
    };
    let is_target_dir = |dir: &Path| dir.join(".rustc_info.json").is_file();
    let mut args: Vec<OsString> = Vec::new();
    if is_target_dir(above) {
        args.extend(["--target-dir".into(), above.into()]);
    } else if let (Some(root), Some(target)) = (above.parent(), above.file_name()) {
        if !is_target_dir(root) {
            return Vec::new();
        }
        args.extend(["--target-dir".into(), root.into()]);
        args.extend(["--target".into(), target.into()]);
    } else {
        return Vec::new();
    }
    let profile = match profile {
        "debug" => "dev",
        other => other,
    };
    args.extend(["--profile".into(), profile.into()]);
    args
}

/// The `executable` of the `selectors_echo` example in cargo's JSON messages.
fn example_executable(json_lines: &str) -> Option<PathBuf> {
    const KEY: &str = "\"executable\":\"";
    let line = json_lines.lines().find(|line| {
        line.contains("\"reason\":\"compiler-artifact\"")
            && line.contains("\"kind\":[\"example\"]")
            && line.contains("\"name\":\"selectors_echo\"")
            && line.contains(KEY)
    })?;
    let value = &line[line.find(KEY)? + KEY.len()..];
    let mut path = OsString::new();
    let mut chars = value.chars();
    loop {
        match chars.next()? {
            '"' => return Some(PathBuf::from(path)),
            '\\' => path.push(chars.next()?.to_string()),
            c => path.push(c.to_string()),
        }
    }
}

/// Where `cargo test` puts the example: `<profile dir>/examples`, this test
/// being `<profile dir>/deps/selectors_echo-<hash>`.
fn beside_this_test() -> PathBuf {
    let exe = env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in <profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("selectors_echo{}", env::consts::EXE_SUFFIX))
}

/// The running example; killed (and reaped) when dropped, also on panic.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
    /// Everything the server wrote to stderr so far (also passed on to ours).
    stderr: Arc<Mutex<String>>,
}

impl EchoServer {
    /// Starts `selectors_echo --addr 127.0.0.1:0` and reads the bound
    /// address from its first line.
    fn start() -> EchoServer {
        EchoServer::spawn(Command::new(example_binary()))
    }

    /// Like [`start`](EchoServer::start), with `command` running the example
    /// (it gets the `--addr` arguments appended).
    fn spawn(mut command: Command) -> EchoServer {
        let mut child = command
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the example");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // From here on, a panic kills the child.
        let mut server = EchoServer {
            child,
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            stderr: Arc::default(),
        };
        let log = Arc::clone(&server.stderr);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("server: {line}");
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let line = rx
            .recv_timeout(PATIENCE)
            .expect("no first line from the server in time")
            .expect("reading the server's stdout");
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        server.addr = addr.parse().expect("a socket address");
        assert_eq!(server.addr.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(server.addr.port(), 0);
        server
    }

    /// What the server has written to stderr so far.
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn assert_running(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!("the server exited: {status}"),
            Err(e) => panic!("checking on the server: {e}"),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- clients

/// xorshift64*: random sizes and contents without a dependency.
struct Rng(u64);

impl Rng {
    /// Seeded from `SELECTORS_ECHO_SEED` if set, else the clock; the seed is
    /// printed, so a failure can be replayed.
    fn new() -> Rng {
        let seed = env::var("SELECTORS_ECHO_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("SELECTORS_ECHO_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A blocking client connection with bounded waits, set up so the server's
/// sends back up early: a small receive buffer and, where the option
/// exists, a small segment size (Linux sizes a connection's send buffer by
/// its segment size, over a megabyte on loopback otherwise).
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_recv_buffer_size(4096)?;
    #[cfg(unix)]
    let _ = socket.set_tcp_mss(536); // a hint; some systems clamp or ignore it
    socket.connect_timeout(&addr.into(), PATIENCE)?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// Sends `message` on a new connection and returns everything echoed until
/// the server closes.
///
/// A writer thread sends while this one is not reading yet: the echoes pile
/// up in the server, whose sends come back partial and which must then stop
/// reading this client. Reading starts once the writer stalls (a
/// non-blocking send would block: the server is not reading, for now) or
/// has sent everything, so the test itself cannot deadlock on full buffers.
///
/// The first `slow_start` bytes are then read one at a time: a reader far
/// slower than the server, so that the server's sends fill every buffer
/// on the way and it has to wait for `EVENT_WRITE`. (The reader is never
/// stopped, so this changes only the pace, never the outcome.)
fn echo(addr: SocketAddr, message: Arc<Vec<u8>>, slow_start: usize) -> io::Result<Vec<u8>> {
    let stream = connect(addr)?;
    let writer_end = stream.try_clone()?;
    let (stalled_tx, stalled_rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        let result = send_all_then_shutdown(&writer_end, &message, stalled_tx);
        if result.is_err() {
            // Unblock the reader.
            let _ = writer_end.shutdown(Shutdown::Both);
        }
        result
    });
    // Ok: stalled or done; Err: the writer failed, and says so below.
    let _ = stalled_rx.recv();
    let mut echoed = Vec::new();
    let read = read_slowly_then_to_end(&stream, slow_start, &mut echoed);
    writer.join().expect("writer thread panicked")?;
    read?;
    Ok(echoed)
}

fn read_slowly_then_to_end(
    mut stream: &TcpStream,
    slow_start: usize,
    echoed: &mut Vec<u8>,
) -> io::Result<()> {
    let mut byte = [0u8; 1];
    while echoed.len() < slow_start {
        match stream.read(&mut byte) {
            Ok(0) => return Ok(()),
            Ok(_) => echoed.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.read_to_end(echoed).map(drop)
}

fn send_all_then_shutdown(
    mut stream: &TcpStream,
    message: &[u8],
    stalled: mpsc::Sender<()>,
) -> io::Result<()> {
    // Non-blocking until the first stall; the reader has not started, so
    // the flag (shared with its handle) is ours alone meanwhile.
    stream.set_nonblocking(true)?;
    let mut sent = 0;
    while sent < message.len() {
        match stream.write(&message[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    stream.set_nonblocking(false)?;
    let _ = stalled.send(());
    stream.write_all(&message[sent..])?;
    stream.shutdown(Shutdown::Write)
}

fn assert_echoed(what: &str, sent: &[u8], echoed: &[u8]) {
    if sent != echoed {
        let first_difference = sent
            .iter()
            .zip(echoed)
            .position(|(a, b)| a != b)
            .unwrap_or(sent.len().min(echoed.len()));
        panic!(
            "{what}: sent {} bytes, got {} back, first difference at byte {first_difference}",
            sent.len(),
            echoed.len()
        );
    }
}

/// Connects, sends until the server stops taking data, waits for the first
/// echoed byte (the server is now mid-stream on this connection, with input
/// it has not read and, likely, output the peer has not taken), then resets
/// the connection.
fn reset_mid_stream(addr: SocketAddr, rng: &mut Rng) -> io::Result<()> {
    let mut stream = connect(addr)?;
    let message = rng.bytes(BULK_MESSAGE);
    stream.set_nonblocking(true)?;
    let mut sent = 0;
    while sent < message.len() {
        match stream.write(&message[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    stream.set_nonblocking(false)?;
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    assert_eq!(first[0], message[0]);
    // SO_LINGER 0: close sends RST instead of FIN.
    SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

// ---------------------------------------------------------------- tests

#[test]
fn concurrent_clients_get_every_byte_back() {
    let mut server = EchoServer::start();
    let mut rng = Rng::new();
    // Sizes: the largest, an empty message, one byte, random ones, and
    // one bulk message beyond any buffering on the way.
    let mut sizes = vec![MAX_MESSAGE, 0, 1];
    while sizes.len() < CLIENTS {
        sizes.push(rng.between(1, MAX_MESSAGE));
    }
    sizes.push(BULK_MESSAGE);

    let clients: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let message = Arc::new(rng.bytes(size));
            let addr = server.addr;
            let handle = thread::spawn({
                let message = Arc::clone(&message);
                // The bulk client reads its first 64 KiB slowly.
                let slow_start = if size == BULK_MESSAGE { 64 * 1024 } else { 0 };
                move || echo(addr, message, slow_start)
            });
            (i, message, handle)
        })
        .collect();
    for (i, message, handle) in clients {
        let echoed = handle
            .join()
            .expect("client thread panicked")
            .unwrap_or_else(|e| panic!("client {i} ({} bytes): {e}", message.len()));
        assert_echoed(&format!("client {i}"), &message, &echoed);
    }
    server.assert_running();
}

#[test]
fn a_reset_peer_is_dropped_and_the_server_serves_on() {
    let mut server = EchoServer::start();
    let mut rng = Rng::new();

    // Reset before sending anything, then mid-stream.
    let idle = connect(server.addr).unwrap();
    SockRef::from(&idle)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(idle);
    reset_mid_stream(server.addr, &mut rng).unwrap();

    // The server lives on and serves a new client in full.
    let message = Arc::new(rng.bytes(MAX_MESSAGE));
    let echoed = echo(server.addr, Arc::clone(&message), 0).unwrap();
    assert_echoed("client after the resets", &message, &echoed);
    server.assert_running();
}

/// Many short connections from several threads at once: the server's loop
/// closes connections and accepts new ones within one batch of events, so
/// descriptor numbers and selector slots are reused while it walks the
/// batch. Every client still gets exactly its bytes back. (That a stale
/// event never reaches a reused number is checked directly, per backend,
/// in `tests/selectors.rs`.)
#[test]
fn short_lived_connections_churn_through_reused_descriptors() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 40;
    let mut server = EchoServer::start();
    let seed = Rng::new().next();
    let addr = server.addr;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng((seed ^ (t as u64 + 1)) | 1);
                for i in 0..PER_THREAD {
                    let size = rng.between(1, 4096);
                    let message = Arc::new(rng.bytes(size));
                    let echoed = echo(addr, Arc::clone(&message), 0)
                        .unwrap_or_else(|e| panic!("thread {t}, client {i}: {e}"));
                    assert_echoed(&format!("thread {t}, client {i}"), &message, &echoed);
                }
            })
        })
        .collect();
    for handle in threads {
        handle.join().expect("client thread panicked");
    }
    server.assert_running();
}

#[test]
fn example_executable_is_read_from_cargo_json() {
    let json = concat!(
        r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"selectloop"},"executable":null}"#,
        "\n",
        r#"{"reason":"compiler-artifact","target":{"kind":["example"],"crate_types":["bin"],"name":"selectors_echo"},"executable":"C:\\t \"x\"\\selectors_echo.exe","fresh":true}"#,
        "\n",
        r#"{"reason":"build-finished","success":true}"#,
    );
    assert_eq!(
        example_executable(json),
        Some(PathBuf::from(r#"C:\t "x"\selectors_echo.exe"#))
    );
    assert_eq!(example_executable(r#"{"reason":"build-finished"}"#), None);
}

/// Out of descriptors, accept fails with EMFILE: the server logs it, pauses
/// accepting instead of spinning, and serves every queued client once
/// descriptors free up. (`ulimit -n` through `sh`: Unix only.)
#[cfg(unix)]
#[test]
fn out_of_descriptors_pauses_accepting_and_every_client_is_served_in_turn() {
    const LIMIT: usize = 24;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {LIMIT} && exec \"$0\" \"$@\""))
        .arg(example_binary());
    let mut server = EchoServer::spawn(command);

    // More clients than the server has descriptors: the rest wait in the
    // listen backlog, and accepting them fails until earlier ones close.
    let clients: Vec<TcpStream> = (0..LIMIT + 8)
        .map(|_| connect(server.addr))
        .collect::<io::Result<_>>()
        .unwrap();
    for (i, mut client) in clients.into_iter().enumerate() {
        let message = format!("client {i}");
        client.write_all(message.as_bytes()).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut echoed = String::new();
        client
            .read_to_string(&mut echoed)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(echoed, message);
    }
    server.assert_running();
    let log = server.stderr();
    assert!(
        log.contains("accept: ") && log.contains("pausing accepts"),
        "no accept error logged: {log:?}"
    );
}

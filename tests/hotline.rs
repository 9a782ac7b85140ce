//! `examples/hotline.rs` run as a process: the 10086 protocol under every
//! model (`loop`, `threads`, and `fork` on Unix), concurrent callers, callers
//! that reset, Ctrl-C, and the `--client` mode.
//!
//! Every read has a 10 s timeout, so a server that stops answering fails the
//! test instead of hanging it.
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

mod example_util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use example_util::Server;

const WELCOME: &str = "welcome to 10086, enter 1xxx, 0 for an operator\n";
const RECORDED: &str = "your call may be recorded\n";
const AGAIN: &str = "please enter again\n";

/// How long a read waits for something that should arrive at once.
const PATIENCE: Duration = Duration::from_secs(10);

fn start(model: &str) -> Server {
    Server::start("hotline", &["--addr", "127.0.0.1:0", "--model", model])
}

/// A caller: line-oriented reads, raw writes, every read bounded.
struct Caller {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Caller {
    fn connect(addr: SocketAddr) -> Caller {
        let stream = TcpStream::connect(addr).expect("connect to the hotline");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone");
        Caller {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// The next line the server sends (panics on end of stream or timeout).
    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("a line from the server within 10 s");
        assert!(n > 0, "the server closed instead of answering");
        line
    }

    fn send(&mut self, data: &str) {
        self.writer.write_all(data.as_bytes()).expect("send");
    }

    /// Sends `message` and checks the reply.
    fn ask(&mut self, message: &str, reply: &str) {
        self.send(message);
        assert_eq!(self.line(), reply, "reply to {message:?}");
    }

    /// The server closed the connection: a clean end of stream, nothing else.
    fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        self.reader
            .read_to_end(&mut rest)
            .expect("end of stream within 10 s");
        assert!(
            rest.is_empty(),
            "unexpected data before EOF: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// Closes with a reset (SO_LINGER 0) instead of a FIN.
    fn reset(self) {
        socket2::SockRef::from(&self.writer)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
    }
}

fn protocol(model: &str) {
    let server = start(model);
    let mut c = Caller::connect(server.addr);
    assert_eq!(c.line(), WELCOME);
    c.ask("0\n", RECORDED);
    c.ask("1234\n", AGAIN);
    c.ask("0\r\n", RECORDED);
    c.ask("1234\r\n", AGAIN);
    c.send("exit\n");
    c.expect_eof();
}

/// Answers are per line: a line split over two writes is answered once it is
/// complete, and several lines in one write each get their answer.
fn split_and_batched_lines(model: &str) {
    let server = start(model);
    let mut c = Caller::connect(server.addr);
    assert_eq!(c.line(), WELCOME);
    c.send("12");
    c.send("34\n");
    assert_eq!(c.line(), AGAIN);
    c.send("0\n1xxx\n0\r\n");
    assert_eq!(c.line(), RECORDED);
    assert_eq!(c.line(), AGAIN);
    assert_eq!(c.line(), RECORDED);
    c.send("  exit \r\n");
    c.expect_eof();
}

/// Five callers at once: all get their welcome before any has finished, and
/// interleaved questions get their own answers.
fn five_concurrent_clients(model: &str) {
    let server = start(model);
    let mut callers: Vec<Caller> = (0..5).map(|_| Caller::connect(server.addr)).collect();
    // Nobody has hung up yet, so each welcome proves a caller being served
    // while the others are still connected.
    for c in &mut callers {
        assert_eq!(c.line(), WELCOME);
    }
    for (i, c) in callers.iter_mut().enumerate() {
        c.send(if i % 2 == 0 { "0\n" } else { "1000\n" });
    }
    for (i, c) in callers.iter_mut().enumerate().rev() {
        assert_eq!(c.line(), if i % 2 == 0 { RECORDED } else { AGAIN });
    }
    for c in callers.iter_mut().rev() {
        c.ask("1001\n", AGAIN);
    }
    for mut c in callers {
        c.send("exit\n");
        c.expect_eof();
    }
}

/// Callers that reset, before and after talking, leave the server and the
/// other callers unharmed.
fn reset_client_does_not_kill_server(mut server: Server) {
    let mut steady = Caller::connect(server.addr);
    assert_eq!(steady.line(), WELCOME);

    // Resets with replies on their way to it.
    let mut talker = Caller::connect(server.addr);
    assert_eq!(talker.line(), WELCOME);
    talker.send("1234\n0\n1234\n");
    talker.reset();
    // Resets before reading the welcome.
    Caller::connect(server.addr).reset();

    steady.ask("0\n", RECORDED);
    let mut fresh = Caller::connect(server.addr);
    assert_eq!(fresh.line(), WELCOME);
    fresh.ask("1234\n", AGAIN);
    fresh.send("exit\n");
    fresh.expect_eof();
    steady.send("exit\n");
    steady.expect_eof();
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the server exited"
    );
}

/// Ctrl-C with a caller mid-session: exit status 0, and the caller's
/// connection is closed.
#[cfg(unix)]
fn sigint_exits_zero(model: &str) {
    let mut server = start(model);
    let mut c = Caller::connect(server.addr);
    assert_eq!(c.line(), WELCOME);
    c.ask("0\n", RECORDED);
    let status = server.interrupt();
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
    let mut buf = [0; 64];
    match c.reader.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the caller's connection should be closed, got {other:?}"),
    }
}

macro_rules! model_tests {
    ($module:ident, $model:literal) => {
        mod $module {
            #[test]
            fn protocol() {
                super::protocol($model);
            }

            #[test]
            fn split_and_batched_lines() {
                super::split_and_batched_lines($model);
            }

            #[test]
            fn five_concurrent_clients() {
                super::five_concurrent_clients($model);
            }

            #[test]
            fn reset_client_does_not_kill_server() {
                super::reset_client_does_not_kill_server(super::start($model));
            }

            #[cfg(unix)]
            #[test]
            fn sigint_exits_zero() {
                super::sigint_exits_zero($model);
            }
        }
    };
}

model_tests!(loop_model, "loop");
model_tests!(threads_model, "threads");
#[cfg(unix)]
model_tests!(fork_model, "fork");

/// The fork model reaps its children: after callers come and go, none is
/// left as a zombie.
#[cfg(target_os = "linux")]
#[test]
fn fork_model_reaps_children() {
    let server = start("fork");
    for _ in 0..3 {
        let mut c = Caller::connect(server.addr);
        assert_eq!(c.line(), WELCOME);
        c.send("exit\n");
        c.expect_eof();
    }
    // The children have closed their sockets; SIGCHLD reaches the parent's
    // loop asynchronously, so poll /proc for a bounded time.
    let pid = server.child.id();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let children = children_of(pid);
        if children.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "children of the fork server still there after 10 s: {children:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A forked child lets go of the parent's loop: while it serves its caller
/// it holds the standard streams and its connection, nothing else (before
/// `close_after_fork` it also held the epoll instance, the eventfd, the
/// timerfd and both ends of the SIGINT and SIGCHLD socket pairs).
#[cfg(target_os = "linux")]
#[test]
fn fork_model_child_holds_only_its_connection() {
    let server = start("fork");
    let mut c = Caller::connect(server.addr);
    // The child sends the welcome after letting go of the loop, and then
    // blocks reading: its descriptor table is settled.
    assert_eq!(c.line(), WELCOME);
    let pid = server.child.id();
    let children = children_of(pid);
    assert_eq!(children.len(), 1, "one child per caller: {children:?}");
    let child = children[0].split(' ').next().expect("a pid").to_string();
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{child}/fd"))
        .expect("the child's /proc/PID/fd")
        .flatten()
        .map(|e| {
            let fd = e.file_name().to_string_lossy().parse().expect("a number");
            let target = std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            (fd, target)
        })
        .collect();
    fds.sort();
    eprintln!("the child's descriptors: {fds:?}");
    // Descriptors this test process leaves open across exec (none of its
    // own: whatever ran the tests passed them on) reach the server and its
    // children too; they are not the loop's.
    let inherited = inherited_fds();
    let others: Vec<_> = fds
        .iter()
        .filter(|(fd, _)| *fd > 2 && !inherited.contains(fd))
        .collect();
    assert!(
        others.len() == 1 && others[0].1.starts_with("socket:"),
        "the child should hold its connection and the standard streams only \
         (besides {inherited:?}, inherited from the test runner): {fds:?}"
    );
    c.ask("0\n", RECORDED);
    c.send("exit\n");
    c.expect_eof();
}

/// This process's descriptors above 2 without close-on-exec: every process
/// it starts inherits them.
#[cfg(target_os = "linux")]
fn inherited_fds() -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue; // read_dir's own descriptor, closed by now
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        if fd > 2 && flags & libc::O_CLOEXEC as u32 == 0 {
            found.push(fd);
        }
    }
    found
}

/// The pids (and states) of `parent`'s children, from /proc.
#[cfg(target_os = "linux")]
fn children_of(parent: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&parent.to_string().as_str()) {
            found.push(format!(
                "{} ({})",
                entry.file_name().to_string_lossy(),
                fields[0]
            ));
        }
    }
    found
}

/// On Windows `--model fork` is refused with a clear message.
#[cfg(windows)]
#[test]
fn fork_model_refused_on_windows() {
    let out = std::process::Command::new(example_util::example_path("hotline"))
        .args(["--addr", "127.0.0.1:0", "--model", "fork"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hotline");
    assert!(!out.status.success(), "--model fork should fail on Windows");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fork"), "stderr should say why: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "it must not start listening"
    );
}

/// `--client ADDR` talks to a server: prints the welcome and each reply,
/// stops after `exit`.
#[test]
fn client_mode_talks_to_server() {
    use std::process::{Command, Stdio};
    let server = start("loop");
    let mut client = Command::new(example_util::example_path("hotline"))
        .args(["--client", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hotline --client");
    client
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(b"0\n1234\nexit\n")
        .expect("feed the client");
    // The client's reads time out after 5 s, so this wait is bounded.
    let out = client.wait_with_output().expect("client output");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{WELCOME}{RECORDED}{AGAIN}")
    );
}

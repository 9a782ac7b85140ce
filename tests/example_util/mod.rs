//! Runs the crate's examples as real processes for the integration tests.
//!
//! `cargo test` builds every example next to the test binaries
//! (`target/<profile>/examples/`); when a test runs alone (`--test NAME`)
//! and an example is missing, it is built with the same `cargo` and profile.

#![allow(dead_code)]

pub mod http_client;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The examples this test process has (re)built already.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The path of example `name`'s executable, (re)built if needed.
///
/// On Unix the example is built once per test process with the same `cargo`
/// and profile (a no-op when it is fresh), so `cargo test --test NAME` never
/// runs a stale binary. On Windows (the suite runs under Wine, where cargo
/// cannot be started) the example must have been built by `cargo test`.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if cfg!(unix) && !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // The features this test was built with, which the examples it runs
        // may need (`https_hello` needs `tls`): the same set as `cargo test`
        // builds them with, so nothing is rebuilt for nothing.
        if cfg!(feature = "tls") {
            cmd.args(["--features", "tls"]);
        }
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        let status = cmd.status().expect("run cargo build --example");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    assert!(
        path.exists(),
        "example {name} not found at {} (on Windows, build the examples first: a full `cargo test` does)",
        path.display()
    );
    path
}

/// A running example server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts example `name` with `args` (give it `--addr 127.0.0.1:0`) and
    /// reads the address from its first line, `listening on ADDR`.
    pub fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(example_path(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start example {name}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("{name}: first line should be `listening on ADDR`, got {line:?}")
            })
            .parse()
            .unwrap_or_else(|e| panic!("{name}: bad address in {line:?}: {e}"));
        Server {
            child,
            addr,
            stdout,
        }
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGINT (Unix) and waits up to 10 s for the exit status.
    #[cfg(unix)]
    pub fn interrupt(&mut self) -> ExitStatus {
        // SAFETY: kill(2) with a child's pid and a valid signal number.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        assert_eq!(rc, 0, "kill(SIGINT)");
        self.wait_timeout(Duration::from_secs(10))
            .expect("the example exits within 10 s of SIGINT")
    }

    /// Everything the process printed after its first line, once it has exited.
    pub fn rest_of_stdout(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        rest
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python3`, if installed; otherwise prints why the caller skips.
pub fn python3(test: &str) -> Option<PathBuf> {
    find_tool("python3", &["--version"], test)
}

/// `curl`, if installed; otherwise prints why the caller skips.
pub fn curl(test: &str) -> Option<PathBuf> {
    find_tool("curl", &["--version"], test)
}

/// Runs curl (`-sS`, at most 10 s) with `args`, each transfer followed by
/// a line `CODE VERSION CONNECTS`; asserts it succeeded; its stdout.
pub fn run_curl(curl: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(curl)
        .args(["-sS", "--max-time", "10"])
        .args(["-w", "\n%{http_code} %{http_version} %{num_connects}\n"])
        .args(args)
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn find_tool(tool: &str, probe: &[&str], test: &str) -> Option<PathBuf> {
    match Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Some(PathBuf::from(tool)),
        _ => {
            eprintln!("SKIPPED {test}: {tool} is not installed");
            None
        }
    }
}

/// Runs a Python 3 script with arguments; returns (success, stdout, stderr).
pub fn run_python(python: &PathBuf, script: &str, args: &[String]) -> (bool, String, String) {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a finished example process printed, and how it ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs example `name` with `args` to completion, capturing its output.
/// Kills it and panics if it has not closed its output within `limit`.
pub fn run_example(name: &str, args: &[&str], limit: Duration) -> Finished {
    let mut child = Command::new(example_path(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start example {name}: {e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut readers = Vec::new();
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    for mut pipe in pipes {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send(());
            String::from_utf8_lossy(&text).into_owned()
        }));
    }
    // Both pipes reach EOF when the process exits (or closes them).
    let deadline = Instant::now() + limit;
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if rx.recv_timeout(left).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} {args:?} did not finish within {limit:?}");
        }
    }
    let status = child.wait().expect("wait for the example");
    let mut texts = readers.into_iter().map(|r| r.join().expect("pipe reader"));
    let stdout = texts.next().expect("stdout");
    let stderr = texts.next().expect("stderr");
    Finished {
        status,
        stdout,
        stderr,
    }
}

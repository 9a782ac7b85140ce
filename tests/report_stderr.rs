//! Errors are visible by default: with no `log` logger installed, the default
//! error handler and the loop's warnings write one line each to standard
//! error (as asyncio's default exception handler does); with a logger, they
//! go to it and nothing reaches standard error.
//!
//! A logger is per process, so each case runs in a child process: this
//! binary re-executes itself with `REPORT_CHILD` set (`harness = false`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use selectloop::net::stream_pair;
use selectloop::{EventLoop, EVENT_READ};

const CHILD: &str = "REPORT_CHILD";

/// Runs a loop whose one callback fails (the default handler reports it
/// and drops the source) and is slow (threshold zero: a warning).
fn failing_loop() {
    let mut lp = EventLoop::new().expect("loop");
    lp.set_slow_callback_threshold(Some(Duration::ZERO));
    let (mut client, server) = stream_pair().expect("pair");
    lp.register(server, EVENT_READ, |_lp, conn: &mut TcpStream, _ev| {
        let mut buf = [0; 16];
        let n = conn.read(&mut buf)?;
        anyhow::bail!("told to fail after {n} bytes")
    })
    .expect("register");
    client.write_all(b"boom").expect("write");
    // Returns once the default handler has dropped the failing source.
    lp.run().expect("run");
    assert_eq!(lp.source_count(), 0, "the default handler drops the source");
}

/// Collects what reaches the `log` facade.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn child(case: &str) {
    match case {
        "no-logger" => failing_loop(),
        "logger" => {
            log::set_logger(&CAPTURE).expect("first logger");
            log::set_max_level(log::LevelFilter::Trace);
            failing_loop();
            for line in CAPTURE.0.lock().unwrap().iter() {
                println!("logged: {line}");
            }
        }
        other => panic!("unknown case {other}"),
    }
}

/// Runs this binary as a child for `case`; returns (stdout, stderr).
fn run_child(case: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .env(CHILD, case)
        .stdin(Stdio::null())
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child {case} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn without_a_logger_the_error_and_the_warning_are_on_stderr() {
    let (_, stderr) = run_child("no-logger");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("selectloop: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    assert!(
        errors[0].contains("told to fail after 4 bytes") && errors[0].contains("source dropped"),
        "{stderr}"
    );
    assert!(errors[0].contains("peer 127.0.0.1:"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("selectloop: warn: ") && l.contains("took")),
        "the slow-callback warning expected:\n{stderr}"
    );
}

fn with_a_logger_the_reports_go_to_it_not_to_stderr() {
    let (stdout, stderr) = run_child("logger");
    assert!(
        !stderr.contains("selectloop:"),
        "nothing on stderr with a logger:\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("logged: ERROR ") && l.contains("told to fail after 4 bytes")),
        "the error reaches the logger:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("logged: WARN ") && l.contains("took")),
        "the warning reaches the logger:\n{stdout}"
    );
}

fn main() {
    if let Ok(case) = std::env::var(CHILD) {
        child(&case);
        return;
    }
    let tests: [(&str, fn()); 2] = [
        (
            "without_a_logger_the_error_and_the_warning_are_on_stderr",
            without_a_logger_the_error_and_the_warning_are_on_stderr,
        ),
        (
            "with_a_logger_the_reports_go_to_it_not_to_stderr",
            with_a_logger_the_reports_go_to_it_not_to_stderr,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", tests.len());
}

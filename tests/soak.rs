//! The soak of `examples/echo` (and of `examples/echo_protocol`, the same
//! server on the stream transport), short: `examples/soak_client` and the server
//! as processes, 300 concurrent connections for 3 s (each one that ends
//! replaced by a new one) with random sizes and random resets, every byte of
//! every connection that is not reset checked; on Linux also the server's
//! descriptors back to their number before the run and its resident set
//! growth bounded (`/proc/PID`). `.ci/soak` runs the same client with 10,000
//! connections for 30 s.
//!
//! And the soak client's own checks, against servers that are wrong on
//! purpose: one that corrupts a byte, one that keeps its descriptors.
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

mod example_util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use example_util::{run_example, Finished, Server};

/// How long the soak client may take before the test kills it.
const LIMIT: Duration = Duration::from_secs(120);

/// One test at a time: the descriptor test watches this very process.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn describe(out: &Finished) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status, out.stdout, out.stderr
    )
}

/// The number of descriptors process `pid` has open.
#[cfg(target_os = "linux")]
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

#[test]
fn hundreds_of_connections_with_resets_lose_no_byte_and_leak_no_descriptor() {
    soak("echo");
}

/// The same soak against the echo server on the stream transport
/// (`transport::Protocol`).
#[cfg(feature = "transport")]
#[test]
fn the_transport_echo_loses_no_byte_and_leaks_no_descriptor_either() {
    soak("echo_protocol");
}

/// 300 connections for 3 s against `example`, checked as the module docs say.
fn soak(example: &str) {
    let _serial = serial();
    let mut server = Server::start(example, &["--addr", "127.0.0.1:0"]);
    let addr = server.addr.to_string();
    let pid = server.child.id().to_string();
    #[cfg(target_os = "linux")]
    let before = fd_count(server.child.id());
    let mut args = vec![
        "--addr",
        &addr,
        "--conns",
        "300",
        "--duration",
        "3",
        "--max-size",
        "131072",
        "--resets",
        "20",
        "--timeout",
        "60",
    ];
    if cfg!(target_os = "linux") {
        args.extend(["--pid", &pid, "--settle", "10", "--max-rss-growth", "32"]);
    }
    let started = Instant::now();
    let out = run_example("soak_client", &args, LIMIT);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    println!("soak_client finished in {:.1?}", started.elapsed());
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        out.stdout.contains(" 0 failed") && out.stdout.contains("0 bytes lost or corrupted"),
        "{}",
        describe(&out)
    );
    // Independently of the client's own check: the server is back to the
    // descriptors it had before the first connection (the client waited for
    // that; this only reads it again), and still serving.
    #[cfg(target_os = "linux")]
    assert_eq!(fd_count(server.child.id()), before, "server descriptors");
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the {example} server exited"
    );
    #[cfg(unix)]
    {
        let status = server.interrupt();
        assert!(status.success(), "{example} after SIGINT: {status:?}");
    }
}

/// A server on a thread of this process: `reply(request)` is what each
/// connection gets back after its request (up to the client's half-close);
/// the stream is then handed to `keep`.
fn wrong_server(
    reply: fn(Vec<u8>) -> Vec<u8>,
    keep: fn(std::net::TcpStream),
) -> std::net::SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(LIMIT));
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).is_ok() {
                    let _ = stream.write_all(&reply(request));
                    let _ = stream.shutdown(Shutdown::Write);
                }
                keep(stream);
            });
        }
    });
    addr
}

#[test]
fn a_corrupted_byte_fails_the_soak() {
    let _serial = serial();
    let addr = wrong_server(
        |mut request| {
            if let Some(last) = request.last_mut() {
                *last ^= 0x20;
            }
            request
        },
        drop,
    )
    .to_string();
    let out = run_example(
        "soak_client",
        &[
            "--addr",
            &addr,
            "--conns",
            "20",
            "--max-size",
            "4096",
            "--resets",
            "0",
            "--seed",
            "7",
            "--timeout",
            "20",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(out.stderr.contains(", expected "), "{}", describe(&out));
    assert!(out.stderr.contains("soak: FAILED"), "{}", describe(&out));
    assert!(!out.stdout.contains(" 0 failed"), "{}", describe(&out));
}

#[test]
fn a_missing_byte_fails_the_soak() {
    let _serial = serial();
    let addr = wrong_server(
        |mut request| {
            request.pop();
            request
        },
        drop,
    )
    .to_string();
    let out = run_example(
        "soak_client",
        &[
            "--addr",
            &addr,
            "--conns",
            "20",
            "--max-size",
            "4096",
            "--resets",
            "0",
            "--seed",
            "7",
            "--timeout",
            "20",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        out.stderr.contains("end of stream too early"),
        "{}",
        describe(&out)
    );
}

/// The server keeps every connection's descriptor after echoing: the run's
/// bytes are right, but the descriptor count does not come back.
#[cfg(target_os = "linux")]
#[test]
fn a_server_keeping_descriptors_fails_the_soak() {
    static KEPT: Mutex<Vec<std::net::TcpStream>> = Mutex::new(Vec::new());
    let _serial = serial();
    let addr = wrong_server(
        |request| request,
        |stream| KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(stream),
    )
    .to_string();
    let pid = std::process::id().to_string();
    let out = run_example(
        "soak_client",
        &[
            "--addr",
            &addr,
            "--conns",
            "20",
            "--max-size",
            "4096",
            "--resets",
            "0",
            "--timeout",
            "20",
            "--pid",
            &pid,
            "--settle",
            "1",
        ],
        LIMIT,
    );
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).clear();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(out.stdout.contains(" 0 failed"), "{}", describe(&out));
    assert!(
        out.stderr.contains("descriptors 1s after the run"),
        "{}",
        describe(&out)
    );
}

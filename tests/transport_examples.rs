//! The transport examples as real processes: `udp_echo` with a UDP client
//! (every byte checked), `subprocess` running a command (Unix: `sh`).
#![cfg(all(feature = "transport", feature = "signals"))]

mod example_util;

use std::net::UdpSocket;
use std::time::Duration;

use example_util::Server;

#[test]
fn udp_echo_echoes_every_byte_and_upper_cases() {
    for (flags, upper) in [
        (&["--addr", "127.0.0.1:0"][..], false),
        (&["--addr", "127.0.0.1:0", "--upper"][..], true),
    ] {
        let server = Server::start("udp_echo", flags);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = vec![0; 70_000];
        for (i, len) in [0usize, 1, 5, 1400, 9000, 65_507].into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (i * 37 + j * 11) as u8).collect();
            client.send_to(&data, server.addr).unwrap();
            let (n, from) = client.recv_from(&mut buf).expect("echo within 10 s");
            assert_eq!(from, server.addr);
            let want: Vec<u8> = if upper {
                data.to_ascii_uppercase()
            } else {
                data
            };
            assert!(
                n == len && buf[..n] == want[..],
                "datagram {i} ({len} bytes)"
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn subprocess_streams_prefixed_lines_and_exits_with_the_code() {
    let done = example_util::run_example(
        "subprocess",
        &[
            "--stdin",
            "from stdin\n",
            "--",
            "sh",
            "-c",
            "cat; echo oops >&2; printf 'last'; exit 3",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(done.status.code(), Some(3), "stderr: {}", done.stderr);
    // Each pipe's lines in order; the two pipes interleave as they arrive.
    let lines: Vec<&str> = done.stdout.lines().collect();
    let of = |prefix: &str| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(prefix))
            .collect()
    };
    assert_eq!(of("out| "), ["out| from stdin", "out| last"], "{lines:?}");
    assert_eq!(of("err| "), ["err| oops"], "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        done.stderr.contains("exit: exit status: 3"),
        "{}",
        done.stderr
    );
}

#[cfg(unix)]
#[test]
fn subprocess_reports_a_signal_as_128_plus_it() {
    let done = example_util::run_example(
        "subprocess",
        &["--", "sh", "-c", "kill -KILL $$"],
        Duration::from_secs(30),
    );
    assert_eq!(done.status.code(), Some(128 + 9));
    assert_eq!(done.stdout, "");
}

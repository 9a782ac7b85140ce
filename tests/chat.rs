//! `examples/chat` run as a process, with blocking clients here: broadcast
//! to every other client, whole lines from interleaved fragments, resets and
//! closes, an overlong line, a reader that never reads, and SIGINT.
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

mod example_util;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use example_util::Server;
use socket2::{Domain, Protocol, Socket, Type};

/// How long a client waits for a line (or EOF) before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A chat client: blocking, Nagle off, reads bounded by [`PATIENCE`].
struct Chatter {
    name: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Chatter {
    fn from_stream(name: &str, stream: TcpStream) -> Chatter {
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
        Chatter {
            name: name.to_string(),
            writer: stream.try_clone().expect("try_clone"),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{} could not send: {e}", self.name));
    }

    /// The next line, newline included.
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("{}: EOF while waiting for a line", self.name),
            Ok(_) => line,
            Err(e) => panic!("{}: no line within {PATIENCE:?}: {e}", self.name),
        }
    }

    /// Everything up to EOF.
    fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader
            .read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("{}: no EOF within {PATIENCE:?}: {e}", self.name));
        rest
    }
}

/// Connects a client and makes sure the server has it in the room before
/// returning: it says `NAME joined`, and everyone already in hears that.
/// The server accepts in connection order, so once a later client's line
/// reaches the earlier ones, all of them are in; the first client says
/// nothing (what it sent could reach clients that join after it).
fn join(addr: SocketAddr, name: &str, room: &mut [&mut Chatter]) -> Chatter {
    let stream = TcpStream::connect(addr).expect("connect");
    join_with(stream, name, room)
}

fn join_with(stream: TcpStream, name: &str, room: &mut [&mut Chatter]) -> Chatter {
    let mut me = Chatter::from_stream(name, stream);
    if room.is_empty() {
        return me; // nobody to hear it: when the server takes it in is unknown
    }
    let hello = format!("{name} joined\n");
    me.send(hello.as_bytes());
    for other in room.iter_mut() {
        assert_eq!(other.line(), hello, "{} hears {name} join", other.name);
    }
    me
}

/// Starts the chat server and three clients in the room.
fn room_of_three() -> (Server, Chatter, Chatter, Chatter) {
    let server = Server::start("chat", &["--addr", "127.0.0.1:0"]);
    let mut a = join(server.addr, "a", &mut []);
    let mut b = join(server.addr, "b", &mut [&mut a]);
    let c = join(server.addr, "c", &mut [&mut a, &mut b]);
    (server, a, b, c)
}

#[test]
fn a_line_goes_to_every_other_client_but_not_back_to_its_sender() {
    let (_server, mut a, mut b, mut c) = room_of_three();
    a.send(b"hello from a\n");
    assert_eq!(b.line(), "hello from a\n");
    assert_eq!(c.line(), "hello from a\n");
    // Had a got its own line back, it would come before b's.
    b.send(b"b here\n");
    assert_eq!(a.line(), "b here\n");
    assert_eq!(c.line(), "b here\n");
    c.send(b"and c\n");
    assert_eq!(a.line(), "and c\n");
    assert_eq!(b.line(), "and c\n");
    // Several lines in one write arrive as they were, in order.
    a.send(b"one\ntwo\nthree\n");
    for expected in ["one\n", "two\n", "three\n"] {
        assert_eq!(b.line(), expected);
        assert_eq!(c.line(), expected);
    }
    b.send(b"last\n");
    assert_eq!(a.line(), "last\n", "a got nothing of its own");
}

#[test]
fn lines_sent_in_interleaved_fragments_arrive_whole() {
    let (_server, mut a, mut b, mut c) = room_of_three();
    let line_a: String = (0..2000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect::<String>()
        + "\n";
    let line_b: String = (0..3000)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect::<String>()
        + "\n";
    // Seven bytes at a time, a and b taking turns, Nagle off: the server
    // reads the two lines in many pieces, mixed in time.
    let (mut pa, mut pb) = (line_a.as_bytes(), line_b.as_bytes());
    while !pa.is_empty() || !pb.is_empty() {
        for (who, rest) in [(&mut a, &mut pa), (&mut b, &mut pb)] {
            let n = rest.len().min(7);
            who.send(&rest[..n]);
            *rest = &rest[n..];
        }
    }
    let mut at_c = [c.line(), c.line()];
    at_c.sort();
    let mut expected = [line_a.clone(), line_b.clone()];
    expected.sort();
    assert!(at_c == expected, "c got two whole lines, one from each");
    assert!(b.line() == line_a, "b got a's whole line");
    assert!(a.line() == line_b, "a got b's whole line");
}

#[test]
fn a_client_that_resets_or_closes_does_not_hurt_the_others() {
    let (server, mut a, mut b, c) = room_of_three();
    // c has a line in its buffer it never reads, then resets.
    a.send(b"unread by c\n");
    assert_eq!(b.line(), "unread by c\n");
    let socket = Socket::from(c.writer);
    socket
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(socket);
    drop(c.reader); // the last descriptor: RST
    a.send(b"after the reset\n");
    assert_eq!(b.line(), "after the reset\n");

    // d joins (a and b hear it), then leaves cleanly.
    let mut d = join(server.addr, "d", &mut [&mut a, &mut b]);
    d.writer.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(d.rest(), b"", "the server closes d's connection too");
    drop(d);

    b.send(b"still chatting\n");
    assert_eq!(a.line(), "still chatting\n");
    let mut e = join(server.addr, "e", &mut [&mut a, &mut b]);
    a.send(b"welcome e\n");
    assert_eq!(b.line(), "welcome e\n");
    assert_eq!(e.line(), "welcome e\n");
}

#[test]
fn an_overlong_line_drops_only_its_sender() {
    let (_server, mut a, mut b, mut c) = room_of_three();
    // 70 KiB and no newline: over the 64 KiB limit.
    let long = vec![b'x'; 70 * 1024];
    c.send(&long);
    // The server closes c with part of the line unread, so c may see a
    // reset rather than EOF; either way, nothing arrives and it is closed.
    let mut rest = Vec::new();
    match c.reader.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("c: neither EOF nor reset within {PATIENCE:?}: {e}"),
    }
    assert!(rest.is_empty(), "c got {} bytes", rest.len());
    a.send(b"c is gone\n");
    assert_eq!(b.line(), "c is gone\n");
    b.send(b"yes\n");
    assert_eq!(a.line(), "yes\n");
}

#[test]
fn a_reader_that_never_reads_is_dropped_while_the_others_keep_chatting() {
    let (server, mut a, mut b) = {
        let server = Server::start("chat", &["--addr", "127.0.0.1:0"]);
        let mut a = join(server.addr, "a", &mut []);
        let b = join(server.addr, "b", &mut [&mut a]);
        (server, a, b)
    };
    // The slow reader, with a small receive buffer so the kernel holds
    // little for it: the server's queue for it fills up quickly.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&server.addr.into()).expect("connect");
    let mut slow = join_with(socket.into(), "slow", &mut [&mut a, &mut b]);

    // a sends 24 MiB in 256 KiB rounds, b reads each round whole before the
    // next (so b is never far behind); slow reads nothing. 24 MiB is more
    // than the 1 MiB bound plus anything the kernel buffers.
    let line: Vec<u8> = (0..4095u32)
        .map(|i| b'0' + (i % 10) as u8)
        .chain([b'\n'])
        .collect();
    let round: Vec<u8> = line.repeat(64);
    let rounds = 24 * 4;
    let mut got = vec![0u8; round.len()];
    for i in 0..rounds {
        a.send(&round);
        b.reader
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("b, round {i}: {e}"));
        assert!(got == round, "b, round {i}: the lines arrive as sent");
    }
    a.send(b"end of the flood\n");
    assert_eq!(b.line(), "end of the flood\n");

    // slow was dropped: it can read what the kernel had buffered, then EOF
    // (without the drop it would get all of it and then wait: timeout).
    let sent: Vec<u8> = round.repeat(rounds);
    let received = slow.rest();
    println!(
        "slow got {} of {} bytes before EOF",
        received.len(),
        sent.len()
    );
    assert!(
        received.len() < sent.len(),
        "slow got everything ({} bytes): it was never dropped",
        received.len()
    );
    assert!(
        sent.starts_with(&received),
        "what slow got before the drop is a prefix of what was sent"
    );

    // a and b carry on.
    b.send(b"room is quieter\n");
    assert_eq!(a.line(), "room is quieter\n");
    let _ = server;
}

#[cfg(unix)]
#[test]
fn sigint_tells_every_client_shutdown_server_then_eof_and_exits_0() {
    let (mut server, mut a, mut b, mut c) = room_of_three();
    a.send(b"before the end\n");
    assert_eq!(b.line(), "before the end\n");
    // c has not read "before the end" yet: it comes first, then the goodbye.
    let status = server.interrupt();
    assert!(status.success(), "exit status after SIGINT: {status:?}");
    assert_eq!(a.rest(), b"Shutdown Server\n");
    assert_eq!(b.rest(), b"Shutdown Server\n");
    assert_eq!(c.rest(), b"before the end\nShutdown Server\n");
    // The listener is closed too.
    match TcpStream::connect(server.addr) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
        Ok(_) => panic!("the listener is still open after shutdown"),
    }
}

#[test]
fn a_connection_that_closes_at_once_is_harmless() {
    let server = Server::start("chat", &["--addr", "127.0.0.1:0"]);
    let mut a = join(server.addr, "a", &mut []);
    // Connects and closes before the server even accepts it, sending nothing.
    drop(TcpStream::connect(server.addr).expect("connect"));
    let mut b = join(server.addr, "b", &mut [&mut a]);
    b.send(b"me\n");
    assert_eq!(a.line(), "me\n");
    a.send(b"still here\n");
    assert_eq!(b.line(), "still here\n");
}

#[cfg(unix)]
#[test]
fn sigint_with_a_client_that_does_not_read_still_exits_0() {
    // A bound far above what the kernel buffers, so that slow is not
    // dropped but still has lines queued in the server when Ctrl-C comes.
    let server = Server::start(
        "chat",
        &["--addr", "127.0.0.1:0", "--max-queued", "67108864"],
    );
    let mut a = join(server.addr, "a", &mut []);
    let mut b = join(server.addr, "b", &mut [&mut a]);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&server.addr.into()).expect("connect");
    let mut slow = join_with(socket.into(), "slow", &mut [&mut a, &mut b]);
    // 16 MiB for slow, more than the kernel buffers: the rest is still
    // queued in the server when Ctrl-C comes, and so is the goodbye; the
    // server waits its grace period, then closes slow anyway.
    let line: Vec<u8> = [b'z'; 1023].iter().copied().chain([b'\n']).collect();
    let flood = line.repeat(16 * 1024);
    a.send(&flood);
    let mut got = vec![0u8; flood.len()];
    b.reader.read_exact(&mut got).expect("b reads the flood");

    let mut server = server;
    let status = server.interrupt();
    assert!(status.success(), "exit status after SIGINT: {status:?}");
    assert_eq!(a.rest(), b"Shutdown Server\n");
    assert_eq!(b.rest(), b"Shutdown Server\n");
    // slow gets what was sent before the grace period ended, then EOF.
    let received = slow.rest();
    assert!(received.len() < flood.len(), "slow got the whole flood");
    let mut whole = flood.clone();
    whole.extend_from_slice(b"Shutdown Server\n");
    assert!(
        whole.starts_with(&received),
        "slow got a prefix of the flood and the goodbye ({} bytes)",
        received.len()
    );
}

#[test]
fn an_idle_client_is_told_and_closed_while_active_ones_stay() {
    const IDLE_MS: u64 = 300;
    let server = Server::start(
        "chat",
        &[
            "--addr",
            "127.0.0.1:0",
            "--idle-timeout-ms",
            &IDLE_MS.to_string(),
        ],
    );
    let connected = Instant::now();
    let mut idle = join(server.addr, "idle", &mut []);
    let mut a = join(server.addr, "a", &mut [&mut idle]);
    let mut b = join(server.addr, "b", &mut [&mut idle, &mut a]);
    // `idle` hears what the room says but never speaks. Reads bounded by a
    // short timeout pace the loop; a and b speak every round, far more often
    // than the idle timeout, so only `idle` is ever silent long enough.
    idle.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    let mut round = 0u64;
    loop {
        assert!(
            connected.elapsed() < PATIENCE,
            "idle client still open after {PATIENCE:?} (idle timeout {IDLE_MS} ms)"
        );
        round += 1;
        let ping = format!("ping {round}\n");
        a.send(ping.as_bytes());
        assert_eq!(b.line(), ping);
        let pong = format!("pong {round}\n");
        b.send(pong.as_bytes());
        assert_eq!(a.line(), pong);
        match idle.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => heard.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("idle client: {e}"),
        }
    }
    assert!(
        connected.elapsed() >= Duration::from_millis(IDLE_MS),
        "closed after {:?}, before the idle timeout",
        connected.elapsed()
    );
    let heard = String::from_utf8(heard).expect("lines");
    assert!(
        heard.ends_with("Idle Timeout\n"),
        "the idle client is told why before EOF; it heard {heard:?}"
    );
    // Everything else it heard was the room's chatter, whole lines in order.
    for line in heard.lines().filter(|l| *l != "Idle Timeout") {
        assert!(
            line.starts_with("ping ") || line.starts_with("pong "),
            "{line:?}"
        );
    }
    // The active clients are still in the room.
    a.send(b"still here\n");
    assert_eq!(b.line(), "still here\n");
    b.send(b"me too\n");
    assert_eq!(a.line(), "me too\n");
}

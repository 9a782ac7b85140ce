//! examples/offload.rs as a real process: file reads on the loop's thread
//! pool while the loop keeps echoing. Every wait is bounded by [`PATIENCE`].
#![cfg(all(feature = "event-loop", feature = "signals", feature = "net"))]

mod example_util;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use example_util::Server;

/// The longest any single wait for the server may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn server(work_delay_ms: u64) -> Server {
    let delay = work_delay_ms.to_string();
    Server::start(
        "offload",
        &["--addr", "127.0.0.1:0", "--work-delay-ms", &delay],
    )
}

/// A line-oriented client.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("send");
    }

    /// The next line, without its newline.
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => {}
            Err(e) => panic!("no line from the server within {PATIENCE:?}: {e}"),
        }
        assert!(line.ends_with('\n'), "a whole line: {line:?}");
        line.truncate(line.len() - 1);
        line
    }

    /// True if nothing has arrived that was not read yet.
    fn nothing_arrived(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        self.stream.set_nonblocking(true).unwrap();
        let peeked = self.stream.peek(&mut [0; 1]);
        self.stream.set_nonblocking(false).unwrap();
        match peeked {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Ok(_) => false,
            Err(e) => panic!("peek: {e}"),
        }
    }

    /// Everything until the server closes.
    fn rest(&mut self) -> String {
        let mut rest = String::new();
        self.reader
            .read_to_string(&mut rest)
            .expect("the server closes within PATIENCE");
        rest
    }
}

/// A file written by the test, removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, len: usize) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("selectloop-offload-{}-{name}", std::process::id()));
        let contents: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, contents).expect("write the temp file");
        TempFile { path }
    }

    fn read_line(&self) -> String {
        format!("READ {}\n", self.path.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn a_slow_read_does_not_block_echoes_to_this_or_another_client() {
    // Each READ takes 3 s on a worker: the echoes below must all come first.
    let server = server(3000);
    let file = TempFile::new("slow", 1000);
    let mut a = Client::connect(server.addr);
    let mut b = Client::connect(server.addr);

    // The server handles A's lines in order, so the READ is under way when
    // `ping` is echoed; a loop blocked by the READ would answer it first.
    a.send(&format!("{}ping\n", file.read_line()));
    assert_eq!(a.line(), "PING");
    // Several round trips for B, each needing a loop iteration of its own:
    // a loop that ran the READ itself would have sent its answer by then.
    for i in 0..3 {
        b.send(&format!("hello {i} from b\n"));
        assert_eq!(b.line(), format!("HELLO {i} FROM B"));
    }
    assert!(
        a.nothing_arrived(),
        "the READ's answer came before another client's echo"
    );
    assert_eq!(a.line(), "1000 bytes");
}

#[test]
fn read_answers_the_byte_count_of_files_written_by_the_test() {
    let server = server(0);
    let big = TempFile::new("big", 5_000_000);
    let empty = TempFile::new("empty", 0);
    let one = TempFile::new("one", 1);
    let odd = TempFile::new("odd", 123_457);
    let mut c = Client::connect(server.addr);
    c.send(&odd.read_line());
    assert_eq!(c.line(), "123457 bytes");
    // Several READs in one go: the big one likely finishes last, yet its
    // answer comes first, as it was asked first.
    c.send(&[&big, &empty, &one, &odd].map(TempFile::read_line).concat());
    for expected in ["5000000 bytes", "0 bytes", "1 bytes", "123457 bytes"] {
        assert_eq!(c.line(), expected);
    }
}

/// A client's READs are answered in the order it sent them, even when a
/// later one finishes first. Deterministic on Unix: the first READ is of a
/// FIFO, which blocks its worker until the test writes to it.
#[cfg(unix)] // mkfifo(3)
#[test]
fn read_answers_are_held_back_until_earlier_reads_finish() {
    // Two workers: one blocks on the FIFO, the other runs every other READ,
    // one after the other, in the order they were asked.
    let server = Server::start(
        "offload",
        &[
            "--addr",
            "127.0.0.1:0",
            "--work-delay-ms",
            "0",
            "--workers",
            "2",
        ],
    );
    let fifo = TempFile {
        path: std::env::temp_dir().join(format!("selectloop-offload-{}-fifo", std::process::id())),
    };
    let c_path = std::ffi::CString::new(fifo.path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let small = TempFile::new("held-back", 5);

    let mut c = Client::connect(server.addr);
    c.send(&format!("{}{}ping\n", fifo.read_line(), small.read_line()));
    assert_eq!(c.line(), "PING", "both READs are under way");
    // Another client's READ runs after C's small one on the free worker, and
    // its done-callback after C's: once D has its answer, C's small READ
    // has finished, and its answer must be held back behind the FIFO's.
    let mut d = Client::connect(server.addr);
    d.send(&small.read_line());
    assert_eq!(d.line(), "5 bytes");
    assert!(
        c.nothing_arrived(),
        "an answer overtook the READ asked before it"
    );

    // Let the FIFO's READ finish: both answers arrive, in order.
    std::fs::write(&fifo.path, b"abc").expect("write the FIFO");
    assert_eq!(c.line(), "3 bytes");
    assert_eq!(c.line(), "5 bytes");
}

#[test]
fn a_missing_file_gets_an_error_line_and_the_server_keeps_serving() {
    let server = server(0);
    let file = TempFile::new("present", 42);
    let missing = std::env::temp_dir().join(format!(
        "selectloop-offload-{}-does-not-exist",
        std::process::id()
    ));
    let mut c = Client::connect(server.addr);
    c.send(&format!("READ {}\n", missing.display()));
    let error = c.line();
    assert!(
        error.starts_with(&format!("ERROR {}: ", missing.display())),
        "{error:?}"
    );
    c.send("READ \n");
    assert_eq!(c.line(), "ERROR READ needs a path");
    // The same connection, and a new one, are still served.
    c.send("still here\n");
    assert_eq!(c.line(), "STILL HERE");
    c.send(&file.read_line());
    assert_eq!(c.line(), "42 bytes");
    let mut other = Client::connect(server.addr);
    other.send("new client\n");
    assert_eq!(other.line(), "NEW CLIENT");
}

#[test]
fn a_half_closed_client_still_gets_its_read_answers_then_the_server_closes() {
    // The READ is still under way when the end of stream arrives.
    let server = server(1000);
    let file = TempFile::new("half-closed", 777);
    let mut c = Client::connect(server.addr);
    c.send(&format!("{}bye\n", file.read_line()));
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.rest(), "BYE\n777 bytes\n");
}

#[test]
fn lines_are_echoed_upper_cased_even_when_split_or_long() {
    let server = server(0);
    let mut c = Client::connect(server.addr);
    c.send("abc");
    c.send("def\n");
    assert_eq!(c.line(), "ABCDEF");
    // 300 KB in one line: more than the server keeps of a line, so echoed
    // in pieces (sent from another thread: the echo is backpressured).
    let long: String = (0..300_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut writer = c.stream.try_clone().unwrap();
    let line = format!("{long}\n");
    let sender = std::thread::spawn(move || writer.write_all(line.as_bytes()));
    assert_eq!(c.line(), long.to_ascii_uppercase());
    sender.join().unwrap().expect("sent");
    // READ is a command only at the start of a line.
    c.send("echo READ this\n");
    assert_eq!(c.line(), "ECHO READ THIS");
}

#[cfg(unix)] // Signals a child process with SIGINT; Windows has no equivalent for one process.
#[test]
fn ctrl_c_exits_0_at_once_even_with_a_read_under_way() {
    // A READ that would take a minute: Ctrl-C must not wait for it.
    let mut server = server(60_000);
    let file = TempFile::new("interrupted", 10);
    let mut c = Client::connect(server.addr);
    c.send(&format!("{}x\n", file.read_line()));
    assert_eq!(c.line(), "X", "the READ is under way");
    let status = server.interrupt();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(c.rest(), "", "closed without an answer");
}

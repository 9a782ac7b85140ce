//! The tests of `examples/echo`, shared by `tests/echo.rs` and
//! `tests/echo_protocol.rs` (`examples/echo_protocol` has the same flags,
//! output and behaviour): each binary names its example in `EXAMPLE`.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use crate::example_util::{self, Server};
use selectloop::{EventLoop, Interest, EVENT_READ, EVENT_WRITE};
use socket2::{Domain, Protocol, Socket, Type};

/// The largest message a client of the concurrent tests sends.
const MAX_MESSAGE: usize = 256 * 1024;
/// How long a blocking read in these tests waits before failing.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a whole multiplexed run may take before it is declared stuck.
const RUN_LIMIT: Duration = Duration::from_secs(120);

// ----- data -----------------------------------------------------------------

/// xorshift64*: reproducible pseudo-random numbers, no dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        println!("random seed {seed:#x}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
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

/// What the clients send: slices of one random pool, each client its own
/// offset and length; `expected` is the pool as the server should send it back.
struct Pool {
    sent: Vec<u8>,
    expected: Vec<u8>,
}

impl Pool {
    fn new(rng: &mut Rng, upper: bool) -> Pool {
        let sent = rng.bytes(2 * MAX_MESSAGE);
        let mut expected = sent.clone();
        if upper {
            expected.make_ascii_uppercase();
        }
        Pool { sent, expected }
    }
}

// ----- many clients on one EventLoop ------------------------------------------

/// One client of [`echo_many`]: sends `pool.sent[offset..offset + len]`,
/// half-closes, and checks what comes back until end of stream.
struct Client {
    index: usize,
    offset: usize,
    len: usize,
    connected: bool,
    sent: usize,
    received: usize,
}

impl Client {
    /// `Ok(true)` when the whole echo and then EOF came back.
    fn on_ready(
        &mut self,
        stream: &mut TcpStream,
        mask: Interest,
        pool: &Pool,
    ) -> Result<bool, String> {
        if !self.connected {
            if let Some(e) = stream.take_error().map_err(|e| e.to_string())? {
                return Err(format!("connect failed: {e}"));
            }
            stream
                .peer_addr()
                .map_err(|e| format!("connect failed: {e}"))?;
            self.connected = true;
        }
        if mask.is_writable() && self.sent < self.len {
            let rest = &pool.sent[self.offset + self.sent..self.offset + self.len];
            match stream.write(rest) {
                Ok(n) => self.sent += n,
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(format!("write failed after {} bytes: {e}", self.sent)),
            }
            if self.sent == self.len {
                stream
                    .shutdown(Shutdown::Write)
                    .map_err(|e| format!("shutdown: {e}"))?;
            }
        }
        if mask.is_readable() {
            let mut buf = [0u8; 64 * 1024];
            match stream.read(&mut buf) {
                Ok(0) if self.received == self.len => return Ok(true),
                Ok(0) => return Err(format!("EOF after {} of {} bytes", self.received, self.len)),
                Ok(n) => {
                    let got = &buf[..n];
                    let start = self.offset + self.received;
                    let want = &pool.expected[start..(start + n).min(self.offset + self.len)];
                    if got != want {
                        let at = got
                            .iter()
                            .zip(want)
                            .position(|(g, w)| g != w)
                            .unwrap_or(want.len());
                        return Err(format!(
                            "byte {} of {} differs (got {} bytes, {} expected from here)",
                            self.received + at,
                            self.len,
                            n,
                            want.len()
                        ));
                    }
                    self.received += n;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => {
                    return Err(format!(
                        "read failed after {} of {} bytes: {e}",
                        self.received, self.len
                    ))
                }
            }
        }
        Ok(false)
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// A non-blocking connect started (loopback: it may complete at once).
fn start_connect(addr: SocketAddr) -> io::Result<(TcpStream, bool)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    let done = match socket.connect(&addr.into()) {
        Ok(()) => true,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => return Err(e),
    };
    Ok((socket.into(), done))
}

/// What [`echo_many`] did.
struct Outcome {
    bytes: usize,
    failures: Vec<String>,
    timed_out: bool,
}

/// Opens `conns` connections to `addr` at once, all multiplexed on one
/// `EventLoop`, each sending a random slice of the pool (random length up
/// to [`MAX_MESSAGE`]) while reading the echo back and checking every byte.
fn echo_many(addr: SocketAddr, conns: usize, pool: &Rc<Pool>, rng: &mut Rng) -> Outcome {
    let mut lp = EventLoop::new().expect("EventLoop::new");
    let open = Rc::new(RefCell::new(conns));
    let failures = Rc::new(RefCell::new(Vec::<String>::new()));
    let mut bytes = 0;
    for index in 0..conns {
        let len = match index {
            0 => MAX_MESSAGE,
            1 => 1,
            _ => 1 + rng.upto(MAX_MESSAGE - 1),
        };
        let offset = rng.upto(pool.sent.len() - len);
        bytes += len;
        let (stream, connected) = start_connect(addr).expect("start a connect");
        let mut client = Client {
            index,
            offset,
            len,
            connected,
            sent: 0,
            received: 0,
        };
        let (pool, open, failures) = (Rc::clone(pool), Rc::clone(&open), Rc::clone(&failures));
        lp.register(
            stream,
            EVENT_READ | EVENT_WRITE,
            move |lp, stream: &mut TcpStream, ev| {
                let mask = ev.mask();
                let me = ev.token();
                let done = match client.on_ready(stream, mask, &pool) {
                    Ok(false) => {
                        if client.sent == client.len {
                            lp.modify(me, EVENT_READ)?;
                        }
                        return Ok(());
                    }
                    Ok(true) => None,
                    Err(what) => Some(format!("client {}: {what}", client.index)),
                };
                failures.borrow_mut().extend(done);
                lp.unregister(me)?;
                let mut open = open.borrow_mut();
                *open -= 1;
                if *open == 0 {
                    lp.stop();
                }
                Ok(())
            },
        )
        .expect("register a client");
    }
    let timed_out = Rc::new(RefCell::new(false));
    let flag = Rc::clone(&timed_out);
    let watchdog = lp.call_later(RUN_LIMIT, move |lp| {
        *flag.borrow_mut() = true;
        lp.stop();
        Ok(())
    });
    lp.run().expect("run the clients' loop");
    watchdog.cancel();
    let failures = failures.borrow().clone();
    let timed_out = *timed_out.borrow();
    if timed_out {
        println!("{} of {conns} connections unfinished", open.borrow());
    }
    Outcome {
        bytes,
        failures,
        timed_out,
    }
}

fn assert_all_echoed(outcome: &Outcome, conns: usize) {
    assert!(
        outcome.failures.is_empty() && !outcome.timed_out,
        "{} of {conns} connections failed{}: {:#?}",
        outcome.failures.len(),
        if outcome.timed_out {
            format!(" (and the run was stopped after {RUN_LIMIT:?})")
        } else {
            String::new()
        },
        &outcome.failures[..outcome.failures.len().min(10)]
    );
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit (the server process,
/// started afterwards, inherits it) and returns how many connections fit:
/// each needs a descriptor here and one in the server.
#[cfg(unix)]
fn connections_that_fit(wanted: usize) -> usize {
    // Descriptors kept for everything else both processes have open,
    // the other tests of this binary running alongside included.
    const SPARE: u64 = 128;
    let lim = crate::common::raise_nofile_limit(libc::RLIM_INFINITY).expect("getrlimit");
    // rlim_t is u64 on Linux and macOS, i64 on FreeBSD.
    #[allow(clippy::unnecessary_cast)]
    let fit = (lim.rlim_cur as u64).saturating_sub(SPARE) as usize;
    if fit < wanted {
        println!(
            "RLIMIT_NOFILE is {} (hard limit {}): scaling {wanted} connections down to {fit}",
            lim.rlim_cur, lim.rlim_max
        );
        fit.max(1)
    } else {
        wanted
    }
}

#[cfg(not(unix))]
fn connections_that_fit(wanted: usize) -> usize {
    wanted
}

// ----- the tests ----------------------------------------------------------------

#[test]
fn thousand_concurrent_connections_random_sizes_all_bytes_verified() {
    let conns = connections_that_fit(1000);
    let server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0"]);
    let mut rng = Rng::seeded();
    let pool = Rc::new(Pool::new(&mut rng, false));
    let started = Instant::now();
    let outcome = echo_many(server.addr, conns, &pool, &mut rng);
    assert_all_echoed(&outcome, conns);
    println!(
        "{conns} connections, {} bytes echoed and verified in {:.1?}",
        outcome.bytes,
        started.elapsed()
    );
}

#[test]
fn upper_echoes_ascii_upper_cased_and_other_bytes_untouched() {
    let server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0", "--upper"]);
    // One by hand...
    let mut conn = connect(server.addr);
    conn.write_all("hello, World! 123 ÿé\n".as_bytes())
        .expect("write");
    conn.shutdown(Shutdown::Write).expect("half-close");
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).expect("read to EOF");
    assert_eq!(reply, "HELLO, WORLD! 123 ÿé\n".as_bytes());

    // ...and 100 concurrent random ones (every byte value occurs).
    let mut rng = Rng::seeded();
    let pool = Rc::new(Pool::new(&mut rng, true));
    let outcome = echo_many(server.addr, 100, &pool, &mut rng);
    assert_all_echoed(&outcome, 100);
}

#[test]
fn two_threads_serve_200_concurrent_connections() {
    let server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0", "--threads", "2"]);
    let mut rng = Rng::seeded();
    let pool = Rc::new(Pool::new(&mut rng, false));
    let outcome = echo_many(server.addr, 200, &pool, &mut rng);
    assert_all_echoed(&outcome, 200);
}

/// A blocking client with bounded reads.
fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(PATIENCE)).expect("timeout");
    conn.set_write_timeout(Some(PATIENCE)).expect("timeout");
    conn
}

/// Sends `data` from a second thread while reading the echo here, then
/// half-closes; returns everything read up to EOF.
fn echo_round_trip(conn: &TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut writer = conn.try_clone().expect("try_clone");
    let sender = thread::spawn(move || {
        writer.write_all(&data)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut echoed = Vec::new();
    (&*conn).read_to_end(&mut echoed).expect("read to EOF");
    sender
        .join()
        .expect("sender thread")
        .expect("write and half-close");
    echoed
}

#[test]
fn half_closed_client_still_receives_every_byte_then_eof() {
    let server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0"]);
    let mut rng = Rng::seeded();
    // Several MiB: far more than the socket buffers hold, so most of the
    // echo is still to come when the server sees the half-close.
    let data = rng.bytes(4 * 1024 * 1024 + 17);
    let conn = connect(server.addr);
    let echoed = echo_round_trip(&conn, data.clone());
    assert_eq!(echoed.len(), data.len(), "every byte, then EOF");
    assert!(echoed == data, "the echo differs from what was sent");
}

#[test]
fn client_reset_mid_stream_does_not_hurt_the_others() {
    let mut server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0"]);
    let mut rng = Rng::seeded();
    let bystander = connect(server.addr);

    // The victim writes without reading until the server has an echo it
    // cannot send (the buffers both ways are full), reads a little of it,
    // then resets the connection.
    let victim = connect(server.addr);
    let chunk = rng.bytes(64 * 1024);
    victim.set_nonblocking(true).expect("nonblocking");
    let mut written = 0usize;
    loop {
        match (&victim).write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("victim write: {e}"),
        }
        assert!(written < 256 << 20, "the server never pushed back");
    }
    victim.set_nonblocking(false).expect("blocking");
    let mut first = vec![0; 1000];
    (&victim).read_exact(&mut first).expect("read some echo");
    assert_eq!(first, chunk[..1000]);
    let socket = Socket::from(victim);
    socket
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(socket); // RST, with the server's echo half sent

    // The connection that was open all along is still served...
    let data = rng.bytes(300 * 1024);
    assert!(echo_round_trip(&bystander, data.clone()) == data);
    // ...and so are new ones, and the server is still running.
    let data = rng.bytes(100 * 1024);
    assert!(echo_round_trip(&connect(server.addr), data.clone()) == data);
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the server exited"
    );
}

#[cfg(unix)]
#[test]
fn sigint_exits_with_status_0() {
    let mut server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0"]);
    // A connected client and one round trip first: SIGINT arrives while serving.
    let conn = connect(server.addr);
    (&conn).write_all(b"ping").expect("write");
    let mut pong = [0; 4];
    (&conn).read_exact(&mut pong).expect("read");
    assert_eq!(&pong, b"ping");
    let status = server.interrupt();
    assert!(status.success(), "exit status after SIGINT: {status:?}");
}

#[cfg(unix)]
#[test]
fn sigint_with_two_threads_exits_with_status_0() {
    let mut server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0", "--threads", "2"]);
    let data = b"two loops".to_vec();
    assert!(echo_round_trip(&connect(server.addr), data.clone()) == data);
    let status = server.interrupt();
    assert!(status.success(), "exit status after SIGINT: {status:?}");
}

/// `listening on` promises a server that is ready, Ctrl-C handling included:
/// a SIGINT straight after it must still end in a clean exit.
#[cfg(unix)]
#[test]
fn sigint_right_after_the_listening_line_exits_with_status_0() {
    for threads in ["1", "2", "4"] {
        let mut server = Server::start(
            crate::EXAMPLE,
            &["--addr", "127.0.0.1:0", "--threads", threads],
        );
        let status = server.interrupt();
        assert!(
            status.success(),
            "--threads {threads}: exit status after SIGINT: {status:?}"
        );
    }
}

/// 50 asyncio tasks, each writing random messages of random sizes, reading
/// each echo with `readexactly`, comparing, then half-closing and expecting EOF.
const ASYNCIO_CLIENT: &str = r#"
import asyncio, os, random, sys

HOST, PORT, TASKS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

async def client(i):
    reader, writer = await asyncio.open_connection(HOST, PORT)
    total = 0
    for _ in range(3):
        data = os.urandom(random.randint(1, 256 * 1024))
        async def send():
            writer.write(data)
            await writer.drain()
        sending = asyncio.create_task(send())
        echoed = await reader.readexactly(len(data))
        await sending
        if echoed != data:
            at = next(k for k in range(len(data)) if echoed[k] != data[k])
            raise AssertionError(f"task {i}: echo differs at byte {at} of {len(data)}")
        total += len(data)
    writer.write_eof()
    rest = await reader.read()
    if rest:
        raise AssertionError(f"task {i}: {len(rest)} unexpected bytes before EOF")
    writer.close()
    await writer.wait_closed()
    return total

async def main():
    totals = await asyncio.wait_for(
        asyncio.gather(*(client(i) for i in range(TASKS))), timeout=60)
    print(f"asyncio: {TASKS} tasks, {sum(totals)} bytes echoed and verified")

asyncio.run(main())
"#;

#[test]
fn python_asyncio_clients_get_every_byte_back() {
    let Some(python) = example_util::python3("python_asyncio_clients_get_every_byte_back") else {
        return;
    };
    let server = Server::start(crate::EXAMPLE, &["--addr", "127.0.0.1:0"]);
    let args = vec![
        server.addr.ip().to_string(),
        server.addr.port().to_string(),
        "50".to_string(),
    ];
    let (ok, stdout, stderr) = example_util::run_python(&python, ASYNCIO_CLIENT, &args);
    assert!(ok, "asyncio client failed\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("asyncio: 50 tasks,"),
        "unexpected output\n{stdout}\n{stderr}"
    );
}

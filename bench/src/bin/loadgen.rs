//! Closed-loop ping-pong load generator: C connections opened gradually,
//! each sending an M-byte message and waiting for all of it back (every
//! byte verified) before the next; latency percentiles, and the server's CPU
//! per message from /proc.
//!
//! ```text
//! loadgen --addr HOST:PORT [--conns C] [--size M] (--msgs N | --secs S [--warmup S])
//!         [--server-pid PID] [--upper] [--batch B] [--label L] [--header] [--timeout S]
//! ```
//!
//! - `--msgs N`: exactly N messages in all (connection i sends N/C, the
//!   first N%C one more), then exit; for differencing instruction and
//!   syscall counts. `--secs S` (default 2): as many as fit in S seconds,
//!   after `--warmup` seconds (default 0.5) not counted.
//! - `--batch B` (default 100): connections are opened B at a time, each
//!   batch connected before the next starts.
//! - `--upper`: the server upper-cases (examples/io_models).
//!
//! Prints one CSV line to stdout (`--header` first prints the column
//! names): label, conns, size, msgs, secs, msgs_per_s, p50_us, p99_us,
//! p999_us, server_cpu_us_per_msg (empty without `--server-pid`). A wrong
//! byte, a closed connection or the timeout exits 1.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::exit;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Opts {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    msgs: Option<u64>,
    secs: f64,
    warmup: f64,
    server_pid: Option<u32>,
    upper: bool,
    batch: usize,
    label: String,
    header: bool,
    timeout: f64,
}

fn parse() -> Opts {
    let mut o = Opts {
        addr: "127.0.0.1:9999".parse().unwrap(),
        conns: 1,
        size: 64,
        msgs: None,
        secs: 2.0,
        warmup: 0.5,
        server_pid: None,
        upper: false,
        batch: 100,
        label: "-".into(),
        header: false,
        timeout: 300.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        fn num<T: std::str::FromStr>(s: String) -> T {
            s.parse()
                .unwrap_or_else(|_| fail(&format!("not a number: {s:?}")))
        }
        match flag.as_str() {
            "--addr" => o.addr = num(value()),
            "--conns" => o.conns = num(value()),
            "--size" => o.size = num(value()),
            "--msgs" => o.msgs = Some(num(value())),
            "--secs" => o.secs = num(value()),
            "--warmup" => o.warmup = num(value()),
            "--server-pid" => o.server_pid = Some(num(value())),
            "--batch" => o.batch = num(value()),
            "--label" => o.label = value(),
            "--timeout" => o.timeout = num(value()),
            "--upper" => o.upper = true,
            "--header" => o.header = true,
            _ => fail(&format!("unknown argument {flag:?}")),
        }
    }
    if o.conns == 0 || o.size == 0 || o.batch == 0 {
        fail("--conns, --size and --batch must be above 0");
    }
    o
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    exit(1)
}

struct Conn {
    stream: TcpStream,
    connected: bool,
    /// Messages still to complete, the one under way included.
    left: u64,
    seq: u64,
    sent: usize,
    recvd: usize,
    started: Instant,
}

/// Message `seq` of connection `id` is `size` bytes of the 256-periodic
/// table from this offset, so consecutive messages differ.
fn base(id: usize, seq: u64) -> usize {
    ((id as u64)
        .wrapping_mul(7)
        .wrapping_add(seq.wrapping_mul(13))
        % 256) as usize
}

struct Gen {
    o: Opts,
    /// What is sent, and what must come back (upper-cased with `--upper`).
    table: Vec<u8>,
    expect: Vec<u8>,
    rbuf: Vec<u8>,
    conns: Vec<Conn>,
    done: u64,
    latencies: Vec<u64>,
}

impl Gen {
    fn send(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        let start = base(i, c.seq);
        while c.sent < self.o.size {
            match c
                .stream
                .write(&self.table[start + c.sent..start + self.o.size])
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn start(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        if c.left == 0 {
            return Ok(());
        }
        c.sent = 0;
        c.recvd = 0;
        c.started = Instant::now();
        self.send(i)
    }

    /// Reads until it would block (edge-triggered), verifying every byte.
    fn receive(&mut self, i: usize) -> io::Result<()> {
        loop {
            let c = &mut self.conns[i];
            let want = self.o.size - c.recvd;
            if want == 0 || c.left == 0 {
                // Nothing is expected: any byte is one too many.
                let n = match c.stream.read(&mut self.rbuf[..1]) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    r => r?,
                };
                if n == 0 {
                    return Ok(());
                }
                fail(&format!(
                    "connection {i}: unexpected byte after message {}",
                    c.seq
                ));
            }
            let n = match c.stream.read(&mut self.rbuf[..want]) {
                Ok(0) => fail(&format!("connection {i}: closed by the server")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let from = base(i, c.seq) + c.recvd;
            if self.rbuf[..n] != self.expect[from..from + n] {
                let at = (0..n)
                    .find(|&k| self.rbuf[k] != self.expect[from + k])
                    .unwrap();
                fail(&format!(
                    "connection {i}, message {}, byte {}: got {:#04x}, expected {:#04x}",
                    c.seq,
                    c.recvd + at,
                    self.rbuf[at],
                    self.expect[from + at]
                ));
            }
            c.recvd += n;
            if c.recvd == self.o.size {
                self.latencies.push(c.started.elapsed().as_nanos() as u64);
                self.done += 1;
                c.seq += 1;
                c.left -= 1;
                self.start(i)?;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[k.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() {
    selectloop_bench::raise_fd_limit();
    let o = parse();
    let deadline = Instant::now() + Duration::from_secs_f64(o.timeout);
    let mut table: Vec<u8> = (0..256 + o.size).map(|j| j as u8).collect();
    let expect = if o.upper {
        table.iter().map(u8::to_ascii_uppercase).collect()
    } else {
        table.clone()
    };
    let mut poll = Poll::new().unwrap_or_else(|e| fail(&format!("poll: {e}")));
    let mut events = Events::with_capacity(1024);
    let check_time = || {
        if Instant::now() > deadline {
            fail("timed out")
        }
    };

    // Connections, `batch` at a time.
    let mut conns: Vec<Conn> = Vec::with_capacity(o.conns);
    while conns.len() < o.conns {
        let from = conns.len();
        for i in from..(from + o.batch).min(o.conns) {
            let mut stream = TcpStream::connect(o.addr)
                .unwrap_or_else(|e| fail(&format!("connection {i}: {e}")));
            let interest = Interest::READABLE | Interest::WRITABLE;
            poll.registry()
                .register(&mut stream, Token(i), interest)
                .unwrap_or_else(|e| fail(&format!("register: {e}")));
            let left = match o.msgs {
                Some(n) => n / o.conns as u64 + u64::from((i as u64) < n % o.conns as u64),
                None => u64::MAX,
            };
            conns.push(Conn {
                stream,
                connected: false,
                left,
                seq: 0,
                sent: 0,
                recvd: 0,
                started: Instant::now(),
            });
        }
        let mut pending = conns.len() - from;
        while pending > 0 {
            check_time();
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap_or_else(|e| fail(&format!("poll: {e}")));
            for ev in events.iter() {
                let c = &mut conns[ev.token().0];
                if c.connected || !ev.is_writable() {
                    continue;
                }
                if let Ok(Some(e)) | Err(e) = c.stream.take_error() {
                    fail(&format!("connection {}: {e}", ev.token().0));
                }
                match c.stream.peer_addr() {
                    Ok(_) => {
                        c.stream.set_nodelay(true).ok();
                        c.connected = true;
                        pending -= 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => fail(&format!("connection {}: {e}", ev.token().0)),
                }
            }
        }
    }

    let mut g = Gen {
        rbuf: vec![0; o.size],
        table: std::mem::take(&mut table),
        expect,
        conns,
        done: 0,
        latencies: Vec::new(),
        o,
    };
    let cpu = |g: &Gen| {
        g.o.server_pid
            .and_then(|pid| selectloop_bench::cpu_ns(pid).ok())
    };
    let mut t0 = Instant::now();
    let mut cpu0 = cpu(&g);
    let warmup_end =
        g.o.msgs
            .is_none()
            .then(|| t0 + Duration::from_secs_f64(g.o.warmup));
    let mut end =
        g.o.msgs
            .is_none()
            .then(|| t0 + Duration::from_secs_f64(g.o.warmup + g.o.secs));
    let total = g.o.msgs;
    for i in 0..g.conns.len() {
        g.start(i)
            .unwrap_or_else(|e| fail(&format!("connection {i}: {e}")));
    }
    let mut warming = warmup_end.is_some();
    loop {
        check_time();
        let now = Instant::now();
        if warming && now >= warmup_end.unwrap() {
            warming = false;
            (t0, cpu0) = (now, cpu(&g));
            end = Some(now + Duration::from_secs_f64(g.o.secs));
            g.done = 0;
            g.latencies.clear();
        }
        if end.is_some_and(|end| now >= end) || total.is_some_and(|n| g.done >= n) {
            break;
        }
        let timeout = Duration::from_millis(if end.is_some() { 10 } else { 100 });
        poll.poll(&mut events, Some(timeout))
            .unwrap_or_else(|e| fail(&format!("poll: {e}")));
        for ev in events.iter() {
            let i = ev.token().0;
            let r = if ev.is_writable() { g.send(i) } else { Ok(()) };
            r.and_then(|()| {
                if ev.is_readable() {
                    g.receive(i)
                } else {
                    Ok(())
                }
            })
            .unwrap_or_else(|e| fail(&format!("connection {i}: {e}")));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu(&g);

    let mut lat = std::mem::take(&mut g.latencies);
    lat.sort_unstable();
    let cpu_per_msg = match (&cpu0, &cpu1) {
        (Some(a), Some(b)) if g.done > 0 => {
            format!("{:.3}", b.since(a) as f64 / 1000.0 / g.done as f64)
        }
        _ => String::new(),
    };
    if g.o.header {
        println!(
            "label,conns,size,msgs,secs,msgs_per_s,p50_us,p99_us,p999_us,server_cpu_us_per_msg"
        );
    }
    println!(
        "{},{},{},{},{:.3},{:.0},{:.1},{:.1},{:.1},{}",
        g.o.label,
        g.o.conns,
        g.o.size,
        g.done,
        secs,
        g.done as f64 / secs,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        cpu_per_msg
    );
}

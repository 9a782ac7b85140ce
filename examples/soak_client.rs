//! A soak client for the echo servers: many concurrent connections with
//! random sizes and random resets, every byte checked, and (on Linux) the
//! server's descriptors and memory watched through `/proc`.
//!
//! ```text
//! cargo run --release --example soak_client -- [--addr HOST:PORT] [--conns N]
//!     [--duration SECS] [--max-size BYTES] [--resets PERCENT] [--seed N]
//!     [--timeout SECS] [--pid PID] [--settle SECS] [--max-rss-growth MB]
//! ```
//!
//! - `--addr`: the echo server (default `127.0.0.1:9999`);
//! - `--conns N`: connections open at once (default 1000);
//! - `--duration SECS`: keep N open for that long, a new connection replacing
//!   each one that ends (default 0: the N connections once, no replacement);
//! - `--max-size BYTES`: the longest message (default 262144). Sizes are
//!   log-uniform: a power of two `2^k`, `k` uniform up to `log2(max)`, then
//!   a length uniform below it (capped at the maximum), so most messages are
//!   small and a few are large; zero-length ones included;
//! - `--resets PERCENT`: how many connections reset (`SO_LINGER` 0, then
//!   close: an RST) at a random point of their exchange: before the connect
//!   completes (one reset in eight; another connection is opened in its
//!   place), right after it, or after a random number of bytes sent plus
//!   received (default 10);
//! - `--seed N`: the random seed (default: from the clock; printed first);
//! - `--timeout SECS`: connections not finished this long after the last one
//!   was opened are failures (default 60);
//! - `--pid PID` (Linux): the server's process id. Its descriptors
//!   (`/proc/PID/fd`) and memory (`VmRSS`, `VmHWM` in `/proc/PID/status`)
//!   are sampled before the first connection, during the run and after the
//!   last; the run fails unless the descriptors come back to their number
//!   before it within `--settle SECS` (default 10), and, with
//!   `--max-rss-growth MB`, unless the resident set after the run is at most
//!   that much above the one before.
//!
//! Each connection sends a random slice of a random pool while reading the
//! echo back, half-closes once everything is sent, and expects exactly its
//! bytes and then end of stream. A connection that is not reset and gets a
//! wrong byte, a missing or extra byte, an error or a timeout is a failure;
//! a reset connection's bytes received before the reset are checked too. The
//! figures (connections, bytes verified, resets, descriptors, resident set,
//! duration) are printed at the end; the exit status is 0 when nothing
//! failed, 1 otherwise (with what went wrong on stderr).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use selectloop::net;
use selectloop::{EventLoop, Interest, Signal, Token, EVENT_READ, EVENT_WRITE};

mod support;

struct Options {
    addr: String,
    conns: usize,
    duration: Duration,
    max_size: usize,
    resets: f64,
    seed: Option<u64>,
    timeout: Duration,
    pid: Option<u32>,
    settle: Duration,
    max_rss_growth_mb: Option<f64>,
}

const USAGE: &str = "usage: soak_client [--addr HOST:PORT] [--conns N] [--duration SECS] \
[--max-size BYTES] [--resets PERCENT] [--seed N] [--timeout SECS] [--pid PID] [--settle SECS] \
[--max-rss-growth MB]";

fn seconds(secs: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs).with_context(|| format!("{flag} SECS"))
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:9999".into(),
        conns: 1000,
        duration: Duration::ZERO,
        max_size: 256 * 1024,
        resets: 10.0,
        seed: None,
        timeout: Duration::from_secs(60),
        pid: None,
        settle: Duration::from_secs(10),
        max_rss_growth_mb: None,
    };
    let mut args = support::Args::from_env(USAGE);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--conns" => options.conns = args.positive()?,
            "--duration" => options.duration = seconds(args.value()?, "--duration")?,
            "--max-size" => options.max_size = args.positive()?,
            "--resets" => {
                let percent: f64 = args.value()?;
                anyhow::ensure!(
                    (0.0..=100.0).contains(&percent),
                    "--resets is a percentage, 0 to 100"
                );
                options.resets = percent;
            }
            "--seed" => options.seed = Some(args.value()?),
            "--timeout" => options.timeout = seconds(args.positive()?, "--timeout")?,
            "--pid" => {
                anyhow::ensure!(
                    cfg!(target_os = "linux"),
                    "--pid needs Linux's /proc to watch the server"
                );
                options.pid = Some(args.value()?);
            }
            "--settle" => options.settle = seconds(args.value()?, "--settle")?,
            "--max-rss-growth" => options.max_rss_growth_mb = Some(args.value()?),
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

// ----- random data ----------------------------------------------------------

/// xorshift64*: reproducible pseudo-random numbers, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
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

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0 < percent
    }

    /// A log-uniform length in `0..=max`.
    fn size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros();
        let below = 1usize << self.upto(bits as usize);
        self.upto(below - 1).min(max)
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

// ----- the server, seen through /proc ---------------------------------------

/// The server's descriptor count and memory (kB), from `/proc/PID`.
#[derive(Clone, Copy, Default)]
struct Sample {
    fds: usize,
    rss_kb: u64,
    hwm_kb: u64,
}

#[cfg(target_os = "linux")]
fn sample(pid: u32) -> anyhow::Result<Sample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Sample {
        fds,
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

#[cfg(not(target_os = "linux"))]
fn sample(_pid: u32) -> anyhow::Result<Sample> {
    anyhow::bail!("--pid needs Linux's /proc")
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

// ----- the connections ------------------------------------------------------

/// What every connection shares: the data, the dice and the tally.
struct Run {
    addr: SocketAddr,
    pool: Vec<u8>,
    rng: Rng,
    max_size: usize,
    resets: f64,
    /// Whether a connection that ends is replaced by a new one.
    replacing: bool,
    /// Connections opened so far, and still open.
    opened: usize,
    open: usize,
    /// Connections that got all their bytes and then end of stream.
    verified: usize,
    reset: usize,
    failures: Vec<String>,
    failed: usize,
    /// Bytes checked on verified connections, and on reset ones before
    /// their reset.
    bytes_verified: u64,
    bytes_before_reset: u64,
    /// The open connections' progress, for the timeout message.
    live: HashMap<usize, String>,
}

impl Run {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.failures.len() < SHOWN {
            self.failures.push(what);
        }
    }
}

/// How many failures are told one by one.
const SHOWN: usize = 20;

/// How a connection ends.
enum Step {
    Going,
    Done,
    Reset,
    Failed(String),
}

/// One connection: sends `pool[offset..offset + len]`, half-closes, checks
/// the echo, and resets itself once `sent + received` reaches `reset_at`.
struct Conn {
    index: usize,
    offset: usize,
    len: usize,
    reset_at: Option<usize>,
    connected: bool,
    sent: usize,
    received: usize,
    half_closed: bool,
}

impl Conn {
    fn on_ready(&mut self, stream: &mut TcpStream, mask: Interest, pool: &[u8]) -> Step {
        match self.step(stream, mask, pool) {
            Ok(Step::Going) if self.reset_due() => Step::Reset,
            Ok(step) => step,
            Err(what) => Step::Failed(format!(
                "connection {} ({} bytes, {} sent, {} received): {what}",
                self.index, self.len, self.sent, self.received
            )),
        }
    }

    fn reset_due(&self) -> bool {
        self.reset_at
            .is_some_and(|at| self.connected && self.sent + self.received >= at)
    }

    fn step(
        &mut self,
        stream: &mut TcpStream,
        mask: Interest,
        pool: &[u8],
    ) -> Result<Step, String> {
        if !self.connected {
            net::finish_connect(stream).map_err(|e| format!("connect failed: {e}"))?;
            self.connected = true;
            if self.reset_due() {
                return Ok(Step::Reset);
            }
        }
        if mask.is_writable() && self.sent < self.len {
            let rest = &pool[self.offset + self.sent..self.offset + self.len];
            self.sent +=
                support::write_some(stream, rest).map_err(|e| format!("write failed: {e}"))?;
        }
        if self.sent == self.len && !self.half_closed {
            stream
                .shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown failed: {e}"))?;
            self.half_closed = true;
        }
        if mask.is_readable() {
            let mut buf = [0u8; 64 * 1024];
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(Step::Going)
                }
                Err(e) => return Err(format!("read failed: {e}")),
            };
            if n == 0 {
                return if self.received == self.len {
                    Ok(Step::Done)
                } else {
                    Err("end of stream too early".into())
                };
            }
            let start = self.offset + self.received;
            let want = &pool[start..self.offset + self.len];
            let got = &buf[..n];
            if got.len() > want.len() {
                return Err(format!("{} bytes too many", got.len() - want.len()));
            }
            if let Some(at) = got.iter().zip(want).position(|(g, w)| g != w) {
                return Err(format!(
                    "byte {} is {:#04x}, expected {:#04x}",
                    self.received + at,
                    got[at],
                    want[at]
                ));
            }
            self.received += n;
        }
        Ok(Step::Going)
    }

    fn progress(&self) -> String {
        format!(
            "connection {} ({} bytes): not finished ({} sent, {} received{})",
            self.index,
            self.len,
            self.sent,
            self.received,
            if self.connected {
                ""
            } else {
                ", connect pending"
            }
        )
    }
}

/// Resets `stream`: with `SO_LINGER` 0 its close sends an RST.
fn set_reset_on_close(stream: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO))
}

/// Opens one more connection and registers it (a connection reset before
/// its connect completes is not registered: another is opened instead).
fn open_one(lp: &mut EventLoop, shared: &Rc<RefCell<Run>>) -> anyhow::Result<()> {
    let mut run = shared.borrow_mut();
    let index = run.opened;
    run.opened += 1;
    let max_size = run.max_size;
    let len = run.rng.size(max_size);
    let room = run.pool.len() - len;
    let offset = run.rng.upto(room);
    let resets = run.resets;
    let reset_at = if run.rng.percent(resets) {
        // One reset in eight before the connect has completed; the others
        // at a point of the exchange, both ways counted.
        match run.rng.upto(7) {
            0 => Some(usize::MAX),
            _ => Some(run.rng.upto(2 * len)),
        }
    } else {
        None
    };
    let stream = match net::connect_nonblocking(run.addr) {
        Ok(stream) => stream,
        Err(e) => {
            run.fail(format!("connection {index}: connect failed: {e}"));
            return Ok(());
        }
    };
    if reset_at == Some(usize::MAX) {
        // Reset while (or just after) connecting: the server may accept a
        // connection that is dead already.
        // It never counted as open: another one takes its place.
        set_reset_on_close(&stream)?;
        drop(stream);
        run.reset += 1;
        drop(run);
        return open_one(lp, shared);
    }
    run.open += 1;
    drop(run);
    let mut conn = Conn {
        index,
        offset,
        len,
        reset_at,
        connected: false,
        sent: 0,
        received: 0,
        half_closed: false,
    };
    let shared = Rc::clone(shared);
    lp.register(
        stream,
        EVENT_READ | EVENT_WRITE,
        move |lp, stream: &mut TcpStream, ev| {
            let me: Token<TcpStream> = ev.token();
            let step = conn.on_ready(stream, ev.mask(), &shared.borrow().pool);
            let mut run = shared.borrow_mut();
            match step {
                Step::Going => {
                    if conn.half_closed {
                        lp.modify(me, EVENT_READ)?;
                    }
                    run.live.insert(conn.index, conn.progress());
                    return Ok(());
                }
                Step::Done => {
                    run.verified += 1;
                    run.bytes_verified += conn.len as u64;
                }
                Step::Reset => {
                    set_reset_on_close(stream)?;
                    run.reset += 1;
                    run.bytes_before_reset += conn.received as u64;
                }
                Step::Failed(what) => run.fail(what),
            }
            lp.unregister(me)?;
            run.live.remove(&conn.index);
            run.open -= 1;
            let replace = run.replacing;
            let idle = run.open == 0;
            drop(run);
            if replace {
                open_one(lp, &shared)?;
            } else if idle {
                lp.stop();
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Samples the server's descriptors every 100 ms (for the peak) and prints
/// the progress every 5 s.
fn tick(
    lp: &mut EventLoop,
    shared: Rc<RefCell<Run>>,
    pid: Option<u32>,
    peak_fds: Rc<RefCell<usize>>,
    started: Instant,
    mut next_report: Duration,
) {
    lp.call_later(Duration::from_millis(100), move |lp| {
        if let Some(pid) = pid {
            if let Ok(now) = sample(pid) {
                let mut peak = peak_fds.borrow_mut();
                *peak = (*peak).max(now.fds);
            }
        }
        if started.elapsed() >= next_report {
            let run = shared.borrow();
            println!(
                "soak: {:.0?}: {} connections opened, {} open, {} verified, {} reset, {} failed",
                started.elapsed(),
                run.opened,
                run.open,
                run.verified,
                run.reset,
                run.failed
            );
            next_report += Duration::from_secs(5);
        }
        tick(lp, shared, pid, peak_fds, started, next_report);
        Ok(())
    });
}

fn main() -> anyhow::Result<ExitCode> {
    support::init_logger();
    let options = parse_args()?;
    let addr = options
        .addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", options.addr))?
        .next()
        .with_context(|| format!("{} resolves to no address", options.addr))?;
    let seed = options.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id())
    });
    println!(
        "soak: seed {seed}; {} concurrent connections to {addr}{}, sizes up to {} bytes, {}% reset",
        options.conns,
        if options.duration.is_zero() {
            String::new()
        } else {
            format!(" for {:?}", options.duration)
        },
        options.max_size,
        options.resets
    );
    let mut rng = Rng::new(seed);
    let pool = rng.bytes(2 * options.max_size);
    let before = options.pid.map(sample).transpose()?;
    let peak_fds = Rc::new(RefCell::new(before.map_or(0, |s| s.fds)));

    let shared = Rc::new(RefCell::new(Run {
        addr,
        pool,
        rng,
        max_size: options.max_size,
        resets: options.resets,
        replacing: !options.duration.is_zero(),
        opened: 0,
        open: 0,
        verified: 0,
        reset: 0,
        failures: Vec::new(),
        failed: 0,
        bytes_verified: 0,
        bytes_before_reset: 0,
        live: HashMap::new(),
    }));

    let mut lp = EventLoop::new()?;
    let started = Instant::now();
    for _ in 0..options.conns {
        open_one(&mut lp, &shared)?;
    }
    // The end of the duration: no more replacements, then the timeout.
    let timed_out = Rc::new(RefCell::new(false));
    {
        let (shared, timed_out, timeout) =
            (Rc::clone(&shared), Rc::clone(&timed_out), options.timeout);
        lp.call_later(options.duration, move |lp| {
            let mut run = shared.borrow_mut();
            run.replacing = false;
            if run.open == 0 {
                lp.stop();
            }
            drop(run);
            lp.call_later(timeout, move |lp| {
                *timed_out.borrow_mut() = true;
                lp.stop();
                Ok(())
            });
            Ok(())
        });
    }
    tick(
        &mut lp,
        Rc::clone(&shared),
        options.pid,
        Rc::clone(&peak_fds),
        started,
        Duration::from_secs(5),
    );
    let interrupted = Rc::new(RefCell::new(false));
    {
        let flag = Rc::clone(&interrupted);
        lp.add_signal_handler(Signal::INT, move |lp| {
            *flag.borrow_mut() = true;
            lp.stop();
            Ok(())
        })?;
    }
    if shared.borrow().open > 0 || !options.duration.is_zero() {
        lp.run()?;
    }
    let elapsed = started.elapsed();
    // Closes every connection still open (the unfinished ones).
    drop(lp);

    let mut run = shared.borrow_mut();
    if *timed_out.borrow() {
        let open = run.open;
        run.failed += open;
        let mut unfinished: Vec<(usize, String)> = run.live.drain().collect();
        unfinished.sort();
        for (_, what) in unfinished {
            if run.failures.len() < SHOWN {
                run.failures.push(what);
            }
        }
        run.failures.push(format!(
            "{open} connections not finished {:?} after the last one was opened",
            options.timeout
        ));
    }
    if *interrupted.borrow() {
        let open = run.open;
        run.failures
            .push(format!("interrupted with {open} connections open"));
    }

    println!(
        "soak: {} connections in {elapsed:.1?}: {} verified, {} reset, {} failed",
        run.opened, run.verified, run.reset, run.failed
    );
    println!(
        "soak: {} bytes echoed and verified on the verified connections, {} more before resets; {}",
        run.bytes_verified,
        run.bytes_before_reset,
        if run.failed == 0 {
            "0 bytes lost or corrupted".to_string()
        } else {
            format!("{} connections FAILED", run.failed)
        }
    );

    let mut problems = std::mem::take(&mut run.failures);
    if let (Some(pid), Some(before)) = (options.pid, before) {
        // The server closes its side after the client has seen end of
        // stream, and notices resets when it next reads: wait, with a
        // deadline, for its descriptors to come back.
        let deadline = Instant::now() + options.settle;
        let after = loop {
            let now = sample(pid)?;
            if now.fds <= before.fds || Instant::now() >= deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let peak_fds = (*peak_fds.borrow()).max(after.fds);
        println!(
            "soak: server fds: {} before, {peak_fds} peak, {} after",
            before.fds, after.fds
        );
        println!(
            "soak: server RSS: {:.1} MB before, {:.1} MB peak (VmHWM), {:.1} MB after",
            mb(before.rss_kb),
            mb(after.hwm_kb),
            mb(after.rss_kb)
        );
        if after.fds != before.fds {
            problems.push(format!(
                "the server has {} descriptors {:?} after the run, {} before it",
                after.fds, options.settle, before.fds
            ));
        }
        if let Some(limit) = options.max_rss_growth_mb {
            let growth = mb(after.rss_kb) - mb(before.rss_kb);
            if growth > limit {
                problems.push(format!(
                    "the server's resident set grew by {growth:.1} MB, more than --max-rss-growth {limit} MB"
                ));
            }
        }
    }
    println!("soak: {elapsed:.1?} in all");
    if problems.is_empty() {
        println!("soak: ok");
        return Ok(ExitCode::SUCCESS);
    }
    for what in &problems {
        eprintln!("soak: {what}");
    }
    if run.failed > SHOWN {
        eprintln!(
            "soak: ... and {} more failed connections",
            run.failed - SHOWN
        );
    }
    eprintln!("soak: FAILED");
    Ok(ExitCode::FAILURE)
}

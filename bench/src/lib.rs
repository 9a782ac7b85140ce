//! What the benchmark binaries share: the servers' flag and first line, the
//! echo state of a non-blocking connection, and the load generator's pattern
//! and CPU clock.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};

/// `--addr HOST:PORT` from the command line (default `127.0.0.1:0`: the
/// kernel picks a port), the only flag a server takes.
pub fn server_addr() -> String {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:0".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs HOST:PORT"),
            _ => panic!("unknown argument {arg:?}; usage: [--addr HOST:PORT]"),
        }
    }
    addr
}

/// A listener with a backlog of 1024 (std's 128 drops SYNs when thousands
/// of clients connect), non-blocking if asked.
pub fn listen(addr: &str, nonblocking: bool) -> io::Result<TcpListener> {
    let listener = selectloop::net::ListenerBuilder::new(addr).build()?;
    listener.set_nonblocking(nonblocking)?;
    Ok(listener)
}

/// A server's first line, as the examples print it: `listening on ADDR`.
pub fn announce(addr: SocketAddr) {
    let mut out = io::stdout();
    writeln!(out, "listening on {addr}").unwrap();
    out.flush().unwrap();
}

/// Raises the soft descriptor limit to the hard one (10,000 connections).
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a valid, initialised struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Bytes read per `read` call by the servers.
pub const CHUNK: usize = 64 * 1024;

/// What a non-blocking echo connection wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
    Close,
}

/// A non-blocking echo connection's state: the bytes it read that the peer
/// has not taken back yet. While some are left it reads nothing more.
#[derive(Default)]
pub struct Echo {
    unsent: Vec<u8>,
}

impl Echo {
    /// Sends what is kept, if any, then reads once (`drain`: until it would
    /// block, for edge-triggered readiness) and echoes; what the socket does
    /// not take is kept.
    pub fn on_readable(
        &mut self,
        s: &mut (impl Read + Write),
        buf: &mut [u8],
        drain: bool,
    ) -> io::Result<Want> {
        if !self.unsent.is_empty() && self.on_writable(s)? == Want::Write {
            return Ok(Want::Write);
        }
        loop {
            let n = match s.read(buf) {
                Ok(0) => return Ok(Want::Close),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Want::Read),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let sent = write_some(s, &buf[..n])?;
            if sent < n {
                self.unsent.extend_from_slice(&buf[sent..n]);
                return Ok(Want::Write);
            }
            if !drain {
                return Ok(Want::Read);
            }
        }
    }

    /// Sends what is kept; `Want::Read` once all of it went.
    pub fn on_writable(&mut self, s: &mut impl Write) -> io::Result<Want> {
        let sent = write_some(s, &self.unsent)?;
        self.unsent.drain(..sent);
        Ok(if self.unsent.is_empty() {
            Want::Read
        } else {
            Want::Write
        })
    }
}

/// Writes until the socket would block; returns how much went.
pub fn write_some(s: &mut impl Write, data: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < data.len() {
        match s.write(&data[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// A process's CPU time (user + system), as [`cpu_ns`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// `/proc/PID/task/*/schedstat`: nanoseconds, live threads only.
    sched_ns: u64,
    /// `/proc/PID/stat` utime + stime: 10 ms ticks, exited threads included.
    ticks: u64,
    tasks: Vec<u64>,
}

/// CPU time of every thread of process `pid`.
pub fn cpu_ns(pid: u32) -> io::Result<Cpu> {
    let mut cpu = Cpu {
        sched_ns: 0,
        ticks: 0,
        tasks: Vec::new(),
    };
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?;
        // A thread may exit between the listing and the read.
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            cpu.sched_ns += s
                .split_whitespace()
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            cpu.tasks.extend(
                task.file_name()
                    .to_str()
                    .and_then(|t| t.parse::<u64>().ok()),
            );
        }
    }
    cpu.tasks.sort_unstable();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 1..]
        .split_whitespace()
        .collect();
    cpu.ticks = fields[11].parse().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    Ok(cpu)
}

impl Cpu {
    /// Nanoseconds from `earlier` to `self`: the threads' own clocks if the
    /// same threads lived throughout, else the process's ticks.
    pub fn since(&self, earlier: &Cpu) -> u64 {
        if self.tasks == earlier.tasks && self.sched_ns >= earlier.sched_ns {
            self.sched_ns - earlier.sched_ns
        } else {
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            self.ticks.saturating_sub(earlier.ticks) * 1_000_000_000 / hz
        }
    }
}

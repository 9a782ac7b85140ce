//! Model-based test of every selector backend (issue 9, point 8).
//!
//! proptest draws random sequences of actions over three real socket pairs
//! (`UnixStream::pair()` or a loopback TCP pair on Unix, loopback TCP on
//! Windows) and one selector, runs them, and after every `Select` action
//! compares what the selector reports with a small reference model of
//! Python's `selectors` semantics. On a failure proptest shrinks the sequence
//! and the panic message lists the minimal one, one action a line.
//!
//! Each pair has a *local* end, the one registered (the selector owns it
//! while it is registered), and a *peer* end, which only acts.
//!
//! Actions: register / modify / unregister a local end with any non-empty
//! mask; select; the peer writes a few bytes; the local end drains what the
//! peer wrote; the local end fills its send buffer (nobody reads it); the
//! peer drains all of it; either end shuts down writing; the peer closes, or
//! resets (TCP: `SO_LINGER` 0, then close); the local end is closed;
//! the pair is replaced by a fresh one (often reusing descriptor numbers);
//! the selector is closed and a new one opened. The selector is closed at
//! the end of every case. Actions that make no sense in the current state
//! (writing on a closed peer...) are skipped, so any sequence is valid and
//! shrinks freely.
//!
//! The model tracks, per pair: bytes pending to read, the peer's write side
//! shut down, the peer closed, a reset (an error), the local write side shut
//! down, and whether the local send buffer was filled since the peer last
//! drained it. From that, with Python's mapping (end of stream, hang-up and
//! errors are readable; hang-up and errors are writable too), it derives
//! what is certain:
//!
//! * **must be reported**: readable with pending bytes, end of stream or an
//!   error; writable with room in the send buffer (never filled, or drained
//!   since; own write side open), a hang-up or an error;
//! * **must not be reported**: readable with nothing pending, no end of stream
//!   and no error; writable, for a Unix socket only, with a full send buffer
//!   and no hang-up or error (TCP send buffers drain and grow on their own, so
//!   nothing is asserted there);
//! * always: only registered keys, each at most once, with masks within the
//!   registered events; the map, `get_key` and the key's data agree with the
//!   model; a closed selector answers `Closed`.
//!
//! One exception: `IocpSelector` (the `polling` crate's IOCP backend on
//! Windows) emulates level triggering with AFD poll completions, and a
//! completion queued before a read can still be reported after it (seen
//! under Wine: readable after the peer's only byte was drained). That is a
//! spurious readiness, which Python's selectors allow and every caller
//! handles (a read says `WouldBlock`), so on that backend the "must not"s
//! are not asserted; everything else is.
//!
//! Timing: Unix sockets change state within the acting call, so a zero
//! timeout must show every "must". A TCP peer's bytes, end of stream or reset
//! travel through loopback, so for a TCP "must" the test selects again with
//! a bounded timeout (up to [`PATIENCE`]) until it shows; every "must not" is
//! checked on every result (the model only asserts "must not" in states with
//! nothing in flight). No sleeps.
//!
//! Cases per backend: `SELECTLOOP_MODEL_CASES` (default 10,000); steps per
//! case: up to `SELECTLOOP_MODEL_STEPS` (default 24).
#![cfg(feature = "net")]

mod common;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use selectloop::selector::{NativeBackend, PollBackend};
use selectloop::{Backend, BaseSelector, Error, Fd, Interest, Selector, Source};

use common::{socketpair, DefaultBackend, PATIENCE};

/// Socket pairs per case.
const PAIRS: usize = 3;

// ---------------------------------------------------------------- sockets

/// What kind of socket pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tcp,
    #[cfg(unix)]
    Unix,
}

/// One end of a pair.
#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

#[cfg(unix)]
impl std::os::fd::AsFd for Sock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
        }
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Sock {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        match self {
            Sock::Tcp(s) => s.as_socket(),
        }
    }
}

impl Sock {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Sock::Unix(s) => (&*s).read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Sock::Unix(s) => (&*s).write(buf),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Sock::Unix(s) => s.shutdown(how),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Sock::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(t),
            #[cfg(unix)]
            Sock::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn sock_ref(&self) -> socket2::SockRef<'_> {
        match self {
            Sock::Tcp(s) => socket2::SockRef::from(s),
            #[cfg(unix)]
            Sock::Unix(s) => socket2::SockRef::from(s),
        }
    }

    /// Reads exactly `n` bytes, blocking up to [`PATIENCE`] for them, and
    /// leaves the socket non-blocking.
    fn read_exactly(&self, mut n: usize) -> Result<(), String> {
        let total = n;
        let io = move |e: io::Error| format!("reading {total} bytes: {e}");
        self.set_nonblocking(false).map_err(io)?;
        self.set_read_timeout(Some(PATIENCE)).map_err(io)?;
        let mut buf = [0u8; 16384];
        let mut result = Ok(());
        while n > 0 {
            let want = n.min(buf.len());
            match self.read(&mut buf[..want]) {
                Ok(0) => {
                    result = Err(format!("end of stream with {n} bytes still due"));
                    break;
                }
                Ok(got) => n -= got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(format!("{e} with {n} bytes still due"));
                    break;
                }
            }
        }
        self.set_nonblocking(true).map_err(io)?;
        result
    }

    /// Reads whatever comes without blocking, until it would block, the end
    /// of stream or an error (a reset socket: anything goes).
    fn read_available(&self) {
        let mut buf = [0u8; 16384];
        for _ in 0..1024 {
            match self.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// A fresh pair `(local, peer)`, both non-blocking, with small buffers so
/// that filling one is cheap.
fn new_pair(kind: Kind) -> Result<(Sock, Sock), String> {
    let io = |e: io::Error| format!("new {kind:?} pair: {e}");
    let (local, peer) = match kind {
        Kind::Tcp => {
            let (a, b) = socketpair().map_err(io)?;
            (Sock::Tcp(a), Sock::Tcp(b))
        }
        #[cfg(unix)]
        Kind::Unix => {
            let (a, b) = std::os::unix::net::UnixStream::pair().map_err(io)?;
            (Sock::Unix(a), Sock::Unix(b))
        }
    };
    // A Unix socket's send buffer holds what its peer has not read: a small
    // one is cheap to fill. TCP buffers stay as they are: a tiny receive
    // window makes the sender wait for persist timers (up to a second).
    #[cfg(unix)]
    if kind == Kind::Unix {
        local.sock_ref().set_send_buffer_size(4096).map_err(io)?;
    }
    local.set_nonblocking(true).map_err(io)?;
    peer.set_nonblocking(true).map_err(io)?;
    Ok((local, peer))
}

// ---------------------------------------------------------------- actions

/// One step of a case. `usize` fields pick a pair (modulo [`PAIRS`]).
#[derive(Clone, Debug)]
enum Action {
    Register(usize, Interest),
    Modify(usize, Interest),
    Unregister(usize),
    Select,
    /// The peer writes this many bytes (as many as it can without blocking).
    PeerWrite(usize, usize),
    /// The local end reads everything the peer wrote.
    Drain(usize),
    /// The local end writes until it would block; nobody reads.
    Fill(usize),
    /// The peer reads everything the local end wrote.
    PeerDrain(usize),
    ShutdownWrite(usize),
    PeerShutdownWrite(usize),
    PeerClose(usize),
    /// TCP: `SO_LINGER` 0, then close (a reset). Unix: a close.
    PeerReset(usize),
    CloseLocal(usize),
    /// Closes both ends (unregistering the local end first) and opens a new pair.
    Reopen(usize, Kind),
    /// Closes the selector (which closes what it owns) and opens another.
    CloseSelector,
}

fn interest() -> impl Strategy<Value = Interest> {
    (1u8..=3).prop_map(|bits| Interest::from_bits(bits).expect("1..=3 are valid"))
}

fn kind() -> BoxedStrategy<Kind> {
    #[cfg(unix)]
    let kinds = prop_oneof![Just(Kind::Tcp), Just(Kind::Unix)].boxed();
    #[cfg(not(unix))]
    let kinds = Just(Kind::Tcp).boxed();
    kinds
}

fn action() -> impl Strategy<Value = Action> {
    let p = 0..PAIRS;
    prop_oneof![
        4 => (p.clone(), interest()).prop_map(|(i, e)| Action::Register(i, e)),
        2 => (p.clone(), interest()).prop_map(|(i, e)| Action::Modify(i, e)),
        1 => p.clone().prop_map(Action::Unregister),
        6 => Just(Action::Select),
        3 => (p.clone(), 1usize..2000).prop_map(|(i, n)| Action::PeerWrite(i, n)),
        2 => p.clone().prop_map(Action::Drain),
        2 => p.clone().prop_map(Action::Fill),
        1 => p.clone().prop_map(Action::PeerDrain),
        1 => p.clone().prop_map(Action::ShutdownWrite),
        1 => p.clone().prop_map(Action::PeerShutdownWrite),
        1 => p.clone().prop_map(Action::PeerClose),
        1 => p.clone().prop_map(Action::PeerReset),
        1 => p.clone().prop_map(Action::CloseLocal),
        1 => (p, kind()).prop_map(|(i, k)| Action::Reopen(i, k)),
        1 => Just(Action::CloseSelector),
    ]
}

/// A case: the kinds of the initial pairs and the actions.
#[derive(Clone)]
struct Case {
    kinds: Vec<Kind>,
    actions: Vec<Action>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pairs: {:?}", self.kinds)?;
        for (n, a) in self.actions.iter().enumerate() {
            writeln!(f, "  {n:2}: {a:?}")?;
        }
        Ok(())
    }
}

fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(kind(), PAIRS),
        prop::collection::vec(action(), 1..=max_steps),
    )
        .prop_map(|(kinds, actions)| Case { kinds, actions })
}

// ---------------------------------------------------------------- the model

#[derive(Debug)]
struct Pair {
    kind: Kind,
    fd: Fd,
    /// The local end while it is not registered; `None` while the selector
    /// owns it, and once it is closed.
    local: Option<Sock>,
    /// The local end is open (here or in the selector).
    open: bool,
    /// The events it is registered for.
    reg: Option<Interest>,
    peer: Option<Sock>,
    /// Bytes the peer wrote that the local end has not read.
    pending: usize,
    peer_shut: bool,
    peer_closed: bool,
    /// A reset or another error: the connection is dead both ways.
    reset: bool,
    own_shut: bool,
    /// Filled since the peer last drained it.
    full: bool,
    /// Bytes the local end wrote, and how many of them the peer read.
    written: usize,
    peer_read: usize,
}

impl Pair {
    fn new(kind: Kind) -> Result<Pair, String> {
        let (local, peer) = new_pair(kind)?;
        Ok(Pair {
            kind,
            fd: local.fileno(),
            local: Some(local),
            open: true,
            reg: None,
            peer: Some(peer),
            pending: 0,
            peer_shut: false,
            peer_closed: false,
            reset: false,
            own_shut: false,
            full: false,
            written: 0,
            peer_read: 0,
        })
    }

    fn hangup(&self) -> bool {
        match self.kind {
            // Linux: both directions shut down, or the peer is gone.
            #[cfg(unix)]
            Kind::Unix => (self.own_shut && self.peer_shut) || self.peer_closed,
            // CLOSE_WAIT (peer closed, own side open) is no hang-up yet.
            Kind::Tcp => self.own_shut && (self.peer_shut || self.peer_closed),
        }
    }

    /// `(must, must_not)`, before masking with the registered events.
    fn expected(&self) -> (Option<Interest>, Option<Interest>) {
        let readable = self.pending > 0 || self.peer_shut || self.peer_closed || self.reset;
        let writable = self.reset || self.hangup() || (!self.full && !self.own_shut);
        #[cfg(unix)]
        let not_writable = self.kind == Kind::Unix && self.full && !self.hangup() && !self.reset;
        #[cfg(not(unix))]
        let not_writable = false;
        (
            Interest::from_flags(readable, writable),
            Interest::from_flags(!readable, not_writable),
        )
    }
}

type Sel<B> = BaseSelector<B, Sock, usize>;

struct World<B: Backend> {
    sel: Sel<B>,
    pairs: Vec<Pair>,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn open<B: Backend>() -> Result<Sel<B>, String> {
    BaseSelector::new().map_err(|e| format!("open selector: {e}"))
}

impl<B: Backend> World<B> {
    /// Runs `f` on pair `i`'s local end, wherever it is.
    fn with_local<R>(&self, i: usize, f: impl FnOnce(&Sock) -> R) -> Option<R> {
        let pair = &self.pairs[i];
        if !pair.open {
            return None;
        }
        match &pair.local {
            Some(sock) => Some(f(sock)),
            None => Some(f(&self.sel.get_key(pair.fd).ok()?.fileobj)),
        }
    }

    /// Takes pair `i`'s local end back (unregistering it if needed).
    fn take_local(&mut self, i: usize) -> Result<Option<Sock>, String> {
        let pair = &mut self.pairs[i];
        if pair.reg.take().is_some() {
            let key = self
                .sel
                .unregister(pair.fd)
                .map_err(|e| format!("unregister pair {i}: {e}"))?;
            return Ok(Some(key.fileobj));
        }
        Ok(pair.local.take())
    }

    fn step(&mut self, action: &Action) -> Result<(), String> {
        match *action {
            Action::Register(i, events) => {
                let pair = &mut self.pairs[i];
                if !pair.open {
                    return Ok(());
                }
                match pair.local.take() {
                    Some(sock) => {
                        let key = self
                            .sel
                            .register(sock, events, i)
                            .map_err(|e| format!("register pair {i}: {}", e.error()))?;
                        ensure!(
                            key.fd == pair.fd && key.events == events && key.data == i,
                            "register pair {i}: key {:?}",
                            (key.fd, key.events, key.data)
                        );
                        pair.reg = Some(events);
                    }
                    None => match self.sel.modify(pair.fd, events, i) {
                        // Registered already: `modify` instead (the object is
                        // owned by the selector, it cannot be offered twice).
                        Ok(_) => pair.reg = Some(events),
                        Err(e) => return Err(format!("modify pair {i}: {e}")),
                    },
                }
            }
            Action::Modify(i, events) => {
                let pair = &mut self.pairs[i];
                if !pair.open {
                    return Ok(());
                }
                match (self.sel.modify(pair.fd, events, i), pair.reg) {
                    (Ok(key), Some(_)) => {
                        ensure!(key.events == events, "modify pair {i}: {:?}", key.events);
                        pair.reg = Some(events);
                    }
                    (Err(Error::NotRegistered { fd }), None) if fd == pair.fd => {}
                    (other, reg) => {
                        return Err(format!(
                            "modify pair {i} (registered: {reg:?}): {:?}",
                            other.map(|k| k.events)
                        ))
                    }
                }
            }
            Action::Unregister(i) => {
                let pair = &mut self.pairs[i];
                if !pair.open {
                    return Ok(());
                }
                match (self.sel.unregister(pair.fd), pair.reg) {
                    (Ok(key), Some(events)) => {
                        ensure!(
                            key.fd == pair.fd && key.events == events && key.data == i,
                            "unregister pair {i}: key {:?}",
                            (key.fd, key.events, key.data)
                        );
                        pair.local = Some(key.fileobj);
                        pair.reg = None;
                    }
                    (Err(Error::NotRegistered { fd }), None) if fd == pair.fd => {}
                    (other, reg) => {
                        return Err(format!(
                            "unregister pair {i} (registered: {reg:?}): {:?}",
                            other.map(|k| k.events)
                        ))
                    }
                }
            }
            Action::Select => self.check()?,
            Action::PeerWrite(i, n) => {
                let pair = &mut self.pairs[i];
                if !pair.open || pair.peer_shut || pair.reset {
                    return Ok(());
                }
                let Some(peer) = &pair.peer else {
                    return Ok(());
                };
                let data = vec![b'x'; n];
                match peer.write(&data) {
                    Ok(wrote) => pair.pending += wrote,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("peer write on pair {i}: {e}")),
                }
            }
            Action::Drain(i) => {
                let (pending, reset) = (self.pairs[i].pending, self.pairs[i].reset);
                let done = self.with_local(i, |sock| {
                    if reset {
                        sock.read_available();
                        Ok(())
                    } else {
                        sock.read_exactly(pending)
                    }
                });
                if let Some(result) = done {
                    result.map_err(|e| format!("drain pair {i}: {e}"))?;
                    self.pairs[i].pending = 0;
                }
            }
            Action::Fill(i) => {
                let pair = &self.pairs[i];
                if pair.own_shut || pair.peer_closed || pair.reset {
                    return Ok(());
                }
                let filled = self.with_local(i, |sock| {
                    let chunk = [b'y'; 4096];
                    let mut total = 0;
                    loop {
                        match sock.write(&chunk) {
                            Ok(n) => total += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(format!("fill: {e} after {total} bytes")),
                        }
                        if total > 64 << 20 {
                            return Err(format!("fill: still writable after {total} bytes"));
                        }
                    }
                });
                if let Some(result) = filled {
                    let pair = &mut self.pairs[i];
                    pair.written += result.map_err(|e| format!("pair {i}: {e}"))?;
                    pair.full = true;
                }
            }
            Action::PeerDrain(i) => {
                let pair = &mut self.pairs[i];
                if !pair.open {
                    return Ok(());
                }
                let Some(peer) = &pair.peer else {
                    return Ok(());
                };
                peer.read_exactly(pair.written - pair.peer_read)
                    .map_err(|e| format!("peer drain on pair {i}: {e}"))?;
                pair.peer_read = pair.written;
                pair.full = false;
            }
            Action::ShutdownWrite(i) => {
                if self.pairs[i].reset {
                    return Ok(());
                }
                if let Some(result) = self.with_local(i, |sock| sock.shutdown(Shutdown::Write)) {
                    shutdown_result(result)
                        .map_err(|e| format!("shutdown(Write) on pair {i}: {e}"))?;
                    self.pairs[i].own_shut = true;
                }
            }
            Action::PeerShutdownWrite(i) => {
                let pair = &mut self.pairs[i];
                if !pair.open || pair.reset {
                    return Ok(());
                }
                let Some(peer) = &pair.peer else {
                    return Ok(());
                };
                shutdown_result(peer.shutdown(Shutdown::Write))
                    .map_err(|e| format!("peer shutdown(Write) on pair {i}: {e}"))?;
                pair.peer_shut = true;
            }
            Action::PeerClose(i) | Action::PeerReset(i) => {
                let pair = &mut self.pairs[i];
                if !pair.open {
                    return Ok(());
                }
                let Some(peer) = pair.peer.take() else {
                    return Ok(());
                };
                let abort = matches!(action, Action::PeerReset(_)) && pair.kind == Kind::Tcp;
                if abort {
                    peer.sock_ref()
                        .set_linger(Some(Duration::ZERO))
                        .map_err(|e| format!("SO_LINGER on pair {i}: {e}"))?;
                }
                drop(peer);
                pair.peer_closed = true;
                // Closing with unread input resets the connection (TCP: RST;
                // Unix: ECONNRESET for the local end).
                pair.reset |= abort || pair.written > pair.peer_read;
            }
            Action::CloseLocal(i) => {
                if self.pairs[i].open {
                    drop(self.take_local(i)?);
                    self.pairs[i].open = false;
                }
            }
            Action::Reopen(i, kind) => {
                drop(self.take_local(i)?);
                self.pairs[i] = Pair::new(kind)?;
            }
            Action::CloseSelector => self.close_selector(true)?,
        }
        Ok(())
    }

    /// Closes the selector (its registered objects with it), checks that it
    /// says `Closed`, and opens another if `reopen`.
    fn close_selector(&mut self, reopen: bool) -> Result<(), String> {
        self.sel
            .close()
            .map_err(|e| format!("close selector: {e}"))?;
        ensure!(
            matches!(self.sel.select(Some(Duration::ZERO)), Err(Error::Closed)),
            "select after close is not Closed"
        );
        ensure!(
            matches!(self.sel.get_map(), Err(Error::Closed)),
            "get_map after close is not Closed"
        );
        for pair in &mut self.pairs {
            if pair.reg.take().is_some() {
                // Closed with the selector.
                pair.open = false;
            }
        }
        if reopen {
            self.sel = open()?;
        }
        Ok(())
    }

    /// One select (more for TCP "musts" still in flight) against the model.
    fn check(&mut self) -> Result<(), String> {
        // Spurious readiness is possible on IOCP (module docs).
        let exact = !(cfg!(windows) && self.sel.backend_name() == "IOCP");
        // (fd, pair, registered, must, must_not) of every registered pair.
        let mut want = Vec::new();
        for (i, pair) in self.pairs.iter().enumerate() {
            if let Some(reg) = pair.reg {
                let (must, must_not) = pair.expected();
                want.push((
                    pair.fd,
                    i,
                    reg,
                    must.and_then(|m| m.intersection(reg)),
                    must_not.and_then(|m| m.intersection(reg)).filter(|_| exact),
                ));
            }
        }
        let map = self.sel.get_map().map_err(|e| format!("get_map: {e}"))?;
        ensure!(
            map.len() == want.len(),
            "the map has {} keys, the model {}",
            map.len(),
            want.len()
        );
        for &(fd, i, reg, ..) in &want {
            let key = self
                .sel
                .get_key(fd)
                .map_err(|e| format!("get_key of pair {i}: {e}"))?;
            ensure!(
                key.events == reg && key.data == i,
                "get_key of pair {i}: {:?}, model: {reg:?}",
                (key.events, key.data)
            );
        }

        let deadline = Instant::now() + PATIENCE;
        let mut timeout = Duration::ZERO;
        loop {
            let got: Vec<(Fd, Interest, usize)> = self
                .sel
                .select(Some(timeout))
                .map_err(|e| format!("select: {e}"))?
                .map(|(key, mask)| (key.fd, mask, key.data))
                .collect();
            let mut missing = Vec::new();
            for &(fd, i, reg, must, must_not) in &want {
                let seen: Vec<_> = got.iter().filter(|g| g.0 == fd).collect();
                ensure!(seen.len() <= 1, "pair {i} reported twice: {got:?}");
                let mask = seen.first().map(|g| g.1);
                if let Some(&&(_, mask, data)) = seen.first() {
                    ensure!(data == i, "pair {i} reported with data {data}");
                    ensure!(
                        reg.contains(mask),
                        "pair {i} reported {mask:?}, registered for {reg:?}: {got:?}"
                    );
                    if let Some(not) = must_not {
                        ensure!(
                            mask.intersection(not).is_none(),
                            "pair {i} reported {mask:?}, the model rules out {not:?} ({:?})",
                            self.pairs[i]
                        );
                    }
                }
                if let Some(must) = must {
                    if !mask.is_some_and(|m| m.contains(must)) {
                        missing.push((i, must, mask));
                    }
                }
            }
            for &(fd, mask, data) in &got {
                ensure!(
                    want.iter().any(|w| w.0 == fd),
                    "fd {fd:?} (data {data}) reported {mask:?} but is not registered: {got:?}"
                );
            }
            if missing.is_empty() {
                return Ok(());
            }
            // Unix sockets must show at once; TCP within PATIENCE.
            let now = Instant::now();
            let unix_missing = missing
                .iter()
                .any(|&(i, ..)| self.pairs[i].kind != Kind::Tcp);
            if unix_missing || now >= deadline {
                let detail: Vec<String> = missing
                    .iter()
                    .map(|&(i, must, mask)| {
                        format!(
                            "pair {i} must be {must:?}, got {mask:?} ({:?})",
                            self.pairs[i]
                        )
                    })
                    .collect();
                return Err(detail.join("; "));
            }
            timeout = deadline - now;
        }
    }
}

/// A TCP connection both ends have shut down (or that was reset) is no
/// longer connected: shutting it down again says `ENOTCONN`, harmlessly.
fn shutdown_result(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

fn run_case<B: Backend>(case: &Case) -> Result<(), String> {
    let mut world = World::<B> {
        sel: open()?,
        pairs: case
            .kinds
            .iter()
            .map(|&k| Pair::new(k))
            .collect::<Result<_, _>>()?,
    };
    for (n, action) in case.actions.iter().enumerate() {
        world
            .step(action)
            .map_err(|e| format!("step {n} ({action:?}): {e}"))?;
    }
    world.check().map_err(|e| format!("final check: {e}"))?;
    world.close_selector(false)
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn model<B: Backend>() {
    let cases = env_usize("SELECTLOOP_MODEL_CASES", 10_000) as u32;
    let steps = env_usize("SELECTLOOP_MODEL_STEPS", 24).max(1);
    let mut runner = TestRunner::new(Config {
        cases,
        // Nothing written into the source tree; the failure message has the
        // minimal sequence.
        failure_persistence: None,
        ..Config::default()
    });
    let start = Instant::now();
    let result = runner.run(&case(steps), |case| {
        run_case::<B>(&case).map_err(TestCaseError::fail)
    });
    let name = std::any::type_name::<B>();
    match result {
        Ok(()) => eprintln!(
            "model: {name}: {cases} cases of up to {steps} steps passed in {:.2?}",
            start.elapsed()
        ),
        Err(TestError::Fail(why, case)) => {
            panic!("model: {name}: {why}\nminimal failing case:\n{case:?}")
        }
        Err(e) => panic!("model: {name}: {e}"),
    }
}

/// epoll driven directly (`EpollSelector`).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll() {
    model::<selectloop::selector::EpollBackend>();
}

#[test]
fn native() {
    model::<NativeBackend>();
}

#[test]
fn poll() {
    model::<PollBackend>();
}

#[cfg(unix)]
#[test]
fn select() {
    model::<selectloop::selector::SelectBackend>();
}

#[test]
fn default() {
    model::<DefaultBackend>();
}

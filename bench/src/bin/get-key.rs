//! `Selector::get_key` over many registered descriptors, for callgrind:
//! `get-key ROUNDS [REGISTERED]` registers REGISTERED (default 500) Unix
//! socket ends on a `DefaultSelector` and looks each one up ROUNDS times.
//! `bench/run-get-key` differences two runs into instructions per lookup
//! (the lookup plus this loop's own few instructions).

use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use selectloop::{DefaultSelector, Selector, EVENT_READ};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let registered: usize = args.next().unwrap_or_else(|| "500".into()).parse()?;
    selectloop_bench::raise_fd_limit();
    let mut sel: DefaultSelector<UnixStream> = DefaultSelector::new()?;
    let mut fds = Vec::with_capacity(registered);
    let mut peers = Vec::with_capacity(registered);
    for _ in 0..registered {
        let (ours, theirs) = UnixStream::pair()?;
        fds.push(ours.as_raw_fd());
        sel.register(ours, EVENT_READ, ())?;
        peers.push(theirs);
    }
    let mut found = 0usize;
    for _ in 0..rounds {
        for &fd in &fds {
            found += usize::from(black_box(sel.get_key(black_box(fd))?.fd) == fd);
        }
    }
    println!("{found} lookups");
    Ok(())
}

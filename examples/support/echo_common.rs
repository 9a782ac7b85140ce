//! What `echo` and `echo_protocol` share: the command line (same flags,
//! same defaults) and `main` (one loop, or `--threads N` loops on clones of
//! the listener), so the two servers stay interchangeable: their tests run
//! the same suite against both.

use std::net::TcpListener;

use selectloop::{EventLoop, LoopGroup};

use super::support;

/// What the command line asked for.
pub struct Options {
    /// Where to listen (`--addr`, default 127.0.0.1:9999; port 0 picks one).
    pub addr: String,
    /// How many loops, one per thread (`--threads`, default 1).
    pub threads: usize,
    /// Echo in upper case (`--upper`).
    pub upper: bool,
}

/// Parses the command line; `usage` is the program's usage line.
pub fn parse_args(usage: &'static str) -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:9999".into(),
        threads: 1,
        upper: false,
    };
    let mut args = support::Args::from_env(usage);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--threads" => options.threads = args.positive()?,
            "--upper" => options.upper = true,
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

/// The server's `main`: parses the command line, listens, sets each loop up
/// with `setup(loop, listener, upper)` (which also installs the Ctrl-C
/// handler), and announces the address only once every loop is ready.
pub fn main(
    usage: &'static str,
    setup: fn(&mut EventLoop, TcpListener, bool) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args(usage)?;
    let listener = support::listen(&options.addr)?;
    let addr = listener.local_addr()?;

    // `listening on` goes out only once every loop has its Ctrl-C handler.
    let upper = options.upper;
    if options.threads == 1 {
        let mut lp = EventLoop::new()?;
        setup(&mut lp, listener, upper)?;
        support::announce(addr)?;
        lp.run()?;
    } else {
        let group = LoopGroup::spawn(options.threads, move |lp, _index| {
            setup(lp, listener.try_clone()?, upper)
        })?;
        support::announce(addr)?;
        group.join()?;
    }
    Ok(())
}

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
    /// Serve TLS (`echo_protocol` with the `tls` feature; `echo` refuses).
    pub tls: support::TlsFlags,
}

/// Parses the command line; `usage` is the program's usage line.
pub fn parse_args(usage: &'static str) -> anyhow::Result<Options> {
    let mut options = Options {
        addr: "127.0.0.1:9999".into(),
        threads: 1,
        upper: false,
        tls: support::TlsFlags::default(),
    };
    let mut args = support::Args::from_env(usage);
    while let Some(flag) = args.next_flag()? {
        match flag.as_str() {
            "--addr" => options.addr = args.value()?,
            "--threads" => options.threads = args.positive()?,
            "--upper" => options.upper = true,
            flag if options.tls.take(flag, &mut args)? => {}
            _ => return Err(args.unknown()),
        }
    }
    Ok(options)
}

/// The server's `main`: parses the command line, makes what every loop
/// shares with `prepare(options)` (a TLS config, or nothing), listens, sets
/// each loop up with `setup(loop, listener, upper, shared)` (which also
/// installs the Ctrl-C handler), and announces the address only once every
/// loop is ready.
pub fn main<S: Clone + Send + Sync + 'static>(
    usage: &'static str,
    prepare: fn(&Options) -> anyhow::Result<S>,
    setup: fn(&mut EventLoop, TcpListener, bool, S) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    support::init_logger();
    let options = parse_args(usage)?;
    let shared = prepare(&options)?;
    let listener = support::listen(&options.addr)?;
    let addr = listener.local_addr()?;

    // `listening on` goes out only once every loop has its Ctrl-C handler.
    let upper = options.upper;
    if options.threads == 1 {
        let mut lp = EventLoop::new()?;
        setup(&mut lp, listener, upper, shared)?;
        support::announce(addr)?;
        lp.run()?;
    } else {
        let group = LoopGroup::spawn(options.threads, move |lp, _index| {
            setup(lp, listener.try_clone()?, upper, shared.clone())
        })?;
        support::announce(addr)?;
        group.join()?;
    }
    Ok(())
}

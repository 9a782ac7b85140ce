//! One event loop per thread: [`LoopGroup`].
//!
//! A loop is single-threaded; to use more cores, run one loop per thread,
//! each with its own listener. Two ways to share a port:
//! - hand each loop a clone of one listener ([`TcpListener::try_clone`](std::net::TcpListener::try_clone)):
//!   works everywhere; the kernel wakes every loop for a new connection and
//!   one wins the `accept` (the others see `WouldBlock`);
//! - bind one listener per loop with `SO_REUSEPORT` (Linux, BSD; see
//!   [`ListenerBuilder::reuse_port`](crate::net::ListenerBuilder)): the kernel spreads
//!   connections over the loops, without the wake-ups.
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use selectloop::{LoopGroup, EVENT_READ};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?;
//! let addr = listener.local_addr()?;
//! let group = LoopGroup::spawn(2, move |lp, _index| {
//!     lp.register(listener.try_clone()?, EVENT_READ, |_lp, l: &mut TcpListener, _mask| {
//!         let _ = l.accept(); // WouldBlock when another loop won the race
//!         Ok(())
//!     })?;
//!     Ok(())
//! })?;
//! drop(TcpStream::connect(addr)?);
//! group.stop();
//! group.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::{EventLoop, LoopHandle};

/// Event loops running on threads of their own, one per thread.
pub struct LoopGroup {
    handles: Vec<LoopHandle>,
    threads: Vec<JoinHandle<crate::Result<()>>>,
}

impl LoopGroup {
    /// Starts `n` threads, each creating an [`EventLoop`], calling
    /// `setup(&mut loop, index)` on it, then running it until it is stopped or
    /// has nothing left to do.
    ///
    /// # Errors
    /// - the first `setup` error (or loop creation error) of any thread; the
    ///   loops already started are stopped and joined first;
    /// - an OS error if a thread cannot be spawned.
    pub fn spawn<F>(n: usize, setup: F) -> anyhow::Result<LoopGroup>
    where
        F: Fn(&mut EventLoop, usize) -> anyhow::Result<()> + Send + Sync + 'static,
    {
        let setup = Arc::new(setup);
        let mut group = LoopGroup {
            handles: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for index in 0..n {
            let (tx, rx) = mpsc::channel::<anyhow::Result<LoopHandle>>();
            let setup = Arc::clone(&setup);
            let spawned = thread::Builder::new()
                .name(format!("selectloop-{index}"))
                .spawn(move || {
                    let mut lp = match EventLoop::new() {
                        Ok(lp) => lp,
                        Err(e) => {
                            let _ = tx.send(Err(e.into()));
                            return Ok(());
                        }
                    };
                    if let Err(e) = setup(&mut lp, index) {
                        let _ = tx.send(Err(e));
                        return Ok(());
                    }
                    let _ = tx.send(Ok(lp.handle()));
                    lp.run()
                });
            let started = match spawned {
                Ok(thread) => {
                    group.threads.push(thread);
                    rx.recv().unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("loop thread {index} died during setup"))
                    })
                }
                Err(e) => Err(e.into()),
            };
            match started {
                Ok(handle) => group.handles.push(handle),
                Err(e) => {
                    group.stop();
                    let _ = group.join();
                    return Err(e);
                }
            }
        }
        Ok(group)
    }

    /// Handles to the loops, one per thread, in index order.
    pub fn handles(&self) -> &[LoopHandle] {
        &self.handles
    }

    /// Asks every loop to stop.
    pub fn stop(&self) {
        for handle in &self.handles {
            handle.stop();
        }
    }

    /// Waits for every thread to finish.
    ///
    /// # Errors
    /// - the first error a loop's `run` returned;
    /// - [`io::ErrorKind::Other`] if a loop thread panicked.
    pub fn join(self) -> crate::Result<()> {
        let mut first = Ok(());
        for thread in self.threads {
            let result = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a loop thread panicked").into()));
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

impl fmt::Debug for LoopGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroup")
            .field("loops", &self.threads.len())
            .finish()
    }
}

//! Signals on Unix: `signal-hook`'s handler sends a byte to a socket pair
//! (async-signal-safe, and never raising SIGPIPE), and the loop watches the other end as one of its own
//! sources, running the callback on the loop's thread.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::Signal;
use crate::event_loop::{EventLoop, Token};
use crate::{Backend, Result, EVENT_READ};

impl Signal {
    /// Interrupt: SIGINT on Unix, Ctrl-C on Windows.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// SIGTERM (Unix only).
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// SIGHUP (Unix only).
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// SIGUSR1 (Unix only).
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// SIGUSR2 (Unix only).
    pub const USR2: Signal = Signal(libc::SIGUSR2);

    /// A signal by number (Unix). Whether it can be handled is checked by
    /// [`EventLoop::add_signal_handler`].
    pub const fn from_raw(signum: i32) -> Signal {
        Signal(signum)
    }
}

/// A signal delivery set up by `add_signal`.
#[derive(Debug)]
pub(crate) struct SignalId {
    id: signal_hook::SigId,
    signum: i32,
}

/// Per signal: how many loop handlers are active, and the flag that makes
/// signal-hook emulate the default action when none is (signal-hook never
/// uninstalls its process-wide handler, so "restore the default" has to be
/// an emulation of it, as Python's `remove_signal_handler` restores SIG_DFL).
type SignalTable =
    std::collections::HashMap<i32, (usize, std::sync::Arc<std::sync::atomic::AtomicBool>)>;
static SIGNAL_TABLE: std::sync::Mutex<Option<SignalTable>> = std::sync::Mutex::new(None);

/// Makes `signal` write to a socket pair whose other end the loop watches,
/// and runs the loop's handler for it when readable.
pub(crate) fn add_signal<B: Backend>(
    lp: &mut EventLoop<B>,
    signal: Signal,
) -> Result<(Option<Token>, SignalId)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let signum = signal.as_raw();
    // Not signal-hook's `pipe::register`: its send(2) may raise SIGPIPE
    // (no MSG_NOSIGNAL) if the read end is gone. The action owns `tx`, and
    // signal-hook drops an action only once no handler can be running it.
    let (rx, tx) = crate::sys::quiet_pair()?;
    let action = move || {
        crate::sys::send_byte(tx.as_raw_fd());
    };
    // SAFETY: the action only calls send(2) (async-signal-safe) on a
    // descriptor it owns: it neither allocates, locks nor panics. A full pair
    // (EAGAIN) already wakes the loop, so its result is ignored.
    let id = unsafe { signal_hook::low_level::register(signum, action) }?;
    {
        let mut table = SIGNAL_TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let table = table.get_or_insert_with(Default::default);
        let entry = match table.get_mut(&signum) {
            Some(entry) => entry,
            None => {
                let restore_default = Arc::new(AtomicBool::new(false));
                if let Err(e) = signal_hook::flag::register_conditional_default(
                    signum,
                    Arc::clone(&restore_default),
                ) {
                    signal_hook::low_level::unregister(id);
                    return Err(e.into());
                }
                table.entry(signum).or_insert((0, restore_default))
            }
        };
        entry.0 += 1;
        entry.1.store(false, Ordering::SeqCst);
    }
    let id = SignalId { id, signum };
    let registered = lp.register_inner(
        rx,
        EVENT_READ,
        move |lp: &mut EventLoop<B>, rx: &mut UnixStream, _ev| {
            let mut buf = [0u8; 64];
            while let Ok(n) = rx.read(&mut buf) {
                if n < buf.len() {
                    break;
                }
            }
            lp.deliver_signal(signal)
        },
        true,
    );
    match registered {
        Ok(token) => Ok((Some(token.erase()), id)),
        Err(e) => {
            remove_signal(id);
            Err(e.into())
        }
    }
}

/// Stops a delivery; with the last one for its signal, the default action returns.
pub(crate) fn remove_signal(id: SignalId) {
    signal_hook::low_level::unregister(id.id);
    let mut table = SIGNAL_TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(entry) = table
        .get_or_insert_with(Default::default)
        .get_mut(&id.signum)
    {
        entry.0 -= 1;
        if entry.0 == 0 {
            entry.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

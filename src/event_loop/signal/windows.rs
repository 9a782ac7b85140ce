//! Signals on Windows: Ctrl-C and Ctrl-Break arrive through
//! `SetConsoleCtrlHandler` on a system thread, which forwards them to each
//! loop that handles them with [`LoopHandle::call_soon_threadsafe`](crate::LoopHandle::call_soon_threadsafe).

use std::io;

use super::Signal;
use crate::event_loop::{EventLoop, Token};
use crate::{Backend, Result};

impl Signal {
    /// Interrupt: SIGINT on Unix, Ctrl-C on Windows.
    pub const INT: Signal = Signal(CTRL_C);
    /// Ctrl-Break (Windows only).
    pub const BREAK: Signal = Signal(CTRL_BREAK);
}

/// The console control events the loop can handle.
const CTRL_C: i32 = windows_sys::Win32::System::Console::CTRL_C_EVENT as i32;
const CTRL_BREAK: i32 = windows_sys::Win32::System::Console::CTRL_BREAK_EVENT as i32;

/// A console-event delivery set up by `add_signal`.
#[derive(Debug)]
pub(crate) struct SignalId(u64);

type Forward = Box<dyn Fn() + Send>;

/// Every delivery: `(id, event, forward-to-its-loop)`, and the next id.
static CONSOLE: std::sync::Mutex<(Vec<(u64, i32, Forward)>, u64, bool)> =
    std::sync::Mutex::new((Vec::new(), 0, false));

unsafe extern "system" fn console_handler(event: u32) -> windows_sys::core::BOOL {
    let table = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    let mut handled = 0;
    for (_, wanted, forward) in table.0.iter() {
        if *wanted as u32 == event {
            forward();
            handled = 1;
        }
    }
    // FALSE passes the event on to the next handler: the default terminates.
    handled
}

/// Forwards the console event to the loop through its handle; Windows calls
/// the console handler on a thread of its own.
pub(crate) fn add_signal<B: Backend>(
    lp: &mut EventLoop<B>,
    signal: Signal,
) -> Result<(Option<Token>, SignalId)> {
    let event = signal.as_raw();
    if event != CTRL_C && event != CTRL_BREAK {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only Ctrl-C and Ctrl-Break can be handled on Windows",
        )
        .into());
    }
    let mut table = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    if !table.2 {
        // SAFETY: `console_handler` is a valid handler for the process's lifetime.
        if unsafe {
            windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(console_handler), 1)
        } == 0
        {
            return Err(io::Error::last_os_error().into());
        }
        table.2 = true;
    }
    let handle = lp.handle();
    let id = table.1;
    table.1 += 1;
    table.0.push((
        id,
        event,
        Box::new(move || handle.call_soon_threadsafe(move |lp| lp.deliver_signal(signal))),
    ));
    Ok((None, SignalId(id)))
}

/// Stops a delivery; with none left for an event, its default action returns.
pub(crate) fn remove_signal(id: SignalId) {
    let mut table = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    table.0.retain(|(i, _, _)| *i != id.0);
}

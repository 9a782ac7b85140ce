//! Runs a command on the event loop and streams its output, line by line,
//! each line prefixed with the pipe it came from, while a timer ticks:
//! `transport::subprocess`.
//!
//! ```text
//! cargo run --example subprocess -- [--tick-ms N] [--stdin TEXT] -- PROGRAM [ARGS...]
//! ```
//!
//! - stdout lines are printed as `out| LINE`, stderr lines as `err| LINE`
//!   (a last line without a newline is printed when its pipe closes);
//! - `--stdin TEXT`: written to the command's stdin, which is then closed
//!   (without it, stdin is closed at once);
//! - `--tick-ms N`: prints `tick K` every N milliseconds meanwhile: the loop
//!   is free while the command runs;
//! - the example exits with the command's exit code (on Unix, 128 + the
//!   signal number if a signal ended it), after printing `exit: STATUS`
//!   to stderr. Ctrl-C terminates the command (SIGTERM), and waits for it.
//!
//! ```text
//! $ cargo run --example subprocess -- sh -c 'echo hello; echo oops >&2; exit 3'
//! out| hello
//! err| oops
//! exit: exit status: 3
//! ```

use std::cell::Cell;
use std::io::{self, Write};
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::Duration;

use lexopt::ValueExt;
use selectloop::transport::subprocess::{
    spawn_subprocess, Pipe, SubprocessProtocol, SubprocessTransport,
};
use selectloop::{EventLoop, Signal};

mod support;

const USAGE: &str = "usage: subprocess [--tick-ms N] [--stdin TEXT] -- PROGRAM [ARGS...]";

/// Prints each complete line of each pipe with its prefix.
struct Lines {
    stdin: Option<Vec<u8>>,
    out: Vec<u8>,
    err: Vec<u8>,
    status: Rc<Cell<Option<ExitStatus>>>,
}

impl Lines {
    fn partial(&mut self, pipe: Pipe) -> (&'static str, &mut Vec<u8>) {
        match pipe {
            Pipe::Stderr => ("err| ", &mut self.err),
            _ => ("out| ", &mut self.out),
        }
    }

    /// Prints the complete lines of `partial` (all of it if `all`).
    fn print(prefix: &str, partial: &mut Vec<u8>, all: bool) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        let end = if all {
            partial.len()
        } else {
            partial
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
        };
        for line in partial[..end].split_inclusive(|&b| b == b'\n') {
            stdout.write_all(prefix.as_bytes())?;
            stdout.write_all(line.strip_suffix(b"\n").unwrap_or(line))?;
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        partial.drain(..end);
        Ok(())
    }
}

impl SubprocessProtocol for Lines {
    fn connection_made(&mut self, t: &mut SubprocessTransport<'_>) -> anyhow::Result<()> {
        if let Some(text) = self.stdin.take() {
            t.write(&text)?;
        }
        t.close_stdin();
        Ok(())
    }

    fn pipe_data_received(
        &mut self,
        _t: &mut SubprocessTransport<'_>,
        pipe: Pipe,
        data: &[u8],
    ) -> anyhow::Result<()> {
        let (prefix, partial) = self.partial(pipe);
        partial.extend_from_slice(data);
        Lines::print(prefix, partial, false)?;
        Ok(())
    }

    fn pipe_connection_lost(
        &mut self,
        _t: &mut SubprocessTransport<'_>,
        pipe: Pipe,
        error: Option<io::Error>,
    ) -> anyhow::Result<()> {
        if let Some(e) = error {
            log::warn!("{pipe:?}: {e}");
        }
        let (prefix, partial) = self.partial(pipe);
        Lines::print(prefix, partial, true)?;
        Ok(())
    }

    fn process_exited(&mut self, t: &mut SubprocessTransport<'_>) -> anyhow::Result<()> {
        let status = t.returncode().expect("known at process_exited");
        eprintln!("exit: {status}");
        self.status.set(Some(status));
        // The tick timer is all that is left: stop.
        t.event_loop().stop();
        Ok(())
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    status.code().unwrap_or(1)
}

fn main() -> anyhow::Result<()> {
    let mut tick = None;
    let mut stdin = None;
    let mut parser = lexopt::Parser::from_env();
    let mut command: Vec<std::ffi::OsString> = Vec::new();
    while let Some(arg) = parser.next()? {
        use lexopt::Arg::{Long, Short, Value};
        match arg {
            Long("tick-ms") => tick = Some(Duration::from_millis(parser.value()?.parse()?)),
            Long("stdin") => {
                stdin = Some(
                    parser
                        .value()?
                        .into_string()
                        .map_err(|_| anyhow::anyhow!("--stdin: not UTF-8"))?,
                )
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(());
            }
            Value(program) => {
                command.push(program);
                command.extend(parser.raw_args()?);
            }
            _ => return Err(anyhow::anyhow!("{}\n{USAGE}", arg.unexpected())),
        }
    }
    let Some((program, args)) = command.split_first() else {
        anyhow::bail!("no command given\n{USAGE}");
    };
    support::init_logger();
    let mut lp = EventLoop::new()?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    let status = Rc::new(Cell::new(None));
    let lines = Lines {
        stdin: stdin.map(String::into_bytes),
        out: Vec::new(),
        err: Vec::new(),
        status: status.clone(),
    };
    let child = spawn_subprocess(&mut lp, cmd, lines)?;
    if let Some(every) = tick {
        let mut k = 0;
        lp.call_every(every, move |_lp| {
            k += 1;
            println!("tick {k}");
            Ok(())
        });
    }
    let on_int = child.clone();
    lp.add_signal_handler(Signal::INT, move |lp| {
        on_int.with(lp, |t, _| t.terminate())??;
        Ok(())
    })?;
    // Until the child is reaped and its pipes closed (`process_exited`
    // stops the loop; without a tick it would also end on its own).
    lp.run()?;
    let status = status
        .get()
        .ok_or_else(|| anyhow::anyhow!("the loop stopped before the command ended"))?;
    drop(lp);
    std::process::exit(exit_code(status));
}

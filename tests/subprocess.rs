//! `transport::subprocess` against real children: this test binary itself,
//! re-run with `SELECTLOOP_TEST_CHILD=<role>` (so the children exist on
//! every OS, Windows under Wine included). Every byte through every pipe
//! checked; exit statuses, terminate/kill/close, the order of the calls,
//! many children at once, and no zombie left behind.
//!
//! `harness = false`: `main` either plays a child's role or runs the tests
//! (one after another; arguments filter them by name).

use std::cell::RefCell;
use std::env;
use std::io::{self, Read, Write};
use std::panic;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::Duration;

#[cfg(feature = "event-loop")]
use selectloop::transport::subprocess::{
    spawn_subprocess, Pipe, Subprocess, SubprocessProtocol, SubprocessTransport,
};
#[cfg(feature = "event-loop")]
use selectloop::{Backend, DefaultBackend, EventLoop};

const ROLE: &str = "SELECTLOOP_TEST_CHILD";

/// A deterministic pattern, `seed` telling streams apart.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (seed * 131 + j * 7 + j / 251) as u8)
        .collect()
}

/// The children's roles.
fn child(role: &str) -> ! {
    let mut parts = role.split(':');
    match parts.next().unwrap() {
        // stdin to stdout until end of file.
        "cat" => {
            io::copy(&mut io::stdin().lock(), &mut io::stdout().lock()).unwrap();
            std::process::exit(0)
        }
        // emit:OUT:ERR:CODE — OUT bytes to stdout, ERR to stderr, exit CODE.
        "emit" => {
            let mut next = || parts.next().unwrap().parse::<usize>().unwrap();
            let (out, err, code) = (next(), next(), next());
            io::stdout().lock().write_all(&pattern(1, out)).unwrap();
            io::stderr().lock().write_all(&pattern(2, err)).unwrap();
            std::process::exit(code as i32)
        }
        // Runs until killed.
        "hang" => loop {
            std::thread::park();
        },
        // Starts a grandchild that keeps stdout, stderr and stdin, and
        // exits at once.
        "grandchild" => {
            Command::new(env::current_exe().unwrap())
                .env(ROLE, "hold")
                .spawn()
                .unwrap();
            std::process::exit(0)
        }
        // Reads stdin to end of file, then says bye.
        "hold" => {
            let mut sink = Vec::new();
            io::stdin().lock().read_to_end(&mut sink).unwrap();
            io::stdout().lock().write_all(b"bye").unwrap();
            std::process::exit(0)
        }
        // Says it closes its stdin, does, and runs until killed.
        #[cfg(unix)]
        "nostdin" => {
            // SAFETY: closes descriptor 0, which nothing else in this
            // process uses.
            io::stdout().lock().write_all(b"closing\n").unwrap();
            io::stdout().lock().flush().unwrap();
            unsafe { libc::close(0) };
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn main() {
    if let Ok(role) = env::var(ROLE) {
        child(&role);
    }
    #[cfg(feature = "event-loop")]
    {
        let filters: Vec<String> = env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        let mut failed = Vec::new();
        let mut ran = 0;
        for (name, test) in tests::ALL {
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            ran += 1;
            print!("test {name} ... ");
            let _ = io::stdout().flush();
            match panic::catch_unwind(test) {
                Ok(()) => println!("ok"),
                Err(_) => {
                    println!("test {name} ... FAILED");
                    failed.push(*name);
                }
            }
        }
        println!(
            "test result: {}. {} passed; {} failed",
            if failed.is_empty() { "ok" } else { "FAILED" },
            ran - failed.len(),
            failed.len()
        );
        if !failed.is_empty() {
            println!("failures: {failed:?}");
            std::process::exit(1);
        }
    }
}

#[cfg(feature = "event-loop")]
mod tests {
    use super::*;

    /// How long a run may take before the test fails.
    const LIMIT: Duration = Duration::from_secs(60);

    pub const ALL: &[(&str, fn())] = &[
        (
            "cat_on_the_poll_backend",
            cat_on::<selectloop::selector::PollBackend>,
        ),
        #[cfg(unix)]
        (
            "cat_on_the_select_backend",
            cat_on::<selectloop::selector::SelectBackend>,
        ),
        (
            "cat_echoes_every_byte_of_stdin",
            cat_echoes_every_byte_of_stdin,
        ),
        (
            "stdout_and_stderr_per_pipe_and_exit_code",
            stdout_and_stderr_per_pipe_and_exit_code,
        ),
        ("terminate_ends_a_child", terminate_ends_a_child),
        ("kill_ends_a_child", kill_ends_a_child),
        (
            "close_closes_pipes_kills_and_still_reports_exit",
            close_closes_pipes_kills_and_still_reports_exit,
        ),
        (
            "process_exited_waits_for_pipes_a_grandchild_holds",
            process_exited_waits_for_pipes_a_grandchild_holds,
        ),
        ("many_concurrent_children", many_concurrent_children),
        (
            "dropping_the_handle_keeps_the_child_until_reaped",
            dropping_the_handle_keeps_the_child_until_reaped,
        ),
        (
            "protocol_error_kills_the_child_and_reaches_the_error_handler",
            protocol_error_kills_the_child_and_reaches_the_error_handler,
        ),
        (
            "writing_from_a_timer_and_missing_program",
            writing_from_a_timer_and_missing_program,
        ),
        #[cfg(unix)]
        (
            "no_zombie_after_dropping_loop_and_handle",
            no_zombie_after_dropping_loop_and_handle,
        ),
        #[cfg(unix)]
        (
            "a_child_closing_its_stdin_is_pipe_lost_without_sigpipe",
            a_child_closing_its_stdin_is_pipe_lost_without_sigpipe,
        ),
        #[cfg(unix)]
        (
            "a_status_stolen_by_sigchld_ignored_is_reported",
            a_status_stolen_by_sigchld_ignored_is_reported,
        ),
    ];

    fn command(role: &str) -> Command {
        let mut cmd = Command::new(env::current_exe().unwrap());
        cmd.env(ROLE, role);
        cmd
    }

    /// What a child's protocol saw.
    #[derive(Default)]
    struct Rec {
        out: Vec<u8>,
        err: Vec<u8>,
        /// `lost:PIPE[:error][:status known]`, `exited`.
        events: Vec<String>,
        status: Option<ExitStatus>,
    }

    type OnMade<B = DefaultBackend> =
        Box<dyn FnOnce(&mut SubprocessTransport<'_, B>) -> anyhow::Result<()>>;

    struct Recorder<B: Backend = DefaultBackend> {
        rec: Rc<RefCell<Rec>>,
        on_made: Option<OnMade<B>>,
        fail_on_data: bool,
    }

    impl<B: Backend> SubprocessProtocol<B> for Recorder<B> {
        fn connection_made(&mut self, t: &mut SubprocessTransport<'_, B>) -> anyhow::Result<()> {
            assert!(t.returncode().is_none());
            match self.on_made.take() {
                Some(f) => f(t),
                None => Ok(()),
            }
        }

        fn pipe_data_received(
            &mut self,
            _t: &mut SubprocessTransport<'_, B>,
            pipe: Pipe,
            data: &[u8],
        ) -> anyhow::Result<()> {
            if self.fail_on_data {
                anyhow::bail!("boom on {} bytes", data.len());
            }
            let mut rec = self.rec.borrow_mut();
            match pipe {
                Pipe::Stdout => rec.out.extend_from_slice(data),
                Pipe::Stderr => rec.err.extend_from_slice(data),
                Pipe::Stdin => panic!("data on stdin"),
            }
            Ok(())
        }

        fn pipe_connection_lost(
            &mut self,
            t: &mut SubprocessTransport<'_, B>,
            pipe: Pipe,
            error: Option<io::Error>,
        ) -> anyhow::Result<()> {
            let mut event = format!("lost:{pipe:?}");
            if let Some(e) = error {
                event += &format!(":{:?}", e.kind());
            }
            if t.returncode().is_some() {
                event += ":status known";
            }
            self.rec.borrow_mut().events.push(event);
            Ok(())
        }

        fn process_exited(&mut self, t: &mut SubprocessTransport<'_, B>) -> anyhow::Result<()> {
            let mut rec = self.rec.borrow_mut();
            rec.events.push("exited".into());
            rec.status = t.returncode();
            Ok(())
        }
    }

    fn recorder<B: Backend>(on_made: Option<OnMade<B>>) -> (Recorder<B>, Rc<RefCell<Rec>>) {
        let rec = Rc::new(RefCell::new(Rec::default()));
        (
            Recorder {
                rec: rec.clone(),
                on_made,
                fail_on_data: false,
            },
            rec,
        )
    }

    /// Runs the loop to completion, failing (not hanging) after LIMIT.
    fn run<B: Backend>(lp: &mut EventLoop<B>) {
        let handle = lp.handle();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(LIMIT) {
                handle.stop();
                return true;
            }
            false
        });
        lp.run().unwrap();
        drop(done);
        assert!(
            !watchdog.join().unwrap(),
            "the loop ran longer than {LIMIT:?}"
        );
    }

    /// The pipes' losses in any order, then `exited` last.
    fn assert_all_lost_then_exited(events: &[String]) {
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(events[3], "exited", "{events:?}");
        for pipe in ["Stdin", "Stdout", "Stderr"] {
            assert_eq!(
                events[..3]
                    .iter()
                    .filter(|e| e.starts_with(&format!("lost:{pipe}")))
                    .count(),
                1,
                "{events:?}"
            );
        }
    }

    fn cat_echoes_every_byte_of_stdin() {
        let data = pattern(9, 1 << 20);
        let sent = data.clone();
        let (proto, rec) = recorder(Some(Box::new(move |t| {
            t.write(&sent)?;
            t.close_stdin();
            assert!(t.write(b"late").is_err());
            Ok(())
        })));
        let mut lp = EventLoop::new().unwrap();
        let child = spawn_subprocess(&mut lp, command("cat"), proto).unwrap();
        assert!(child.pid() > 0);
        run(&mut lp);
        let rec = rec.borrow();
        assert_eq!(rec.out.len(), data.len());
        assert!(rec.out == data, "stdout differs");
        assert!(rec.err.is_empty());
        assert_all_lost_then_exited(&rec.events);
        assert_eq!(
            rec.events[0], "lost:Stdin",
            "closed by us, flushed: {:?}",
            rec.events
        );
        assert!(rec.status.unwrap().success());
        assert_eq!(child.returncode(), rec.status);
    }

    /// Stdin, stdout, stderr and the exit through another backend.
    fn cat_on<B: Backend>() {
        let data = pattern(5, 200_000);
        let sent = data.clone();
        let (proto, rec) = recorder::<B>(Some(Box::new(move |t| {
            t.write(&sent)?;
            t.close_stdin();
            Ok(())
        })));
        let mut lp = EventLoop::<B>::with_backend().unwrap();
        spawn_subprocess(&mut lp, command("cat"), proto).unwrap();
        run(&mut lp);
        let rec = rec.borrow();
        assert!(rec.out == data, "stdout differs");
        assert_all_lost_then_exited(&rec.events);
        assert!(rec.status.unwrap().success());
    }

    fn stdout_and_stderr_per_pipe_and_exit_code() {
        let (proto, rec) = recorder(None);
        let mut lp = EventLoop::new().unwrap();
        spawn_subprocess(&mut lp, command("emit:300000:70000:7"), proto).unwrap();
        run(&mut lp);
        let rec = rec.borrow();
        assert!(
            rec.out == pattern(1, 300_000),
            "stdout differs ({} bytes)",
            rec.out.len()
        );
        assert!(
            rec.err == pattern(2, 70_000),
            "stderr differs ({} bytes)",
            rec.err.len()
        );
        assert_all_lost_then_exited(&rec.events);
        assert_eq!(rec.status.unwrap().code(), Some(7));
    }

    fn ends_a_hanging_child(how: fn(&mut SubprocessTransport<'_>) -> io::Result<()>) -> ExitStatus {
        let (proto, rec) = recorder(Some(Box::new(move |t| Ok(how(t)?))));
        let mut lp = EventLoop::new().unwrap();
        spawn_subprocess(&mut lp, command("hang"), proto).unwrap();
        run(&mut lp);
        let rec = rec.borrow();
        assert_all_lost_then_exited(&rec.events);
        let status = rec.status.unwrap();
        assert!(!status.success());
        status
    }

    fn terminate_ends_a_child() {
        let status = ends_a_hanging_child(|t| t.terminate());
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGTERM));
        }
        let _ = status;
    }

    fn kill_ends_a_child() {
        let status = ends_a_hanging_child(|t| t.kill());
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        }
        let _ = status;
    }

    fn close_closes_pipes_kills_and_still_reports_exit() {
        let (proto, rec) = recorder(Some(Box::new(|t| {
            t.close();
            assert!(t.is_closing());
            Ok(())
        })));
        let mut lp = EventLoop::new().unwrap();
        spawn_subprocess(&mut lp, command("hang"), proto).unwrap();
        // Closed already: each pipe's loss delivered when connection_made returned.
        assert_eq!(
            rec.borrow().events,
            ["lost:Stdin", "lost:Stdout", "lost:Stderr"]
        );
        run(&mut lp);
        let rec = rec.borrow();
        assert_all_lost_then_exited(&rec.events);
        assert!(!rec.status.unwrap().success());
    }

    /// The child exits at once but a grandchild holds its stdout and
    /// stderr: the status is known first, the loop closes stdin (so the
    /// grandchild reads end of file and says bye), and `process_exited`
    /// comes only after stdout and stderr are closed.
    fn process_exited_waits_for_pipes_a_grandchild_holds() {
        let (proto, rec) = recorder(None);
        let mut lp = EventLoop::new().unwrap();
        spawn_subprocess(&mut lp, command("grandchild"), proto).unwrap();
        run(&mut lp);
        let rec = rec.borrow();
        assert_eq!(rec.out, b"bye");
        assert_all_lost_then_exited(&rec.events);
        assert_eq!(rec.events[0], "lost:Stdin:status known", "{:?}", rec.events);
        for event in &rec.events[1..3] {
            assert!(event.ends_with(":status known"), "{:?}", rec.events);
        }
        assert!(rec.status.unwrap().success());
    }

    fn many_concurrent_children() {
        const N: usize = 24;
        let mut lp = EventLoop::new().unwrap();
        let mut recs = Vec::new();
        for i in 0..N {
            let data = pattern(i, 20_000 + i * 1000);
            let (proto, rec) = recorder(Some(Box::new(move |t| {
                t.write(&data)?;
                t.close_stdin();
                Ok(())
            })));
            spawn_subprocess(&mut lp, command("cat"), proto).unwrap();
            recs.push(rec);
        }
        run(&mut lp);
        for (i, rec) in recs.iter().enumerate() {
            let rec = rec.borrow();
            assert!(
                rec.out == pattern(i, 20_000 + i * 1000),
                "child {i}: stdout differs"
            );
            assert_all_lost_then_exited(&rec.events);
            assert!(rec.status.unwrap().success(), "child {i}");
        }
    }

    fn dropping_the_handle_keeps_the_child_until_reaped() {
        let (proto, rec) = recorder(None);
        let mut lp = EventLoop::new().unwrap();
        drop(spawn_subprocess(&mut lp, command("emit:1000:10:3"), proto).unwrap());
        run(&mut lp);
        let rec = rec.borrow();
        assert!(rec.out == pattern(1, 1000));
        assert_eq!(rec.status.unwrap().code(), Some(3));
    }

    fn protocol_error_kills_the_child_and_reaches_the_error_handler() {
        let (mut proto, rec) = recorder(Some(Box::new(|t| Ok(t.write(b"echo me\n")?))));
        proto.fail_on_data = true;
        let errors = Rc::new(RefCell::new(Vec::new()));
        let mut lp = EventLoop::new().unwrap();
        let seen = errors.clone();
        lp.set_error_handler(move |_lp, failure| seen.borrow_mut().push(failure.error.to_string()));
        let child: Subprocess<Recorder> = spawn_subprocess(&mut lp, command("cat"), proto).unwrap();
        let status = child.clone();
        let timeout = panic::catch_unwind(panic::AssertUnwindSafe(|| run(&mut lp)));
        if timeout.is_err() {
            panic!(
                "errors {:?}, status {:?}",
                errors.borrow(),
                status.returncode()
            );
        }
        assert_eq!(*errors.borrow(), ["boom on 8 bytes"]);
        // No call after the failure; the child was killed (cat would have
        // waited for stdin forever) and reaped.
        assert!(rec.borrow().events.is_empty(), "{:?}", rec.borrow().events);
        assert!(!child.returncode().expect("reaped").success());
    }

    fn writing_from_a_timer_and_missing_program() {
        let (proto, rec) = recorder(None);
        let mut lp = EventLoop::new().unwrap();
        let child = spawn_subprocess(&mut lp, command("cat"), proto).unwrap();
        let handle = child.clone();
        lp.call_later(Duration::from_millis(1), move |lp| {
            handle.with(lp, |t, _| {
                t.write(b"from a timer")?;
                t.close_stdin();
                anyhow::Ok(())
            })??;
            Ok(())
        });
        run(&mut lp);
        assert_eq!(rec.borrow().out, b"from a timer");
        assert!(child.returncode().unwrap().success());

        let (proto, _) = recorder(None);
        let missing = Command::new("/no/such/program-selectloop");
        assert!(spawn_subprocess(&mut lp, missing, proto).is_err());
    }

    #[cfg(unix)]
    fn no_zombie_after_dropping_loop_and_handle() {
        let (proto, _rec) = recorder(None);
        let mut lp = EventLoop::new().unwrap();
        let child = spawn_subprocess(&mut lp, command("hang"), proto).unwrap();
        let pid = child.pid() as libc::pid_t;
        // SAFETY: kill(2) with signal 0 only checks the pid exists.
        assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "running");
        drop(lp);
        drop(child);
        // Killed and reaped: no such child any more.
        let mut status = 0;
        // SAFETY: waitpid(2) writes only into `status`.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert_eq!(rc, -1);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ECHILD)
        );
    }

    /// SIGCHLD ignored: the kernel reaps the child itself, so its status is
    /// lost. The error handler hears of it and `process_exited` still
    /// comes, with no status. (Restores the default disposition.)
    #[cfg(unix)]
    fn a_status_stolen_by_sigchld_ignored_is_reported() {
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: setting a signal's disposition back to its default.
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
            }
        }
        // SAFETY: SIG_IGN is a valid disposition for SIGCHLD; restored below.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let _restore = Restore;
        let (proto, rec) = recorder(None);
        let errors = Rc::new(RefCell::new(Vec::new()));
        let mut lp = EventLoop::new().unwrap();
        let seen = errors.clone();
        lp.set_error_handler(move |_lp, failure| {
            seen.borrow_mut().push(format!("{:#}", failure.error))
        });
        spawn_subprocess(&mut lp, command("emit:10:0:0"), proto).unwrap();
        run(&mut lp);
        let rec = rec.borrow();
        assert!(rec.out == pattern(1, 10));
        assert_all_lost_then_exited(&rec.events);
        assert_eq!(rec.status, None);
        let errors = errors.borrow();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("exit status is lost"), "{errors:?}");
    }

    /// The child closes its stdin and keeps running: writing to it then
    /// closes the loop's stdin pipe (`pipe_connection_lost(Stdin)`), and
    /// never raises SIGPIPE, even with SIGPIPE at its default action (which
    /// would kill this process).
    #[cfg(unix)]
    fn a_child_closing_its_stdin_is_pipe_lost_without_sigpipe() {
        struct Restore(libc::sighandler_t);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: puts back the disposition saved below.
                unsafe { libc::signal(libc::SIGPIPE, self.0) };
            }
        }
        // SAFETY: SIG_DFL is a valid disposition; the old one is restored.
        let _restore = Restore(unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) });

        struct Writer {
            rec: Rc<RefCell<Rec>>,
        }
        impl SubprocessProtocol for Writer {
            fn pipe_data_received(
                &mut self,
                t: &mut SubprocessTransport<'_>,
                _: Pipe,
                data: &[u8],
            ) -> anyhow::Result<()> {
                assert_eq!(data, b"closing\n");
                // More than the pipe holds: what it takes now, the rest
                // queued; once the child has closed its stdin, a write
                // fails with EPIPE (now, or when the rest is flushed).
                t.write(&[7; 100_000])?;
                Ok(())
            }
            fn pipe_connection_lost(
                &mut self,
                t: &mut SubprocessTransport<'_>,
                pipe: Pipe,
                error: Option<io::Error>,
            ) -> anyhow::Result<()> {
                let mut event = format!("lost:{pipe:?}");
                if let Some(e) = error {
                    event += &format!(":{:?}", e.kind());
                }
                self.rec.borrow_mut().events.push(event);
                if pipe == Pipe::Stdin {
                    t.kill()?;
                }
                Ok(())
            }
            fn process_exited(&mut self, t: &mut SubprocessTransport<'_>) -> anyhow::Result<()> {
                let mut rec = self.rec.borrow_mut();
                rec.events.push("exited".into());
                rec.status = t.returncode();
                Ok(())
            }
        }
        let rec = Rc::new(RefCell::new(Rec::default()));
        let mut lp = EventLoop::new().unwrap();
        spawn_subprocess(&mut lp, command("nostdin"), Writer { rec: rec.clone() }).unwrap();
        run(&mut lp);
        let rec = rec.borrow();
        assert_all_lost_then_exited(&rec.events);
        assert_eq!(rec.events[0], "lost:Stdin:BrokenPipe", "{:?}", rec.events);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(rec.status.unwrap().signal(), Some(libc::SIGKILL));
    }
}

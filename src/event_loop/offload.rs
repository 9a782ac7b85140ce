//! Offloading blocking work: [`run_in_executor`](EventLoop::run_in_executor)
//! runs a closure on the loop's thread pool and its result on the loop.
//!
//! ```
//! use selectloop::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! lp.run_in_executor(
//!     || (1..=10u64).product::<u64>(), // on a worker thread
//!     |_lp, factorial| {               // back on the loop's thread
//!         assert_eq!(factorial, 3_628_800);
//!         Ok(())
//!     },
//! )?;
//! lp.run()?; // returns once the result has been handled
//! # Ok::<(), selectloop::Error>(())
//! ```
//!
//! The pool starts on the first offload. A finished job sends its `done`
//! callback through the loop's [remote queue](crate::LoopHandle); the
//! callbacks wait in a slab on the loop so that [`run`](EventLoop::run) knows
//! work is pending.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::report::panic_message;
use super::EventLoop;
use crate::{Backend, Result};

/// What to do with an offloaded job's result on the loop thread.
pub(super) type DoneCallback<B> =
    Box<dyn FnOnce(&mut EventLoop<B>, Box<dyn Any + Send>) -> anyhow::Result<()>>;

impl<B: Backend> EventLoop<B> {
    /// Sets the number of worker threads for [`run_in_executor`](EventLoop::run_in_executor)
    /// (default: the number of CPUs, between 2 and 8). Takes effect when the
    /// pool starts, on the first offload.
    pub fn set_executor_threads(&mut self, threads: usize) {
        self.executor_threads = threads.max(1);
    }

    /// Runs `work` on the loop's thread pool, then `done(loop, result)` on the
    /// loop's thread. The loop keeps serving meanwhile, and [`run`](EventLoop::run)
    /// does not return while offloaded work is pending. If `work` panics,
    /// `done` is not called and the panic goes to the error handler as an error.
    /// Dropping the loop waits for running work to finish.
    ///
    /// # Errors
    /// - [`Error::Io`](crate::Error::Io) if the pool's threads cannot be started.
    pub fn run_in_executor<R, W, D>(&mut self, work: W, done: D) -> Result<()>
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
        D: FnOnce(&mut EventLoop<B>, R) -> anyhow::Result<()> + 'static,
    {
        if self.executor.is_none() {
            self.executor = Some(Executor::new(self.executor_threads)?);
        }
        let job = self.jobs.insert(Box::new(
            move |lp: &mut EventLoop<B>, result: Box<dyn Any + Send>| {
                done(
                    lp,
                    *result.downcast::<R>().expect("the job's own result type"),
                )
            },
        ));
        let remote = Arc::clone(&self.remote);
        let executor = self.executor.as_ref().expect("started above");
        executor.submit(Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(work));
            remote.push(Box::new(move |lp: &mut EventLoop<B>| {
                let done = lp.jobs.remove(job);
                match result {
                    Ok(value) => done(lp, Box::new(value)),
                    Err(panic) => Err(anyhow::anyhow!(
                        "offloaded work panicked: {}",
                        panic_message(&*panic)
                    )),
                }
            }));
        }));
        Ok(())
    }
}

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of worker threads fed from one queue. Dropping it discards
/// the jobs still queued (their results would have nowhere to go) and joins
/// the workers once the jobs they are running finish.
pub(crate) struct Executor {
    jobs: Option<Sender<Job>>,
    closing: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Executor {
    pub(crate) fn new(threads: usize) -> io::Result<Executor> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let closing = Arc::new(AtomicBool::new(false));
        let mut executor = Executor {
            jobs: Some(tx),
            closing: Arc::clone(&closing),
            workers: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let closing = Arc::clone(&closing);
            let worker = thread::Builder::new()
                .name(format!("selectloop-worker-{i}"))
                .spawn(move || work(&rx, &closing))?;
            executor.workers.push(worker);
        }
        Ok(executor)
    }

    pub(crate) fn submit(&self, job: Job) {
        // The workers only stop when the sender is dropped, in `drop`.
        let _ = self.jobs.as_ref().expect("open until dropped").send(job);
    }
}

fn work(rx: &Mutex<Receiver<Job>>, closing: &AtomicBool) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(_) if closing.load(Ordering::Acquire) => return,
            // Jobs catch their own panics (see `run_in_executor`).
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        drop(self.jobs.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.workers.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_job() {
        let (tx, rx) = mpsc::channel();
        let executor = Executor::new(3).unwrap();
        for i in 0..20 {
            let tx = tx.clone();
            executor.submit(Box::new(move || tx.send(i).unwrap()));
        }
        drop(tx);
        let mut got: Vec<i32> = rx.iter().take(20).collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn drop_finishes_running_jobs_and_discards_queued_ones() {
        let executor = Executor::new(1).unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        {
            let done_tx = done_tx.clone();
            executor.submit(Box::new(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                done_tx.send("running").unwrap();
            }));
        }
        for _ in 0..3 {
            let done_tx = done_tx.clone();
            executor.submit(Box::new(move || done_tx.send("queued").unwrap()));
        }
        drop(done_tx);
        started_rx.recv().unwrap();
        // What `drop` does first, done here so the running job is released
        // only after it (`drop` then joins, so it cannot release it itself).
        executor.closing.store(true, Ordering::Release);
        release_tx.send(()).unwrap();
        drop(executor);
        assert_eq!(done_rx.iter().collect::<Vec<_>>(), ["running"]);
    }
}

//! The event loop's thread pool for [`run_in_executor`](crate::EventLoop::run_in_executor).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

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

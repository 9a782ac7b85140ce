//! The event loop's thread pool for [`run_in_executor`](crate::EventLoop::run_in_executor).

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of worker threads fed from one queue. Dropping it closes the
/// queue and joins the workers, after they finish what was queued.
pub(crate) struct Executor {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Executor {
    pub(crate) fn new(threads: usize) -> io::Result<Executor> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut executor = Executor {
            jobs: Some(tx),
            workers: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let worker = thread::Builder::new()
                .name(format!("selectloop-worker-{i}"))
                .spawn(move || work(&rx))?;
            executor.workers.push(worker);
        }
        Ok(executor)
    }

    pub(crate) fn submit(&self, job: Job) {
        // The workers only stop when the sender is dropped, in `drop`.
        let _ = self.jobs.as_ref().expect("open until dropped").send(job);
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // Jobs catch their own panics (see `run_in_executor`).
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
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
    fn runs_every_job_and_joins_on_drop() {
        let (tx, rx) = mpsc::channel();
        let executor = Executor::new(3).unwrap();
        for i in 0..20 {
            let tx = tx.clone();
            executor.submit(Box::new(move || tx.send(i).unwrap()));
        }
        drop(executor);
        drop(tx);
        let mut got: Vec<i32> = rx.iter().collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }
}

//! The bounded worker pool that runs a batch's tasks.
//!
//! Built on `rayon`: a fixed-size pool (`spate.streaming.executor.threads`) with work stealing,
//! whose `install` + parallel iterators let a task borrow the batch's data without `'static`
//! bounds or per-task channels. Every task runs under `catch_unwind`, so a panic in a user
//! closure fails that batch with the panic message instead of tearing down a worker, and a task
//! ended by [`fail_task`](super::fail_task) fails it with that task's error.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rayon::prelude::*;

use crate::error::{panic_message, Result, StreamingError};
use crate::exec::task_failure::task_failure;
use crate::time::Time;

/// A fixed-size pool of worker threads.
pub(crate) struct Executor {
    pool: rayon::ThreadPool,
    threads: usize,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Executor {
    /// A pool of `threads` workers named `spate-exec-N`.
    pub(crate) fn new(threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("spate-exec-{i}"))
            .build()
            .map_err(|e| {
                StreamingError::config(
                    crate::config::EXECUTOR_THREADS,
                    threads.to_string(),
                    e.to_string(),
                )
            })?;
        Ok(Executor { pool, threads })
    }

    /// Runs `f(0..n)` as `n` tasks in parallel and returns their results in partition order.
    /// The first error (or panic, as [`StreamingError::TaskPanicked`]) fails the whole call.
    pub(crate) fn run_tasks<R, F>(&self, time: Time, n: usize, f: F) -> Result<Vec<R>>
    where
        R: Send,
        F: Fn(usize) -> Result<R> + Sync,
    {
        let guarded = |p: usize| -> Result<R> {
            match catch_unwind(AssertUnwindSafe(|| f(p))) {
                Ok(r) => r,
                Err(payload) => Err(match task_failure(payload) {
                    Ok(failure) => failure,
                    Err(payload) => StreamingError::TaskPanicked {
                        time,
                        partition: p,
                        message: panic_message(payload.as_ref()),
                    },
                }),
            }
        };
        if n <= 1 {
            // One task: skip the hand-off to the pool; it would only add latency.
            return (0..n).map(guarded).collect();
        }
        self.pool.install(|| {
            (0..n)
                .into_par_iter()
                .map(guarded)
                .collect::<Result<Vec<R>>>()
        })
    }
}

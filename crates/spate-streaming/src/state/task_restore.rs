//! Background restores of newly assigned tasks (state partitioned by task, see
//! [`crate::state::tasks`]): the input's planner hands over the tasks it was assigned and keeps
//! planning batches of the tasks it already owns; a bounded pool of restore threads (at most one
//! per core, two at least) streams each new task's changelog partitions into the state, and the planner
//! covers a task only once its restore is done.
//!
//! A task revoked while it restores is *cancelled*: its restore stops at its next check and
//! never installs what it read (the install happens under the state partition's lock after a
//! last look at the cancellation flag, and a revocation sets the flag before it drops the
//! partition under that lock).

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::error::{panic_message, Result, StreamingError};
use crate::graph::StatefulOp;
use crate::listener::ListenerBus;
use crate::metrics::StreamingMetrics;
use crate::state::restore::restore_partition;
use crate::state::StateChangelog;

/// What a task's state needs: every operator partitioned by task, each with its changelog
/// (`None`: the operator's state of a new task starts empty).
pub(crate) struct TaskStores {
    pub(crate) ops: Vec<Arc<dyn StatefulOp>>,
    pub(crate) changelogs: Vec<Option<Arc<dyn StateChangelog>>>,
    pub(crate) bus: Arc<ListenerBus>,
    pub(crate) metrics: Arc<StreamingMetrics>,
}

/// One task's restore.
struct Job {
    task: usize,
    cancel: AtomicBool,
    /// `None` while it runs; the records restored, or why it failed.
    outcome: Mutex<Option<std::result::Result<u64, Arc<StreamingError>>>>,
}

#[derive(Default)]
struct Queue {
    /// Per task: its latest restore, kept once done until the task is revoked.
    jobs: BTreeMap<usize, Arc<Job>>,
    waiting: VecDeque<Arc<Job>>,
    workers: usize,
}

/// The restore threads and their work (see the module docs).
pub(crate) struct Restorer {
    stores: TaskStores,
    queue: Mutex<Queue>,
    max_workers: usize,
}

impl Restorer {
    pub(crate) fn new(stores: TaskStores) -> Self {
        // At least two: a restore also waits on the network, and one slow task must not hold back
        // every other on a one-core machine.
        let max_workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        Restorer {
            stores,
            queue: Mutex::new(Queue::default()),
            max_workers,
        }
    }

    pub(crate) fn stores(&self) -> &TaskStores {
        &self.stores
    }

    /// Queues the restore of `tasks` (a restore of one of them still queued or running is
    /// cancelled first) and starts restore threads up to the bound.
    pub(crate) fn start(self: &Arc<Self>, tasks: &[usize]) -> Result<()> {
        let mut q = self.queue.lock();
        for &task in tasks {
            let job = Arc::new(Job {
                task,
                cancel: AtomicBool::new(false),
                outcome: Mutex::new(None),
            });
            if let Some(old) = q.jobs.insert(task, Arc::clone(&job)) {
                old.cancel.store(true, Ordering::Release);
            }
            q.waiting.push_back(job);
        }
        q.waiting.retain(|j| !j.cancel.load(Ordering::Acquire));
        // Every running worker is busy (an idle one exits), so the queued tasks need new ones.
        let wanted = q
            .waiting
            .len()
            .min(self.max_workers.saturating_sub(q.workers));
        for _ in 0..wanted {
            let me = Arc::clone(self);
            std::thread::Builder::new()
                .name("spate-state-restore".into())
                .spawn(move || me.work())
                .map_err(|e| StreamingError::io("spate-state-restore thread", e))?;
            q.workers += 1;
        }
        Ok(())
    }

    /// Whether `task`'s restore is done (true too for a task with no restore: never assigned,
    /// or revoked); its error when it failed.
    pub(crate) fn restored(&self, task: usize) -> Result<bool> {
        let job = self.queue.lock().jobs.get(&task).cloned();
        let Some(job) = job else {
            return Ok(true);
        };
        let outcome = job.outcome.lock();
        match &*outcome {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(StreamingError::StateRestoreFailed {
                task,
                source: Arc::clone(e),
            }),
        }
    }

    /// Cancels the restores of `tasks` (queued or running); their state partitions are dropped
    /// by the caller afterwards.
    pub(crate) fn cancel(&self, tasks: &[usize]) {
        let mut q = self.queue.lock();
        for task in tasks {
            if let Some(job) = q.jobs.remove(task) {
                job.cancel.store(true, Ordering::Release);
            }
        }
        q.waiting.retain(|j| !j.cancel.load(Ordering::Acquire));
    }

    /// Cancels every restore (the input stops).
    pub(crate) fn cancel_all(&self) {
        let tasks: Vec<usize> = self.queue.lock().jobs.keys().copied().collect();
        self.cancel(&tasks);
    }

    /// A restore thread: takes queued tasks until none is left.
    fn work(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock();
                match q.waiting.pop_front() {
                    Some(job) => job,
                    None => {
                        q.workers -= 1;
                        return;
                    }
                }
            };
            if job.cancel.load(Ordering::Acquire) {
                continue;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| self.restore_task(&job)))
                .unwrap_or_else(|p| {
                    Err(StreamingError::operator(
                        format!("task {}", job.task),
                        format!(
                            "restoring its state panicked: {}",
                            panic_message(p.as_ref())
                        ),
                    ))
                });
            match outcome {
                Err(_) if job.cancel.load(Ordering::Acquire) => {
                    tracing::info!(task = job.task, "restore of a revoked task cancelled");
                }
                Err(e) => {
                    tracing::error!(task = job.task, error = %e, "restoring a task's state failed");
                    *job.outcome.lock() = Some(Err(Arc::new(e)));
                }
                Ok(n) => *job.outcome.lock() = Some(Ok(n)),
            }
        }
    }

    /// Restores every operator's state partition of `job.task`, one after the other.
    fn restore_task(&self, job: &Job) -> Result<u64> {
        let started = Instant::now();
        let s = &self.stores;
        let mut total = 0;
        for (op, log) in s.ops.iter().zip(&s.changelogs) {
            match log {
                Some(log) => {
                    total += restore_partition(
                        op.as_ref(),
                        log.as_ref(),
                        job.task,
                        &s.bus,
                        &s.metrics,
                        Some(&job.cancel),
                    )?;
                }
                None => op.drop_partition(job.task),
            }
        }
        tracing::info!(
            task = job.task,
            records = total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state of a newly assigned task restored"
        );
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::BoxError;
    use crate::graph::encode_state;
    use crate::state::changelog::RestoreFn;
    use crate::state::update::UpdateStore;
    use crate::state::{KeyedState, StateChanges};

    /// A changelog whose restores wait until released.
    #[derive(Default)]
    struct Gated {
        started: AtomicBool,
        release: AtomicBool,
    }

    impl StateChangelog for Gated {
        fn open(&self, _: &str, _: usize) -> std::result::Result<(), BoxError> {
            Ok(())
        }

        fn restore(
            &self,
            _: &str,
            _: usize,
            expected: &mut dyn FnMut(u64),
            apply: &mut RestoreFn<'_>,
        ) -> std::result::Result<u64, BoxError> {
            self.started.store(true, Ordering::SeqCst);
            wait(|| self.release.load(Ordering::SeqCst));
            expected(3);
            for (k, v) in [("a", 1_i64), ("b", 2), ("c", 3)] {
                apply(&encode_state("t", k)?, Some(&encode_state("t", &v)?))?;
            }
            Ok(3)
        }

        fn record(&self, _: StateChanges) -> std::result::Result<(), BoxError> {
            Ok(())
        }
    }

    fn wait(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    type Store = UpdateStore<String, i64>;

    fn restorer(log: &Arc<Gated>) -> (Arc<Restorer>, Arc<Store>) {
        let op = Arc::new(UpdateStore(KeyedState::by_task(Arc::new(
            parking_lot::Mutex::new("t".to_owned()),
        ))));
        op.0.set_tasks(2).unwrap();
        let stores = TaskStores {
            ops: vec![op.clone() as Arc<dyn StatefulOp>],
            changelogs: vec![Some(log.clone() as Arc<dyn StateChangelog>)],
            bus: Arc::new(ListenerBus::new()),
            metrics: Arc::new(StreamingMetrics::new(10)),
        };
        (Arc::new(Restorer::new(stores)), op)
    }

    fn keys(op: &Store, task: usize) -> usize {
        op.0.store.parts()[task].lock().len()
    }

    fn idle(r: &Restorer) -> bool {
        r.queue.lock().workers == 0
    }

    #[test]
    fn a_task_restores_in_the_background_and_its_state_appears_when_done() {
        let log = Arc::new(Gated::default());
        let (r, op) = restorer(&log);
        r.start(&[0]).unwrap();
        wait(|| log.started.load(Ordering::SeqCst));
        assert!(!r.restored(0).unwrap(), "still restoring");
        assert!(r.restored(1).unwrap(), "task 1 is not being restored");
        assert_eq!(keys(&op, 0), 0, "nothing installed before the end");
        log.release.store(true, Ordering::SeqCst);
        wait(|| r.restored(0).unwrap());
        assert_eq!(keys(&op, 0), 3);
        wait(|| idle(&r));
    }

    #[test]
    fn a_task_revoked_while_it_restores_gets_no_state() {
        let log = Arc::new(Gated::default());
        let (r, op) = restorer(&log);
        r.start(&[0]).unwrap();
        wait(|| log.started.load(Ordering::SeqCst));
        r.cancel(&[0]);
        op.0.drop_partition(0);
        log.release.store(true, Ordering::SeqCst);
        wait(|| idle(&r));
        assert_eq!(keys(&op, 0), 0, "a cancelled restore installs nothing");
        assert!(r.restored(0).unwrap(), "no restore of task 0 any more");
    }
}

//! Keyed state partitioned by **task** — Kafka Streams' model, in which a stateful operator's
//! state is split by its input's partitions, so that several instances of a job each hold the
//! state of the input partitions they own.
//!
//! A state operator partitioned by task (`update_state_by_key_by_task`,
//! `StateSpec::by_task`) reads the task of each input partition from [`Partitions::task`]
//! (the Kafka direct stream: partition *i* of a batch reads one Kafka partition, whose number
//! is its task) and keeps state partition p for task p — no shuffle: the input is
//! *co-partitioned*, its records keyed by the state key and placed by the producer's
//! partitioner, so every record of a key is in the same task. The number of state partitions
//! (and of changelog partitions) is the input's task count ([`InputTasks`]), learnt at start. A
//! batch updates only the tasks it covers.
//!
//! When the input reports ownership ([`InputTasks::assigned`], a group-managed stream), nothing
//! is restored at start: the input calls [`TaskStates::assigned`] when this instance gains
//! tasks, which starts restoring their state from the changelog in the background
//! (`crate::state::task_restore`) and returns at once, so the input keeps planning batches of
//! the tasks it already owns; it plans the first batch covering a new task only once
//! [`TaskStates::restored`] says its restore is done. It calls [`TaskStates::revoked`] when it
//! lost tasks and their batches have committed, which cancels a restore still running and drops
//! their state from memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Result, StreamingError};
use crate::exec::{Batch, Data, Partitions};
use crate::graph::{Graph, StatefulOp};
use crate::input::InputTasks;
use crate::listener::ListenerBus;
use crate::metrics::StreamingMetrics;
use crate::state::task_restore::{Restorer, TaskStores};

/// One batch's records grouped by task: the tasks the batch covers (ascending) and each one's
/// records. Every input partition must name a task below `n`.
pub(crate) fn group_by_task<T: Data>(
    input: &Batch<T>,
    n: usize,
    operator: &str,
) -> Result<(Vec<usize>, Vec<Vec<T>>)> {
    let parts = input.partitions();
    let tasks = (0..parts.num_partitions())
        .map(|p| task_of(parts.as_ref(), p, n, operator))
        .collect::<Result<Vec<usize>>>()?;
    let data = input.collect_partitions()?;
    let mut by_task: BTreeMap<usize, Vec<T>> = BTreeMap::new();
    for (task, mut records) in tasks.into_iter().zip(data) {
        by_task.entry(task).or_default().append(&mut records);
    }
    Ok(by_task.into_iter().unzip())
}

fn task_of<T>(parts: &dyn Partitions<T>, p: usize, n: usize, operator: &str) -> Result<usize> {
    match parts.task(p) {
        Some(t) if t < n => Ok(t),
        Some(t) => Err(StreamingError::operator(
            operator,
            format!(
                "is partitioned by task into {n} partitions, and a batch has task {t}: the \
                 input gained partitions since the job started; restart it"
            ),
        )),
        None => Err(StreamingError::operator(
            operator,
            "is partitioned by task, but its input's partitions have no task: a shuffle \
             (reduce_by_key, repartition, join), a window or an input without tasks comes \
             before it; keep only narrow operators (map, filter, flat_map) between the input \
             and the state",
        )),
    }
}

/// Checks, at `start`, what state partitioned by task cannot do.
pub(crate) fn validate(graph: &Graph, checkpointed: bool) -> Result<()> {
    match graph.stateful.iter().find(|op| op.by_task()) {
        Some(op) if checkpointed => Err(StreamingError::operator(
            op.id(),
            "is partitioned by task and the job has a checkpoint directory: snapshots place \
             keys by the engine's hash; back state partitioned by task with a changelog",
        )),
        _ => Ok(()),
    }
}

/// The job's operators partitioned by task and their changelogs: the handle an input reports
/// ownership through (see the module docs).
#[derive(Clone)]
pub struct TaskStates {
    inner: Arc<Inner>,
}

struct Inner {
    tasks: InputTasks,
    restorer: Arc<Restorer>,
}

impl std::fmt::Debug for TaskStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskStates")
            .field("tasks", &self.inner.tasks)
            .field(
                "operators",
                &self
                    .inner
                    .restorer
                    .stores()
                    .ops
                    .iter()
                    .map(|o| o.id())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TaskStates {
    /// At start: sizes every operator partitioned by task from the inputs' tasks. `None` when
    /// the job has no such operator.
    pub(crate) fn setup(
        graph: &Graph,
        bus: &Arc<ListenerBus>,
        metrics: &Arc<StreamingMetrics>,
    ) -> Result<Option<TaskStates>> {
        let ops: Vec<Arc<dyn StatefulOp>> = graph
            .stateful
            .iter()
            .filter(|op| op.by_task())
            .cloned()
            .collect();
        let Some(first) = ops.first() else {
            return Ok(None);
        };
        let tasks = input_tasks(graph)?.ok_or_else(|| {
            StreamingError::operator(
                first.id(),
                "is partitioned by task, but no input of the job has tasks (the Kafka direct \
                 stream has: one per partition)",
            )
        })?;
        for op in &ops {
            op.set_tasks(tasks.count)?;
        }
        let changelogs = ops
            .iter()
            .map(|op| {
                let id = op.id();
                graph
                    .changelogs
                    .iter()
                    .find(|(uid, _)| *uid == id)
                    .map(|(_, log)| Arc::clone(log))
            })
            .collect();
        Ok(Some(TaskStates {
            inner: Arc::new(Inner {
                tasks,
                restorer: Arc::new(Restorer::new(TaskStores {
                    ops,
                    changelogs,
                    bus: Arc::clone(bus),
                    metrics: Arc::clone(metrics),
                })),
            }),
        }))
    }

    /// The input's tasks.
    pub fn tasks(&self) -> InputTasks {
        self.inner.tasks
    }

    /// This instance now owns `tasks`: each operator's state of them is restored from its
    /// changelog in the background (progress to the listeners and the metrics, as at start),
    /// or starts empty for an operator without a changelog. Returns at once; plan no batch
    /// covering one of them before [`TaskStates::restored`] says it is restored.
    pub fn assigned(&self, tasks: &[usize]) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        tracing::info!(?tasks, "restoring the state of newly assigned tasks");
        self.inner.restorer.start(tasks)
    }

    /// Whether the state of `task` is restored since it was [assigned](Self::assigned) (true
    /// too for a task that is not being restored); the restore's error when it failed.
    pub fn restored(&self, task: usize) -> Result<bool> {
        self.inner.restorer.restored(task)
    }

    /// This instance no longer owns `tasks`, and every batch covering them has committed:
    /// a restore of theirs still running is cancelled, and their state leaves memory (the
    /// changelog keeps it for the next owner).
    pub fn revoked(&self, tasks: &[usize]) {
        if tasks.is_empty() {
            return;
        }
        // Cancelled before the partitions are dropped: see `crate::state::task_restore`.
        self.inner.restorer.cancel(tasks);
        for op in &self.inner.restorer.stores().ops {
            tasks.iter().for_each(|&t| op.drop_partition(t));
        }
        tracing::info!(?tasks, "state of revoked tasks dropped");
    }

    /// The input stops: restores still running are cancelled.
    pub fn stop(&self) {
        self.inner.restorer.cancel_all();
    }

    /// Whether the input reports ownership (then nothing is restored at start).
    pub(crate) fn deferred(&self) -> bool {
        self.inner.tasks.assigned
    }
}

/// The tasks of the job's inputs that have some: co-partitioned inputs must agree on the
/// count, and at most one may report ownership.
fn input_tasks(graph: &Graph) -> Result<Option<InputTasks>> {
    let mut found: Option<(String, InputTasks)> = None;
    for entry in &graph.inputs {
        let Some(t) = entry.input.tasks()? else {
            continue;
        };
        match &found {
            None => found = Some((entry.id.clone(), t)),
            Some((id, f)) if f.count != t.count => {
                return Err(StreamingError::input(
                    &entry.id,
                    format!(
                        "has {} tasks and input {id} has {}: state partitioned by task needs \
                         co-partitioned inputs (the same partition count)",
                        t.count, f.count
                    ),
                ))
            }
            Some((id, f)) if f.assigned && t.assigned => {
                return Err(StreamingError::input(
                    &entry.id,
                    format!(
                        "and input {id} both assign tasks through a group: state partitioned by \
                         task follows one group-managed input"
                    ),
                ))
            }
            Some((id, f)) => {
                found = Some((
                    id.clone(),
                    InputTasks {
                        count: f.count,
                        assigned: f.assigned || t.assigned,
                    },
                ))
            }
        }
    }
    Ok(found.map(|(_, t)| t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::pool::Executor;
    use crate::exec::{PartitionIter, VecPartitions};
    use crate::time::Time;
    use crate::{Config, StreamingContext};

    /// Partitions that belong to given tasks, as an input's would.
    struct Tasked {
        parts: VecPartitions<(String, i64)>,
        tasks: Vec<Option<usize>>,
    }

    impl Partitions<(String, i64)> for Tasked {
        fn num_partitions(&self) -> usize {
            self.tasks.len()
        }
        fn compute(&self, p: usize) -> Result<PartitionIter<'_, (String, i64)>> {
            self.parts.compute(p)
        }
        fn task(&self, p: usize) -> Option<usize> {
            self.tasks[p]
        }
    }

    fn batch(parts: Vec<Vec<(String, i64)>>, tasks: Vec<Option<usize>>) -> Batch<(String, i64)> {
        let exec = Arc::new(Executor::new(2).unwrap());
        let parts = Tasked {
            parts: VecPartitions::new(parts),
            tasks,
        };
        Batch::new(Arc::new(parts), exec, Time::from_millis(0))
    }

    fn kv(k: &str, v: i64) -> (String, i64) {
        (k.to_owned(), v)
    }

    #[test]
    fn records_group_by_the_task_of_their_partition_through_narrow_operators_and_unions() {
        let b = batch(
            vec![vec![kv("a", 1)], vec![kv("b", 2)], vec![kv("a", 3)]],
            vec![Some(3), Some(1), Some(3)],
        );
        let mapped = b
            .map(|(k, v)| (k, v * 10))
            .union(&b.filter(|(k, _)| k == "b"));
        let (which, groups) = group_by_task(&mapped, 4, "op").unwrap();
        assert_eq!(which, vec![1, 3]);
        assert_eq!(
            groups,
            vec![
                vec![kv("b", 20), kv("b", 2)],
                vec![kv("a", 10), kv("a", 30)]
            ]
        );
    }

    #[test]
    fn partitions_without_a_task_or_past_the_count_are_refused() {
        let shuffled = batch(vec![vec![kv("a", 1)]], vec![Some(0)])
            .repartition(1)
            .unwrap();
        let e = group_by_task(&shuffled, 4, "op").unwrap_err().to_string();
        assert!(e.contains("have no task"), "{e}");
        let grown = batch(vec![vec![kv("a", 1)]], vec![Some(4)]);
        let e = group_by_task(&grown, 4, "op").unwrap_err().to_string();
        assert!(e.contains("gained partitions"), "{e}");
    }

    #[test]
    fn state_by_task_needs_an_input_with_tasks() {
        let ctx = StreamingContext::new(Config::new("by-task")).unwrap();
        let (_q, pairs) = ctx.queue_stream::<(String, i64)>(true);
        pairs
            .update_state_by_key_by_task(|new: &[i64], old: Option<i64>| {
                Some(old.unwrap_or(0) + new.iter().sum::<i64>())
            })
            .print(1);
        let e = ctx.start().unwrap_err().to_string();
        assert!(e.contains("no input of the job has tasks"), "{e}");
    }
}

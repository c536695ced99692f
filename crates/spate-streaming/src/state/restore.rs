//! Start-time restore of changelog-backed state: attaches each changelog to its operator (by
//! `uid()`), opens it, and streams every state partition back into the operator's store before
//! the first batch runs, reporting progress to the listener bus and the metrics.
//!
//! A changelog is the state's source of truth, so it does not mix with checkpoint snapshots:
//! restoring a snapshot and then replaying the checkpoint's committed batches would apply
//! changes the changelog already holds a second time. A job with both is refused.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Result, StreamingError};
use crate::graph::{Graph, StatefulOp};
use crate::listener::{Event, ListenerBus, StateRestoreInfo};
use crate::metrics::StreamingMetrics;
use crate::state::{StateChangelog, TaskStates};

/// How often a running partition restore reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Checks, at `start`, that every changelog names a stateful operator, at most once.
pub(crate) fn validate(graph: &Graph, checkpointed: bool) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (uid, _) in &graph.changelogs {
        if !seen.insert(uid.as_str()) {
            return Err(StreamingError::operator(
                uid,
                "has two state changelogs; attach one",
            ));
        }
        if let Some(op) = graph.stateful.iter().find(|op| &op.id() == uid) {
            if !op.supports_changelog() {
                return Err(StreamingError::operator(
                    uid,
                    "keeps state that cannot be backed by a changelog (only \
                     update_state_by_key and map_with_state can)",
                ));
            }
        } else {
            let known: Vec<String> = graph.stateful.iter().map(|op| op.id()).collect();
            return Err(StreamingError::operator(
                uid,
                format!(
                    "a state changelog is attached to `{uid}` but no stateful operator has that \
                     uid (stateful operators: {known:?}); set it with `.uid(\"{uid}\")`"
                ),
            ));
        }
        if checkpointed {
            return Err(StreamingError::operator(
                uid,
                "has a state changelog and the job has a checkpoint directory: the changelog \
                 is the state's source of truth, and replaying the checkpoint's batches on top \
                 of it would apply them twice; use one or the other",
            ));
        }
    }
    Ok(())
}

/// Opens every changelog, attaches it, and restores its operator's partitions — except those of
/// operators partitioned by task when `tasks` says the input assigns them (they are restored
/// when assigned, see `crate::state::tasks`).
pub(crate) fn restore_all(
    graph: &Graph,
    tasks: Option<&TaskStates>,
    bus: &ListenerBus,
    metrics: &StreamingMetrics,
) -> Result<()> {
    for (uid, log) in &graph.changelogs {
        let Some(op) = graph.stateful.iter().find(|op| &op.id() == uid) else {
            continue; // `validate` refused it already
        };
        let partitions = op.partitions();
        log.open(uid, partitions)
            .map_err(|source| StreamingError::StateChangelog {
                operator: uid.clone(),
                operation: format!("opening it for {partitions} state partitions"),
                source,
            })?;
        if op.by_task() && tasks.is_some_and(TaskStates::deferred) {
            op.attach_changelog(Arc::clone(log));
            continue;
        }
        let started = Instant::now();
        let all: Vec<usize> = (0..partitions).collect();
        let total = restore_partitions(op.as_ref(), log.as_ref(), &all, bus, metrics)?;
        tracing::info!(
            operator = %uid,
            partitions,
            records = total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state restored from its changelog"
        );
        op.attach_changelog(Arc::clone(log));
    }
    Ok(())
}

/// Restores `partitions`, as many at a time as the machine has cores (each partition is its
/// own map and its own changelog partition, so they do not contend).
pub(crate) fn restore_partitions(
    op: &dyn StatefulOp,
    log: &dyn StateChangelog,
    partitions: &[usize],
    bus: &ListenerBus,
    metrics: &StreamingMetrics,
) -> Result<u64> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(partitions.len());
    let next = AtomicUsize::new(0);
    let work = || -> Result<u64> {
        let mut total = 0;
        loop {
            let Some(&p) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(total);
            };
            total += restore_partition(op, log, p, bus, metrics, None)?;
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
        let mut total = work()?;
        for h in handles {
            total += h.join().map_err(|p| {
                StreamingError::operator(
                    op.id(),
                    format!(
                        "restoring its state panicked: {}",
                        crate::error::panic_message(p.as_ref())
                    ),
                )
            })??;
        }
        Ok(total)
    })
}

/// Receives a partition restore's progress, and tells it to stop: a restore of a task that was
/// revoked meanwhile is cancelled (see `crate::state::tasks`).
pub(crate) trait RestoreProgress {
    /// The changelog expects `n` entries.
    fn expected(&self, n: u64);
    /// One more entry applied; an error stops the restore.
    fn applied(&self) -> Result<()>;
    /// Whether the restore must stop and leave the state as it was.
    fn cancelled(&self) -> bool;
}

/// Progress of one partition's restore: to the listener bus and the metrics about every
/// [`PROGRESS_EVERY`], and the cancellation flag checked every [`CHECK_EVERY`] entries.
struct Reporter<'a> {
    operator: String,
    partition: usize,
    bus: &'a ListenerBus,
    metrics: &'a StreamingMetrics,
    cancel: Option<&'a AtomicBool>,
    started: Instant,
    last: Cell<Instant>,
    expected: Cell<Option<u64>>,
    restored: Cell<u64>,
}

/// Entries between two looks at the clock and the cancellation flag: keeps both off the
/// per-entry path.
const CHECK_EVERY: u64 = 4096;

impl Reporter<'_> {
    fn report(&self, done: bool) {
        let info = StateRestoreInfo {
            operator: self.operator.clone(),
            partition: self.partition,
            records_restored: self.restored.get(),
            records_expected: self.expected.get(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            done,
        };
        self.metrics.state_restore(&info);
        self.bus.post(Event::StateRestore(info));
    }
}

impl RestoreProgress for Reporter<'_> {
    fn expected(&self, n: u64) {
        self.expected.set(Some(n));
    }

    fn applied(&self) -> Result<()> {
        let n = self.restored.get() + 1;
        self.restored.set(n);
        if n % CHECK_EVERY != 0 {
            return Ok(());
        }
        if self.cancelled() {
            return Err(cancelled(&self.operator, self.partition));
        }
        if self.last.get().elapsed() >= PROGRESS_EVERY {
            self.last.set(Instant::now());
            self.report(false);
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Acquire))
    }
}

/// The error a cancelled restore stops with (its caller cancelled it and discards it).
pub(crate) fn cancelled(operator: &str, partition: usize) -> StreamingError {
    StreamingError::operator(
        operator,
        format!("the restore of state partition {partition} was cancelled: its task was revoked"),
    )
}

/// Restores one partition, reporting progress; stops early (an error, and the partition
/// untouched) once `cancel` is set.
pub(crate) fn restore_partition(
    op: &dyn StatefulOp,
    log: &dyn StateChangelog,
    partition: usize,
    bus: &ListenerBus,
    metrics: &StreamingMetrics,
    cancel: Option<&AtomicBool>,
) -> Result<u64> {
    let reporter = Reporter {
        operator: op.id(),
        partition,
        bus,
        metrics,
        cancel,
        started: Instant::now(),
        last: Cell::new(Instant::now()),
        expected: Cell::new(None),
        restored: Cell::new(0),
    };
    reporter.report(false);
    let restored = op.restore_partition(partition, log, &reporter);
    if reporter.cancelled() {
        metrics.forget_state_restore(&reporter.operator, partition);
        return Err(cancelled(&reporter.operator, partition));
    }
    let n = restored?;
    reporter.restored.set(n);
    reporter.report(true);
    Ok(n)
}

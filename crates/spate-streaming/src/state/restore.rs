//! Start-time restore of changelog-backed state: attaches each changelog to its operator (by
//! `uid()`), opens it, and streams every state partition back into the operator's store before
//! the first batch runs, reporting progress to the listener bus and the metrics.
//!
//! A changelog is the state's source of truth, so it does not mix with checkpoint snapshots:
//! restoring a snapshot and then replaying the checkpoint's committed batches would apply
//! changes the changelog already holds a second time. A job with both is refused.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
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
            total += restore_partition(op, log, p, bus, metrics)?;
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

/// Restores one partition, reporting progress.
fn restore_partition(
    op: &dyn StatefulOp,
    log: &dyn StateChangelog,
    partition: usize,
    bus: &ListenerBus,
    metrics: &StreamingMetrics,
) -> Result<u64> {
    let started = Instant::now();
    let mut info = StateRestoreInfo {
        operator: op.id(),
        partition,
        records_restored: 0,
        records_expected: None,
        elapsed_ms: 0,
        done: false,
    };
    let report = |info: &StateRestoreInfo| {
        metrics.state_restore(info);
        bus.post(Event::StateRestore(info.clone()));
    };
    report(&info);
    let mut last = Instant::now();
    let expected = Cell::new(None);
    let mut restored = 0u64;
    let n = op.restore_partition(partition, log, &mut |e| expected.set(Some(e)), &mut || {
        restored += 1;
        // Checking the clock every 4096 records keeps progress off the hot path.
        if restored % 4096 == 0 && last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            report(&StateRestoreInfo {
                operator: op.id(),
                partition,
                records_restored: restored,
                records_expected: expected.get(),
                elapsed_ms: started.elapsed().as_millis() as u64,
                done: false,
            });
        }
    })?;
    info.records_restored = n;
    info.records_expected = expected.get();
    info.elapsed_ms = started.elapsed().as_millis() as u64;
    info.done = true;
    report(&info);
    Ok(n)
}

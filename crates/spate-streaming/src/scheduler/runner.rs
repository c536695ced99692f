//! The job runner: runs planned batches one at a time, in batch-time order.
//!
//! For each batch: forced work (state updates, window buffers) in definition order, then each
//! output operation in definition order (each is Spark's "job"); when all succeeded, the state
//! snapshot (every N batches) and the commit record are written and inputs are told. A failure
//! or panic fails the batch: no commit is written, listeners hear about it, and the context
//! stops with the error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::{PlannedBatch, Shared};
use crate::error::{panic_message, Result, StreamingError};
use crate::graph::BatchContext;
use crate::listener::{BatchInfo, Event, OutputOperationInfo};
use crate::time::Time;

pub(super) fn run(shared: &Arc<Shared>, jobs: Receiver<PlannedBatch>) {
    for batch in jobs {
        if shared.abort.load(Ordering::SeqCst) {
            break;
        }
        if let Err(e) = run_batch(shared, batch, true) {
            if shared.abort.load(Ordering::SeqCst) {
                // A non-graceful stop cut the batch short: it stays uncommitted and re-runs
                // after a restart; this is not a failure of the job.
                tracing::info!(error = %e, "batch interrupted by stop");
            } else {
                shared.fail(e);
            }
            break;
        }
    }
    if let Some(ck) = &shared.checkpoint {
        // The last batch's commit is only appended; make it durable before the context stops.
        if let Err(e) = ck.sync() {
            tracing::warn!(error = %e, "could not sync the checkpoint's batch log at stop");
        }
    }
    tracing::debug!("job runner stopped");
}

/// Runs one batch. With `outputs == false` (recovery replay of an already committed batch) only
/// the forced work runs: state is rebuilt, outputs are not repeated, nothing is committed.
pub(crate) fn run_batch(shared: &Shared, batch: PlannedBatch, outputs: bool) -> Result<()> {
    let PlannedBatch {
        submitted,
        time,
        plans,
        mut info,
    } = batch;
    let started = Instant::now();
    let bc = BatchContext::new(
        time,
        shared.zero_time,
        shared.interval_ms,
        plans,
        shared.exec.clone(),
    );
    if !outputs {
        for f in shared.graph.forced.iter().filter(|f| bc.aligned(f.slide)) {
            (f.run)(&bc)?;
        }
        return Ok(());
    }

    if let Some(ck) = &shared.checkpoint {
        // The group commit: one fsync makes this batch's plan durable before any task reads
        // input, and with it the previous batch's commit.
        ck.sync()?;
    }
    shared.metrics.batch_started();
    info.processing_start_time = Some(Time::now());
    info.scheduling_micros = Some(started.duration_since(submitted).as_micros() as u64);
    shared.bus.post(Event::BatchStarted(Arc::new(info.clone())));

    let result = run_jobs(shared, &bc, &mut info);
    let result = result.and_then(|()| {
        if let Some(ck) = &shared.checkpoint {
            crate::recovery::after_batch(shared, ck, time, &info)?;
        }
        Ok(())
    });
    info.processing_end_time = Some(Time::now());
    info.processing_micros = Some(started.elapsed().as_micros() as u64);
    if let Err(e) = &result {
        info.failure = Some(e.to_string());
    }
    let info = Arc::new(info);
    shared.metrics.batch_completed(&info);
    if result.is_ok() {
        for i in &shared.graph.inputs {
            i.input.batch_completed(&info);
        }
    }
    tracing::debug!(
        batch_time = time.as_millis(),
        processing_ms = info.processing_delay().unwrap_or(0),
        scheduling_ms = info.scheduling_delay().unwrap_or(0),
        ok = result.is_ok(),
        "batch finished"
    );
    shared.bus.post(Event::BatchCompleted(info));
    result
}

fn run_jobs(shared: &Shared, bc: &BatchContext, info: &mut BatchInfo) -> Result<()> {
    for f in shared.graph.forced.iter().filter(|f| bc.aligned(f.slide)) {
        match catch_unwind(AssertUnwindSafe(|| (f.run)(bc))) {
            Ok(r) => r?,
            Err(p) => {
                return Err(StreamingError::TaskPanicked {
                    time: bc.time,
                    partition: 0,
                    message: format!("in `{}`: {}", f.name, panic_message(p.as_ref())),
                })
            }
        }
    }
    for (id, op) in shared.graph.outputs.iter().enumerate() {
        if !bc.aligned(op.slide) {
            continue;
        }
        if shared.abort.load(Ordering::SeqCst) {
            return Err(StreamingError::ContextState(format!(
                "stopped before output operation `{}` of batch {}",
                op.name, bc.time
            )));
        }
        let mut oi = OutputOperationInfo {
            batch_time: bc.time,
            id,
            name: op.name.clone(),
            start_time: Some(Time::now()),
            end_time: None,
            failure_reason: None,
        };
        shared.bus.post(Event::OutputStarted(oi.clone()));
        let r = match catch_unwind(AssertUnwindSafe(|| (op.run)(bc))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ StreamingError::OutputFailed { .. })) => Err(e),
            Ok(Err(e)) => Err(StreamingError::OutputFailed {
                operation: op.name.clone(),
                time: bc.time,
                message: e.to_string(),
                source: Some(Arc::new(e)),
            }),
            Err(p) => Err(StreamingError::OutputFailed {
                operation: op.name.clone(),
                time: bc.time,
                message: format!("panicked: {}", panic_message(p.as_ref())),
                source: None,
            }),
        };
        oi.end_time = Some(Time::now());
        oi.failure_reason = r.as_ref().err().map(|e| e.to_string());
        info.output_operation_infos.insert(id, oi.clone());
        shared.bus.post(Event::OutputCompleted(oi));
        r?;
    }
    Ok(())
}

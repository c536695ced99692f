//! The job generator: a recurring timer that plans one batch per batch interval.
//!
//! Like Spark's `RecurringTimer`, it never skips a batch time: if planning falls behind (a
//! stalled machine), the missed times are planned back to back, so batch times form an unbroken
//! sequence and windows stay aligned.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::{PlannedBatch, Shared};
use crate::error::Result;
use crate::listener::{BatchInfo, Event};
use crate::time::Time;

pub(super) fn run(
    shared: &Arc<Shared>,
    mut next: Time,
    stop: Receiver<()>,
    jobs: Sender<PlannedBatch>,
) {
    loop {
        let wait = next.millis_since(Time::now());
        let stopped = if wait > 0 {
            !matches!(
                stop.recv_timeout(Duration::from_millis(wait)),
                Err(RecvTimeoutError::Timeout)
            )
        } else {
            !matches!(stop.try_recv(), Err(TryRecvError::Empty))
        };
        if stopped || shared.abort.load(Ordering::SeqCst) {
            break;
        }
        match plan(shared, next) {
            Ok(batch) => {
                shared
                    .last_planned
                    .store(next.as_millis(), Ordering::SeqCst);
                let info = Arc::new(batch.info.clone());
                shared.metrics.batch_submitted(&info);
                shared.bus.post(Event::BatchSubmitted(info));
                if jobs.send(batch).is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(batch_time = next.as_millis(), error = %e, "planning a batch failed");
                shared.fail(e);
                break;
            }
        }
        next = Time(next.0 + shared.interval_ms);
    }
    tracing::debug!("job generator stopped");
}

/// Asks every input for its plan of batch `time` and records the plans in the checkpoint.
pub(super) fn plan(shared: &Shared, time: Time) -> Result<PlannedBatch> {
    let started = Instant::now();
    let _planning = shared.planning.lock();
    let mut plans = BTreeMap::new();
    let mut infos = BTreeMap::new();
    for i in &shared.graph.inputs {
        let p = i.input.plan(time)?;
        let mut info = i.input.info(time, &p);
        info.input_id = i.id.clone();
        infos.insert(i.id.clone(), info);
        plans.insert(i.id.clone(), p);
    }
    if let Some(ck) = &shared.checkpoint {
        crate::recovery::write_plan(ck, time, &plans)?;
    }
    Ok(PlannedBatch {
        submitted: Instant::now(),
        time,
        plans,
        info: BatchInfo {
            batch_time: time,
            input_infos: infos,
            submission_time: Time::now(),
            processing_start_time: None,
            processing_end_time: None,
            output_operation_infos: BTreeMap::new(),
            failure: None,
            planning_micros: started.elapsed().as_micros() as u64,
            scheduling_micros: None,
            processing_micros: None,
            recovered: false,
        },
    })
}

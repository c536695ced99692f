//! The engine's side of fault tolerance: what goes into the checkpoint when, and how a restarted
//! job rebuilds itself from it. (The checkpoint files themselves are the `checkpoint` module.)
//!
//! Per batch: plan → `append_plan` (generator) → `sync` (runner, before the batch reads input;
//! this one fsync also makes the previous batch's commit durable) → run → state snapshot
//! (every `spate.streaming.checkpoint.interval.batches` batches, and at the first batch of every
//! run) → `append_commit` (durable at the next batch's sync, or when the runner stops). A snapshot holds every stateful operator's state (postcard), every
//! input's own state (e.g. files already seen), and the zero time that aligns windows.
//!
//! On restart (`StreamingContext::get_or_create`, then `start`):
//! 1. the job's inputs and stateful operators are checked against the checkpoint metadata;
//! 2. state is restored from the newest snapshot whose batch is committed;
//! 3. batches committed after that snapshot are replayed from their recorded plans with outputs
//!    off — state is a function of the inputs, and the plans make the inputs replayable, so
//!    this rebuilds exactly the state the crashed run had after its last commit, without
//!    repeating outputs that already succeeded;
//! 4. planned-but-uncommitted batches re-run, outputs on, with their recorded plans;
//! 5. planning resumes after the last recorded batch time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::checkpoint::{
    BatchPlan, Checkpoint, CommitInfo, JobMetadata, StateSnapshot, DEFAULT_RETAINED_BATCHES,
};
use crate::config::StreamingConfig;
use crate::error::{Result, StreamingError};
use crate::graph::Graph;
use crate::input::ErasedPlan;
use crate::listener::BatchInfo;
use crate::scheduler::{PlannedBatch, Shared};
use crate::time::{ms, Time};

/// Snapshot key of the engine's own data (zero time).
const ENGINE_KEY: &str = "__engine";
/// Snapshot key prefix of input states.
const INPUT_PREFIX: &str = "input:";

/// The engine's own part of a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct EngineState {
    zero_time_ms: u64,
}

/// What `open` found in the checkpoint.
pub(crate) struct Recovered {
    pub(crate) sink: Arc<Checkpoint>,
    pub(crate) zero_time: Time,
    snapshot: Option<StateSnapshot>,
    replay: Vec<BatchPlan>,
    pending: Vec<BatchPlan>,
    last_committed: Option<Time>,
}

/// What the scheduler must do after state is rebuilt.
pub(crate) struct Resume {
    pub(crate) pending: Vec<PlannedBatch>,
    pub(crate) last_planned: Option<Time>,
}

fn job_metadata(conf: &StreamingConfig, graph: &Graph) -> JobMetadata {
    let mut job = JobMetadata::new(conf.app_name.clone(), ms(conf.batch_interval) as i64);
    for i in &graph.inputs {
        job = job.with_input(i.id.clone(), i.input.kind());
    }
    for op in &graph.stateful {
        job = job.with_stateful_operator(op.id(), op.state_type());
    }
    job
}

fn time_of(plan: &BatchPlan) -> Time {
    Time(plan.batch_time_ms.max(0) as u64)
}

/// Opens the checkpoint for this job and reads what a restart must do.
pub(crate) fn open(
    dir: &Path,
    conf: &StreamingConfig,
    graph: &Graph,
    now: Time,
) -> Result<Recovered> {
    let ck = Checkpoint::open_for_job(dir, &job_metadata(conf, graph))?;
    let rec = ck.recover()?;
    let snapshot = match &rec.latest_snapshot {
        Some(s) => Some(ck.read_state_snapshot(s.batch_time_ms)?),
        None => None,
    };
    let snap_time = snapshot.as_ref().map(|s| s.batch_time_ms);
    let mut replay = Vec::new();
    for &t in rec.committed.iter().filter(|&&t| Some(t) > snap_time) {
        match ck.read_plan(t)? {
            Some(p) => replay.push(p),
            None => {
                return Err(StreamingError::CheckpointCorrupt {
                    path: dir.join("offsets").join(t.to_string()),
                    reason: "a batch committed after the latest state snapshot has no recorded plan; state cannot be rebuilt".into(),
                })
            }
        }
    }
    let interval = ms(conf.batch_interval);
    let engine = match &snapshot {
        Some(s) => s.get::<EngineState>(ENGINE_KEY)?,
        None => None,
    };
    let zero_time = match engine {
        Some(e) => Time(e.zero_time_ms),
        None => {
            // No snapshot yet: the job never committed a batch, so its first recorded plan (if
            // any) is its first batch.
            let first = replay
                .first()
                .or(rec.pending.first())
                .map(time_of)
                .unwrap_or_else(|| now.ceil_to(conf.batch_interval));
            Time(first.0.saturating_sub(interval))
        }
    };
    tracing::info!(
        dir = %dir.display(),
        snapshot = ?snap_time,
        replay = replay.len(),
        pending = rec.pending.len(),
        "recovering from checkpoint"
    );
    Ok(Recovered {
        sink: Arc::new(ck),
        zero_time,
        snapshot,
        replay,
        pending: rec.pending,
        last_committed: rec.last_committed.map(|t| Time(t.max(0) as u64)),
    })
}

/// Restores state, replays committed batches since the snapshot, and returns the pending
/// batches to re-run.
pub(crate) fn replay(shared: &Shared, rec: Recovered) -> Result<Resume> {
    let dir = rec.sink.dir().to_path_buf();
    if let Some(snap) = &rec.snapshot {
        for op in &shared.graph.stateful {
            if let Some(bytes) = snap.operators.get(&op.id()) {
                op.restore(bytes)
                    .map_err(|e| StreamingError::CheckpointIncompatible {
                        path: dir.clone(),
                        mismatches: vec![format!(
                            "state of operator {:?} does not decode as {}: {e}",
                            op.id(),
                            op.state_type()
                        )],
                    })?;
            }
        }
        for i in &shared.graph.inputs {
            if let Some(text) = snap.get::<String>(&format!("{INPUT_PREFIX}{}", i.id))? {
                i.input.restore_state(&text)?;
            }
        }
    }
    let mut last_planned = rec.last_committed;
    for plan in &rec.replay {
        let time = time_of(plan);
        let plans = decode_plans(shared, plan)?;
        replay_inputs(shared, time, &plans)?;
        crate::scheduler::run_recovered(shared, planned(shared, time, plans), false)?;
        last_planned = last_planned.max(Some(time));
    }
    let mut pending = Vec::new();
    for plan in &rec.pending {
        let time = time_of(plan);
        let plans = decode_plans(shared, plan)?;
        replay_inputs(shared, time, &plans)?;
        pending.push(planned(shared, time, plans));
        last_planned = last_planned.max(Some(time));
    }
    Ok(Resume {
        pending,
        last_planned,
    })
}

/// Decodes every input's recorded plan of one batch into the input's own plan type — the one
/// place a recorded plan is parsed.
fn decode_plans(shared: &Shared, plan: &BatchPlan) -> Result<BTreeMap<String, ErasedPlan>> {
    let mut plans = BTreeMap::new();
    for i in &shared.graph.inputs {
        if let Some(p) = plan.inputs.get(&i.id) {
            plans.insert(i.id.clone(), i.input.decode_plan(p)?);
        }
    }
    Ok(plans)
}

fn replay_inputs(shared: &Shared, time: Time, plans: &BTreeMap<String, ErasedPlan>) -> Result<()> {
    for i in &shared.graph.inputs {
        if let Some(p) = plans.get(&i.id) {
            i.input.replayed(time, p)?;
        }
    }
    Ok(())
}

fn planned(shared: &Shared, time: Time, plans: BTreeMap<String, ErasedPlan>) -> PlannedBatch {
    let mut infos = BTreeMap::new();
    for i in &shared.graph.inputs {
        if let Some(p) = plans.get(&i.id) {
            let mut info = i.input.info(time, p);
            info.input_id = i.id.clone();
            infos.insert(i.id.clone(), info);
        }
    }
    PlannedBatch {
        submitted: std::time::Instant::now(),
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
            planning_micros: 0,
            scheduling_micros: None,
            processing_micros: None,
            recovered: true,
        },
    }
}

/// Records a batch's plan; it is durable once the runner's [`Checkpoint::sync`] before the
/// batch returns.
pub(crate) fn write_plan(
    ck: &Checkpoint,
    time: Time,
    plans: &BTreeMap<String, ErasedPlan>,
) -> Result<()> {
    ck.append_plan(&BatchPlan {
        batch_time_ms: time.as_millis() as i64,
        inputs: plans
            .iter()
            .map(|(id, p)| (id.clone(), p.json().clone()))
            .collect(),
    })
}

/// After a batch's outputs succeeded: snapshot (when due), commit, purge old history.
pub(crate) fn after_batch(
    shared: &Shared,
    ck: &Checkpoint,
    time: Time,
    info: &BatchInfo,
) -> Result<()> {
    let n = shared.batches_since_snapshot.fetch_add(1, Ordering::SeqCst);
    // n == 0: the first batch of this run always snapshots, so a restarted job never depends
    // on plans older than its own first commit.
    let due = n == 0 || n + 1 >= shared.conf.checkpoint_interval_batches;
    if due {
        let snap = snapshot(shared, time)?;
        ck.append_state_snapshot(time.as_millis() as i64, &snap)?;
        shared.batches_since_snapshot.store(1, Ordering::SeqCst);
    }
    ck.append_commit(
        time.as_millis() as i64,
        &CommitInfo {
            commit_time_ms: Time::now().as_millis() as i64,
            num_records: info.num_records(),
            processing_delay_ms: info
                .processing_start_time
                .map(|s| Time::now().millis_since(s) as i64),
        },
    )?;
    if due {
        ck.purge(DEFAULT_RETAINED_BATCHES)?;
    }
    Ok(())
}

fn snapshot(shared: &Shared, time: Time) -> Result<StateSnapshot> {
    let mut snap = StateSnapshot::new(time.as_millis() as i64);
    snap.put(
        ENGINE_KEY,
        &EngineState {
            zero_time_ms: shared.zero_time.as_millis(),
        },
    )?;
    for op in &shared.graph.stateful {
        snap.operators.insert(op.id(), op.encode()?);
    }
    // Input cursors must match the plans written so far: hold the planning lock.
    let _planning = shared.planning.lock();
    for i in &shared.graph.inputs {
        if let Some(text) = i.input.snapshot_state()? {
            snap.put(&format!("{INPUT_PREFIX}{}", i.id), &text)?;
        }
    }
    Ok(snap)
}

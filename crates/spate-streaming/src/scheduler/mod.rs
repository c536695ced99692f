//! The batch scheduler: a job generator that plans a batch every batch interval, and a job
//! runner that runs planned batches strictly in order.
//!
//! This is the loop of timely's progress tracking made coarse: the batch time is the epoch; the
//! generator closes an epoch by planning it (and writing the plan to the checkpoint), the runner
//! finishes it (outputs, then the commit record). Batches queue between the two, so a slow batch
//! delays the next (its scheduling delay grows) but batches never overlap, which keeps state
//! updates sequential. Threads: `spate-job-generator`, `spate-job-runner`.

mod generator;
mod runner;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use parking_lot::Mutex;

use crate::checkpoint::Checkpoint;
use crate::config::StreamingConfig;
use crate::context::ContextInner;
use crate::error::{Result, StreamingError};
use crate::exec::pool::Executor;
use crate::graph::Graph;
use crate::input::{ErasedPlan, InputContext};
use crate::listener::{BatchInfo, Event, ListenerBus};
use crate::metrics::StreamingMetrics;
use crate::recovery;
use crate::state::TaskStates;
use crate::time::{ms, Time};

/// A batch that has been planned (and recorded) and waits to run.
pub(crate) struct PlannedBatch {
    pub(crate) submitted: std::time::Instant,
    pub(crate) time: Time,
    pub(crate) plans: BTreeMap<String, ErasedPlan>,
    pub(crate) info: BatchInfo,
}

/// State shared by the generator, the runner and `stop`.
pub(crate) struct Shared {
    pub(crate) graph: Arc<Graph>,
    pub(crate) exec: Arc<Executor>,
    pub(crate) conf: StreamingConfig,
    pub(crate) bus: Arc<ListenerBus>,
    pub(crate) metrics: Arc<StreamingMetrics>,
    pub(crate) interval_ms: u64,
    pub(crate) zero_time: Time,
    pub(crate) checkpoint: Option<Arc<Checkpoint>>,
    /// Held while inputs plan (and their cursors move) and while input state is snapshotted,
    /// so a snapshot never holds a cursor past the last recorded plan.
    pub(crate) planning: Mutex<()>,
    /// Set to make the runner stop before its next batch / output operation.
    pub(crate) abort: AtomicBool,
    pub(crate) batches_since_snapshot: AtomicU64,
    /// Time (ms) of the newest planned batch.
    pub(crate) last_planned: AtomicU64,
    inputs_stopped: AtomicBool,
    stop_generator: Sender<()>,
    ctx: Weak<ContextInner>,
}

impl Shared {
    /// Stops every input once.
    pub(crate) fn stop_inputs(&self) {
        if self.inputs_stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        for i in &self.graph.inputs {
            if let Err(e) = i.input.stop() {
                tracing::warn!(input = %i.id, error = %e, "input failed to stop cleanly");
            }
        }
    }

    /// A batch (or planning) failed: stop everything and record the error on the context.
    pub(crate) fn fail(&self, e: StreamingError) {
        self.abort.store(true, Ordering::SeqCst);
        let _ = self.stop_generator.try_send(());
        self.stop_inputs();
        self.bus.post(Event::StreamingStopped(Time::now()));
        self.bus.stop();
        if let Some(ctx) = self.ctx.upgrade() {
            ctx.terminate(Some(e));
        }
    }
}

/// Handles of a running context's threads.
pub(crate) struct Runtime {
    shared: Arc<Shared>,
    generator: Option<JoinHandle<()>>,
    runner: Option<JoinHandle<()>>,
    runner_done: Receiver<()>,
    stop_generator: Sender<()>,
}

impl Runtime {
    /// Stops the generator, then lets the runner drain (graceful) or abort, within `timeout`.
    pub(crate) fn shutdown(mut self, graceful: bool, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        if graceful && self.generator.as_ref().is_some_and(|g| !g.is_finished()) {
            // Spark's graceful stop: stop receiving first (receivers drain what they
            // hold into blocks), then let the generator plan one more batch, so everything
            // received is allocated to a batch before the timer stops.
            self.shared.stop_inputs();
            let mark = self.shared.last_planned.load(Ordering::SeqCst);
            while self.shared.last_planned.load(Ordering::SeqCst) <= mark
                && std::time::Instant::now() < deadline
                && self.generator.as_ref().is_some_and(|g| !g.is_finished())
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = self.stop_generator.try_send(());
        if !graceful {
            self.shared.abort.store(true, Ordering::SeqCst);
        }
        if let Some(g) = self.generator.take() {
            let _ = g.join();
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let result = match self.runner_done.recv_timeout(left) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                // Give up on the remaining batches; they stay planned and re-run on restart.
                self.shared.abort.store(true, Ordering::SeqCst);
                let pending = (self.shared.metrics.waiting_batches()
                    + self.shared.metrics.running_batches())
                .max(0) as usize;
                tracing::warn!(timeout_ms = ms(timeout), pending, "graceful stop timed out");
                Err(StreamingError::StopTimeout {
                    timeout_ms: ms(timeout),
                    pending,
                })
            }
            _ => {
                if let Some(r) = self.runner.take() {
                    let _ = r.join();
                }
                Ok(())
            }
        };
        self.shared.stop_inputs();
        self.shared.bus.post(Event::StreamingStopped(Time::now()));
        self.shared.bus.stop();
        result
    }
}

/// Runs a batch during recovery on the calling thread (`outputs == false`: state only).
pub(crate) fn run_recovered(shared: &Shared, batch: PlannedBatch, outputs: bool) -> Result<()> {
    runner::run_batch(shared, batch, outputs)
}

/// Undoes a failed start: stops the inputs and the listener bus.
fn abandon(shared: &Shared) {
    shared.stop_inputs();
    shared.bus.stop();
}

/// Starts a context in four phases: open the checkpoint (what to replay), start the inputs,
/// rebuild state and queue the recovered batches, then start the runner and generator threads.
pub(crate) fn start(inner: &Arc<ContextInner>, graph: Arc<Graph>) -> Result<Runtime> {
    let conf = inner.conf.clone();
    let interval_ms = ms(conf.batch_interval).max(1);
    let checkpoint_dir = inner.checkpoint_dir.lock().clone();

    // Open the checkpoint and work out what to replay before anything runs.
    let now = Time::now();
    let recovered = match &checkpoint_dir {
        Some(dir) => Some(recovery::open(dir, &conf, &graph, now)?),
        None => None,
    };
    let zero_time = recovered.as_ref().map(|r| r.zero_time).unwrap_or_else(|| {
        Time(
            now.ceil_to(conf.batch_interval)
                .0
                .saturating_sub(interval_ms),
        )
    });
    let (stop_tx, stop_rx) = bounded::<()>(1);
    let shared = new_shared(inner, graph, zero_time, &recovered, stop_tx.clone());

    // Inputs start before recovery: a receiver input reads recovered batches' blocks from its
    // write-ahead log, which it opens at start.
    inner.bus.start();
    inner.bus.post(Event::StreamingStarted(now));
    // Changelog-backed state is whole before any input plans a batch (state partitioned by
    // task that an input assigns: before the first batch covering the task).
    let tasks = match restore_state(inner, &shared) {
        Ok(tasks) => tasks,
        Err(e) => {
            abandon(&shared);
            return Err(e);
        }
    };
    if let Err(e) = start_inputs(inner, &shared, checkpoint_dir, tasks) {
        abandon(&shared);
        return Err(e);
    }
    let (job_tx, job_rx) = unbounded::<PlannedBatch>();
    let mut next_time = now.ceil_to(conf.batch_interval);
    if let Some(r) = recovered {
        next_time = resume(&shared, r, &job_tx, next_time)?;
    }
    spawn_threads(shared, next_time, (stop_tx, stop_rx), (job_tx, job_rx))
}

/// The state shared by the generator, the runner and `stop`.
fn new_shared(
    inner: &Arc<ContextInner>,
    graph: Arc<Graph>,
    zero_time: Time,
    recovered: &Option<recovery::Recovered>,
    stop_generator: Sender<()>,
) -> Arc<Shared> {
    Arc::new(Shared {
        graph,
        exec: inner.exec.clone(),
        conf: inner.conf.clone(),
        bus: inner.bus.clone(),
        metrics: inner.metrics.clone(),
        interval_ms: ms(inner.conf.batch_interval).max(1),
        zero_time,
        checkpoint: recovered.as_ref().map(|r| r.sink.clone()),
        planning: Mutex::new(()),
        abort: AtomicBool::new(false),
        batches_since_snapshot: AtomicU64::new(0),
        last_planned: AtomicU64::new(0),
        inputs_stopped: AtomicBool::new(false),
        stop_generator,
        ctx: Arc::downgrade(inner),
    })
}

/// Sizes the state partitioned by task and restores changelog-backed state.
fn restore_state(inner: &Arc<ContextInner>, shared: &Shared) -> Result<Option<TaskStates>> {
    let tasks = TaskStates::setup(&shared.graph, &inner.bus, &inner.metrics)?;
    crate::state::restore::restore_all(&shared.graph, tasks.as_ref(), &inner.bus, &inner.metrics)?;
    Ok(tasks)
}

/// Starts every input with its context (id, checkpoint directory, listener bus, the state
/// partitioned by task).
fn start_inputs(
    inner: &Arc<ContextInner>,
    shared: &Shared,
    checkpoint_dir: Option<std::path::PathBuf>,
    tasks: Option<TaskStates>,
) -> Result<()> {
    for i in &shared.graph.inputs {
        let ictx = InputContext {
            input_id: i.id.clone(),
            checkpoint_dir: checkpoint_dir.clone(),
            batch_interval: shared.conf.batch_interval,
            bus: inner.bus.clone(),
            metrics: inner.metrics.clone(),
            task_states: tasks.clone(),
        };
        i.input.start(&ictx)?;
    }
    Ok(())
}

/// Rebuilds state (restore the snapshot, replay committed batches since it, no outputs), queues
/// the planned-but-uncommitted batches with their recorded plans, and returns the time of the
/// first batch to plan.
fn resume(
    shared: &Shared,
    r: recovery::Recovered,
    job_tx: &Sender<PlannedBatch>,
    now_batch: Time,
) -> Result<Time> {
    let resume = match recovery::replay(shared, r) {
        Ok(resume) => resume,
        Err(e) => {
            abandon(shared);
            return Err(e);
        }
    };
    for b in resume.pending {
        shared.metrics.batch_submitted(&Arc::new(b.info.clone()));
        job_tx
            .send(b)
            .map_err(|_| StreamingError::ContextState("job queue closed during recovery".into()))?;
    }
    let Some(last) = resume.last_planned else {
        return Ok(now_batch);
    };
    // Like Spark, batch times continue right after the last recorded one and the generator
    // plans the down-time batches back to back — but at most `max_downtime_batches` of them,
    // so a long outage of a fast job does not turn into a long replay of empty batches; then
    // it jumps to now. Windows handle the gap.
    let interval_ms = shared.interval_ms;
    let cap = shared.conf.max_downtime_batches.saturating_mul(interval_ms);
    Ok(Time(
        (last.0 + interval_ms).max(now_batch.0.saturating_sub(cap)),
    ))
}

/// Starts the `spate-job-runner` and `spate-job-generator` threads.
fn spawn_threads(
    shared: Arc<Shared>,
    next_time: Time,
    (stop_tx, stop_rx): (Sender<()>, Receiver<()>),
    (job_tx, job_rx): (Sender<PlannedBatch>, Receiver<PlannedBatch>),
) -> Result<Runtime> {
    let (done_tx, done_rx) = bounded::<()>(1);
    let runner_shared = shared.clone();
    let runner = std::thread::Builder::new()
        .name("spate-job-runner".into())
        .spawn(move || {
            // Before any batch runs: `stop` from an output operation must know it is here.
            if let Some(ctx) = runner_shared.ctx.upgrade() {
                *ctx.runner_thread.lock() = Some(std::thread::current().id());
            }
            runner::run(&runner_shared, job_rx);
            let _ = done_tx.send(());
        })
        .map_err(|e| StreamingError::io("spate-job-runner thread", e))?;
    let gen_shared = shared.clone();
    let generator = std::thread::Builder::new()
        .name("spate-job-generator".into())
        .spawn(move || generator::run(&gen_shared, next_time, stop_rx, job_tx))
        .map_err(|e| StreamingError::io("spate-job-generator thread", e))?;
    tracing::info!(
        app = %shared.conf.app_name,
        batch_interval_ms = shared.interval_ms,
        first_batch = next_time.as_millis(),
        "streaming context started"
    );
    Ok(Runtime {
        shared,
        generator: Some(generator),
        runner: Some(runner),
        runner_done: done_rx,
        stop_generator: stop_tx,
    })
}

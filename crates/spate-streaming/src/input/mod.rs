//! Inputs: where a batch's data comes from, and the interface other crates plug into.
//!
//! An input works in two steps, so that a batch can be re-run after a crash with exactly the
//! data it had the first time (DESIGN §3.1):
//!
//! 1. [`InputStream::plan`] decides, on the job generator thread, what batch `time` contains and
//!    returns it as serializable data — the Kafka direct stream's plan is its offset ranges, a
//!    receiver stream's plan is its block ids, the text file stream's plan is its file names.
//!    The engine writes every input's plan to the checkpoint's offset log before the batch runs.
//! 2. [`InputStream::compute`] turns a plan into the batch's partitions; the engine calls it when
//!    the batch runs, and again, with the same recorded plan, when it re-runs after a restart.
//!
//! After a restart, the engine hands every recorded plan to [`InputStream::replayed`] (oldest
//! first) so the input can move its cursor past data that is already planned, and restores the
//! input's own state from the latest snapshot ([`InputStream::snapshot_state`]).
//! [`InputStream::batch_completed`] tells the input when a batch finished (rate controllers,
//! committing offsets to Kafka).
//!
//! A replayable input in a few lines — each batch reads the next range of a counter, and the
//! range is the plan (the Kafka direct stream has the same shape, with offset ranges):
//!
//! ```
//! use std::sync::Arc;
//! use parking_lot::Mutex;
//! use spate_streaming::{InputInfo, InputStream, Partitions, Result, Time, VecPartitions};
//!
//! struct Counter { next: Mutex<u64>, per_batch: u64 }
//!
//! impl InputStream<u64> for Counter {
//!     fn kind(&self) -> &str { "counter" }
//!     fn plan(&self, _t: Time) -> Result<serde_json::Value> {
//!         let mut n = self.next.lock();
//!         let (from, until) = (*n, *n + self.per_batch);
//!         *n = until;
//!         Ok(serde_json::json!({ "from": from, "until": until }))
//!     }
//!     fn info(&self, _t: Time, p: &serde_json::Value) -> InputInfo {
//!         let n = p["until"].as_u64().unwrap_or(0) - p["from"].as_u64().unwrap_or(0);
//!         InputInfo { num_records: n, description: p.to_string(), ..InputInfo::default() }
//!     }
//!     fn compute(&self, _t: Time, p: &serde_json::Value) -> Result<Arc<dyn Partitions<u64>>> {
//!         let (from, until) = (p["from"].as_u64().unwrap_or(0), p["until"].as_u64().unwrap_or(0));
//!         Ok(Arc::new(VecPartitions::split((from..until).collect(), 2)))
//!     }
//!     fn replayed(&self, _t: Time, p: &serde_json::Value) -> Result<()> {
//!         let mut n = self.next.lock();
//!         *n = (*n).max(p["until"].as_u64().unwrap_or(0));
//!         Ok(())
//!     }
//! }
//!
//! let ctx = spate_streaming::StreamingContext::new(spate_streaming::Config::new("doc"))?;
//! let numbers = ctx.input_stream(Counter { next: Mutex::new(0), per_batch: 100 });
//! numbers.count().print(1);
//! # Ok::<(), spate_streaming::StreamingError>(())
//! ```

pub mod queue;
pub mod receiver;
pub mod socket;
pub mod text_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::exec::Partitions;
use crate::listener::{BatchInfo, Event, InputErrorInfo, InputInfo, ListenerBus, ReceiverInfo};
use crate::time::Time;

/// A source of batches. See the module docs for the plan → compute contract.
pub trait InputStream<T>: Send + Sync + 'static {
    /// Kind of input, recorded in the checkpoint metadata (e.g. `queue_stream`, `kafka_direct`).
    fn kind(&self) -> &str;

    /// Called once when the context starts (start receivers, connect).
    fn start(&self, _ctx: &InputContext) -> Result<()> {
        Ok(())
    }

    /// Called once when the context stops.
    fn stop(&self) -> Result<()> {
        Ok(())
    }

    /// Decides what batch `time` contains and advances the input's cursor past it. Returns the
    /// plan as JSON; it is written to the checkpoint before the batch runs.
    fn plan(&self, time: Time) -> Result<serde_json::Value>;

    /// Records and description of a planned batch, for listeners and the UI.
    fn info(&self, _time: Time, _plan: &serde_json::Value) -> InputInfo {
        InputInfo::default()
    }

    /// Computes the partitions of batch `time` from its plan. Must give the same data for the
    /// same plan (that is what makes recovery exact).
    fn compute(&self, time: Time, plan: &serde_json::Value) -> Result<Arc<dyn Partitions<T>>>;

    /// After a restart: `plan` was recorded for `time` by an earlier run; move the cursor past
    /// it. Called in time order for retained plans; must be idempotent (set, don't add).
    fn replayed(&self, _time: Time, _plan: &serde_json::Value) -> Result<()> {
        Ok(())
    }

    /// The input's own state to keep in state snapshots (e.g. the set of files already seen),
    /// taken consistently with the plans written so far.
    fn snapshot_state(&self) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }

    /// Restores what [`InputStream::snapshot_state`] returned.
    fn restore_state(&self, _state: serde_json::Value) -> Result<()> {
        Ok(())
    }

    /// A batch finished; `info` has its records, delays and output status.
    fn batch_completed(&self, _info: &BatchInfo) {}
}

/// What an input gets at start: its id, the checkpoint directory, and a way to report receiver
/// events to listeners.
#[derive(Clone)]
pub struct InputContext {
    pub(crate) input_id: String,
    pub(crate) checkpoint_dir: Option<PathBuf>,
    pub(crate) batch_interval: Duration,
    pub(crate) bus: Arc<ListenerBus>,
    pub(crate) metrics: Arc<crate::metrics::StreamingMetrics>,
}

impl std::fmt::Debug for InputContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputContext")
            .field("input_id", &self.input_id)
            .field("checkpoint_dir", &self.checkpoint_dir)
            .finish()
    }
}

impl InputContext {
    /// This input's id (stable across restarts of the same job).
    pub fn input_id(&self) -> &str {
        &self.input_id
    }

    /// The checkpoint directory, when the job has one (receivers keep their write-ahead log
    /// under it).
    pub fn checkpoint_dir(&self) -> Option<&std::path::Path> {
        self.checkpoint_dir.as_deref()
    }

    /// The batch interval.
    pub fn batch_interval(&self) -> Duration {
        self.batch_interval
    }

    /// Reports that a receiver started.
    pub fn receiver_started(&self, info: ReceiverInfo) {
        self.metrics
            .receivers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bus.post(Event::ReceiverStarted(info));
    }

    /// Reports a receiver error.
    pub fn receiver_error(&self, info: ReceiverInfo) {
        self.bus.post(Event::ReceiverError(info));
    }

    /// Reports that a receiver stopped.
    pub fn receiver_stopped(&self, info: ReceiverInfo) {
        self.metrics
            .receivers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.bus.post(Event::ReceiverStopped(info));
    }

    /// A handle that reports this input's faults to the listeners from any thread, for as long
    /// as the context runs (e.g. from a retry loop deep in a client library's callback).
    pub fn error_reporter(&self) -> InputErrorReporter {
        InputErrorReporter {
            input_id: self.input_id.clone(),
            bus: Arc::clone(&self.bus),
        }
    }
}

/// Reports an input's faults to the listeners ([`StreamingListener::on_input_error`]); see
/// [`InputContext::error_reporter`].
#[derive(Clone)]
pub struct InputErrorReporter {
    input_id: String,
    bus: Arc<ListenerBus>,
}

impl std::fmt::Debug for InputErrorReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputErrorReporter")
            .field("input_id", &self.input_id)
            .finish_non_exhaustive()
    }
}

impl InputErrorReporter {
    /// Posts `message` as an [`InputErrorInfo`] stamped with the current time.
    pub fn report(&self, message: impl Into<String>) {
        self.bus.post(Event::InputError(InputErrorInfo {
            input_id: self.input_id.clone(),
            time: Time::now(),
            message: message.into(),
        }));
    }
}

/// The engine's untyped view of an input (planning side).
pub(crate) trait ErasedInput: Send + Sync {
    fn kind(&self) -> String;
    fn start(&self, ctx: &InputContext) -> Result<()>;
    fn stop(&self) -> Result<()>;
    fn plan(&self, time: Time) -> Result<serde_json::Value>;
    fn info(&self, time: Time, plan: &serde_json::Value) -> InputInfo;
    fn replayed(&self, time: Time, plan: &serde_json::Value) -> Result<()>;
    fn snapshot_state(&self) -> Result<Option<serde_json::Value>>;
    fn restore_state(&self, state: serde_json::Value) -> Result<()>;
    fn batch_completed(&self, info: &BatchInfo);
}

pub(crate) struct Erased<T, I: InputStream<T>>(
    pub(crate) Arc<I>,
    pub(crate) std::marker::PhantomData<fn() -> T>,
);

impl<T: 'static, I: InputStream<T>> ErasedInput for Erased<T, I> {
    fn kind(&self) -> String {
        self.0.kind().to_owned()
    }
    fn start(&self, ctx: &InputContext) -> Result<()> {
        self.0.start(ctx)
    }
    fn stop(&self) -> Result<()> {
        self.0.stop()
    }
    fn plan(&self, time: Time) -> Result<serde_json::Value> {
        self.0.plan(time)
    }
    fn info(&self, time: Time, plan: &serde_json::Value) -> InputInfo {
        self.0.info(time, plan)
    }
    fn replayed(&self, time: Time, plan: &serde_json::Value) -> Result<()> {
        self.0.replayed(time, plan)
    }
    fn snapshot_state(&self) -> Result<Option<serde_json::Value>> {
        self.0.snapshot_state()
    }
    fn restore_state(&self, state: serde_json::Value) -> Result<()> {
        self.0.restore_state(state)
    }
    fn batch_completed(&self, info: &BatchInfo) {
        self.0.batch_completed(info)
    }
}

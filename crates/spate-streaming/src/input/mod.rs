//! Inputs: where a batch's data comes from, and the interface other crates plug into.
//!
//! An input works in two steps, so that a batch can be re-run after a crash with exactly the
//! data it had the first time:
//!
//! 1. [`InputStream::plan`] decides, on the job generator thread, what batch `time` contains and
//!    returns it as the input's own [`InputStream::Plan`] type — the Kafka direct stream's plan is
//!    its offset ranges, a receiver stream's plan is its block ids, the text file stream's plan is
//!    its file names. The engine writes every input's plan (as JSON, through its `serde` form) to
//!    the checkpoint's offset log before the batch runs.
//! 2. [`InputStream::compute`] turns a plan into the batch's partitions; the engine calls it when
//!    the batch runs, and again, with the same recorded plan, when it re-runs after a restart.
//!
//! The plan is typed everywhere but in the checkpoint: the engine encodes it once, when it is
//! recorded, and decodes it once per recovered batch ([`InputStream::decode_plan`]), so an
//! input never parses its own plan, and the plan's `serde` form *is* the input's part of the
//! checkpoint format (change it compatibly, or old checkpoints stop decoding).
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
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Range { from: u64, until: u64 }
//!
//! struct Counter { next: Mutex<u64>, per_batch: u64 }
//!
//! impl InputStream<u64> for Counter {
//!     type Plan = Range;
//!     type State = ();
//!     fn kind(&self) -> &str { "counter" }
//!     fn plan(&self, _t: Time) -> Result<Range> {
//!         let mut n = self.next.lock();
//!         let (from, until) = (*n, *n + self.per_batch);
//!         *n = until;
//!         Ok(Range { from, until })
//!     }
//!     fn info(&self, _t: Time, p: &Range) -> InputInfo {
//!         InputInfo { num_records: p.until - p.from, ..InputInfo::default() }
//!     }
//!     fn compute(&self, _t: Time, p: &Range) -> Result<Arc<dyn Partitions<u64>>> {
//!         Ok(Arc::new(VecPartitions::split((p.from..p.until).collect(), 2)))
//!     }
//!     fn replayed(&self, _t: Time, p: &Range) -> Result<()> {
//!         let mut n = self.next.lock();
//!         *n = (*n).max(p.until);
//!         Ok(())
//!     }
//! }
//!
//! let ctx = spate_streaming::StreamingContext::new(spate_streaming::Config::new("doc"))?;
//! let numbers = ctx.input_stream(Counter { next: Mutex::new(0), per_batch: 100 });
//! numbers.count().print(1);
//! # Ok::<(), spate_streaming::StreamingError>(())
//! ```

mod erased;
pub mod ownership;
pub mod queue;
pub mod receiver;
pub mod socket;
pub mod text_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StreamingError};
use crate::exec::Partitions;
use crate::listener::{BatchInfo, Event, InputErrorInfo, InputInfo, ListenerBus, ReceiverInfo};
use crate::state::tasks::TaskStates;
use crate::time::Time;

/// A source of batches. See the module docs for the plan → compute contract.
pub trait InputStream<T>: Send + Sync + 'static {
    /// What [`InputStream::plan`] decides for one batch. Its `serde` form is what the checkpoint
    /// records for this input, so it must stay readable by later builds.
    type Plan: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The input's own state kept in state snapshots (e.g. the files already seen); `()` for
    /// an input whose plans say everything.
    type State: Serialize + DeserializeOwned;

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

    /// Decides what batch `time` contains and advances the input's cursor past it. The engine
    /// writes the plan to the checkpoint before the batch runs.
    fn plan(&self, time: Time) -> Result<Self::Plan>;

    /// Decodes a plan recorded in the checkpoint (after a restart). The default is the plan's
    /// `serde` form; override it to check a version field first.
    fn decode_plan(&self, recorded: serde_json::Value) -> Result<Self::Plan> {
        serde_json::from_value(recorded).map_err(|e| {
            StreamingError::serialization(format!("recorded plan of a {} input", self.kind()), e)
        })
    }

    /// Records and description of a planned batch, for listeners and the UI.
    fn info(&self, _time: Time, _plan: &Self::Plan) -> InputInfo {
        InputInfo::default()
    }

    /// Computes the partitions of batch `time` from its plan. Must give the same data for the
    /// same plan (that is what makes recovery exact).
    fn compute(&self, time: Time, plan: &Self::Plan) -> Result<Arc<dyn Partitions<T>>>;

    /// After a restart: `plan` was recorded for `time` by an earlier run; move the cursor past
    /// it. Called in time order for retained plans; must be idempotent (set, don't add).
    fn replayed(&self, _time: Time, _plan: &Self::Plan) -> Result<()> {
        Ok(())
    }

    /// The input's own state to keep in state snapshots (e.g. the set of files already seen),
    /// taken consistently with the plans written so far.
    fn snapshot_state(&self) -> Result<Option<Self::State>> {
        Ok(None)
    }

    /// Restores what [`InputStream::snapshot_state`] returned.
    fn restore_state(&self, _state: Self::State) -> Result<()> {
        Ok(())
    }

    /// A batch finished; `info` has its records, delays and output status.
    fn batch_completed(&self, _info: &BatchInfo) {}

    /// How this input's partitions map to tasks ([`Partitions::task`]), for keyed state
    /// partitioned by task (see [`crate::state::tasks`]). Asked once at start, before
    /// [`InputStream::start`], and only when the job has such state. `None` (the default): the
    /// input's partitions are not tasks.
    fn tasks(&self) -> Result<Option<InputTasks>> {
        Ok(None)
    }
}

/// An input whose batch partitions belong to tasks ([`Partitions::task`]): Kafka Streams'
/// tasks, one per partition of a co-partitioned input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTasks {
    /// How many tasks there are (the Kafka direct stream: its topic's partition count).
    pub count: usize,
    /// True when this instance owns only the tasks the input reports through
    /// [`InputContext::task_states`] (a group-managed stream): a task's state is restored when
    /// it is assigned and dropped when it is revoked. False: the instance owns every task, and
    /// all their state is restored at start.
    pub assigned: bool,
}

/// The plan of an input that keeps a batch's data in memory until it runs (queue and socket
/// streams): only how many records it has, for listeners. Such a batch cannot be recovered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecordCount {
    /// Records in the batch.
    pub records: u64,
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
    pub(crate) task_states: Option<TaskStates>,
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

    /// Where a receiver input keeps its write-ahead logs, when the job has a checkpoint:
    /// `<checkpoint>/receivers/<input id>` (blocks under `receivedData/<stream id>`, the block
    /// tracker's log under `receivedBlockMetadata`).
    pub fn receiver_log_dir(&self) -> Option<PathBuf> {
        self.checkpoint_dir.as_ref().map(|d| {
            d.join(crate::checkpoint::RECEIVERS_DIR)
                .join(&self.input_id)
        })
    }

    /// The batch interval.
    pub fn batch_interval(&self) -> Duration {
        self.batch_interval
    }

    /// The job's keyed state partitioned by task, when it has some: an input whose
    /// [`InputTasks::assigned`] is true reports through it which tasks this instance gains
    /// (their state is restored before the call returns) and loses (their state is dropped).
    pub fn task_states(&self) -> Option<&TaskStates> {
        self.task_states.as_ref()
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

    /// A handle that reports which partitions of a shared input this instance owns, and the
    /// rebalances that move them, to the metrics and the listeners (see [`ownership`]).
    pub fn ownership_reporter(&self) -> ownership::InputOwnershipReporter {
        ownership::InputOwnershipReporter {
            input_id: self.input_id.clone(),
            bus: Arc::clone(&self.bus),
            metrics: Arc::clone(&self.metrics),
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

pub(crate) use erased::{Erased, ErasedInput, ErasedPlan};

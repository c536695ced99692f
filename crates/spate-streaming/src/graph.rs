//! The job graph: DStream nodes, inputs, stateful operators and output operations, and the
//! per-batch evaluation context.
//!
//! A DStream is a node with a compute function `BatchContext -> Batch<T>`. Evaluating a batch
//! means running the graph's *forced* nodes (stateful operators and window buffers, which must
//! see every batch whether or not an output reads them at that time) and then its output
//! operations, in the order they were defined. Each node's result is memoised per batch, so a
//! stream read by two outputs (or by a window and an output) is computed once.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Result, StreamingError};
use crate::exec::pool::Executor;
use crate::exec::shuffle::FastMap;
use crate::exec::{Batch, Data};
use crate::input::{ErasedInput, ErasedPlan};
use crate::state::StateChangelog;
use crate::time::Time;

/// Everything a node needs to compute its batch for one batch time.
pub(crate) struct BatchContext {
    pub(crate) time: Time,
    pub(crate) zero_time: Time,
    pub(crate) interval_ms: u64,
    pub(crate) plans: BTreeMap<String, ErasedPlan>,
    pub(crate) exec: Arc<Executor>,
    memo: Mutex<FastMap<usize, Box<dyn Any + Send + Sync>>>,
}

impl BatchContext {
    pub(crate) fn new(
        time: Time,
        zero_time: Time,
        interval_ms: u64,
        plans: BTreeMap<String, ErasedPlan>,
        exec: Arc<Executor>,
    ) -> Self {
        BatchContext {
            time,
            zero_time,
            interval_ms,
            plans,
            exec,
            memo: Mutex::new(FastMap::default()),
        }
    }

    /// 1 for the first batch after the zero time, 2 for the next, …
    pub(crate) fn batch_number(&self) -> u64 {
        self.time.millis_since(self.zero_time) / self.interval_ms.max(1)
    }

    /// Whether a stream that slides every `slide` batches produces a batch now.
    pub(crate) fn aligned(&self, slide: u64) -> bool {
        self.batch_number() % slide.max(1) == 0
    }

    /// An empty batch of this batch time.
    pub(crate) fn empty<T: Data>(&self) -> Batch<T> {
        Batch::new(
            Arc::new(crate::exec::VecPartitions::<T>::new(Vec::new())),
            self.exec.clone(),
            self.time,
        )
    }

    fn memo<T: Data>(&self, id: usize, f: impl FnOnce() -> Result<Batch<T>>) -> Result<Batch<T>> {
        if let Some(b) = self
            .memo
            .lock()
            .get(&id)
            .and_then(|b| b.downcast_ref::<Batch<T>>())
        {
            return Ok(b.clone());
        }
        // Computed without holding the lock: computing a node computes its parents.
        let b = f()?;
        self.memo.lock().insert(id, Box::new(b.clone()));
        Ok(b)
    }
}

/// Computes a node's batch.
pub(crate) type ComputeFn<T> = dyn Fn(&BatchContext) -> Result<Batch<T>> + Send + Sync;

/// A node of the graph: one DStream.
pub(crate) struct Node<T> {
    pub(crate) id: usize,
    /// Operator name, e.g. `map`, `window`, unique names for inputs and state (`queue_stream-0`).
    pub(crate) name: String,
    /// Slide in batches: the node produces a batch when `batch_number % slide == 0`.
    pub(crate) slide: u64,
    compute: Box<ComputeFn<T>>,
}

impl<T: Data> Node<T> {
    pub(crate) fn new(id: usize, name: String, slide: u64, compute: Box<ComputeFn<T>>) -> Self {
        Node {
            id,
            name,
            slide,
            compute,
        }
    }

    /// The node's batch for `bc.time`, computed at most once per batch.
    pub(crate) fn get(&self, bc: &BatchContext) -> Result<Batch<T>> {
        bc.memo(self.id, || (self.compute)(bc))
    }
}

/// A unit of per-batch work (forced state updates, output operations).
pub(crate) type BatchWork = Box<dyn Fn(&BatchContext) -> Result<()> + Send + Sync>;

/// Work that runs in every batch where `aligned(slide)` (state updates, window buffering).
pub(crate) struct Forced {
    pub(crate) name: String,
    pub(crate) slide: u64,
    pub(crate) run: BatchWork,
}

/// An output operation.
pub(crate) struct OutputOp {
    pub(crate) name: String,
    pub(crate) slide: u64,
    pub(crate) run: BatchWork,
}

/// The id of a stateful operator: `kind-N` by default, replaceable with `DStream::uid` until
/// the context starts (so it is shared between the operator and its stream).
pub(crate) type OpId = Arc<Mutex<String>>;

/// An operator whose state is kept in checkpoint snapshots.
pub(crate) trait StatefulOp: Send + Sync {
    /// Stable id (kind + creation index, e.g. `update_state_by_key-0`, or the user's uid).
    fn id(&self) -> String;
    /// Rust type of the state, recorded in checkpoint metadata for diagnostics.
    fn state_type(&self) -> String;
    /// Encodes the current state.
    fn encode(&self) -> Result<Vec<u8>>;
    /// Replaces the state with a decoded snapshot.
    fn restore(&self, bytes: &[u8]) -> Result<()>;
    /// Whether the operator's state can be backed by a changelog (keyed state can; window
    /// buffers cannot yet).
    fn supports_changelog(&self) -> bool {
        false
    }
    /// Number of state partitions.
    fn partitions(&self) -> usize {
        1
    }
    /// Attaches a changelog: from now on every batch's changes are recorded to it.
    fn attach_changelog(&self, _changelog: Arc<dyn StateChangelog>) {}
    /// Whether the state is partitioned by the input's tasks (`crate::state::tasks`).
    fn by_task(&self) -> bool {
        false
    }
    /// At start, for state partitioned by task: one state partition per task.
    fn set_tasks(&self, _count: usize) -> Result<()> {
        Ok(())
    }
    /// Drops state partition `partition` from memory (its task went to another instance).
    fn drop_partition(&self, _partition: usize) {}
    /// Applies changelog partition `partition` to the state (see `KeyedState::restore_partition`).
    fn restore_partition(
        &self,
        _partition: usize,
        _changelog: &dyn StateChangelog,
        _progress: &dyn crate::state::restore::RestoreProgress,
    ) -> Result<u64> {
        Err(StreamingError::operator(
            self.id(),
            "its state cannot be restored from a changelog",
        ))
    }
}

/// Encodes a value for a state snapshot (postcard: compact, documented, stable format).
pub(crate) fn encode_state<S: serde::Serialize + ?Sized>(id: &str, s: &S) -> Result<Vec<u8>> {
    postcard::to_stdvec(s)
        .map_err(|e| StreamingError::serialization(format!("state of operator {id:?}"), e))
}

/// Decodes a value written by [`encode_state`].
pub(crate) fn decode_state<S: serde::de::DeserializeOwned>(id: &str, bytes: &[u8]) -> Result<S> {
    postcard::from_bytes(bytes).map_err(|e| {
        StreamingError::serialization(
            format!("state of operator {id:?} as {}", std::any::type_name::<S>()),
            e,
        )
    })
}

/// A registered input.
pub(crate) struct InputEntry {
    pub(crate) id: String,
    pub(crate) input: Arc<dyn ErasedInput>,
}

/// The graph as it is built by DStream calls, frozen at `start`.
#[derive(Default)]
pub(crate) struct Graph {
    next_node_id: usize,
    kind_counts: BTreeMap<String, usize>,
    pub(crate) inputs: Vec<InputEntry>,
    pub(crate) forced: Vec<Forced>,
    pub(crate) stateful: Vec<Arc<dyn StatefulOp>>,
    /// Changelogs to attach at start, by stateful operator id.
    pub(crate) changelogs: Vec<(String, Arc<dyn StateChangelog>)>,
    pub(crate) outputs: Vec<OutputOp>,
    /// Problems found while building (reported by `start`).
    pub(crate) errors: Vec<StreamingError>,
}

impl Graph {
    pub(crate) fn next_node_id(&mut self) -> usize {
        self.next_node_id += 1;
        self.next_node_id
    }

    /// `kind-N`, N counting nodes of this kind in creation order: a stable id as long as the job
    /// defines its streams in the same order.
    pub(crate) fn unique_name(&mut self, kind: &str) -> String {
        let n = self.kind_counts.entry(kind.to_owned()).or_insert(0);
        let name = format!("{kind}-{n}");
        *n += 1;
        name
    }
}

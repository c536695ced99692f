//! `queue_stream`: batches handed in by the program (tests, benchmarks, demos).
//!
//! Each planned batch takes one queued batch (or, with `one_at_a_time = false`, everything
//! queued); an empty queue gives the default batch if one is set, else an empty batch. Like
//! Spark's queue stream, it cannot be recovered from a checkpoint: the data lives only in
//! memory, so re-running a recovered batch of a queue stream is an error naming the input.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::error::{Result, StreamingError};
use crate::exec::{Data, Partitions, VecPartitions};
use crate::input::{InputStream, RecordCount};
use crate::listener::InputInfo;
use crate::time::Time;

struct QueueState<T> {
    queue: VecDeque<Vec<Vec<T>>>,
    default: Option<Vec<Vec<T>>>,
    planned: BTreeMap<Time, Vec<Vec<T>>>,
}

/// The program's end of a queue stream: push batches into it.
pub struct QueueHandle<T> {
    state: Arc<Mutex<QueueState<T>>>,
    partitions: usize,
}

impl<T> std::fmt::Debug for QueueHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle")
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for QueueHandle<T> {
    fn clone(&self) -> Self {
        QueueHandle {
            state: self.state.clone(),
            partitions: self.partitions,
        }
    }
}

impl<T: Data> QueueHandle<T> {
    /// Queues one batch, split into the default number of partitions.
    pub fn push(&self, batch: Vec<T>) {
        self.push_partitions(crate::exec::partition::split_vec(batch, self.partitions));
    }

    /// Queues one batch that is already split into partitions (no copy).
    pub fn push_partitions(&self, partitions: Vec<Vec<T>>) {
        self.state.lock().queue.push_back(partitions);
    }

    /// The batch used when the queue is empty (Spark's `defaultRDD`).
    pub fn set_default(&self, batch: Vec<T>) {
        self.state.lock().default = Some(vec![batch]);
    }

    /// Batches queued and not yet planned.
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Whether no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct QueueInput<T> {
    state: Arc<Mutex<QueueState<T>>>,
    one_at_a_time: bool,
}

impl<T: Data> InputStream<T> for QueueInput<T> {
    type Plan = RecordCount;
    type State = ();

    fn kind(&self) -> &str {
        "queue_stream"
    }

    fn plan(&self, time: Time) -> Result<RecordCount> {
        let mut st = self.state.lock();
        let parts: Vec<Vec<T>> = if self.one_at_a_time {
            match st.queue.pop_front() {
                Some(b) => b,
                None => st.default.clone().unwrap_or_default(),
            }
        } else if st.queue.is_empty() {
            st.default.clone().unwrap_or_default()
        } else {
            st.queue.drain(..).flatten().collect()
        };
        let records = parts.iter().map(Vec::len).sum::<usize>() as u64;
        st.planned.insert(time, parts);
        Ok(RecordCount { records })
    }

    fn info(&self, _time: Time, plan: &RecordCount) -> InputInfo {
        let records = plan.records;
        InputInfo {
            num_records: records,
            description: format!("{records} queued records"),
            ..InputInfo::default()
        }
    }

    fn compute(&self, time: Time, _plan: &RecordCount) -> Result<Arc<dyn Partitions<T>>> {
        match self.state.lock().planned.remove(&time) {
            Some(parts) => Ok(Arc::new(VecPartitions::new(parts))),
            None => Err(StreamingError::input(
                "queue_stream",
                format!("the data of batch {time} is gone (queue streams keep data only in memory and cannot be recovered from a checkpoint)"),
            )),
        }
    }
}

impl StreamingContext {
    /// A stream of batches pushed through the returned handle (Spark's `queueStream`). With
    /// `one_at_a_time`, each batch interval takes one queued batch; otherwise all queued ones.
    pub fn queue_stream<T: Data>(&self, one_at_a_time: bool) -> (QueueHandle<T>, DStream<T>) {
        let state = Arc::new(Mutex::new(QueueState {
            queue: VecDeque::new(),
            default: None,
            planned: BTreeMap::new(),
        }));
        let handle = QueueHandle {
            state: state.clone(),
            partitions: self.inner.conf.default_parallelism,
        };
        let stream = self.input_stream(QueueInput {
            state,
            one_at_a_time,
        });
        (handle, stream)
    }
}

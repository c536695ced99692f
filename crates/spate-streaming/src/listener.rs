//! Listener events: what happened to batches, output operations and receivers.
//!
//! Mirrors Spark's `StreamingListener` and `BatchInfo`: a batch is *submitted* when it is
//! planned, *started* when the job runner takes it, *completed* when its outputs finished (or one
//! failed). Delays follow Spark: scheduling delay = start − submission, processing delay = end −
//! start, total delay = end − submission. Events are delivered on a dedicated thread in order,
//! so a slow listener never delays a batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::input::ownership::InputOwnershipInfo;
use crate::time::Time;

/// What an input contributed to one batch (Spark's `StreamInputInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// Input id (e.g. `queue_stream-0`, `kafka_direct-0`).
    pub input_id: String,
    /// Records in this batch from this input.
    pub num_records: u64,
    /// Free-form, human-readable description (e.g. offset ranges, one per line).
    pub description: String,
    /// Structured metadata for UIs (e.g. the offset ranges as JSON).
    pub metadata: serde_json::Value,
}

/// State and outcome of one output operation of one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputOperationInfo {
    /// The batch.
    pub batch_time: Time,
    /// Index of the output operation in the job (registration order).
    pub id: usize,
    /// Name, e.g. `foreach_batch`, `print`, `save_as_text_files`.
    pub name: String,
    /// When it started (ms since epoch).
    pub start_time: Option<Time>,
    /// When it finished.
    pub end_time: Option<Time>,
    /// Error or panic message if it failed.
    pub failure_reason: Option<String>,
}

impl OutputOperationInfo {
    /// Run time in milliseconds, when finished.
    pub fn duration_ms(&self) -> Option<u64> {
        Some(self.end_time?.millis_since(self.start_time?))
    }
}

/// Everything known about one batch (Spark's `BatchInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInfo {
    /// The batch time.
    pub batch_time: Time,
    /// Per input: records and metadata.
    pub input_infos: BTreeMap<String, InputInfo>,
    /// When the batch was planned and queued.
    pub submission_time: Time,
    /// When the job runner started it.
    pub processing_start_time: Option<Time>,
    /// When its last output finished.
    pub processing_end_time: Option<Time>,
    /// Output operations by id.
    pub output_operation_infos: BTreeMap<usize, OutputOperationInfo>,
    /// Why the batch failed (state update, output, commit), if it did.
    pub failure: Option<String>,
    /// Microseconds spent planning the batch (inputs' plans + writing them to the checkpoint).
    pub planning_micros: u64,
    /// Microseconds from submission to start, measured precisely (the millisecond
    /// `scheduling_delay` is Spark's).
    pub scheduling_micros: Option<u64>,
    /// Microseconds from start to end, including the checkpoint commit.
    pub processing_micros: Option<u64>,
    /// True when the batch re-ran a plan recovered from the checkpoint.
    pub recovered: bool,
}

impl BatchInfo {
    /// Start − submission (ms).
    pub fn scheduling_delay(&self) -> Option<u64> {
        Some(
            self.processing_start_time?
                .millis_since(self.submission_time),
        )
    }

    /// End − start (ms).
    pub fn processing_delay(&self) -> Option<u64> {
        Some(
            self.processing_end_time?
                .millis_since(self.processing_start_time?),
        )
    }

    /// End − submission (ms).
    pub fn total_delay(&self) -> Option<u64> {
        Some(self.processing_end_time?.millis_since(self.submission_time))
    }

    /// Records over all inputs.
    pub fn num_records(&self) -> u64 {
        self.input_infos.values().map(|i| i.num_records).sum()
    }

    /// What a rate controller needs from this batch about input `input_id` (backpressure);
    /// `None` until the batch has finished.
    pub fn rate_sample(&self, input_id: &str) -> Option<crate::rate::BatchCompleted> {
        let records = self
            .input_infos
            .get(input_id)
            .map(|i| i.num_records)
            .unwrap_or(0);
        Some(crate::rate::BatchCompleted {
            processing_end_ms: self.processing_end_time?.as_millis() as i64,
            num_records: records as i64,
            processing_delay_ms: self.processing_delay()? as i64,
            scheduling_delay_ms: self.scheduling_delay()? as i64,
        })
    }

    /// Why the batch failed, if it did.
    pub fn failure_reason(&self) -> Option<&str> {
        self.failure.as_deref().or_else(|| {
            self.output_operation_infos
                .values()
                .find_map(|o| o.failure_reason.as_deref())
        })
    }
}

/// A receiver's status (for receiver-based inputs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceiverInfo {
    /// The input id the receiver feeds.
    pub input_id: String,
    /// Receiver name.
    pub name: String,
    /// Whether it is running.
    pub active: bool,
    /// Where it runs (thread or host).
    pub location: String,
    /// Last error message, if any.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_time: Option<Time>,
}

/// A fault an input met and is riding out — e.g. a Kafka broker it cannot reach while it plans
/// or reads a batch, retried with backoff. Not a batch failure: the batch waits, and fails only
/// if the input gives up (then `BatchInfo::failure` says why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputErrorInfo {
    /// The input id.
    pub input_id: String,
    /// When it happened.
    pub time: Time,
    /// What failed and what the input does about it (e.g. "retry 3 in 400 ms").
    pub message: String,
}

/// Progress of restoring one state partition from its changelog (see
/// [`crate::state::changelog`]): posted when the restore starts, about every 250 ms while it
/// runs, and when it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRestoreInfo {
    /// The state operator's id (its `uid()`).
    pub operator: String,
    /// The state partition.
    pub partition: usize,
    /// Changelog records applied so far.
    pub records_restored: u64,
    /// Records the changelog expected to hand over (the partition's offset span), when known;
    /// read_committed skips aborted records and markers, so fewer may be restored.
    pub records_expected: Option<u64>,
    /// Time since this partition's restore started.
    pub elapsed_ms: u64,
    /// True in the last report of the partition.
    pub done: bool,
}

impl StateRestoreInfo {
    /// Records restored per second so far.
    pub fn records_per_sec(&self) -> f64 {
        self.records_restored as f64 * 1000.0 / self.elapsed_ms.max(1) as f64
    }
}

/// Receives engine events. Every method has a no-op default; implement what you need.
pub trait StreamingListener: Send + Sync {
    /// The context started; `time` is the start time.
    fn on_streaming_started(&self, _time: Time) {}
    /// A receiver started.
    fn on_receiver_started(&self, _info: &ReceiverInfo) {}
    /// A receiver reported an error.
    fn on_receiver_error(&self, _info: &ReceiverInfo) {}
    /// A receiver stopped.
    fn on_receiver_stopped(&self, _info: &ReceiverInfo) {}
    /// An input met a fault it is retrying (see [`InputErrorInfo`]).
    fn on_input_error(&self, _info: &InputErrorInfo) {}
    /// A batch was planned and queued.
    fn on_batch_submitted(&self, _info: &BatchInfo) {}
    /// A batch started running.
    fn on_batch_started(&self, _info: &BatchInfo) {}
    /// A batch finished (check [`BatchInfo::failure_reason`]).
    fn on_batch_completed(&self, _info: &BatchInfo) {}
    /// An output operation started.
    fn on_output_operation_started(&self, _info: &OutputOperationInfo) {}
    /// An output operation finished (check `failure_reason`).
    fn on_output_operation_completed(&self, _info: &OutputOperationInfo) {}
    /// Restoring a state partition from its changelog progressed (see [`StateRestoreInfo`]).
    fn on_state_restore(&self, _info: &StateRestoreInfo) {}
    /// The partitions of a shared input this instance owns changed, or a rebalance's timing
    /// became known (see [`crate::input::ownership`]).
    fn on_input_ownership(&self, _info: &InputOwnershipInfo) {}
    /// The context stopped (after the last event of the run).
    fn on_streaming_stopped(&self, _time: Time) {}
}

/// One listener event.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    StreamingStarted(Time),
    ReceiverStarted(ReceiverInfo),
    ReceiverError(ReceiverInfo),
    ReceiverStopped(ReceiverInfo),
    InputError(InputErrorInfo),
    BatchSubmitted(Arc<BatchInfo>),
    BatchStarted(Arc<BatchInfo>),
    BatchCompleted(Arc<BatchInfo>),
    OutputStarted(OutputOperationInfo),
    OutputCompleted(OutputOperationInfo),
    StateRestore(StateRestoreInfo),
    InputOwnership(InputOwnershipInfo),
    StreamingStopped(Time),
}

type Listeners = Arc<RwLock<Vec<Arc<dyn StreamingListener>>>>;

/// Delivers events to listeners on one background thread, in posting order.
pub(crate) struct ListenerBus {
    listeners: Listeners,
    sender: Mutex<Option<Sender<Event>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The delivery thread's id, kept after `stop` takes the handle.
    thread_id: Mutex<Option<std::thread::ThreadId>>,
}

impl ListenerBus {
    pub(crate) fn new() -> Self {
        ListenerBus {
            listeners: Arc::new(RwLock::new(Vec::new())),
            sender: Mutex::new(None),
            thread: Mutex::new(None),
            thread_id: Mutex::new(None),
        }
    }

    pub(crate) fn add(&self, l: Arc<dyn StreamingListener>) {
        self.listeners.write().push(l);
    }

    /// Starts the delivery thread (idempotent).
    pub(crate) fn start(&self) {
        let mut sender = self.sender.lock();
        if sender.is_some() {
            return;
        }
        let (tx, rx) = unbounded::<Event>();
        let listeners = self.listeners.clone();
        let handle = std::thread::Builder::new()
            .name("spate-listener-bus".into())
            .spawn(move || {
                for ev in rx {
                    let ls = listeners.read().clone();
                    for l in &ls {
                        // A panicking listener must not take the bus down for the others.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            dispatch(l.as_ref(), &ev)
                        }));
                        if r.is_err() {
                            tracing::warn!("a streaming listener panicked; event dropped for it");
                        }
                    }
                }
            });
        match handle {
            Ok(h) => {
                *sender = Some(tx);
                *self.thread_id.lock() = Some(h.thread().id());
                *self.thread.lock() = Some(h);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the listener bus thread; events are dropped")
            }
        }
    }

    pub(crate) fn post(&self, ev: Event) {
        if let Some(tx) = self.sender.lock().as_ref() {
            let _ = tx.send(ev);
        }
    }

    /// Whether the caller is the delivery thread (a listener's callback).
    pub(crate) fn is_bus_thread(&self) -> bool {
        *self.thread_id.lock() == Some(std::thread::current().id())
    }

    /// Delivers every queued event, then stops the thread.
    pub(crate) fn stop(&self) {
        let tx = self.sender.lock().take();
        drop(tx);
        if let Some(h) = self.thread.lock().take() {
            // A listener that stops the context runs on the bus thread: it cannot wait for
            // itself; the thread ends on its own once the queue is drained.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

fn dispatch(l: &dyn StreamingListener, ev: &Event) {
    match ev {
        Event::StreamingStarted(t) => l.on_streaming_started(*t),
        Event::ReceiverStarted(i) => l.on_receiver_started(i),
        Event::ReceiverError(i) => l.on_receiver_error(i),
        Event::ReceiverStopped(i) => l.on_receiver_stopped(i),
        Event::InputError(i) => l.on_input_error(i),
        Event::BatchSubmitted(b) => l.on_batch_submitted(b),
        Event::BatchStarted(b) => l.on_batch_started(b),
        Event::BatchCompleted(b) => l.on_batch_completed(b),
        Event::OutputStarted(o) => l.on_output_operation_started(o),
        Event::OutputCompleted(o) => l.on_output_operation_completed(o),
        Event::StateRestore(i) => l.on_state_restore(i),
        Event::InputOwnership(i) => l.on_input_ownership(i),
        Event::StreamingStopped(t) => l.on_streaming_stopped(*t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_and_rate_sample_follow_spark() {
        let mut info = BatchInfo {
            batch_time: Time(1_000),
            input_infos: BTreeMap::from([(
                "in-0".to_string(),
                InputInfo {
                    num_records: 42,
                    ..InputInfo::default()
                },
            )]),
            submission_time: Time(1_001),
            processing_start_time: Some(Time(1_011)),
            processing_end_time: None,
            output_operation_infos: BTreeMap::new(),
            failure: None,
            planning_micros: 0,
            scheduling_micros: None,
            processing_micros: None,
            recovered: false,
        };
        assert!(info.rate_sample("in-0").is_none());
        info.processing_end_time = Some(Time(1_041));
        assert_eq!(info.scheduling_delay(), Some(10));
        assert_eq!(info.processing_delay(), Some(30));
        assert_eq!(info.total_delay(), Some(40));
        let s = info.rate_sample("in-0").unwrap();
        assert_eq!(
            (
                s.num_records,
                s.processing_delay_ms,
                s.scheduling_delay_ms,
                s.processing_end_ms
            ),
            (42, 30, 10, 1_041)
        );
        assert_eq!(info.rate_sample("other").unwrap().num_records, 0);
    }
}

//! [`BatchStore`]: the UI's memory of a running job, fed by the engine's listener events.
//!
//! The engine's own [`StreamingMetrics`](spate_streaming::StreamingMetrics) retains completed
//! batches only; the Streaming tab also needs the batches that are queued or running and the
//! receivers' states, so the UI listens to every event and keeps its own bounded view. Keyed by
//! batch time, so a batch seeded from the metrics (a UI started late) and then delivered again
//! by the bus is stored once. The bound is Spark's `spark.streaming.ui.retainedBatches`.
//!
//! Inputs' faults (`on_input_error`: e.g. a Kafka broker the direct stream retries) are kept
//! per input as a running count plus the last [`RETAINED_INPUT_ERRORS`]: an outage can retry
//! for hours, so the store must stay bounded while the count keeps the whole story.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use spate_streaming::{
    BatchInfo, InputErrorInfo, OutputOperationInfo, ReceiverInfo, StreamingListener, Time,
};

/// Faults kept per input (the newest); older ones only count.
pub const RETAINED_INPUT_ERRORS: usize = 20;

/// Where a batch is in its life, with Spark's names (`BatchStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Planned, waiting for the job runner.
    Queued,
    /// Running.
    Processing,
    /// Finished (successfully or not: see the batch's failure reason).
    Completed,
}

impl BatchStatus {
    /// Spark's spelling: `QUEUED`, `PROCESSING`, `COMPLETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Queued => "QUEUED",
            BatchStatus::Processing => "PROCESSING",
            BatchStatus::Completed => "COMPLETED",
        }
    }

    /// Parses Spark's spelling, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "QUEUED" => Some(BatchStatus::Queued),
            "PROCESSING" => Some(BatchStatus::Processing),
            "COMPLETED" => Some(BatchStatus::Completed),
            _ => None,
        }
    }
}

/// One batch as the UI knows it: the latest [`BatchInfo`] plus output operations that are still
/// running (the engine reports those before the batch completes).
#[derive(Debug, Clone)]
pub struct BatchEntry {
    /// Queued, processing or completed.
    pub status: BatchStatus,
    /// The engine's record of the batch.
    pub info: Arc<BatchInfo>,
    /// Output operations reported while the batch runs, by id; merged with the batch's own
    /// `output_operation_infos` (which win once the batch completes).
    pub live_outputs: BTreeMap<usize, OutputOperationInfo>,
}

impl BatchEntry {
    /// Output operations: the batch's own, completed by the ones reported while it ran.
    pub fn output_operations(&self) -> BTreeMap<usize, OutputOperationInfo> {
        let mut ops = self.live_outputs.clone();
        for (id, op) in &self.info.output_operation_infos {
            ops.insert(*id, op.clone());
        }
        ops
    }
}

/// A receiver's last known state.
#[derive(Debug, Clone)]
pub struct ReceiverEntry {
    /// The engine's report, with the last error kept across later reports.
    pub info: ReceiverInfo,
}

/// An input's faults: how many since the UI started, and the newest few.
#[derive(Debug, Clone, Default)]
pub struct InputErrors {
    /// Faults reported since the UI started.
    pub total: u64,
    /// The last [`RETAINED_INPUT_ERRORS`] faults, oldest first.
    pub recent: VecDeque<InputErrorInfo>,
}

impl InputErrors {
    /// The newest fault, if any.
    pub fn last(&self) -> Option<&InputErrorInfo> {
        self.recent.back()
    }
}

#[derive(Debug, Default)]
struct State {
    start_time: Option<Time>,
    stop_time: Option<Time>,
    active: BTreeMap<Time, BatchEntry>,
    completed: BTreeMap<Time, BatchEntry>,
    total_completed: u64,
    total_processed_records: u64,
    receivers: BTreeMap<String, ReceiverEntry>,
    input_errors: BTreeMap<String, InputErrors>,
}

/// A consistent copy of the store at one instant, for one HTTP response.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the context started (for a UI started later: the oldest retained batch).
    pub start_time: Time,
    /// When the context stopped, if it did.
    pub stop_time: Option<Time>,
    /// Batch interval in milliseconds.
    pub batch_interval_ms: u64,
    /// Queued and running batches, oldest first.
    pub active: Vec<BatchEntry>,
    /// Retained completed batches, oldest first.
    pub completed: Vec<BatchEntry>,
    /// Completed batches since the UI started, retained or not.
    pub total_completed: u64,
    /// Records of those batches.
    pub total_processed_records: u64,
    /// Receivers by input id.
    pub receivers: Vec<ReceiverEntry>,
    /// Faults of the inputs that reported any, by input id.
    pub input_errors: BTreeMap<String, InputErrors>,
}

impl Snapshot {
    /// Every input known: those in active or retained batches and those that reported faults
    /// (an input that fails before its first batch is planned has no batch yet).
    pub fn input_ids(&self) -> Vec<String> {
        let mut ids: std::collections::BTreeSet<String> =
            self.input_errors.keys().cloned().collect();
        for b in self.active.iter().chain(&self.completed) {
            ids.extend(b.info.input_infos.keys().cloned());
        }
        ids.into_iter().collect()
    }
}

/// The UI's bounded view of a job; registered as a [`StreamingListener`].
#[derive(Debug)]
pub struct BatchStore {
    retained: usize,
    batch_interval_ms: u64,
    created: Time,
    state: Mutex<State>,
}

impl BatchStore {
    /// An empty store keeping at most `retained` completed batches (at least one).
    pub fn new(retained: usize, batch_interval_ms: u64) -> Self {
        BatchStore {
            retained: retained.max(1),
            batch_interval_ms: batch_interval_ms.max(1),
            created: Time::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Completed batches kept, at most.
    pub fn retained(&self) -> usize {
        self.retained
    }

    /// The job's batch interval in milliseconds.
    pub fn batch_interval_ms(&self) -> u64 {
        self.batch_interval_ms
    }

    /// Adds completed batches the engine already retained (a UI started after the job).
    pub fn seed(&self, batches: &[Arc<BatchInfo>]) {
        for b in batches {
            self.complete(b);
        }
    }

    /// A consistent copy for one response.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.state.lock();
        let start_time = s
            .start_time
            .or_else(|| s.completed.values().next().map(|b| b.info.submission_time))
            .unwrap_or(self.created);
        Snapshot {
            start_time,
            stop_time: s.stop_time,
            batch_interval_ms: self.batch_interval_ms,
            active: s.active.values().cloned().collect(),
            completed: s.completed.values().cloned().collect(),
            total_completed: s.total_completed,
            total_processed_records: s.total_processed_records,
            receivers: s.receivers.values().cloned().collect(),
            input_errors: s.input_errors.clone(),
        }
    }

    /// One batch by time, active or retained.
    pub fn batch(&self, time: Time) -> Option<BatchEntry> {
        let s = self.state.lock();
        s.active
            .get(&time)
            .or_else(|| s.completed.get(&time))
            .cloned()
    }

    fn upsert_active(&self, info: &BatchInfo, status: BatchStatus) {
        let mut s = self.state.lock();
        if s.completed.contains_key(&info.batch_time) {
            return;
        }
        let entry = s
            .active
            .entry(info.batch_time)
            .or_insert_with(|| BatchEntry {
                status,
                info: Arc::new(info.clone()),
                live_outputs: BTreeMap::new(),
            });
        entry.status = status;
        entry.info = Arc::new(info.clone());
    }

    fn complete(&self, info: &Arc<BatchInfo>) {
        let mut s = self.state.lock();
        let live = s
            .active
            .remove(&info.batch_time)
            .map(|e| e.live_outputs)
            .unwrap_or_default();
        if s.completed.contains_key(&info.batch_time) {
            return;
        }
        s.total_completed += 1;
        s.total_processed_records += info.num_records();
        s.completed.insert(
            info.batch_time,
            BatchEntry {
                status: BatchStatus::Completed,
                info: info.clone(),
                live_outputs: live,
            },
        );
        while s.completed.len() > self.retained {
            s.completed.pop_first();
        }
    }

    fn output_event(&self, op: &OutputOperationInfo) {
        let mut s = self.state.lock();
        if let Some(entry) = s.active.get_mut(&op.batch_time) {
            entry.live_outputs.insert(op.id, op.clone());
        }
    }

    fn receiver_event(&self, info: &ReceiverInfo) {
        let mut s = self.state.lock();
        let now = Time::now();
        let entry = s
            .receivers
            .entry(info.input_id.clone())
            .or_insert_with(|| ReceiverEntry { info: info.clone() });
        // An error report may come from a context that does not repeat the last error on
        // later events; keep the last one seen.
        let (last_error, last_error_time) = match &info.last_error {
            Some(e) => (Some(e.clone()), info.last_error_time.or(Some(now))),
            None => (entry.info.last_error.clone(), entry.info.last_error_time),
        };
        entry.info = info.clone();
        entry.info.last_error = last_error;
        entry.info.last_error_time = last_error_time;
    }
}

impl BatchStore {
    fn input_error(&self, info: &InputErrorInfo) {
        let mut s = self.state.lock();
        let errors = s.input_errors.entry(info.input_id.clone()).or_default();
        errors.total += 1;
        errors.recent.push_back(info.clone());
        while errors.recent.len() > RETAINED_INPUT_ERRORS {
            errors.recent.pop_front();
        }
    }
}

impl StreamingListener for BatchStore {
    fn on_streaming_started(&self, time: Time) {
        let mut s = self.state.lock();
        s.start_time = Some(time);
        s.stop_time = None;
    }

    fn on_receiver_started(&self, info: &ReceiverInfo) {
        self.receiver_event(info);
    }

    fn on_receiver_error(&self, info: &ReceiverInfo) {
        self.receiver_event(info);
    }

    fn on_receiver_stopped(&self, info: &ReceiverInfo) {
        let mut stopped = info.clone();
        stopped.active = false;
        self.receiver_event(&stopped);
    }

    fn on_input_error(&self, info: &InputErrorInfo) {
        self.input_error(info);
    }

    fn on_batch_submitted(&self, info: &BatchInfo) {
        self.upsert_active(info, BatchStatus::Queued);
    }

    fn on_batch_started(&self, info: &BatchInfo) {
        self.upsert_active(info, BatchStatus::Processing);
    }

    fn on_batch_completed(&self, info: &BatchInfo) {
        self.complete(&Arc::new(info.clone()));
    }

    fn on_output_operation_started(&self, info: &OutputOperationInfo) {
        self.output_event(info);
    }

    fn on_output_operation_completed(&self, info: &OutputOperationInfo) {
        self.output_event(info);
    }

    fn on_streaming_stopped(&self, time: Time) {
        let mut s = self.state.lock();
        s.stop_time = Some(time);
        // Batches still listed as active when the context stopped will never complete.
        s.active.clear();
        for r in s.receivers.values_mut() {
            r.info.active = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(t: u64, records: u64) -> BatchInfo {
        BatchInfo {
            batch_time: Time(t),
            input_infos: BTreeMap::from([(
                "in-0".to_owned(),
                spate_streaming::InputInfo {
                    input_id: "in-0".to_owned(),
                    num_records: records,
                    ..Default::default()
                },
            )]),
            submission_time: Time(t),
            processing_start_time: None,
            processing_end_time: None,
            output_operation_infos: BTreeMap::new(),
            failure: None,
            planning_micros: 0,
            scheduling_micros: None,
            processing_micros: None,
            recovered: false,
        }
    }

    #[test]
    fn lifecycle_moves_batches_and_bounds_completed() {
        let store = BatchStore::new(2, 100);
        for t in [100, 200, 300] {
            let mut b = batch(t, t / 100);
            store.on_batch_submitted(&b);
            assert_eq!(store.batch(Time(t)).unwrap().status, BatchStatus::Queued);
            b.processing_start_time = Some(Time(t + 1));
            store.on_batch_started(&b);
            assert_eq!(
                store.batch(Time(t)).unwrap().status,
                BatchStatus::Processing
            );
            b.processing_end_time = Some(Time(t + 5));
            store.on_batch_completed(&b);
        }
        // Delivered twice (seed + bus): counted once.
        store.seed(&[Arc::new(batch(300, 3))]);
        let snap = store.snapshot();
        assert!(snap.active.is_empty());
        let times: Vec<u64> = snap.completed.iter().map(|b| b.info.batch_time.0).collect();
        assert_eq!(times, vec![200, 300]);
        assert_eq!(snap.total_completed, 3);
        assert_eq!(snap.total_processed_records, 6);
        assert!(store.batch(Time(100)).is_none());
    }

    #[test]
    fn receiver_keeps_last_error_and_stops() {
        let store = BatchStore::new(10, 100);
        let mut r = ReceiverInfo {
            input_id: "in-1".into(),
            name: "kafka".into(),
            active: true,
            ..Default::default()
        };
        store.on_receiver_started(&r);
        r.last_error = Some("broker down".into());
        store.on_receiver_error(&r);
        r.last_error = None;
        store.on_receiver_stopped(&r);
        let snap = store.snapshot();
        assert_eq!(snap.receivers.len(), 1);
        assert!(!snap.receivers[0].info.active);
        assert_eq!(
            snap.receivers[0].info.last_error.as_deref(),
            Some("broker down")
        );
        assert!(snap.receivers[0].info.last_error_time.is_some());
    }

    #[test]
    fn input_errors_count_all_and_keep_the_newest() {
        let store = BatchStore::new(10, 100);
        store.on_batch_submitted(&batch(100, 1));
        assert_eq!(store.snapshot().input_ids(), vec!["in-0".to_owned()]);
        for i in 0..(RETAINED_INPUT_ERRORS as u64 + 5) {
            store.on_input_error(&InputErrorInfo {
                input_id: "kafka_direct-0".into(),
                time: Time(1_000 + i),
                message: format!("attempt {i}"),
            });
        }
        let snap = store.snapshot();
        let e = &snap.input_errors["kafka_direct-0"];
        assert_eq!(e.total, RETAINED_INPUT_ERRORS as u64 + 5);
        assert_eq!(e.recent.len(), RETAINED_INPUT_ERRORS);
        assert_eq!(e.recent[0].message, "attempt 5");
        assert_eq!(e.last().map(|l| l.message.as_str()), Some("attempt 24"));
        assert!(!snap.input_errors.contains_key("in-0"));
        assert_eq!(snap.input_ids(), vec!["in-0", "kafka_direct-0"]);
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            BatchStatus::Queued,
            BatchStatus::Processing,
            BatchStatus::Completed,
        ] {
            assert_eq!(BatchStatus::parse(&s.as_str().to_lowercase()), Some(s));
        }
        assert_eq!(BatchStatus::parse("done"), None);
    }
}

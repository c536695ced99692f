//! Counters and gauges a metrics endpoint can read, and the retained batches a UI shows.
//!
//! Names follow Spark's `StreamingSource` so dashboards carry over: `totalCompletedBatches`,
//! `totalReceivedRecords`, `totalProcessedRecords`, `unprocessedBatches`, `waitingBatches`,
//! `runningBatches`, `retainedCompletedBatches`, `lastCompletedBatch_*`, `lastReceivedBatch_*`;
//! `-1` means unknown. The scheduler updates these directly (not through the asynchronous
//! listener bus) so a reader never sees a stale count.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::input::ownership::{InputOwnershipInfo, RebalanceInfo};
use crate::listener::{BatchInfo, StateRestoreInfo};

/// Rebalances kept per input (the newest); older ones only count in the totals.
pub const RETAINED_REBALANCES: usize = 20;

/// One input's ownership as the metrics know it: the latest report and the newest rebalances
/// (see [`crate::input::ownership`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputOwnership {
    /// The latest report (its `rebalance` is the last one reported).
    pub latest: InputOwnershipInfo,
    /// The last [`RETAINED_REBALANCES`] rebalances, oldest first, each in its latest form
    /// (an assignment gains its first-batch time after it was first reported).
    pub recent_rebalances: Vec<RebalanceInfo>,
}

/// Live counters of a running context.
#[derive(Debug)]
pub struct StreamingMetrics {
    retained_capacity: usize,
    pub(crate) receivers: AtomicI64,
    total_completed: AtomicU64,
    total_failed: AtomicU64,
    total_received_records: AtomicU64,
    total_processed_records: AtomicU64,
    waiting: AtomicI64,
    running: AtomicI64,
    last_received: Mutex<Option<Arc<BatchInfo>>>,
    last_completed: Mutex<Option<Arc<BatchInfo>>>,
    retained: Mutex<VecDeque<Arc<BatchInfo>>>,
    /// The latest restore report of each (state operator, partition).
    restores: Mutex<BTreeMap<(String, usize), StateRestoreInfo>>,
    /// Ownership of each shared input, by input id.
    ownership: Mutex<BTreeMap<String, InputOwnership>>,
}

impl StreamingMetrics {
    pub(crate) fn new(retained_capacity: usize) -> Self {
        StreamingMetrics {
            retained_capacity,
            receivers: AtomicI64::new(0),
            total_completed: AtomicU64::new(0),
            total_failed: AtomicU64::new(0),
            total_received_records: AtomicU64::new(0),
            total_processed_records: AtomicU64::new(0),
            waiting: AtomicI64::new(0),
            running: AtomicI64::new(0),
            last_received: Mutex::new(None),
            last_completed: Mutex::new(None),
            retained: Mutex::new(VecDeque::new()),
            restores: Mutex::new(BTreeMap::new()),
            ownership: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn batch_submitted(&self, info: &Arc<BatchInfo>) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.total_received_records
            .fetch_add(info.num_records(), Ordering::Relaxed);
        *self.last_received.lock() = Some(info.clone());
    }

    pub(crate) fn batch_started(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn batch_completed(&self, info: &Arc<BatchInfo>) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        if info.failure_reason().is_some() {
            self.total_failed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.total_completed.fetch_add(1, Ordering::Relaxed);
            self.total_processed_records
                .fetch_add(info.num_records(), Ordering::Relaxed);
        }
        *self.last_completed.lock() = Some(info.clone());
        let mut r = self.retained.lock();
        r.push_back(info.clone());
        while r.len() > self.retained_capacity {
            r.pop_front();
        }
    }

    pub(crate) fn state_restore(&self, info: &StateRestoreInfo) {
        self.restores
            .lock()
            .insert((info.operator.clone(), info.partition), info.clone());
    }

    /// A cancelled restore leaves no report behind (its task went to another instance).
    pub(crate) fn forget_state_restore(&self, operator: &str, partition: usize) {
        self.restores
            .lock()
            .remove(&(operator.to_owned(), partition));
    }

    /// The latest restore progress of every state partition restored from a changelog in this
    /// run, by operator and partition (what a UI shows while a job restores).
    pub fn state_restores(&self) -> Vec<StateRestoreInfo> {
        self.restores.lock().values().cloned().collect()
    }

    pub(crate) fn input_ownership(&self, info: &InputOwnershipInfo) {
        let mut all = self.ownership.lock();
        let entry = all
            .entry(info.input_id.clone())
            .or_insert_with(|| InputOwnership {
                latest: info.clone(),
                recent_rebalances: Vec::new(),
            });
        entry.latest = info.clone();
        if let Some(r) = &info.rebalance {
            let recent = &mut entry.recent_rebalances;
            match recent.iter_mut().find(|old| old.seq == r.seq) {
                Some(old) => *old = r.clone(),
                None => recent.push(r.clone()),
            }
            recent.sort_by_key(|r| r.seq);
            let excess = recent.len().saturating_sub(RETAINED_REBALANCES);
            recent.drain(..excess);
        }
    }

    /// The ownership of every input shared through a group (e.g. a group-managed Kafka
    /// stream), by input id: the partitions this instance owns and its recent rebalances.
    pub fn input_ownerships(&self) -> Vec<InputOwnership> {
        self.ownership.lock().values().cloned().collect()
    }

    /// Batches completed successfully.
    pub fn total_completed_batches(&self) -> u64 {
        self.total_completed.load(Ordering::Relaxed)
    }

    /// Batches that failed.
    pub fn total_failed_batches(&self) -> u64 {
        self.total_failed.load(Ordering::Relaxed)
    }

    /// Planned batches not yet started.
    pub fn waiting_batches(&self) -> i64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Batches running now (0 or 1: batches run in order).
    pub fn running_batches(&self) -> i64 {
        self.running.load(Ordering::SeqCst)
    }

    /// The newest completed batches, oldest first (at most `spate.streaming.ui.retained.batches`).
    pub fn retained_batches(&self) -> Vec<Arc<BatchInfo>> {
        self.retained.lock().iter().cloned().collect()
    }

    /// The last completed batch.
    pub fn last_completed_batch(&self) -> Option<Arc<BatchInfo>> {
        self.last_completed.lock().clone()
    }

    /// All gauges with Spark's names, `-1` for unknown.
    pub fn gauges(&self) -> Vec<(&'static str, i64)> {
        let waiting = self.waiting_batches();
        let running = self.running_batches();
        let t = |o: Option<crate::time::Time>| o.map(|t| t.as_millis() as i64).unwrap_or(-1);
        let d = |o: Option<u64>| o.map(|v| v as i64).unwrap_or(-1);
        let lc = self.last_completed_batch();
        let lr = self.last_received.lock().clone();
        vec![
            ("receivers", self.receivers.load(Ordering::Relaxed)),
            (
                "totalCompletedBatches",
                self.total_completed_batches() as i64,
            ),
            (
                "totalReceivedRecords",
                self.total_received_records.load(Ordering::Relaxed) as i64,
            ),
            (
                "totalProcessedRecords",
                self.total_processed_records.load(Ordering::Relaxed) as i64,
            ),
            ("unprocessedBatches", waiting + running),
            ("waitingBatches", waiting),
            ("runningBatches", running),
            (
                "retainedCompletedBatches",
                self.retained.lock().len() as i64,
            ),
            (
                "lastCompletedBatch_submissionTime",
                t(lc.as_ref().map(|b| b.submission_time)),
            ),
            (
                "lastCompletedBatch_processingStartTime",
                t(lc.as_ref().and_then(|b| b.processing_start_time)),
            ),
            (
                "lastCompletedBatch_processingEndTime",
                t(lc.as_ref().and_then(|b| b.processing_end_time)),
            ),
            (
                "lastCompletedBatch_processingDelay",
                d(lc.as_ref().and_then(|b| b.processing_delay())),
            ),
            (
                "lastCompletedBatch_schedulingDelay",
                d(lc.as_ref().and_then(|b| b.scheduling_delay())),
            ),
            (
                "lastCompletedBatch_totalDelay",
                d(lc.as_ref().and_then(|b| b.total_delay())),
            ),
            (
                "lastReceivedBatch_submissionTime",
                t(lr.as_ref().map(|b| b.submission_time)),
            ),
            (
                "lastReceivedBatch_records",
                lr.as_ref().map(|b| b.num_records() as i64).unwrap_or(-1),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::ownership::{InputPartition, RebalanceKind, RebalanceTotals};
    use crate::time::Time;

    fn report(seq: u64, first_batch_ms: Option<u64>) -> InputOwnershipInfo {
        InputOwnershipInfo {
            input_id: "kafka_direct-0".into(),
            group: "g".into(),
            group_instance_id: Some("a".into()),
            member_id: None,
            client_id: "c".into(),
            owned: vec![InputPartition {
                topic: "t".into(),
                partition: 0,
            }],
            rebalances: RebalanceTotals {
                assigned: seq,
                revoked: 0,
                lost: 0,
            },
            rebalance: Some(RebalanceInfo {
                seq,
                kind: RebalanceKind::Assigned,
                partitions: Vec::new(),
                time: Time(seq),
                revocation_wait_ms: None,
                revocation_finished: None,
                first_batch_ms,
            }),
            time: Time(seq),
        }
    }

    #[test]
    fn ownership_keeps_the_newest_rebalances_and_completes_them_in_place() {
        let m = StreamingMetrics::new(10);
        for seq in 1..=(RETAINED_REBALANCES as u64 + 3) {
            m.input_ownership(&report(seq, None));
        }
        // The first batch of the newest assignment completes it, in place.
        let newest = RETAINED_REBALANCES as u64 + 3;
        m.input_ownership(&report(newest, Some(42)));
        let all = m.input_ownerships();
        assert_eq!(all.len(), 1);
        let seqs: Vec<u64> = all[0].recent_rebalances.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (4..=newest).collect::<Vec<_>>());
        assert_eq!(
            all[0].recent_rebalances.last().unwrap().first_batch_ms,
            Some(42)
        );
        assert_eq!(all[0].latest.instance_id(), "a");
        assert_eq!(all[0].latest.rebalances.assigned, newest);
    }
}

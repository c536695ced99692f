//! What the cleaner must know about transactions, and how it follows them through a log.
//!
//! The partition tells the cleaner ([`PartitionView`]) where the stable part of its log ends
//! (the last stable offset: nothing at or past it is cleaned, so data of an open transaction is
//! never compacted against), which transactions were aborted, and which batch holds each live
//! producer's last sequence (kept, possibly emptied, so idempotent producers are not fenced
//! after a restart). [`TxnTracker`] then follows a pass over the log as Kafka's cleaner does:
//! batches of aborted transactions are dropped (and never enter the offset map); a COMMIT or
//! ABORT marker is removed only once no batch of its transaction is left before it, and then
//! only after its delete horizon (the same `delete.retention.ms` as tombstones) has passed, so
//! that a consumer in the middle of reading the transaction still sees the marker.

use std::collections::{HashMap, HashSet};

use crate::record_batch::BatchHeader;

/// An aborted transaction: its producer, its first offset and the offset of its ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transactional producer's id.
    pub producer_id: i64,
    /// The offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// The offset of the transaction's ABORT marker.
    pub last_offset: i64,
}

/// What the cleaner asks a partition beyond its log.
pub trait PartitionView: Send + Sync {
    /// The last stable offset (the high watermark when there are no open transactions). The
    /// cleaner cleans only segments wholly below it.
    fn last_stable_offset(&self) -> i64;

    /// Aborted transactions whose data overlaps `[from, to)`, ordered by first offset.
    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn>;

    /// For each producer with live idempotence state, the last offset of its last batch: that
    /// batch is kept (emptied if need be) so its sequence survives cleaning.
    fn producer_last_offsets(&self) -> HashMap<i64, i64>;
}

/// A log with no transactions: stable up to `log_end_offset`, nothing aborted, no producer
/// state to preserve (storage-level tools and tests).
#[derive(Debug, Clone, Copy)]
pub struct NoTransactions {
    /// The log end offset, up to which the log counts as stable.
    pub log_end_offset: i64,
}

impl PartitionView for NoTransactions {
    fn last_stable_offset(&self) -> i64 {
        self.log_end_offset
    }

    fn aborted_transactions(&self, _from: i64, _to: i64) -> Vec<AbortedTxn> {
        Vec::new()
    }

    fn producer_last_offsets(&self) -> HashMap<i64, i64> {
        HashMap::new()
    }
}

/// Control record types (the second int16 of a control record's key).
pub const CONTROL_ABORT: i16 = 0;
/// The control record type of a COMMIT marker.
pub const CONTROL_COMMIT: i16 = 1;

/// Follows transactions through one pass over batches in offset order (Kafka's
/// `CleanedTransactionMetadata`).
#[derive(Debug, Default)]
pub struct TxnTracker {
    /// Aborted transactions not reached yet, sorted by first offset (popped from the front).
    pending_aborted: Vec<AbortedTxn>,
    next_aborted: usize,
    /// Producers inside an aborted transaction at the current position.
    ongoing_aborted: HashSet<i64>,
    /// Producers inside a committed (or not aborted) transaction whose data was seen.
    ongoing_committed: HashSet<i64>,
}

impl TxnTracker {
    /// A tracker over the aborted transactions `aborted` of the range being cleaned.
    pub fn new(mut aborted: Vec<AbortedTxn>) -> TxnTracker {
        aborted.sort_by_key(|a| a.first_offset);
        TxnTracker {
            pending_aborted: aborted,
            ..TxnTracker::default()
        }
    }

    fn admit_aborted_up_to(&mut self, offset: i64) {
        while let Some(a) = self.pending_aborted.get(self.next_aborted) {
            if a.first_offset > offset {
                break;
            }
            self.ongoing_aborted.insert(a.producer_id);
            self.next_aborted += 1;
        }
    }

    /// A data batch: returns true when it belongs to an aborted transaction (drop it).
    pub fn on_data_batch(&mut self, h: &BatchHeader) -> bool {
        if !h.is_transactional() {
            return false;
        }
        self.admit_aborted_up_to(h.last_offset());
        if self.ongoing_aborted.contains(&h.producer_id) {
            return true;
        }
        self.ongoing_committed.insert(h.producer_id);
        false
    }

    /// A control batch of type `control` (`None` if unreadable): returns true when no data of
    /// its transaction was seen in this pass, so the marker may go once its horizon passed.
    pub fn on_control_batch(&mut self, h: &BatchHeader, control: Option<i16>) -> bool {
        self.admit_aborted_up_to(h.last_offset());
        match control {
            Some(CONTROL_ABORT) => {
                // Aborted data is always dropped, so nothing of it survives before the marker.
                self.ongoing_aborted.remove(&h.producer_id);
                self.ongoing_committed.remove(&h.producer_id);
                true
            }
            Some(CONTROL_COMMIT) => !self.ongoing_committed.remove(&h.producer_id),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, base: i64, last_delta: i32, txn: bool, control: bool) -> BatchHeader {
        let mut attributes = 0;
        if txn {
            attributes |= 0x10;
        }
        if control {
            attributes |= 0x20;
        }
        BatchHeader {
            base_offset: base,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: last_delta,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: last_delta + 1,
        }
    }

    #[test]
    fn drops_aborted_data_and_frees_markers_of_empty_transactions() {
        let aborted = vec![AbortedTxn {
            producer_id: 7,
            first_offset: 10,
            last_offset: 20,
        }];
        let mut t = TxnTracker::new(aborted);
        assert!(!t.on_data_batch(&header(7, 0, 4, true, false)));
        assert!(!t.on_control_batch(&header(7, 5, 0, true, true), Some(CONTROL_COMMIT)));
        assert!(t.on_data_batch(&header(7, 10, 4, true, false)));
        assert!(!t.on_data_batch(&header(8, 15, 0, true, false)));
        assert!(t.on_control_batch(&header(7, 20, 0, true, true), Some(CONTROL_ABORT)));
        // A commit whose data is gone (none seen in this pass) may be removed.
        assert!(t.on_control_batch(&header(9, 30, 0, true, true), Some(CONTROL_COMMIT)));
        assert!(!t.on_data_batch(&header(-1, 31, 0, false, false)));
    }
}

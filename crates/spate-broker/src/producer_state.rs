//! Idempotent producers: producer id allocation (InitProducerId) and, per partition, the
//! sequence bookkeeping that turns a producer's retries into exactly-once appends.
//!
//! Kafka's rules (`ProducerStateManager` / `ProducerAppendInfo`): for each producer id a partition
//! remembers the epoch and the last five batches' sequence ranges and offsets. A retried batch that
//! matches one of those five is a duplicate and is acknowledged with its *original* offsets
//! without being appended again; a batch from an older epoch is fenced; a batch that leaves a gap
//! in the sequence is out of order. The state is rebuilt on start from the batch headers in the
//! log, so a restart does not forget which batches were already written.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::persist;
use crate::record_batch::BatchHeader;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5, which
/// is why clients cap `max.in.flight.requests.per.connection` at 5 with idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    /// Largest batch timestamp seen: what `producer.id.expiration.ms` is measured against, as
    /// in Kafka (so a replay of the log on start expires the same producers).
    last_timestamp: i64,
    /// First offset of this producer's open transaction in this partition (its first
    /// transactional batch since the last marker): what holds the last stable offset back.
    #[serde(default)]
    txn_first_offset: Option<i64>,
    /// Coordinator epoch of the last marker taken for this producer (-1: none yet); a marker
    /// from an older coordinator epoch is fenced, as in Kafka.
    #[serde(default = "no_coordinator_epoch")]
    coordinator_epoch: i32,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

/// The verdict on one incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already written: acknowledge with these offsets and do not append.
    Duplicate {
        /// The offset the earlier copy's first record got.
        base_offset: i64,
        /// The offset the earlier copy's last record got.
        last_offset: i64,
    },
}

/// Sequence and open-transaction state of every producer that wrote to one partition.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The producer's id.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub epoch: i16,
    /// The sequence number of the producer's last record in this partition.
    pub last_sequence: i32,
    /// The timestamp of the producer's last batch (ms), for `producer.id.expiration.ms`.
    pub last_timestamp: i64,
    /// First offset of its open transaction, -1 when none.
    pub current_txn_start_offset: i64,
    /// Coordinator epoch of the last marker for it, -1 when none.
    pub coordinator_epoch: i32,
}

fn last_seq_of(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX back to 0, as in Kafka's DefaultRecordBatch.
    let last = h.base_sequence as i64 + h.last_offset_delta as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

fn in_sequence(last_seq: i32, next_first: i32) -> bool {
    next_first as i64 == last_seq as i64 + 1 || (last_seq == i32::MAX && next_first == 0)
}

impl PartitionProducers {
    /// For each producer, the last offset of its last batch (the batch holding its last
    /// sequence, which the log cleaner must keep).
    pub fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, e)| e.batches.back().map(|b| (*id, b.last_offset)))
            .collect()
    }

    /// Decides what to do with a batch from an idempotent producer (`producer_id >= 0`).
    pub fn check(&self, partition: &str, h: &BatchHeader) -> Result<SequenceCheck> {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            if h.base_sequence != 0 {
                return Err(BrokerError::UnknownProducerId {
                    partition: partition.to_string(),
                    producer_id: h.producer_id,
                    sequence: h.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(BrokerError::InvalidProducerEpoch {
                partition: partition.to_string(),
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current_epoch: entry.epoch,
            });
        }
        let first = h.base_sequence;
        let last = last_seq_of(h);
        if h.producer_epoch > entry.epoch {
            // A bumped epoch restarts the sequence.
            if first != 0 {
                return Err(BrokerError::OutOfOrderSequence {
                    partition: partition.to_string(),
                    producer_id: h.producer_id,
                    expected: 0,
                    received: first,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            });
        }
        let last_seq = entry.batches.back().map(|b| b.last_seq).unwrap_or(-1);
        if !in_sequence(last_seq, first) {
            return Err(BrokerError::OutOfOrderSequence {
                partition: partition.to_string(),
                producer_id: h.producer_id,
                expected: last_seq.wrapping_add(1).max(0),
                received: first,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that was appended at `base_offset` (also used when replaying the log).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 || h.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: h.max_timestamp,
                txn_first_offset: None,
                coordinator_epoch: -1,
            });
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
        }
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_seq: h.base_sequence,
            last_seq: last_seq_of(h),
            base_offset,
            last_offset: base_offset + h.last_offset_delta as i64,
        });
    }

    /// Checks a transaction marker's epochs against the producer's: an older producer epoch is
    /// fenced (a marker of a coordinator that lost a race with a newer producer instance), and
    /// so is an older coordinator epoch than the last marker's (Kafka's
    /// `ProducerAppendInfo.appendEndTxnMarker`).
    pub fn check_marker(
        &self,
        partition: &str,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<()> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(BrokerError::InvalidProducerEpoch {
                partition: partition.to_string(),
                producer_id,
                epoch,
                current_epoch: e.epoch,
            }),
            Some(e) if coordinator_epoch < e.coordinator_epoch => {
                Err(BrokerError::TransactionCoordinatorFenced {
                    partition: partition.to_string(),
                    producer_id,
                    coordinator_epoch,
                    current: e.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a transaction marker appended at `offset`: the producer's open transaction (if
    /// any) ends, and its epoch moves up to the marker's (so a producer fenced by the
    /// coordinator cannot append with the old epoch). Returns the first offset of the
    /// transaction it ended. `coordinator_epoch` is the marker's (`None` when replaying batch
    /// headers, which do not hold it: the snapshot's value stays).
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: Option<i32>,
        timestamp: i64,
    ) -> Option<i64> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: timestamp,
                txn_first_offset: None,
                coordinator_epoch: -1,
            });
        if let Some(c) = coordinator_epoch {
            entry.coordinator_epoch = entry.coordinator_epoch.max(c);
        }
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        entry.txn_first_offset.take()
    }

    /// First offset of this producer's open transaction in the partition.
    pub fn open_txn(&self, producer_id: i64) -> Option<i64> {
        self.producers.get(&producer_id)?.txn_first_offset
    }

    /// The smallest first offset of any open transaction: the last stable offset, when there
    /// is one.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Every producer, for DescribeProducers.
    pub fn describe(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(&id, e)| ProducerInfo {
                producer_id: id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Forgets producers that have not written for `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`), so short-lived producers do not accumulate forever. A
    /// producer with an open transaction is kept until the transaction ends. Returns how many
    /// were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// How many producers this partition remembers.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state in this partition.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The largest producer id seen (to keep the allocator ahead of ids found in logs).
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }
}

/// Producer ids are handed out from blocks reserved on disk, as Kafka's controller does
/// (`AllocateProducerIds`), so an id is never reused after a restart even though not every
/// allocation is written down.
pub struct ProducerIdAllocator {
    state: Mutex<AllocState>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for ProducerIdAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIdAllocator")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

struct AllocState {
    next: i64,
    block_end: i64,
}

const BLOCK_SIZE: i64 = 1000;

#[derive(Serialize, Deserialize)]
struct StoredBlock {
    /// Every id below this may have been handed out.
    block_end: i64,
}

impl ProducerIdAllocator {
    /// Opens the allocator, persisting blocks in `path` when given.
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let start = match &path {
            Some(p) => persist::read_json::<StoredBlock>(p)?
                .map(|b| b.block_end)
                .unwrap_or(0),
            None => 0,
        };
        Ok(ProducerIdAllocator {
            state: Mutex::new(AllocState {
                next: start,
                block_end: start,
            }),
            path,
        })
    }

    /// Makes sure future ids are above `id` (an id found in a log on start).
    pub fn observe(&self, id: i64) {
        let mut st = self.state.lock();
        if id >= st.next {
            st.next = id + 1;
        }
    }

    /// Allocates a fresh producer id.
    pub fn allocate(&self) -> Result<i64> {
        let mut st = self.state.lock();
        if st.next >= st.block_end {
            let block_end = st.next + BLOCK_SIZE;
            if let Some(p) = &self.path {
                persist::write_json(p, &StoredBlock { block_end })?;
            }
            st.block_end = block_end;
        }
        let id = st.next;
        st.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, n: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn accepts_in_order_and_detects_duplicates() {
        let mut p = PartitionProducers::default();
        let b0 = header(7, 0, 0, 3);
        assert_eq!(p.check("t-0", &b0).unwrap(), SequenceCheck::Append);
        p.record(&b0, 10);
        let b1 = header(7, 0, 3, 2);
        assert_eq!(p.check("t-0", &b1).unwrap(), SequenceCheck::Append);
        p.record(&b1, 13);
        assert_eq!(
            p.check("t-0", &b0).unwrap(),
            SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        let gap = header(7, 0, 9, 1);
        assert!(matches!(
            p.check("t-0", &gap),
            Err(BrokerError::OutOfOrderSequence { expected: 5, .. })
        ));
    }

    #[test]
    fn fences_old_epochs_and_unknown_producers() {
        let mut p = PartitionProducers::default();
        assert!(matches!(
            p.check("t-0", &header(1, 0, 5, 1)),
            Err(BrokerError::UnknownProducerId { .. })
        ));
        p.record(&header(1, 2, 0, 1), 0);
        assert!(matches!(
            p.check("t-0", &header(1, 1, 1, 1)),
            Err(BrokerError::InvalidProducerEpoch { .. })
        ));
        assert!(p.check("t-0", &header(1, 3, 0, 1)).is_ok());
        assert!(p.check("t-0", &header(1, 3, 4, 1)).is_err());
    }

    #[test]
    fn remembers_only_the_last_five_batches() {
        let mut p = PartitionProducers::default();
        for i in 0..7 {
            p.record(&header(1, 0, i, 1), i as i64);
        }
        assert!(matches!(
            p.check("t-0", &header(1, 0, 6, 1)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        assert!(p.check("t-0", &header(1, 0, 0, 1)).is_err());
    }

    #[test]
    fn idle_producers_expire() {
        let mut p = PartitionProducers::default();
        let mut old = header(1, 0, 0, 1);
        old.max_timestamp = 1_000;
        let mut fresh = header(2, 0, 0, 1);
        fresh.max_timestamp = 90_000;
        p.record(&old, 0);
        p.record(&fresh, 1);
        assert_eq!(p.expire(100_000, 50_000), 1);
        assert_eq!(p.len(), 1);
        assert!(matches!(
            p.check("t-0", &header(1, 0, 1, 1)),
            Err(BrokerError::UnknownProducerId { .. })
        ));
        assert!(p.check("t-0", &header(2, 0, 1, 1)).is_ok());
    }

    #[test]
    fn ids_are_not_reused_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("producer_ids.json");
        let a = ProducerIdAllocator::open(Some(path.clone())).unwrap();
        let first = a.allocate().unwrap();
        let second = a.allocate().unwrap();
        assert_eq!(second, first + 1);
        let b = ProducerIdAllocator::open(Some(path)).unwrap();
        assert!(b.allocate().unwrap() > second);
        b.observe(5000);
        assert_eq!(b.allocate().unwrap(), 5001);
    }
}

//! Partition storage behind a trait.
//!
//! The request handlers see a partition as a [`PartitionLog`]: append a producer's batch (the log
//! assigns its base offset), read whole batches from an offset, look offsets up by time, and move
//! the log start offset forward (DeleteRecords, retention). [`LogStorage`] opens and removes
//! partition logs. Two backends implement it: the durable segmented log on disk (the default) and
//! an in-memory log for tests that do not need durability. One conformance suite
//! (`storage::conformance`) runs against each backend, so they cannot drift apart.

#[cfg(test)]
mod conformance;
pub mod disk;
pub mod memory;

pub use disk::{DiskLog, DiskOptions, DiskStorage};
pub use memory::MemoryStorage;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::record_batch::BatchHeader;

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's index within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: old segments are deleted by retention.
    Delete,
    /// `compact`: the cleaner keeps the latest record of each key.
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

/// Per-partition log settings, named after Kafka's topic configs; defaults are Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes` (default 1 GiB): roll to a new segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms` (default 7 days): roll a segment this old even if it is not full.
    pub segment_ms: i64,
    /// `retention.ms` (default 7 days; -1 = keep forever).
    pub retention_ms: i64,
    /// `retention.bytes` (default -1 = no size limit).
    pub retention_bytes: i64,
    /// `max.message.bytes` (default 1048588): the largest batch accepted.
    pub max_message_bytes: usize,
    /// `cleanup.policy` (default delete).
    pub cleanup_policy: CleanupPolicy,
    /// `flush.messages` (default: never force by count; the OS page cache decides).
    pub flush_messages: u64,
    /// `flush.ms` (default: never force by time).
    pub flush_ms: u64,
    /// `index.interval.bytes` (default 4096): bytes between sparse index entries.
    pub index_interval_bytes: usize,
    /// `delete.retention.ms` (default 1 day): how long the cleaner keeps a tombstone (and a
    /// transaction marker) after the cleaning that first kept it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio` (default 0.5): the dirty ratio above which a compacted log
    /// is cleaned.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms` (default 0): records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (default: never): a record older than this is compacted whatever
    /// the dirty ratio, and the active segment rolls by then.
    pub max_compaction_lag_ms: i64,
    /// `compression.type`: `None` for `producer` (batches stored as sent), else the codec every
    /// produced batch is recompressed with (`Compression::None` for `uncompressed`).
    pub compression_type: Option<crate::record_batch::Compression>,
    /// `min.insync.replicas` (default 1): `acks=all` produces fail with NOT_ENOUGH_REPLICAS
    /// when it is above 1, since this broker is the only replica.
    pub min_insync_replicas: i32,
}

impl LogConfig {
    /// Whether the cleaner compacts this log.
    pub fn compact(&self) -> bool {
        self.cleanup_policy != CleanupPolicy::Delete
    }

    /// Whether retention (`retention.ms`, `retention.bytes`) deletes old segments.
    pub fn delete(&self) -> bool {
        self.cleanup_policy != CleanupPolicy::Compact
    }

    /// `segment.ms`, shortened to `max.compaction.lag.ms` on compacted logs so that the active
    /// segment (which is never cleaned) cannot hold a record past its compaction deadline.
    pub fn effective_segment_ms(&self) -> i64 {
        if self.compact() {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            cleanup_policy: CleanupPolicy::Delete,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            index_interval_bytes: 4096,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            compression_type: None,
            min_insync_replicas: 1,
        }
    }
}

/// An aborted transaction's range in one partition (an entry of Kafka's per-segment
/// transaction index, `.txnindex`): read_committed fetches return these so that consumers drop
/// the aborted records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transactional producer's id.
    pub producer_id: i64,
    /// First offset of the transaction's data in the partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset right after the marker.
    pub last_stable_offset: i64,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// The offset the batch's first record got.
    pub base_offset: i64,
    /// The offset the batch's last record got.
    pub last_offset: i64,
    /// Log start offset after the append (Produce responses carry it).
    pub log_start_offset: i64,
}

/// One partition's log. Implementations serialise appends internally and allow reads
/// concurrently with appends; every method takes `&self`.
pub trait PartitionLog: Send + Sync {
    /// Appends one RecordBatch v2 exactly as the producer sent it. The caller has validated the
    /// CRC and passes the parsed `header`; the log rewrites `baseOffset` to the next offset and
    /// stores the bytes. Fails with `RecordBatchTooLarge` past `max.message.bytes`.
    fn append(&self, batch: &mut [u8], header: &BatchHeader) -> Result<AppendInfo>;

    /// Reads whole batches starting with the one that contains `offset`, up to `max_bytes`
    /// (at least one whole batch is returned if any exists, as Kafka does, so that a batch larger
    /// than `max_bytes` cannot stall a consumer). `offset == log_end_offset` returns empty bytes.
    /// An offset below the log start or above the end fails with `OffsetOutOfRange`.
    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes>;

    /// First offset still in the log.
    fn log_start_offset(&self) -> i64;

    /// Offset the next appended record will get (the high watermark on a single broker).
    fn log_end_offset(&self) -> i64;

    /// ListOffsets by timestamp: the first offset whose batch max timestamp is ≥ `timestamp`,
    /// with that batch's max timestamp; `None` if no such batch.
    fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>>;

    /// ListOffsets MAX_TIMESTAMP (-3): `(timestamp, offset)` of the batch with the largest
    /// timestamp (the last one on ties); `None` for an empty log.
    fn max_timestamp(&self) -> Option<(i64, i64)>;

    /// DeleteRecords: moves the log start offset to `offset` (clamped to the log end) and drops
    /// whole segments below it. Returns the new log start offset.
    fn delete_records_before(&self, offset: i64) -> Result<i64>;

    /// Applies `retention.ms` and `retention.bytes` as of `now_ms` by deleting whole old
    /// segments (never the active one); also rolls the active segment when `segment.ms` has
    /// passed. Returns how many segments were deleted.
    fn enforce_retention(&self, now_ms: i64) -> Result<usize>;

    /// Forces appended data to stable storage (fsync for the disk log).
    fn flush(&self) -> Result<()>;

    /// Replaces the log's configuration (AlterConfigs); takes effect for later appends/rolls.
    fn update_config(&self, config: LogConfig);

    /// Bytes held by the log.
    fn size_bytes(&self) -> u64;

    /// Calls `f` with the header of every batch whose last offset is ≥ `from_offset`, in order.
    /// Used on start to rebuild producer (idempotence) state from the tail of the log.
    fn scan_headers(&self, from_offset: i64, f: &mut dyn FnMut(&BatchHeader)) -> Result<()>;

    /// The disk log behind this trait object, for the log cleaner (the only backend that
    /// compacts).
    fn as_disk(&self) -> Option<&DiskLog> {
        None
    }

    /// Records an aborted transaction whose ABORT marker is at `txn.last_offset` (already
    /// appended). The entry lives as long as the marker's segment.
    fn add_aborted_txn(&self, txn: AbortedTxn) -> Result<()>;

    /// Aborted transactions that overlap `[from, upto)`: marker at or after `from`, first
    /// offset before `upto`, in marker order.
    fn aborted_txns(&self, from: i64, upto: i64) -> Vec<AbortedTxn>;

    /// A directory for the partition's own state files (producer state snapshots), if the
    /// backend persists.
    fn state_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// Opens and removes partition logs.
pub trait LogStorage: Send + Sync {
    /// Opens the log of `tp`, creating it if absent. The disk backend recovers it first:
    /// validates tail CRCs, truncates a torn tail, rebuilds indexes that do not match.
    fn open(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<dyn PartitionLog>>;

    /// Deletes the log of `tp` and all its files (DeleteTopics).
    fn remove(&self, tp: &TopicPartition) -> Result<()>;

    /// The partitions that exist in storage (found on disk at start).
    fn partitions(&self) -> Result<Vec<TopicPartition>>;

    /// Whether logs of this storage can be compacted (`cleanup.policy=compact`).
    fn supports_compaction(&self) -> bool {
        false
    }

    /// Clean shutdown: makes everything durable and closes the open logs (appends to them fail
    /// afterwards). The disk backend then skips re-validating active segments on the next start.
    /// Call once when the broker stops; a crash without it is safe, only recovery is slower.
    fn close(&self) -> Result<()> {
        Ok(())
    }
}

//! The durable backend: each partition is a directory of segment files, in Kafka's layout.
//!
//! ```text
//! <data_dir>/<topic>-<partition>/
//!     00000000000000000000.log         record batches exactly as appended (baseOffset assigned)
//!     00000000000000000000.index       sparse offset index: relative offset -> byte position
//!     00000000000000000000.timeindex   time index: running max timestamp -> relative offset
//!     00000000000000000000.txnindex    aborted transactions whose marker is in the segment
//!     00000000000000004096.log ...     next segment, named after its base offset
//!     log-start-offset-checkpoint      the durable log start offset (DeleteRecords, retention)
//!     producer-state.json              producer state snapshot (written by the partition)
//!     clean-shutdown                   present only between a clean close and the next open
//! ```
//!
//! # Durability
//!
//! By default nothing is fsynced on the append path (`flush.messages` and `flush.ms` unset, as in
//! Kafka): an acknowledged append has been written to the OS with `pwrite`, so it survives a
//! crash of the broker *process* (SIGKILL, panic, OOM kill) because it sits in the page cache,
//! but it may be lost when the *machine* crashes or loses power before the OS writes it back.
//! `flush.messages = N` fsyncs after every N records, `flush.ms = T` at the first append or
//! retention pass T ms after the last flush, [`DiskOptions::fsync_every_append`] fsyncs the
//! segment in every append, and [`crate::storage::PartitionLog::flush`] fsyncs on demand.
//! Whatever was lost, recovery on open (see `recovery`) cuts the log back to whole, CRC-valid
//! batches, so a partition never serves a torn batch.
//!
//! On open, the active segment of every partition is re-validated batch by batch (CRC-32C)
//! unless the previous run ended with [`crate::storage::LogStorage::close`], which leaves a
//! one-shot `clean-shutdown` marker per partition; older segments get a cheap tail check. See
//! `recovery`.
//!
//! Nothing here runs in the background: the broker must call
//! [`crate::storage::PartitionLog::enforce_retention`] periodically (Kafka's
//! `log.retention.check.interval.ms`), which also rolls idle segments past `segment.ms` and
//! applies `flush.ms` to partitions that stopped receiving appends.

mod checkpoint;
mod index;
mod log;
mod lookup;
mod recovery;
mod retention;
mod segment;
mod storage;
mod swap;
mod time_index;
mod txn_index;

pub use log::DiskLog;
pub(crate) use segment::MAX_SEGMENT_BYTES;
pub use storage::DiskStorage;
pub use swap::{CleanedSegment, SegmentRef};

/// Broker-wide settings of the disk backend (per-topic settings live in `LogConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskOptions {
    /// fsync the segment file after every append, before the append is acknowledged: appends
    /// then survive machine crashes too, at the cost of one fsync per produced batch. Indexes
    /// are not fsynced per append; recovery rebuilds them from the log.
    pub fsync_every_append: bool,
}

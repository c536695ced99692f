//! [`RangeRecords`]: one offset range streamed from a leased task consumer, the way a direct
//! stream's task reads its partition.
//!
//! Collecting a range into a `Vec` before the task ran held the whole batch in memory (a
//! 4-partition pass-through job peaked at 631 MiB for 5M × 100 B records). Streaming it leaves
//! the unread part in the consumer's pre-fetch queue, which `queued.max.messages.kbytes` bounds
//! (see [`DirectStreamConfig::prefetch_kbytes`](crate::direct::DirectStreamConfig)): a record is
//! built when the task asks for it and is the task's to keep or drop. Reading the range again
//! (a second output on the stream) leases a consumer again and re-reads it from the broker, as
//! Spark re-reads a Kafka RDD's partition.

use crate::direct::consumer_cache::ConsumerLease;
use crate::direct::offset_range::OffsetRange;
use crate::direct::reader::{PartitionConsumer, RangeScan};
use crate::error::Result;
use crate::record::ConsumerRecord;

/// The records of one range, read on demand with an exclusive cached consumer (see the module
/// docs). The consumer goes back to the cache once the range is complete or the reader is
/// dropped; after a failed read it is closed instead.
#[derive(Debug)]
pub struct RangeRecords {
    lease: Option<ConsumerLease<PartitionConsumer>>,
    scan: RangeScan,
}

impl RangeRecords {
    /// A read of `scan`'s range with `lease`.
    pub(crate) fn new(lease: Option<ConsumerLease<PartitionConsumer>>, scan: RangeScan) -> Self {
        RangeRecords { lease, scan }
    }

    /// The range being read.
    pub fn range(&self) -> &OffsetRange {
        self.scan.range()
    }

    /// Offsets of the range deleted by retention and skipped so far (only with
    /// `fail_on_data_loss(false)`).
    pub fn skipped_offsets(&self) -> u64 {
        self.scan.skipped_offsets()
    }

    /// The next record; `None` once the range is complete (then again `None`).
    pub fn next_record(&mut self) -> Result<Option<ConsumerRecord>> {
        let Some(lease) = self.lease.as_mut() else {
            return Ok(None);
        };
        match self.scan.next_record(&mut **lease) {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) => {
                // Complete: the consumer can serve the next task now, not when this one ends.
                tracing::debug!(range = %self.scan.range(), "range read");
                self.lease = None;
                Ok(None)
            }
            Err(e) => {
                if let Some(lease) = self.lease.take() {
                    lease.invalidate(); // its position and queue are unknown after a failure
                }
                Err(e)
            }
        }
    }
}

//! Batch reads of explicit offset ranges: Spark's `KafkaUtils.createRDD`
//! ([`KafkaUtils::create_rdd`](crate::KafkaUtils::create_rdd)). One result per range,
//! in the ranges' order (partition *i* ↔ `ranges[i]`), read in parallel with cached consumers.

use crate::direct::offset_range::{HasOffsetRanges, OffsetRange};
use crate::direct::reader::KafkaRangeReader;
use crate::error::Result;
use crate::record::ConsumerRecord;

/// The records of a set of offset ranges, one partition per range.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRdd {
    ranges: Vec<OffsetRange>,
    partitions: Vec<Vec<ConsumerRecord>>,
    skipped_offsets: u64,
}

impl KafkaRdd {
    /// Partition *i* holds the records of `offset_ranges()[i]`.
    pub fn partitions(&self) -> &[Vec<ConsumerRecord>] {
        &self.partitions
    }

    /// The records, partition by partition, without copying them.
    pub fn into_partitions(self) -> Vec<Vec<ConsumerRecord>> {
        self.partitions
    }

    /// Records across all partitions (fewer than the ranges' width on topics with gaps).
    pub fn count(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    /// Offsets lost to retention and skipped (only with `fail_on_data_loss(false)`).
    pub fn skipped_offsets(&self) -> u64 {
        self.skipped_offsets
    }
}

impl HasOffsetRanges for KafkaRdd {
    fn offset_ranges(&self) -> Vec<OffsetRange> {
        self.ranges.clone()
    }
}

/// Reads `ranges` with an existing reader, reusing its cached consumers
/// ([`KafkaUtils::create_rdd_from`](crate::KafkaUtils::create_rdd_from)).
pub(crate) fn read_rdd(reader: &KafkaRangeReader, ranges: &[OffsetRange]) -> Result<KafkaRdd> {
    let reads = reader.read_all(ranges)?;
    let skipped_offsets = reads.iter().map(|r| r.skipped_offsets).sum();
    Ok(KafkaRdd {
        ranges: ranges.to_vec(),
        partitions: reads.into_iter().map(|r| r.records).collect(),
        skipped_offsets,
    })
}

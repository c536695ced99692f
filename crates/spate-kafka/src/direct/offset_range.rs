//! [`TopicPartition`] and [`OffsetRange`]: the unit a direct-stream batch is planned in
//! so that a replayed batch reads exactly the same records. A range is `[from_offset, until_offset)` of one partition; a batch has one
//! partition per range. [`HasOffsetRanges`] is Spark's way to read them back from a batch.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// Offsets `[from_offset, until_offset)` of one topic-partition.
///
/// `count()` is the width of the range; on compacted or transactional topics fewer records
/// than that may exist in it (offset gaps), and readers tolerate that.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    /// The topic read.
    pub topic: String,
    /// The partition read.
    pub partition: i32,
    /// First offset of the range (inclusive).
    pub from_offset: i64,
    /// Offset after the last one of the range (exclusive).
    pub until_offset: i64,
}

impl OffsetRange {
    /// `[from, until)` of `topic`-`partition` (Spark's `OffsetRange.create`).
    pub fn create(
        topic: impl Into<String>,
        partition: i32,
        from_offset: i64,
        until_offset: i64,
    ) -> Self {
        OffsetRange {
            topic: topic.into(),
            partition,
            from_offset,
            until_offset,
        }
    }

    /// The range's topic-partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }

    /// Number of offsets in the range (`until − from`, 0 for an empty or inverted range).
    pub fn count(&self) -> u64 {
        u64::try_from(self.until_offset.saturating_sub(self.from_offset)).unwrap_or(0)
    }

    /// True when the range holds no offsets.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

impl fmt::Display for OffsetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} [{}, {}) ({} offsets)",
            self.topic,
            self.partition,
            self.from_offset,
            self.until_offset,
            self.count()
        )
    }
}

/// Something that knows the offset ranges it was computed from (a direct-stream batch).
/// Partition *i* of the batch reads `offset_ranges()[i]`.
pub trait HasOffsetRanges {
    /// The ranges, in partition order.
    fn offset_ranges(&self) -> Vec<OffsetRange>;
}

/// The committed offsets in an rdkafka answer to a committed-offsets request, by partition;
/// partitions without one (no commit, or a logical offset) are left out.
pub(crate) fn committed_in(
    list: &rdkafka::TopicPartitionList,
) -> std::collections::BTreeMap<TopicPartition, i64> {
    list.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) if o >= 0 => {
                Some((TopicPartition::new(e.topic(), e.partition()), o))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_until_minus_from_and_never_negative() {
        assert_eq!(OffsetRange::create("t", 0, 10, 25).count(), 15);
        assert_eq!(OffsetRange::create("t", 0, 7, 7).count(), 0);
        assert!(OffsetRange::create("t", 0, 7, 7).is_empty());
        assert_eq!(OffsetRange::create("t", 0, 9, 3).count(), 0);
    }

    #[test]
    fn topic_partition_and_display() {
        let r = OffsetRange::create("events", 3, 100, 150);
        assert_eq!(r.topic_partition(), TopicPartition::new("events", 3));
        assert_eq!(r.to_string(), "events-3 [100, 150) (50 offsets)");
    }

    #[test]
    fn serde_round_trip_uses_spark_field_names() {
        let r = OffsetRange::create("events", 1, 5, 9);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"topic": "events", "partition": 1, "from_offset": 5, "until_offset": 9})
        );
        let back: OffsetRange = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}

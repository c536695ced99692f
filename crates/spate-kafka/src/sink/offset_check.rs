//! The offset check every exactly-once output runs before writing a batch: the batch's offset
//! ranges against the offsets stored with the outputs (in SQLite, or the job's consumer group in
//! Kafka). Shared so both stores refuse the same gaps and overlaps with the same message.

use std::collections::BTreeMap;

use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::error::{Result, SpateKafkaError};

/// What the stored offsets say about a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every non-empty range is already covered by the stored offsets.
    Applied,
    /// The batch continues the stored offsets; these are the new `until` offsets to store.
    New(BTreeMap<TopicPartition, i64>),
}

/// Compares a batch's ranges with the stored offsets, per partition: stored `until` ≥ the
/// range's `until` means already applied; stored `until` = the range's `from` (or nothing stored)
/// means new; anything else is a gap or an overlap. Empty ranges say
/// nothing about whether the batch was applied; they only must not jump over stored offsets.
pub(crate) fn judge(
    job: &str,
    stored: &BTreeMap<TopicPartition, i64>,
    ranges: &[OffsetRange],
) -> Result<Verdict> {
    let mismatch = |r: &OffsetRange, expected: i64, what| SpateKafkaError::StoredOffsetMismatch {
        job: job.to_owned(),
        topic: r.topic.clone(),
        partition: r.partition,
        expected,
        actual: r.from_offset,
        what,
    };
    let mut applied = Vec::new();
    let mut advance: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in ranges {
        let tp = r.topic_partition();
        // A partition twice in one batch continues from its first range.
        let next = advance.get(&tp).or_else(|| stored.get(&tp)).copied();
        match next {
            Some(n) if r.is_empty() => {
                if r.from_offset > n {
                    return Err(mismatch(r, n, "gap"));
                }
            }
            None if r.is_empty() => {}
            Some(n) if n >= r.until_offset => applied.push((r, n)),
            Some(n) if n == r.from_offset => {
                advance.insert(tp, r.until_offset);
            }
            Some(n) if n < r.from_offset => return Err(mismatch(r, n, "gap")),
            Some(n) => return Err(mismatch(r, n, "overlap")),
            None => {
                advance.insert(tp, r.until_offset);
            }
        }
    }
    match (applied.first(), advance.is_empty()) {
        (Some(_), true) => Ok(Verdict::Applied),
        // Part of the batch applied, part not: the ranges were not planned the way they were
        // stored. Name the first applied range, whose records would be written twice.
        (Some(&(r, n)), false) => Err(mismatch(r, n, "overlap")),
        (None, _) => Ok(Verdict::New(advance)),
    }
}

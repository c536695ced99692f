//! Which part of a log the cleaner may touch, and how dirty it is (Kafka's
//! `LogCleanerManager.cleanableOffsets` and `LogToClean`).
//!
//! ```text
//!  log start        first dirty offset        first uncleanable offset      active segment
//!      | clean section |     dirty section           | too young / unstable |   never cleaned
//! ```
//!
//! The clean section was compacted by an earlier cleaning (its end is the cleaner checkpoint);
//! the dirty section holds what was appended since. Cleaning stops at the first segment that is
//! not wholly below the last stable offset, that holds a record younger than
//! `min.compaction.lag.ms`, or that is the active segment. The dirty ratio is
//! `dirty bytes / (clean + dirty bytes)`, over whole segments as Kafka counts them.

use std::ops::ControlFlow;

use crate::error::Result;
use crate::storage::disk::{DiskLog, SegmentRef};
use crate::storage::LogConfig;

use super::txn::PartitionView;

/// The cleanable part of one log at one moment.
#[derive(Debug, Clone)]
pub struct CleanableRange {
    /// The log start offset.
    pub log_start_offset: i64,
    /// The first offset not yet cleaned (Kafka's cleaner checkpoint).
    pub first_dirty_offset: i64,
    /// Base offset of the first segment that may not be cleaned.
    pub first_uncleanable_offset: i64,
    /// The segments that may be cleaned (wholly below `first_uncleanable_offset`), each with the
    /// offset it ends at (the next segment's base offset).
    pub segments: Vec<(SegmentRef, i64)>,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the cleanable segments from the first dirty offset on.
    pub dirty_bytes: u64,
    /// Max timestamp of the first dirty batch, for `max.compaction.lag.ms`.
    pub first_dirty_timestamp: Option<i64>,
}

impl CleanableRange {
    /// `dirty / (clean + dirty)`; 0 for a log with nothing cleanable.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// The segments holding dirty offsets.
    pub fn dirty_segments(&self) -> impl Iterator<Item = &(SegmentRef, i64)> {
        let first_dirty = self.first_dirty_offset;
        self.segments
            .iter()
            .filter(move |(_, end)| *end > first_dirty)
    }

    /// How long past `max.compaction.lag.ms` the oldest dirty record is (0 when not overdue).
    pub fn compaction_delay_ms(&self, config: &LogConfig, now_ms: i64) -> i64 {
        match self.first_dirty_timestamp {
            Some(ts) if ts >= 0 && config.max_compaction_lag_ms < i64::MAX => {
                (now_ms.saturating_sub(config.max_compaction_lag_ms) - ts).max(0)
            }
            _ => 0,
        }
    }
}

/// The cleanable range of `log` as of `now_ms`.
pub fn cleanable_range(
    log: &DiskLog,
    view: &dyn PartitionView,
    config: &LogConfig,
    now_ms: i64,
) -> Result<CleanableRange> {
    use crate::storage::PartitionLog;

    let segs = log.segment_refs();
    let log_start = log.log_start_offset();
    let log_end = log.log_end_offset();
    let stable = view.last_stable_offset().min(log_end);
    let first_dirty = log
        .cleaner_checkpoint()?
        .filter(|c| *c >= log_start && *c <= log_end)
        .unwrap_or(log_start);
    let young_after = now_ms.saturating_sub(config.min_compaction_lag_ms);

    let mut range = CleanableRange {
        log_start_offset: log_start,
        first_dirty_offset: first_dirty,
        first_uncleanable_offset: segs.last().map(|s| s.base_offset()).unwrap_or(log_end),
        segments: Vec::new(),
        clean_bytes: 0,
        dirty_bytes: 0,
        first_dirty_timestamp: None,
    };
    for pair in segs.windows(2) {
        let (seg, end) = (&pair[0], pair[1].base_offset());
        if end <= log_start {
            continue; // wholly below the log start: retention deletes it
        }
        let dirty = end > first_dirty;
        let too_young = config.min_compaction_lag_ms > 0
            && seg.max_timestamp().is_some_and(|ts| ts > young_after);
        if end > stable || (dirty && too_young) {
            range.first_uncleanable_offset = seg.base_offset();
            break;
        }
        if dirty {
            range.dirty_bytes += seg.size();
            if range.first_dirty_timestamp.is_none() {
                range.first_dirty_timestamp = first_batch_timestamp(seg, first_dirty)?;
            }
        } else {
            range.clean_bytes += seg.size();
        }
        range.segments.push((seg.clone(), end));
    }
    if range.first_dirty_offset > range.first_uncleanable_offset {
        range.first_dirty_offset = range.first_uncleanable_offset;
    }
    Ok(range)
}

/// Max timestamp of the first batch of `seg` at or after `from`.
fn first_batch_timestamp(seg: &SegmentRef, from: i64) -> Result<Option<i64>> {
    let Some(position) = seg.position_for(from)? else {
        return Ok(None);
    };
    let mut ts = None;
    seg.scan(position, &mut |_, h| {
        ts = Some(h.max_timestamp);
        ControlFlow::Break(())
    })?;
    Ok(ts)
}

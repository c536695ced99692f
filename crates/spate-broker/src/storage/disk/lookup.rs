//! Timestamp queries: ListOffsets by time and MAX_TIMESTAMP.
//!
//! Both work at batch granularity (the broker never decodes records): a batch "has" its max
//! timestamp. Each segment keeps its largest timestamp in memory, so whole segments are skipped
//! without I/O, and the time index narrows the scan inside the segment that answers.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

use super::log::DiskLog;
use super::segment::Segment;
use crate::error::Result;

impl DiskLog {
    /// See [`crate::storage::PartitionLog::offset_for_timestamp`].
    pub(super) fn lookup_timestamp(&self, target: i64) -> Result<Option<(i64, i64)>> {
        let start = self.log_start_offset.load(Ordering::Acquire);
        for seg in self.segments_from(start) {
            // Max timestamp before size: see `Segment::commit`.
            if seg.max_timestamp().is_none_or(|(ts, _)| ts < target) {
                continue;
            }
            let end = seg.size();
            let mut found = None;
            seg.scan_indexed(seg.time_scan_offset(target), end, &mut |_, h| {
                if h.max_timestamp >= target && h.last_offset() >= start {
                    found = Some((h.base_offset.max(start), h.max_timestamp));
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// See [`crate::storage::PartitionLog::max_timestamp`].
    pub(super) fn largest_timestamp(&self) -> Option<(i64, i64)> {
        let start = self.log_start_offset.load(Ordering::Acquire);
        let mut best: Option<(i64, i64)> = None;
        for seg in self.segments_from(start) {
            let mut candidate = seg.max_timestamp();
            if candidate.is_some_and(|(_, offset)| offset < start) {
                candidate = self.max_timestamp_from(&seg, start);
            }
            if let Some((ts, offset)) = candidate {
                if best.is_none_or(|(b, _)| ts >= b) {
                    best = Some((ts, offset));
                }
            }
        }
        best
    }

    /// The largest timestamp among the batches of `seg` that reach `start` (the segment's own
    /// maximum lies below the log start offset).
    fn max_timestamp_from(&self, seg: &Segment, start: i64) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        let res = seg.scan_indexed(start, seg.size(), &mut |_, h| {
            if h.last_offset() >= start && best.is_none_or(|(b, _)| h.max_timestamp >= b) {
                best = Some((h.max_timestamp, h.last_offset()));
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = res {
            tracing::warn!(partition = %self.name, error = %e, "max timestamp scan failed");
        }
        best
    }
}

//! Moving the log start offset forward: DeleteRecords, `retention.ms`, `retention.bytes`.
//!
//! Only whole segments are deleted, and never the active one (retention rolls it first once
//! `segment.ms` has passed, so an idle partition still ages out). The new log start offset is
//! checkpointed durably *before* files are removed: a crash in between leaves segments wholly
//! below the start offset, which the next open deletes. Readers holding a deleted segment keep
//! reading it through their open handle.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::checkpoint;
use super::log::{Appender, DiskLog};
use super::segment::Segment;
use crate::error::Result;

impl DiskLog {
    /// DeleteRecords: see [`crate::storage::PartitionLog::delete_records_before`].
    pub(super) fn advance_log_start(&self, offset: i64) -> Result<i64> {
        let _app = self.appender.lock();
        let start = self.log_start_offset.load(Ordering::Acquire);
        if self.deleted.load(Ordering::Acquire) {
            return Ok(start);
        }
        let target = offset.min(self.log_end_offset.load(Ordering::Acquire));
        if target <= start {
            return Ok(start);
        }
        checkpoint::write(&self.dir, target)?;
        self.log_start_offset.store(target, Ordering::Release);
        let segs = self.all_segments();
        let mut count = 0;
        while count + 1 < segs.len() && segs[count + 1].base_offset <= target {
            count += 1;
        }
        self.delete_oldest(&segs[..count], "log start offset")?;
        Ok(target)
    }

    /// See [`crate::storage::PartitionLog::enforce_retention`].
    pub(super) fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let mut app = self.appender.lock();
        if self.deleted.load(Ordering::Acquire) {
            // Removed or closed: its files are gone or must stay as the close left them.
            return Ok(0);
        }
        self.maybe_roll_idle(&mut app, now_ms)?;
        self.maybe_flush(&mut app, now_ms)?;

        let segs = self.all_segments();
        let deletable = segs.len().saturating_sub(1);
        let start = self.log_start_offset.load(Ordering::Acquire);
        let mut count = 0;
        while count < deletable && segs[count + 1].base_offset <= start {
            count += 1;
        }
        let below_start = count;
        // A compact-only log is never shortened by time or size: the cleaner owns it.
        let delete = app.config.delete();
        if delete && app.config.retention_ms >= 0 {
            while count < deletable
                && now_ms.saturating_sub(retention_timestamp(&segs[count]))
                    > app.config.retention_ms
            {
                count += 1;
            }
        }
        let after_time = count;
        if delete && app.config.retention_bytes >= 0 {
            let total: u64 = segs[count..].iter().map(|s| s.size()).sum();
            let mut excess = total as i64 - app.config.retention_bytes;
            while count < deletable && excess - segs[count].size() as i64 >= 0 {
                excess -= segs[count].size() as i64;
                count += 1;
            }
        }
        if count == 0 {
            return Ok(0);
        }
        let new_start = segs[count].base_offset;
        if new_start > start {
            checkpoint::write(&self.dir, new_start)?;
            self.log_start_offset.store(new_start, Ordering::Release);
        }
        tracing::info!(
            partition = %self.name,
            below_start,
            by_time = after_time - below_start,
            by_size = count - after_time,
            log_start_offset = new_start.max(start),
            "retention deleting segments"
        );
        self.delete_oldest(&segs[..count], "retention")?;
        Ok(count)
    }

    fn maybe_roll_idle(&self, app: &mut Appender, now_ms: i64) -> Result<()> {
        let active = &app.active;
        if active.size() > 0
            && now_ms.saturating_sub(active.created_ms) > app.config.effective_segment_ms()
        {
            self.roll(app, now_ms)?;
        }
        Ok(())
    }

    /// Drops the first `doomed.len()` segments from the list and deletes their files. Called
    /// with the appender lock held, so the list cannot have changed since it was read.
    fn delete_oldest(&self, doomed: &[Arc<Segment>], why: &str) -> Result<()> {
        if doomed.is_empty() {
            return Ok(());
        }
        self.segments.write().drain(..doomed.len());
        for seg in doomed {
            tracing::debug!(
                partition = %self.name,
                base_offset = seg.base_offset,
                reason = why,
                "deleting segment"
            );
            seg.delete_files()?;
        }
        checkpoint::sync_dir(&self.dir)
    }
}

/// The time retention measures a segment's age from: its largest batch timestamp, as Kafka does,
/// or the file's modification time when no batch carries a timestamp.
fn retention_timestamp(seg: &Segment) -> i64 {
    match seg.max_timestamp() {
        Some((ts, _)) if ts >= 0 => ts,
        _ => std::fs::metadata(seg.log_path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(seg.created_ms),
    }
}

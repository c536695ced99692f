//! One cleaning of one log (Kafka's `Cleaner.doClean`), in three phases:
//!
//! 1. **Map** the dirty section: key → last offset, in the bounded [`OffsetMap`]. When the map
//!    fills up, mapping stops at a batch boundary and this cleaning covers only what was mapped
//!    (the end offset); the rest stays dirty for the next pass.
//! 2. **Group** the segments below the end offset into runs of at most `segment.bytes` (small
//!    segments merge).
//! 3. **Recopy** each group into a `.cleaned` segment, keeping a record only if no later record
//!    has its key, dropping tombstones and transaction markers whose delete horizon passed and
//!    batches of aborted transactions; then swap it in (see the disk log's `swap` module) and
//!    checkpoint the end offset as the new first dirty offset.
//!
//! Offsets and timestamps of kept records never change; batches whose records all survive are
//! copied byte for byte.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::offset_map::OffsetMap;
use super::range::{cleanable_range, CleanableRange};
use super::records::{self, delete_horizon, BatchWriter, RecordView};
use super::throttle::Throttle;
use super::txn::{PartitionView, TxnTracker};
use super::CleanerConfig;
use crate::error::{BrokerError, Result};
use crate::record_batch::{BatchHeader, BatchIter};
use crate::storage::disk::{CleanedSegment, DiskLog, SegmentRef};
use crate::storage::LogConfig;

/// What one cleaning did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CleanStats {
    /// The first dirty offset when the cleaning started.
    pub first_dirty_offset: i64,
    /// The new first dirty offset (everything below was cleaned).
    pub end_offset: i64,
    /// Bytes read to build the key → offset map.
    pub map_bytes_read: u64,
    /// Records read to build the key → offset map.
    pub map_records_read: u64,
    /// Bytes read while copying segments.
    pub bytes_read: u64,
    /// Bytes written into cleaned segments.
    pub bytes_written: u64,
    /// Records read while copying segments.
    pub records_read: u64,
    /// Records kept (the latest value of each key, live tombstones and markers).
    pub records_kept: u64,
    /// Old segments replaced by cleaned ones.
    pub segments_replaced: usize,
    /// Cleaned segments written.
    pub segments_written: usize,
    /// Keys in the offset map and its fill ratio.
    pub map_entries: usize,
    /// The fraction of the map's slots in use.
    pub map_utilization: f64,
    /// The map's memory in bytes (`log.cleaner.dedupe.buffer.size`, shared among threads).
    pub map_memory_bytes: usize,
    /// Whether the map filled up before the dirty section's end (more passes needed).
    pub map_full: bool,
    /// How long the cleaning took (ms).
    pub elapsed_ms: u64,
    /// The earliest delete horizon of a kept tombstone or marker: the log needs another
    /// cleaning then, even if nothing new is dirty.
    pub next_delete_horizon_ms: Option<i64>,
}

/// How a cleaning ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PassOutcome {
    /// The cleaning finished and swapped in the cleaned segments.
    Cleaned(CleanStats),
    /// The log changed under the cleaner (a segment was deleted, the log was closed) or the
    /// cleaner was stopped: nothing was swapped for the unfinished group.
    Aborted,
}

/// A cleaner's reusable memory: the offset map and I/O buffers.
pub struct Cleaner {
    config: CleanerConfig,
    map: OffsetMap,
    read_buf: Vec<u8>,
    decompressed: Vec<u8>,
    out: Vec<u8>,
    writer: BatchWriter,
    /// The I/O budget shared with the other cleaner threads (none: unthrottled).
    throttle: Option<Arc<Throttle>>,
}

impl std::fmt::Debug for Cleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleaner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Per-cleaning context of the recopy phase.
struct Recopy<'a> {
    now_ms: i64,
    config: &'a LogConfig,
    log_start: i64,
    producer_last: std::collections::HashMap<i64, i64>,
    txn: TxnTracker,
    stats: CleanStats,
}

impl Cleaner {
    /// A cleaner whose offset map may use `config.dedupe_buffer_bytes_per_thread()`.
    pub fn new(config: CleanerConfig) -> Cleaner {
        Cleaner {
            map: OffsetMap::new(config.dedupe_buffer_bytes_per_thread()),
            config,
            read_buf: Vec::new(),
            decompressed: Vec::new(),
            out: Vec::new(),
            writer: BatchWriter::default(),
            throttle: None,
        }
    }

    /// This cleaner's reads and writes count against `throttle`.
    pub fn with_throttle(mut self, throttle: Arc<Throttle>) -> Cleaner {
        self.throttle = Some(throttle);
        self
    }

    /// Counts `bytes` of I/O against the shared budget, sleeping when it is spent.
    fn throttle(&self, bytes: u64, stop: &AtomicBool) {
        if let Some(t) = &self.throttle {
            t.account(bytes, stop);
        }
    }

    /// Bytes of memory the offset map holds now.
    pub fn map_memory_bytes(&self) -> usize {
        self.map.memory_bytes()
    }

    /// Cleans `log` once, as of `now_ms`. `stop` aborts between batches.
    pub fn clean(
        &mut self,
        log: &DiskLog,
        view: &dyn PartitionView,
        now_ms: i64,
        stop: &AtomicBool,
    ) -> Result<PassOutcome> {
        let started = Instant::now();
        let config = log.config();
        let range = cleanable_range(log, view, &config, now_ms)?;
        let mut rc = Recopy {
            now_ms,
            config: &config,
            log_start: range.log_start_offset,
            producer_last: view.producer_last_offsets(),
            txn: TxnTracker::new(
                view.aborted_transactions(range.log_start_offset, range.first_uncleanable_offset),
            ),
            stats: CleanStats {
                first_dirty_offset: range.first_dirty_offset,
                ..CleanStats::default()
            },
        };
        let aborted =
            view.aborted_transactions(range.first_dirty_offset, range.first_uncleanable_offset);
        let Some(end) = self.build_offset_map(log, &range, aborted, &mut rc.stats, stop)? else {
            return Ok(PassOutcome::Aborted);
        };
        rc.stats.end_offset = end;
        let groups = group_segments(&range, end, config.segment_bytes);
        for group in groups {
            if !self.clean_group(log, &group, &mut rc, stop)? {
                return Ok(PassOutcome::Aborted);
            }
        }
        if end > range.first_dirty_offset || rc.stats.segments_replaced > 0 {
            log.write_cleaner_checkpoint(end)?;
        }
        rc.stats.map_entries = self.map.len();
        rc.stats.map_utilization = self.map.utilization();
        rc.stats.map_memory_bytes = self.map.memory_bytes();
        rc.stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(PassOutcome::Cleaned(rc.stats))
    }

    /// Phase 1. Returns the end offset of this cleaning, or `None` when stopped.
    fn build_offset_map(
        &mut self,
        log: &DiskLog,
        range: &CleanableRange,
        aborted: Vec<super::txn::AbortedTxn>,
        stats: &mut CleanStats,
        stop: &AtomicBool,
    ) -> Result<Option<i64>> {
        let first_dirty = range.first_dirty_offset;
        let expected = (range.first_uncleanable_offset - first_dirty).max(0) as u64;
        self.map.reset(expected);
        // The clean section needs no keys in the map: a later record of any of its keys is in
        // the dirty section, hence in the map. So the map covers everything below the dirty
        // section too (and expired tombstones there go even when nothing is dirty).
        self.map.update_latest_offset(first_dirty - 1);
        let mut txn = TxnTracker::new(aborted);
        let io_budget = self.config.io_buffer_bytes;
        for (seg, seg_end) in range.dirty_segments() {
            let mut position = seg.position_for(first_dirty)?.unwrap_or(seg.size());
            while position < seg.size() {
                if stop.load(Ordering::Relaxed) || log.is_closed() {
                    return Ok(None);
                }
                let mut read_buf = std::mem::take(&mut self.read_buf);
                let n = seg.read_batches(position, io_budget, &mut read_buf)?;
                let full = self.map_chunk(&read_buf[..n], first_dirty, &mut txn, stats);
                self.read_buf = read_buf;
                let full = full?;
                stats.map_bytes_read += n as u64;
                self.throttle(n as u64, stop);
                if full {
                    stats.map_full = true;
                    return Ok(Some(self.map.latest_offset() + 1));
                }
                position += n as u64;
            }
            self.map.update_latest_offset(seg_end - 1);
        }
        Ok(Some(if self.map.latest_offset() >= first_dirty {
            self.map.latest_offset() + 1
        } else {
            first_dirty
        }))
    }

    /// Adds the keys of a chunk of whole batches; returns true when the map is full.
    fn map_chunk(
        &mut self,
        chunk: &[u8],
        first_dirty: i64,
        txn: &mut TxnTracker,
        stats: &mut CleanStats,
    ) -> Result<bool> {
        for item in BatchIter::new(chunk) {
            let (_, h, batch) = item?;
            if h.last_offset() < first_dirty {
                continue;
            }
            if h.is_control() {
                let control = self.control_type(batch, &h);
                txn.on_control_batch(&h, control);
            } else if !txn.on_data_batch(&h) {
                let count = h.records_count.max(0) as usize;
                if !self.map.has_room_for(count) {
                    if self.map.is_empty() {
                        return Err(BrokerError::InvalidConfig {
                            key: "log.cleaner.dedupe.buffer.size".into(),
                            value: self.config.dedupe_buffer_bytes.to_string(),
                            reason: format!("too small for one batch of {count} records"),
                        });
                    }
                    return Ok(true);
                }
                let limit = self.config.max_batch_bytes;
                let mut views = Vec::new();
                match records::payload(batch, &h, limit, &mut self.decompressed)
                    .and_then(|p| records::parse(p, &h, &mut views))
                {
                    Ok(()) => {
                        for r in &views {
                            if let (Some(key), true) = (r.key, r.offset >= first_dirty) {
                                self.map.put(key, r.offset);
                            }
                        }
                        stats.map_records_read += views.len() as u64;
                    }
                    // Kept as it is by the recopy too: never removed, never used to remove.
                    Err(e) => {
                        tracing::warn!(offset = h.base_offset, error = %e, "cleaner skips an unreadable batch")
                    }
                }
            }
            self.map.update_latest_offset(h.last_offset());
        }
        Ok(false)
    }

    fn control_type(&mut self, batch: &[u8], h: &BatchHeader) -> Option<i16> {
        let mut views = Vec::new();
        let payload = records::payload(
            batch,
            h,
            self.config.max_batch_bytes,
            &mut self.decompressed,
        )
        .ok()?;
        records::parse(payload, h, &mut views).ok()?;
        records::control_type(&views)
    }

    /// Phase 3 for one group: recopy, then swap. Returns false when aborted.
    fn clean_group(
        &mut self,
        log: &DiskLog,
        group: &[SegmentRef],
        rc: &mut Recopy<'_>,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let mut cleaned = log.create_cleaned(group[0].base_offset())?;
        for seg in group {
            let mut position = 0u64;
            while position < seg.size() {
                if stop.load(Ordering::Relaxed) || log.is_closed() {
                    cleaned.discard();
                    return Ok(false);
                }
                let mut read_buf = std::mem::take(&mut self.read_buf);
                let res = seg
                    .read_batches(position, self.config.io_buffer_bytes, &mut read_buf)
                    .and_then(|n| {
                        self.recopy_chunk(&read_buf[..n], rc, &mut cleaned)
                            .map(|_| n)
                    });
                self.read_buf = read_buf;
                let n = match res {
                    Ok(n) => n,
                    Err(e) => {
                        cleaned.discard();
                        return Err(e);
                    }
                };
                rc.stats.bytes_read += n as u64;
                self.throttle(n as u64, stop);
                position += n as u64;
            }
        }
        let written = cleaned.size();
        self.throttle(written, stop);
        if !log.replace_segments(group, cleaned)? {
            return Ok(false);
        }
        rc.stats.bytes_written += written;
        rc.stats.segments_replaced += group.len();
        rc.stats.segments_written += 1;
        Ok(true)
    }

    fn recopy_chunk(
        &mut self,
        chunk: &[u8],
        rc: &mut Recopy<'_>,
        cleaned: &mut CleanedSegment,
    ) -> Result<()> {
        for item in BatchIter::new(chunk) {
            let (_, h, batch) = item?;
            self.out.clear();
            self.recopy_batch(batch, &h, rc)?;
            if !self.out.is_empty() {
                let out = std::mem::take(&mut self.out);
                let nh = BatchHeader::parse(&out)?;
                let res = cleaned.append(&out, &nh);
                self.out = out;
                res?;
            }
        }
        Ok(())
    }

    /// Decides the fate of one batch and writes what survives of it to `self.out`.
    fn recopy_batch(&mut self, batch: &[u8], h: &BatchHeader, rc: &mut Recopy<'_>) -> Result<()> {
        let producer_last =
            h.has_producer_id() && rc.producer_last.get(&h.producer_id) == Some(&h.last_offset());
        let count = h.records_count.max(0) as u64;
        rc.stats.records_read += count;
        if h.last_offset() < rc.log_start && !producer_last {
            return Ok(());
        }
        let horizon = delete_horizon(h);
        if h.is_control() {
            let control = self.control_type(batch, h);
            let may_discard = rc.txn.on_control_batch(h, control);
            if may_discard && horizon.is_some_and(|hz| hz <= rc.now_ms) {
                if producer_last {
                    return self.write_kept(h, &[], None, rc);
                }
                return Ok(());
            }
            if may_discard && horizon.is_none() {
                let hz = rc.now_ms.saturating_add(rc.config.delete_retention_ms);
                self.note_horizon(rc, hz);
                let written =
                    self.with_records(batch, h, |me, views| me.write_kept(h, views, Some(hz), rc))?;
                return match written {
                    Some(res) => res,
                    None => self.copy_whole(batch, count, rc),
                };
            }
            if let Some(hz) = horizon.filter(|_| may_discard) {
                self.note_horizon(rc, hz);
            }
            return self.copy_whole(batch, count, rc);
        }
        if rc.txn.on_data_batch(h) {
            if producer_last {
                return self.write_kept(h, &[], None, rc);
            }
            return Ok(());
        }
        if h.base_offset > self.map.latest_offset() {
            return self.copy_whole(batch, count, rc);
        }
        self.filter_records(batch, h, horizon, producer_last, rc)
    }

    /// Parses the records of `batch` and calls `f` with them; `None` when the batch cannot be
    /// read (corrupt, or larger than `max_batch_bytes` decompressed).
    fn with_records<R>(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        f: impl FnOnce(&mut Self, &mut Vec<RecordView<'_>>) -> R,
    ) -> Result<Option<R>> {
        let mut decompressed = std::mem::take(&mut self.decompressed);
        let mut views: Vec<RecordView<'_>> = Vec::new();
        let parsed = records::payload(batch, h, self.config.max_batch_bytes, &mut decompressed)
            .and_then(|p| records::parse(p, h, &mut views));
        let out = match parsed {
            Ok(()) => Some(f(self, &mut views)),
            Err(e) => {
                tracing::warn!(offset = h.base_offset, error = %e, "cleaner keeps an unreadable batch whole");
                None
            }
        };
        drop(views);
        self.decompressed = decompressed;
        Ok(out)
    }

    /// A data batch the map covers: keep the records no later record replaces.
    fn filter_records(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        horizon: Option<i64>,
        producer_last: bool,
        rc: &mut Recopy<'_>,
    ) -> Result<()> {
        let done = self.with_records(batch, h, |me, views| {
            me.keep_latest(batch, h, views, horizon, producer_last, rc)
        })?;
        match done {
            Some(res) => res,
            // Unreadable: kept whole, as the map phase did not use it either.
            None => self.copy_whole(batch, h.records_count.max(0) as u64, rc),
        }
    }

    fn keep_latest(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        views: &mut Vec<RecordView<'_>>,
        horizon: Option<i64>,
        producer_last: bool,
        rc: &mut Recopy<'_>,
    ) -> Result<()> {
        let latest = self.map.latest_offset();
        let tombstones_live = horizon.is_none_or(|hz| rc.now_ms < hz);
        let total = views.len();
        let map = &self.map;
        views.retain(|r| {
            if r.offset > latest {
                return true;
            }
            let Some(key) = r.key else {
                return false; // Kafka drops keyless records from compacted logs
            };
            let newest = map.get(key).is_none_or(|o| r.offset >= o);
            newest && (r.has_value || tombstones_live)
        });
        let has_tombstones = views.iter().any(|r| !r.has_value);
        let need_horizon = has_tombstones && horizon.is_none();
        if views.len() == total && !need_horizon {
            if let (true, Some(hz)) = (has_tombstones, horizon) {
                self.note_horizon(rc, hz);
            }
            return self.copy_whole(batch, total as u64, rc);
        }
        if views.is_empty() && !producer_last {
            return Ok(());
        }
        let hz = if need_horizon {
            Some(rc.now_ms.saturating_add(rc.config.delete_retention_ms))
        } else {
            horizon
        };
        if let (true, Some(hz)) = (has_tombstones, hz) {
            self.note_horizon(rc, hz);
        }
        self.write_kept(h, views, hz, rc)
    }

    fn note_horizon(&self, rc: &mut Recopy<'_>, hz: i64) {
        rc.stats.next_delete_horizon_ms =
            Some(rc.stats.next_delete_horizon_ms.map_or(hz, |h| h.min(hz)));
    }

    fn copy_whole(&mut self, batch: &[u8], count: u64, rc: &mut Recopy<'_>) -> Result<()> {
        self.out.extend_from_slice(batch);
        rc.stats.records_kept += count;
        Ok(())
    }

    fn write_kept(
        &mut self,
        h: &BatchHeader,
        kept: &[RecordView<'_>],
        horizon: Option<i64>,
        rc: &mut Recopy<'_>,
    ) -> Result<()> {
        rc.stats.records_kept += kept.len() as u64;
        let mut out = std::mem::take(&mut self.out);
        let res = self.writer.write(h, kept, horizon, &mut out);
        self.out = out;
        res
    }
}

/// Phase 2: the cleanable segments below `end`, in runs whose total size stays within
/// `segment.bytes` and whose offsets fit a segment's 32-bit relative offsets.
fn group_segments(range: &CleanableRange, end: i64, segment_bytes: u64) -> Vec<Vec<SegmentRef>> {
    let limit = segment_bytes.min(crate::storage::disk::MAX_SEGMENT_BYTES);
    let mut groups: Vec<Vec<SegmentRef>> = Vec::new();
    let mut size = 0u64;
    for (seg, seg_end) in range.segments.iter().filter(|(s, _)| s.base_offset() < end) {
        let fits = groups.last().is_some_and(|g| {
            size + seg.size() <= limit && seg_end - 1 - g[0].base_offset() <= i32::MAX as i64
        });
        if fits {
            size += seg.size();
            if let Some(g) = groups.last_mut() {
                g.push(seg.clone());
            }
        } else {
            size = seg.size();
            groups.push(vec![seg.clone()]);
        }
    }
    groups
}

//! Opening a segment after a restart: validate the log, truncate a torn or corrupt tail, and
//! reuse or rebuild the indexes.
//!
//! Nothing is fsynced by default, so after a machine crash any segment written since the last
//! flush may end in a torn batch, and after any crash the index files may lag behind the log.
//! Two levels of checking keep start-up cheap while catching both:
//!
//! * **full**: every batch of the segment is parsed and its CRC-32C checked; the file is cut at
//!   the first invalid or torn batch and both indexes are rebuilt from the valid prefix. The
//!   active (last) segment gets this unless the partition was closed cleanly
//!   (`DiskStorage::close` leaves a `clean-shutdown` marker, which the next open removes).
//! * **tail**: older segments keep their index files if they are well-formed (whole entries,
//!   strictly increasing, pointing inside the file) and the batches after the last offset index
//!   entry validate up to exactly the end of the file with no timestamp newer than the time
//!   index knows. Anything else falls back to a full check.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::index::{IndexFile, OffsetEntry};
use super::segment::{segment_paths, Segment, MAX_SEGMENT_BYTES};
use super::time_index::{IndexTracker, TimeEntry};
use super::txn_index::{txn_index_path, TxnIndex};
use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, validate_crc, BatchHeader};

/// How much of a segment is read per I/O while validating.
const WALK_CHUNK: usize = 1024 * 1024;

/// A segment as recovery left it.
pub(crate) struct LoadedSegment {
    pub segment: Segment,
    /// Index bookkeeping to continue appending to this segment.
    pub tracker: IndexTracker,
    /// Last offset + 1 of the segment's last batch; `None` if it holds no batch.
    pub next_offset: Option<i64>,
    /// Whether invalid bytes were cut off the end of the file.
    pub truncated: bool,
}

/// How to check a segment on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// An older segment: the tail check, falling back to the full check.
    Closed,
    /// The active segment after a clean shutdown: like `Closed` (the shutdown closed its time
    /// index and synced everything), but the time index stays open for more entries.
    CleanActive,
    /// The active segment after an unclean shutdown: the full check.
    Active,
}

/// Opens the segment at `base_offset` in `dir`, checked as `check` says.
pub(crate) fn load_segment(
    partition: &str,
    dir: &Path,
    base_offset: i64,
    check: Check,
    index_interval_bytes: usize,
    now_ms: i64,
) -> Result<LoadedSegment> {
    let active = check != Check::Closed;
    let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
    let (file, len) = open_log(&log_path)?;

    if check != Check::Active {
        if let Some(loaded) = tail_check(dir, &file, &log_path, base_offset, len, now_ms)? {
            return Ok(loaded);
        }
        tracing::info!(
            partition,
            file = %log_path.display(),
            "segment indexes do not match the log; validating and rebuilding"
        );
    }

    // Full check.
    let mut tracker = IndexTracker::new(base_offset);
    let mut offsets = Vec::new();
    let mut times = Vec::new();
    let mut next_offset = None;
    let walk = walk_batches(&file, &log_path, 0, len, base_offset, &mut |pos, h| {
        let entries = tracker.on_batch(
            pos,
            h.base_offset,
            h.last_offset(),
            h.max_timestamp,
            h.total_len(),
            index_interval_bytes,
        );
        offsets.extend(entries.offset);
        times.extend(entries.time);
        next_offset = Some(h.last_offset() + 1);
    })?;
    let truncated = truncate_invalid_tail(partition, &file, &log_path, len, &walk)?;
    if !active {
        times.extend(tracker.closing_time_entry());
    }
    let index = IndexFile::create(index_path, offsets)?;
    let time_index = IndexFile::create(time_path, times)?;
    if !active {
        index.seal()?;
        time_index.seal()?;
    }
    let segment = Segment::from_parts(
        base_offset,
        log_path,
        file,
        walk.valid_end,
        index,
        time_index,
        TxnIndex::open(txn_index_path(dir, base_offset))?,
        tracker.max_timestamp(),
        now_ms,
    );
    Ok(LoadedSegment {
        segment,
        tracker,
        next_offset,
        truncated,
    })
}

/// Opens a segment's log file for reading and appending; returns it with its length.
fn open_log(log_path: &Path) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(log_path)
        .map_err(|e| BrokerError::io(log_path, e))?;
    let len = file
        .metadata()
        .map_err(|e| BrokerError::io(log_path, e))?
        .len();
    Ok((file, len))
}

/// Cuts the file at the end of its last valid batch when the walk stopped before `len` (a
/// torn write or corruption), synced so the cut survives a crash; returns whether it cut.
fn truncate_invalid_tail(
    partition: &str,
    file: &File,
    log_path: &Path,
    len: u64,
    walk: &WalkEnd,
) -> Result<bool> {
    if walk.valid_end >= len {
        return Ok(false);
    }
    tracing::warn!(
        partition,
        file = %log_path.display(),
        position = walk.valid_end,
        bytes_cut = len - walk.valid_end,
        reason = walk.stop_reason.as_deref().unwrap_or("torn batch"),
        "truncating log segment at the first invalid batch"
    );
    file.set_len(walk.valid_end)
        .and_then(|_| file.sync_all())
        .map_err(|e| BrokerError::io(log_path, e))?;
    Ok(true)
}

/// Whether the stored indexes can describe a log of `len` bytes: offset entries inside the
/// file and increasing, time entries non-decreasing, and a time entry for a non-empty log.
fn indexes_consistent(offsets: &[OffsetEntry], times: &[TimeEntry], len: u64) -> bool {
    let offsets_ok = offsets.iter().all(|e| (e.position as u64) < len)
        && offsets
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
    let times_ok = times
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp && w[0].relative_offset < w[1].relative_offset);
    offsets_ok && times_ok && !(len > 0 && times.is_empty())
}

/// The cheap check of an older segment; `Ok(None)` means "do the full check".
fn tail_check(
    dir: &Path,
    file: &File,
    log_path: &Path,
    base_offset: i64,
    len: u64,
    now_ms: i64,
) -> Result<Option<LoadedSegment>> {
    let (_, index_path, time_path) = segment_paths(dir, base_offset);
    let Some(offsets) = IndexFile::<OffsetEntry>::read_entries(&index_path)? else {
        return Ok(None);
    };
    let Some(times) = IndexFile::<TimeEntry>::read_entries(&time_path)? else {
        return Ok(None);
    };
    if !indexes_consistent(&offsets, &times, len) {
        return Ok(None);
    }
    let tail_start = offsets.last().map(|e| e.position as u64).unwrap_or(0);
    let tail_first_offset = offsets
        .last()
        .map(|e| base_offset + e.relative_offset as i64)
        .unwrap_or(base_offset);
    let mut tail_max: Option<(i64, i64)> = None;
    let mut next_offset = None;
    let mut first_ok = true;
    let mut first = true;
    let walk = walk_batches(file, log_path, tail_start, len, base_offset, &mut |_, h| {
        if first && h.base_offset != tail_first_offset {
            first_ok = false;
        }
        first = false;
        if tail_max.is_none_or(|(ts, _)| h.max_timestamp >= ts) {
            tail_max = Some((h.max_timestamp, h.last_offset()));
        }
        next_offset = Some(h.last_offset() + 1);
    })?;
    if walk.valid_end != len || !first_ok {
        return Ok(None);
    }
    let last_time = times.last().copied();
    if let Some(t) = last_time {
        if next_offset.is_none_or(|next| base_offset + t.relative_offset as i64 >= next) {
            return Ok(None);
        }
    }
    let last_time = last_time.map(|t| (t.timestamp, base_offset + t.relative_offset as i64));
    // The closing entry names the largest timestamp and its last batch; the tail must agree.
    let max_timestamp = match (last_time, tail_max) {
        (Some(last), Some(tail)) if tail > last => return Ok(None),
        (Some(last), _) => Some(last),
        (None, tail) => tail,
    };
    let tracker = IndexTracker::resume(
        base_offset,
        (len - tail_start) as usize,
        max_timestamp,
        last_time,
    );
    let index = IndexFile::existing(index_path, offsets);
    let time_index = IndexFile::existing(time_path, times);
    let file = file.try_clone().map_err(|e| BrokerError::io(log_path, e))?;
    Ok(Some(LoadedSegment {
        segment: Segment::from_parts(
            base_offset,
            log_path.to_path_buf(),
            file,
            len,
            index,
            time_index,
            TxnIndex::open(txn_index_path(dir, base_offset))?,
            max_timestamp,
            now_ms,
        ),
        tracker,
        next_offset,
        truncated: false,
    }))
}

/// Where a validating walk stopped.
pub(crate) struct WalkEnd {
    /// End of the last valid batch.
    pub valid_end: u64,
    /// Why the walk stopped before the end of the file, if it did.
    pub stop_reason: Option<String>,
}

/// Why a batch at `pos` cannot be where it is, if it cannot: its base offset is below the
/// previous batch's end (`after_first`: it is not the walk's first batch), or its offsets or
/// bytes do not fit the segment.
fn misplaced(
    header: &BatchHeader,
    pos: u64,
    total: u64,
    after_first: bool,
    expected_offset: i64,
    base_offset: i64,
) -> Option<String> {
    if header.base_offset < expected_offset && after_first {
        return Some(format!(
            "batch base offset {} is below the expected {expected_offset}",
            header.base_offset
        ));
    }
    if header.base_offset < base_offset
        || header.last_offset() - base_offset > i32::MAX as i64
        || pos + total > MAX_SEGMENT_BYTES
    {
        return Some(format!(
            "batch offsets {}..={} do not fit the segment",
            header.base_offset,
            header.last_offset()
        ));
    }
    None
}

/// Walks the batches of a segment file from `start` to `len`, checking each header, CRC and
/// offset order, and calls `f(position, header)` for each valid batch. Stops at the first bad
/// one; only I/O errors are errors.
pub(crate) fn walk_batches(
    file: &File,
    path: &Path,
    start: u64,
    len: u64,
    base_offset: i64,
    f: &mut dyn FnMut(u64, &BatchHeader),
) -> Result<WalkEnd> {
    use std::os::unix::fs::FileExt;

    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let mut pos = start;
    let mut expected_offset = base_offset;
    let stop = |pos: u64, reason: String| {
        Ok(WalkEnd {
            valid_end: pos,
            stop_reason: Some(reason),
        })
    };
    while pos < len {
        let remaining = len - pos;
        if remaining < layout::HEADER_LEN as u64 {
            return stop(pos, format!("torn batch header ({remaining} bytes)"));
        }
        // Make sure the header is buffered, then the whole batch.
        let ensure = |need: u64, buf: &mut Vec<u8>, buf_start: &mut u64| -> Result<()> {
            if pos >= *buf_start && pos + need <= *buf_start + buf.len() as u64 {
                return Ok(());
            }
            let n = remaining.min(need.max(WALK_CHUNK as u64)) as usize;
            buf.resize(n, 0);
            file.read_exact_at(buf, pos)
                .map_err(|e| BrokerError::io(path, e))?;
            *buf_start = pos;
            Ok(())
        };
        ensure(layout::HEADER_LEN as u64, &mut buf, &mut buf_start)?;
        let at = (pos - buf_start) as usize;
        let header = match BatchHeader::parse(&buf[at..]) {
            Ok(h) => h,
            Err(e) => return stop(pos, e.to_string()),
        };
        let total = header.total_len() as u64;
        if total > remaining {
            return stop(
                pos,
                format!("torn batch: declares {total} bytes, {remaining} remain"),
            );
        }
        if let Some(reason) = misplaced(
            &header,
            pos,
            total,
            pos > start,
            expected_offset,
            base_offset,
        ) {
            return stop(pos, reason);
        }
        ensure(total, &mut buf, &mut buf_start)?;
        let at = (pos - buf_start) as usize;
        if let Err(e) = validate_crc(&buf[at..at + total as usize], &header) {
            return stop(pos, e.to_string());
        }
        f(pos, &header);
        expected_offset = header.last_offset() + 1;
        pos += total;
    }
    Ok(WalkEnd {
        valid_end: pos,
        stop_reason: None,
    })
}

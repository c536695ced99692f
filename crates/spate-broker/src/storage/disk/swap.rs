//! What the log cleaner needs from a disk log: read-only views of its segments, a place to
//! write a cleaned segment aside, and a crash-safe swap of old segments for the cleaned one.
//!
//! # The swap, step by step (Kafka's `.cleaned` → `.swap`)
//!
//! 1. The cleaner writes `<base>.log.cleaned` (named after the first replaced segment) and
//!    fsyncs it. A crash now leaves a `.cleaned` file, which the next open deletes: the old
//!    segments are untouched.
//! 2. Under the appender lock, the old segments are checked to still be in the log (retention
//!    may have deleted them meanwhile; then the cleaned file is dropped). `<base>.swap-end`
//!    records the offset where the replaced range ends (the next segment's base offset) and is
//!    fsynced; then `<base>.log.cleaned` is renamed to `<base>.log.swap` and the directory
//!    fsynced. **This rename is the commit point.**
//! 3. The old segments' files are deleted, `<base>.log.swap` is renamed to `<base>.log`, its
//!    indexes are written, the `.swap-end` file is removed and the directory fsynced; then the
//!    in-memory segment list is updated.
//!
//! Recovery ([`complete_interrupted_swaps`], run before segments are listed) deletes `.cleaned`
//! files and finishes every `.swap` it finds by redoing step 3 from the recorded range, so a
//! partition always comes back with either all old segments or the one cleaned segment. The
//! indexes of a swapped-in segment are rebuilt from its log on that open.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::checkpoint::{self, sync_dir};
use super::index::{IndexFile, OffsetEntry};
use super::log::{delete_segment_files, DiskLog};
use super::segment::{file_stem, segment_paths, Segment};
use super::time_index::{IndexTracker, TimeEntry};
use super::txn_index::{txn_index_path, TxnIndex};
use crate::error::{BrokerError, Result};
use crate::record_batch::BatchHeader;
use crate::storage::LogConfig;

const CLEANED_SUFFIX: &str = ".log.cleaned";
/// The cleaned segment's transaction index, written before the commit point and renamed into
/// place with the log.
const TXN_CLEANED_SUFFIX: &str = ".txnindex.cleaned";
const SWAP_SUFFIX: &str = ".log.swap";
const SWAP_END_SUFFIX: &str = ".swap-end";

/// File holding the cleaner's progress (the first dirty offset), like Kafka's
/// `cleaner-offset-checkpoint` but per partition directory.
pub(crate) const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// A read-only handle on one segment, for the cleaner. Cheap to clone; stays readable after the
/// segment is swapped out or deleted (the file handle is kept).
#[derive(Clone)]
pub struct SegmentRef(pub(super) Arc<Segment>);

impl std::fmt::Debug for SegmentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentRef")
            .field("base_offset", &self.0.base_offset)
            .finish_non_exhaustive()
    }
}

impl SegmentRef {
    /// The base offset of the segment.
    pub fn base_offset(&self) -> i64 {
        self.0.base_offset
    }

    /// Committed bytes.
    pub fn size(&self) -> u64 {
        self.0.size()
    }

    /// The largest batch timestamp in the segment.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.0.max_timestamp().map(|(ts, _)| ts)
    }

    /// When the segment was created or found on start.
    pub fn created_ms(&self) -> i64 {
        self.0.created_ms
    }

    /// Position of the first batch whose last offset is `>= offset` (via the offset index).
    pub fn position_for(&self, offset: i64) -> Result<Option<u64>> {
        self.0.position_for(offset, self.0.size())
    }

    /// Calls `f(position, header)` for each batch from `position` on.
    pub fn scan(
        &self,
        position: u64,
        f: &mut dyn FnMut(u64, &BatchHeader) -> ControlFlow<()>,
    ) -> Result<()> {
        self.0.scan_from(position, self.0.size(), f)
    }

    /// Reads the whole batches starting at `position`, at most `budget` bytes (always at least
    /// one batch), into `out` (replacing its contents). Returns the bytes read.
    pub fn read_batches(&self, position: u64, budget: usize, out: &mut Vec<u8>) -> Result<usize> {
        out.clear();
        self.0
            .read_batches(position, self.0.size(), budget, true, out)
    }

    fn is(&self, other: &Arc<Segment>) -> bool {
        Arc::ptr_eq(&self.0, other)
    }
}

/// A segment being written by the cleaner, beside the log (`<base>.log.cleaned`).
pub struct CleanedSegment {
    base_offset: i64,
    path: PathBuf,
    writer: BufWriter<File>,
    size: u64,
    tracker: IndexTracker,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    index_interval_bytes: usize,
    /// `(base, last)` offsets of the control batches (transaction markers) written, in order.
    controls: Vec<(i64, i64)>,
}

impl std::fmt::Debug for CleanedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanedSegment")
            .field("base_offset", &self.base_offset)
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl CleanedSegment {
    /// The base offset of the cleaned segment (that of the first segment it replaces).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends whole batches (`bytes` holds one or more, each described in `headers`).
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<()> {
        self.writer
            .write_all(batch)
            .map_err(|e| BrokerError::io(&self.path, e))?;
        let entries = self.tracker.on_batch(
            self.size,
            header.base_offset,
            header.last_offset(),
            header.max_timestamp,
            batch.len(),
            self.index_interval_bytes,
        );
        self.offsets.extend(entries.offset);
        self.times.extend(entries.time);
        self.size += batch.len() as u64;
        if header.is_control() {
            self.controls
                .push((header.base_offset, header.last_offset()));
        }
        Ok(())
    }

    /// Whether a control batch holding `offset` was written (a kept transaction marker).
    fn kept_control_at(&self, offset: i64) -> bool {
        let i = self.controls.partition_point(|(_, last)| *last < offset);
        self.controls
            .get(i)
            .is_some_and(|(base, _)| *base <= offset)
    }

    /// Flushes and fsyncs the file (step 1 of the swap).
    fn finish(&mut self) -> Result<()> {
        self.writer
            .flush()
            .and_then(|_| self.writer.get_ref().sync_all())
            .map_err(|e| BrokerError::io(&self.path, e))
    }

    /// Deletes the file (a cleaning that was abandoned).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BrokerError::io(path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| BrokerError::io(from, e))
}

fn write_synced(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| BrokerError::io(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| BrokerError::io(path, e))
}

impl DiskLog {
    /// The partition name (`topic-partition`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log's current config.
    pub fn config(&self) -> LogConfig {
        self.appender.lock().config.clone()
    }

    /// Every segment, oldest first; the last one is the active segment.
    pub fn segment_refs(&self) -> Vec<SegmentRef> {
        self.all_segments().into_iter().map(SegmentRef).collect()
    }

    /// Whether the log was removed or closed (the cleaner then leaves it alone).
    pub fn is_closed(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// The first offset the cleaner has not cleaned yet, as last checkpointed.
    pub fn cleaner_checkpoint(&self) -> Result<Option<i64>> {
        checkpoint::read_named(&self.dir, CLEANER_CHECKPOINT, &self.name)
    }

    /// Durably records the cleaner's progress.
    pub fn write_cleaner_checkpoint(&self, first_dirty_offset: i64) -> Result<()> {
        checkpoint::write_named(&self.dir, CLEANER_CHECKPOINT, first_dirty_offset)
    }

    /// Starts writing a cleaned segment that will replace segments starting at `base_offset`.
    pub fn create_cleaned(&self, base_offset: i64) -> Result<CleanedSegment> {
        let path = self
            .dir
            .join(format!("{}{CLEANED_SUFFIX}", file_stem(base_offset)));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        Ok(CleanedSegment {
            base_offset,
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            size: 0,
            tracker: IndexTracker::new(base_offset),
            offsets: Vec::new(),
            times: Vec::new(),
            index_interval_bytes: self.config().index_interval_bytes,
            controls: Vec::new(),
        })
    }

    /// Replaces `old` (consecutive segments, oldest first, none of them active) with `cleaned`.
    /// Returns `false`, discarding `cleaned`, when the log changed meanwhile so that `old` is no
    /// longer a run of its segments (retention or DeleteRecords removed some, or it was closed).
    pub fn replace_segments(
        &self,
        old: &[SegmentRef],
        mut cleaned: CleanedSegment,
    ) -> Result<bool> {
        cleaned.finish()?;
        let _app = self.appender.lock();
        let Some((first, end)) = self.locate_run(old) else {
            cleaned.discard();
            return Ok(false);
        };
        let base = cleaned.base_offset;
        debug_assert_eq!(base, old[0].base_offset());
        let stem = file_stem(base);
        // The replaced segments' aborted transactions move to the cleaned segment while their
        // ABORT marker stays, so that read_committed fetches still list them. An entry whose
        // marker the cleaner removed goes too (as in Kafka's cleaned transaction index): a
        // read_committed consumer told of an aborted transaction skips that producer's batches
        // until it reads the ABORT marker, so without the marker it would skip the producer's
        // later, committed transactions.
        let mut aborted = Vec::new();
        for seg in old {
            seg.0.txn_index.collect(i64::MIN, i64::MAX, &mut aborted);
        }
        aborted.retain(|a| cleaned.kept_control_at(a.last_offset));
        let txn_cleaned = self.dir.join(format!("{stem}{TXN_CLEANED_SUFFIX}"));
        remove_if_exists(&txn_cleaned)?;
        if !aborted.is_empty() {
            let index = TxnIndex::empty(txn_cleaned.clone());
            for a in aborted {
                index.append(a)?;
            }
            index.flush()?;
        }
        // Step 2: the commit point.
        let swap_end = self.dir.join(format!("{stem}{SWAP_END_SUFFIX}"));
        write_synced(&swap_end, &format!("{end}\n"))?;
        sync_dir(&self.dir)?;
        let swap = self.dir.join(format!("{stem}{SWAP_SUFFIX}"));
        rename(&cleaned.path, &swap)?;
        sync_dir(&self.dir)?;
        // Step 3.
        for seg in old {
            seg.0.delete_files()?;
        }
        install_txn_index(&self.dir, &stem, base)?;
        let segment = self.install_swapped(&swap, &mut cleaned)?;
        remove_if_exists(&swap_end)?;
        sync_dir(&self.dir)?;
        let mut segs = self.segments.write();
        segs.splice(first..first + old.len(), [Arc::new(segment)]);
        Ok(true)
    }

    /// Where `old` sits in the segment list, and the offset the run ends at (the next segment's
    /// base offset); `None` if it is not a run of current, non-active segments.
    fn locate_run(&self, old: &[SegmentRef]) -> Option<(usize, i64)> {
        if self.deleted.load(Ordering::Acquire) || old.is_empty() {
            return None;
        }
        let segs = self.segments.read();
        let first = segs.iter().position(|s| old[0].is(s))?;
        let after = first + old.len();
        // The active (last) segment is never replaced.
        if after >= segs.len() {
            return None;
        }
        let same = old.iter().zip(&segs[first..after]).all(|(o, s)| o.is(s));
        same.then(|| (first, segs[after].base_offset))
    }

    /// Renames the committed swap file into place and writes its indexes from what was
    /// tracked while it was written.
    fn install_swapped(&self, swap: &Path, cleaned: &mut CleanedSegment) -> Result<Segment> {
        let base = cleaned.base_offset;
        let (log_path, index_path, time_path) = segment_paths(&self.dir, base);
        rename(swap, &log_path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| BrokerError::io(&log_path, e))?;
        let mut times = std::mem::take(&mut cleaned.times);
        times.extend(cleaned.tracker.closing_time_entry());
        let index = IndexFile::create(index_path, std::mem::take(&mut cleaned.offsets))?;
        let time_index = IndexFile::create(time_path, times)?;
        index.seal()?;
        time_index.seal()?;
        Ok(Segment::from_parts(
            base,
            log_path,
            file,
            cleaned.size,
            index,
            time_index,
            TxnIndex::open(txn_index_path(&self.dir, base))?,
            cleaned.tracker.max_timestamp(),
            super::log::now_ms(),
        ))
    }
}

/// Recovery of interrupted cleanings in a partition directory, before its segments are listed:
/// deletes `.cleaned` files (step 1 never committed) and completes every committed `.swap`.
pub(crate) fn complete_interrupted_swaps(dir: &Path, partition: &str) -> Result<()> {
    let mut swaps = Vec::new();
    let mut changed = false;
    let rd = std::fs::read_dir(dir).map_err(|e| BrokerError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| BrokerError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            remove_if_exists(&entry.path())?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(TXN_CLEANED_SUFFIX) {
            // Kept only for a committed swap, which installs it below.
            if !dir.join(format!("{stem}{SWAP_SUFFIX}")).exists() {
                remove_if_exists(&entry.path())?;
                changed = true;
            }
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push(base);
            }
        }
    }
    swaps.sort_unstable();
    for base in swaps {
        finish_swap(dir, partition, base)?;
        changed = true;
    }
    remove_stale_swap_ends(dir)?;
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Redoes step 3 of the swap for the `.swap` file at `base`.
fn finish_swap(dir: &Path, partition: &str, base: i64) -> Result<()> {
    let stem = file_stem(base);
    let swap = dir.join(format!("{stem}{SWAP_SUFFIX}"));
    let end = read_swap_end(dir, &stem, &swap)?;
    tracing::info!(
        partition,
        base_offset = base,
        end_offset = end,
        "completing an interrupted log cleaner swap"
    );
    let rd = std::fs::read_dir(dir).map_err(|e| BrokerError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| BrokerError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(old) = name.to_str().and_then(super::segment::parse_log_file_name) {
            if old >= base && old < end {
                delete_segment_files(dir, old)?;
            }
        }
    }
    let (log_path, index_path, time_path) = segment_paths(dir, base);
    // Stale indexes of the replaced segment would describe other bytes.
    remove_if_exists(&index_path)?;
    remove_if_exists(&time_path)?;
    install_txn_index(dir, &stem, base)?;
    rename(&swap, &log_path)?;
    sync_dir(dir)?;
    remove_if_exists(&dir.join(format!("{stem}{SWAP_END_SUFFIX}")))
}

/// Renames the cleaned segment's transaction index into place (the old one, if any, was
/// deleted with the replaced segments).
fn install_txn_index(dir: &Path, stem: &str, base: i64) -> Result<()> {
    let cleaned = dir.join(format!("{stem}{TXN_CLEANED_SUFFIX}"));
    if !cleaned.exists() {
        return Ok(());
    }
    rename(&cleaned, &txn_index_path(dir, base))
}

/// The end of the range a swap replaces. The file is written before the commit point, so it is
/// there; should it be unreadable, the swap's own last offset bounds the range (Kafka's rule).
fn read_swap_end(dir: &Path, stem: &str, swap: &Path) -> Result<i64> {
    let path = dir.join(format!("{stem}{SWAP_END_SUFFIX}"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(end) = text.trim().parse::<i64>() {
            return Ok(end);
        }
    }
    let file = File::open(swap).map_err(|e| BrokerError::io(swap, e))?;
    let len = file.metadata().map_err(|e| BrokerError::io(swap, e))?.len();
    let base: i64 = stem.parse().unwrap_or(0);
    let mut next = base + 1;
    super::recovery::walk_batches(&file, swap, 0, len, base, &mut |_, h| {
        next = h.last_offset() + 1;
    })?;
    Ok(next)
}

/// `.swap-end` files whose swap completed (a crash right before their removal).
fn remove_stale_swap_ends(dir: &Path) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| BrokerError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| BrokerError::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(SWAP_END_SUFFIX))
        {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

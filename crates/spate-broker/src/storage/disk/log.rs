//! `DiskLog`: one partition as a directory of segments, implementing [`PartitionLog`].
//!
//! Locking, designed for one appender and many concurrent readers:
//!
//! * `appender` (a mutex) serialises appends, rolls, retention and DeleteRecords; it owns the
//!   config and the active segment's index bookkeeping.
//! * `segments` (a read-write lock over `Arc<Segment>`s sorted by base offset) is write-locked
//!   only to push a new segment or drop old ones; readers hold the read lock just long enough to
//!   clone the `Arc`s they need, never across I/O.
//! * `log_end_offset` and `log_start_offset` are atomics. An append writes the bytes, then its
//!   index entries, then publishes the segment size, then the log end offset (release); a reader
//!   loads the log end offset first (acquire), so every offset below it is readable.
//!
//! Reads use positional I/O on shared handles, so they block neither each other nor appends.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::checkpoint;
use super::recovery::{load_segment, Check};
use super::segment::{parse_log_file_name, segment_paths, Segment, MAX_SEGMENT_BYTES};
use super::time_index::IndexTracker;
use super::DiskOptions;
use crate::error::{BrokerError, Result};
use crate::record_batch::{self, BatchHeader};
use crate::storage::{AbortedTxn, AppendInfo, LogConfig, PartitionLog, TopicPartition};

/// Wall-clock milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Marker file a clean [`DiskLog::close`] leaves in the partition directory.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// State owned by whoever appends.
pub(super) struct Appender {
    pub config: LogConfig,
    pub active: Arc<Segment>,
    pub tracker: IndexTracker,
    /// Records appended since the last forced flush (`flush.messages`).
    pub unflushed_messages: u64,
    /// When the last forced flush happened (`flush.ms`).
    pub last_flush_ms: i64,
}

/// One partition log on disk. Open it through [`super::DiskStorage`].
pub struct DiskLog {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) options: DiskOptions,
    pub(super) segments: RwLock<Vec<Arc<Segment>>>,
    pub(super) appender: Mutex<Appender>,
    pub(super) log_start_offset: AtomicI64,
    pub(super) log_end_offset: AtomicI64,
    /// Set when the partition is removed or closed; later appends fail.
    pub(super) deleted: AtomicBool,
}

impl std::fmt::Debug for DiskLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskLog")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("log_end_offset", &self.log_end_offset)
            .finish_non_exhaustive()
    }
}

/// The segments an open recovered, and where the log ends.
struct Recovered {
    segments: Vec<Arc<Segment>>,
    /// The last segment (the active one), its index bookkeeping and the offset after its last
    /// batch, if any segment was loaded.
    tail: Option<(Arc<Segment>, IndexTracker, i64)>,
    /// Whether segment files were deleted (the directory then needs an fsync).
    deleted_any: bool,
}

impl DiskLog {
    /// Opens (recovering) or creates the log of `tp` in `dir`, in four phases: prepare the
    /// directory (and consume the clean-shutdown marker), drop segments below the checkpointed
    /// log start, load and check the rest, then make sure there is an active segment.
    pub(crate) fn open(
        dir: PathBuf,
        tp: &TopicPartition,
        config: LogConfig,
        options: DiskOptions,
    ) -> Result<DiskLog> {
        let name = tp.to_string();
        let now = now_ms();
        let clean = prepare_dir(&dir)?;
        super::swap::complete_interrupted_swaps(&dir, &name)?;
        let bases = list_segments(&dir, &name)?;
        let checkpointed = checkpoint::read(&dir, &name)?;
        let first = drop_checkpointed_segments(&dir, &bases, checkpointed)?;
        let mut recovered = load_segments(&name, &dir, &bases[first..], clean, &config, now)?;
        recovered.deleted_any |= first > 0;
        let (active, tracker, log_end) = match recovered.tail.take() {
            Some(tail) => tail,
            None => {
                let base = checkpointed.unwrap_or(0);
                let seg = Arc::new(Segment::create(&dir, base, now)?);
                checkpoint::sync_dir(&dir)?;
                recovered.segments.push(seg.clone());
                (seg, IndexTracker::new(base), base)
            }
        };
        if recovered.deleted_any {
            checkpoint::sync_dir(&dir)?;
        }
        let segments = recovered.segments;
        let first_base = segments.first().map(|s| s.base_offset).unwrap_or(0);
        let log_start = checkpointed.unwrap_or(0).max(first_base).min(log_end);
        tracing::debug!(
            partition = %name,
            segments = segments.len(),
            log_start,
            log_end,
            "opened partition log"
        );
        Ok(DiskLog {
            name,
            dir,
            options,
            segments: RwLock::new(segments),
            appender: Mutex::new(Appender {
                config,
                active,
                tracker,
                unflushed_messages: 0,
                last_flush_ms: now,
            }),
            log_start_offset: AtomicI64::new(log_start),
            log_end_offset: AtomicI64::new(log_end),
            deleted: AtomicBool::new(false),
        })
    }

    /// Shuts the log down cleanly: closes the active segment's time index, fsyncs every
    /// segment and index, and leaves a marker so that the next open trusts the indexes instead of
    /// re-validating the whole active segment. Later appends fail. Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut app = self.appender.lock();
        if self.deleted.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(entry) = app.tracker.closing_time_entry() {
            app.active.time_index.append(entry);
        }
        app.active.mark_dirty();
        self.flush_all()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| BrokerError::io(&marker, e))?;
        checkpoint::sync_dir(&self.dir)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.read().iter().map(|s| s.base_offset).collect()
    }

    pub(super) fn out_of_range(&self, requested: i64) -> BrokerError {
        BrokerError::OffsetOutOfRange {
            partition: self.name.clone(),
            requested,
            log_start_offset: self.log_start_offset.load(Ordering::Acquire),
            log_end_offset: self.log_end_offset.load(Ordering::Acquire),
        }
    }

    /// The segments from the one that may hold `offset` to the end (clones of the `Arc`s, so no
    /// lock is held during I/O).
    pub(super) fn segments_from(&self, offset: i64) -> Vec<Arc<Segment>> {
        let segs = self.segments.read();
        let i = segs
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        segs[i..].to_vec()
    }

    pub(super) fn all_segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    fn should_roll(
        &self,
        app: &Appender,
        batch_len: usize,
        last_offset_delta: i32,
        now: i64,
    ) -> bool {
        let seg = &app.active;
        let size = seg.size();
        if size == 0 {
            return false;
        }
        let limit = app.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let log_end = self.log_end_offset.load(Ordering::Acquire);
        size + batch_len as u64 > limit
            || now.saturating_sub(seg.created_ms) > app.config.effective_segment_ms()
            || log_end + last_offset_delta as i64 - seg.base_offset > i32::MAX as i64
    }

    /// Closes the active segment and starts a new one at the log end offset.
    pub(super) fn roll(&self, app: &mut Appender, now: i64) -> Result<()> {
        let base = self.log_end_offset.load(Ordering::Acquire);
        let old = app.active.clone();
        if let Some(entry) = app.tracker.closing_time_entry() {
            old.time_index.append(entry);
        }
        old.seal_indexes()?;
        let seg = Arc::new(Segment::create(&self.dir, base, now)?);
        checkpoint::sync_dir(&self.dir)?;
        self.segments.write().push(seg.clone());
        tracing::debug!(partition = %self.name, base_offset = base, "rolled new segment");
        app.active = seg;
        app.tracker = IndexTracker::new(base);
        Ok(())
    }

    fn append_batch(&self, batch: &mut [u8], header: &BatchHeader) -> Result<AppendInfo> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(BrokerError::UnknownTopicPartition(self.name.clone()));
        }
        if batch.len() != header.total_len() {
            return Err(BrokerError::CorruptBatch(format!(
                "append of {} bytes whose header declares {}",
                batch.len(),
                header.total_len()
            )));
        }
        let mut app = self.appender.lock();
        if batch.len() > app.config.max_message_bytes {
            return Err(BrokerError::RecordBatchTooLarge {
                size: batch.len(),
                max: app.config.max_message_bytes,
            });
        }
        let now = now_ms();
        if self.should_roll(&app, batch.len(), header.last_offset_delta, now) {
            self.roll(&mut app, now)?;
        }
        let base = self.log_end_offset.load(Ordering::Acquire);
        let last = base + header.last_offset_delta as i64;
        record_batch::set_base_offset(batch, base);

        let seg = app.active.clone();
        let position = seg.size();
        seg.write_at(batch, position)?;
        if self.options.fsync_every_append {
            seg.sync_log()?;
        }
        let interval = app.config.index_interval_bytes;
        let entries = app.tracker.on_batch(
            position,
            base,
            last,
            header.max_timestamp,
            batch.len(),
            interval,
        );
        if let Some(e) = entries.offset {
            seg.index.append(e);
        }
        if let Some(e) = entries.time {
            seg.time_index.append(e);
        }
        seg.commit(position + batch.len() as u64, app.tracker.max_timestamp());
        self.log_end_offset.store(last + 1, Ordering::Release);

        app.unflushed_messages = app
            .unflushed_messages
            .saturating_add(header.last_offset_delta as u64 + 1);
        self.maybe_flush(&mut app, now)?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_start_offset: self.log_start_offset.load(Ordering::Acquire),
        })
    }

    /// Applies `flush.messages` and `flush.ms`.
    pub(super) fn maybe_flush(&self, app: &mut Appender, now: i64) -> Result<()> {
        if app.unflushed_messages == 0 {
            return Ok(());
        }
        let elapsed = now.saturating_sub(app.last_flush_ms).max(0) as u64;
        if app.unflushed_messages >= app.config.flush_messages || elapsed >= app.config.flush_ms {
            self.flush_all()?;
            app.unflushed_messages = 0;
            app.last_flush_ms = now;
        }
        Ok(())
    }

    /// fsyncs every segment with unsynced appends.
    fn flush_all(&self) -> Result<()> {
        for seg in self.all_segments() {
            seg.flush()?;
        }
        Ok(())
    }

    fn read_from(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        let log_end = self.log_end_offset.load(Ordering::Acquire);
        let log_start = self.log_start_offset.load(Ordering::Acquire);
        if offset < log_start || offset > log_end {
            return Err(self.out_of_range(offset));
        }
        if offset == log_end {
            return Ok(Bytes::new());
        }
        let segments = self.segments_from(offset);
        // Retention may have moved the start past `offset` (and dropped its segment) meanwhile.
        if offset < self.log_start_offset.load(Ordering::Acquire) {
            return Err(self.out_of_range(offset));
        }
        let mut out = Vec::new();
        let mut first = true;
        for seg in segments {
            let end = seg.size();
            let position = if first {
                match seg.position_for(offset, end)? {
                    Some(p) => p,
                    None => continue,
                }
            } else {
                0
            };
            first = false;
            let budget = max_bytes.saturating_sub(out.len());
            let before = out.len();
            let read = seg.read_batches(position, end, budget, before == 0, &mut out)?;
            if out.len() >= max_bytes || read < (end - position) as usize {
                break;
            }
        }
        Ok(Bytes::from(out))
    }

    fn scan(&self, from_offset: i64, f: &mut dyn FnMut(&BatchHeader)) -> Result<()> {
        let from = from_offset.max(self.log_start_offset.load(Ordering::Acquire));
        for seg in self.segments_from(from) {
            let end = seg.size();
            seg.scan_indexed(from, end, &mut |_, h| {
                if h.last_offset() >= from {
                    f(h);
                }
                ControlFlow::Continue(())
            })?;
        }
        Ok(())
    }
}

/// Creates the partition directory if needed and consumes the clean-shutdown marker; returns
/// whether the last shutdown was clean. A clean shutdown vouches for the active segment once:
/// the marker is removed before any append can make it a lie.
fn prepare_dir(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::io(dir, e))?;
        if let Some(parent) = dir.parent() {
            checkpoint::sync_dir(parent)?;
        }
    }
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    if clean {
        std::fs::remove_file(&marker).map_err(|e| BrokerError::io(&marker, e))?;
        checkpoint::sync_dir(dir)?;
    }
    Ok(clean)
}

/// Deletes the segments wholly below the checkpointed log start (they were being deleted when
/// the broker stopped); returns how many of `bases` were deleted (always a prefix, never the
/// last segment).
fn drop_checkpointed_segments(
    dir: &Path,
    bases: &[i64],
    checkpointed: Option<i64>,
) -> Result<usize> {
    let mut first = 0;
    if let Some(start) = checkpointed {
        while first + 1 < bases.len() && bases[first + 1] <= start {
            delete_segment_files(dir, bases[first])?;
            first += 1;
        }
    }
    Ok(first)
}

/// Loads the segments at `bases` in order, checking that each ends before the next begins. The
/// last one is the active segment, re-validated unless the shutdown was `clean`. As Kafka does,
/// the log ends at the first corruption: segments after a truncated one are deleted.
fn load_segments(
    name: &str,
    dir: &Path,
    bases: &[i64],
    clean: bool,
    config: &LogConfig,
    now: i64,
) -> Result<Recovered> {
    let mut recovered = Recovered {
        segments: Vec::with_capacity(bases.len()),
        tail: None,
        deleted_any: false,
    };
    for (i, &base) in bases.iter().enumerate() {
        let active = i + 1 == bases.len();
        let check = match (active, clean) {
            (false, _) => Check::Closed,
            (true, true) => Check::CleanActive,
            (true, false) => Check::Active,
        };
        let loaded = load_segment(name, dir, base, check, config.index_interval_bytes, now)?;
        if let (Some(next), Some(&next_base)) = (loaded.next_offset, bases.get(i + 1)) {
            if next > next_base {
                return Err(BrokerError::CorruptSegment {
                    path: loaded.segment.log_path().to_path_buf(),
                    position: loaded.segment.size(),
                    reason: format!(
                        "holds offsets up to {} but the next segment starts at {next_base}",
                        next - 1
                    ),
                });
            }
        }
        let segment = Arc::new(loaded.segment);
        recovered.tail = Some((
            segment.clone(),
            loaded.tracker,
            loaded.next_offset.unwrap_or(base),
        ));
        recovered.segments.push(segment);
        if loaded.truncated && !active {
            for &later in &bases[i + 1..] {
                tracing::warn!(
                    partition = %name,
                    base_offset = later,
                    "deleting segment after a truncated one"
                );
                delete_segment_files(dir, later)?;
                recovered.deleted_any = true;
            }
            break;
        }
    }
    Ok(recovered)
}

/// Base offsets of the segment files in `dir`, sorted; removes leftovers of interrupted writes.
fn list_segments(dir: &Path, partition: &str) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| BrokerError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| BrokerError::io(dir, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if let Some(base) = parse_log_file_name(name) {
            bases.push(base);
        } else if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        } else if name.ends_with(".log") {
            tracing::warn!(
                partition,
                file = name,
                "ignoring file with an unparsable segment name"
            );
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

pub(super) fn delete_segment_files(dir: &Path, base: i64) -> Result<()> {
    let (a, b, c) = segment_paths(dir, base);
    for p in [a, b, c, super::txn_index::txn_index_path(dir, base)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BrokerError::io(&p, e)),
        }
    }
    Ok(())
}

impl PartitionLog for DiskLog {
    fn append(&self, batch: &mut [u8], header: &BatchHeader) -> Result<AppendInfo> {
        self.append_batch(batch, header)
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        self.read_from(offset, max_bytes)
    }

    fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.lookup_timestamp(timestamp)
    }

    fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.largest_timestamp()
    }

    fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.advance_log_start(offset)
    }

    fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        self.apply_retention(now_ms)
    }

    fn flush(&self) -> Result<()> {
        self.flush_all()
    }

    fn update_config(&self, config: LogConfig) {
        self.appender.lock().config = config;
    }

    fn size_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.size()).sum()
    }

    fn scan_headers(&self, from_offset: i64, f: &mut dyn FnMut(&BatchHeader)) -> Result<()> {
        self.scan(from_offset, f)
    }

    fn as_disk(&self) -> Option<&DiskLog> {
        Some(self)
    }

    fn add_aborted_txn(&self, txn: AbortedTxn) -> Result<()> {
        // The entry belongs to the segment holding its marker, so it is deleted with it.
        let seg = self
            .segments_from(txn.last_offset)
            .into_iter()
            .next()
            .ok_or_else(|| BrokerError::UnknownTopicPartition(self.name.clone()))?;
        seg.txn_index.append(txn)
    }

    fn aborted_txns(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for seg in self.segments_from(from) {
            seg.txn_index.collect(from, upto, &mut out);
        }
        out
    }

    fn state_dir(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
}

//! A reusable write-ahead log: Spark's `FileBasedWriteAheadLog`, with framing that detects torn
//! writes and group commit.
//!
//! Used by receivers (one log per input stream under `<checkpoint>/receivedData/<stream id>`: a
//! block is durable here before the receiver commits its source offsets) and by the driver's
//! `ReceivedBlockTracker` (`<checkpoint>/receivedBlockMetadata`: block additions and batch
//! allocations). It knows nothing about what it stores: records are `(time, bytes)`.
//!
//! A log is a directory of segment files, `log-<sequence>.wal`, each a header and a run of
//! length + CRC-32C + time + payload records (layout in the `segment` module). Appends go to the
//! newest ("active") segment; a segment is rolled when a record's time is at least
//! `rolling_interval_ms` after the segment's first record (Spark's `rollingIntervalSecs`, 60 s) or
//! when it would exceed `max_segment_bytes`. A process that opens the log never appends to an old
//! segment: it starts a new one, so a crashed writer's torn tail is only ever at the end of a
//! sealed segment, where [`WriteAheadLog::open`] truncates it (with a warning naming the file and
//! byte offset). [`WriteAheadLog::clean`] deletes whole segments whose records are all older than
//! a threshold, as Spark's `clean(threshTime)` does.
//!
//! Durability ([`FsyncPolicy`]): with `Always` (the default, and what receivers need) `append`
//! returns only after the record is fsynced. Concurrent appenders share fsyncs: a writer that
//! finds its bytes already covered by another thread's fsync returns at once, so N threads
//! appending together cost far fewer than N fsyncs (group commit). `Interval` fsyncs at most once
//! per interval (Spark's driver-side batching trades the same way); `Never` leaves it to the OS.
//!
//! # Example
//!
//! ```
//! use spate_streaming::wal::{WalConfig, WriteAheadLog};
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let wal = WriteAheadLog::open(dir.path(), WalConfig::default())?;
//! let handle = wal.append(1_000, b"block bytes")?; // fsynced when this returns
//! assert_eq!(wal.read(&handle)?, b"block bytes");
//! assert_eq!(wal.read_all()?.len(), 1);
//! wal.clean(2_000)?; // drop segments whose records are all older than 2 s
//! # Ok::<(), spate_streaming::StreamingError>(())
//! ```

mod segment;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamingError};
use segment::{segment_file_name, SEGMENT_HEADER_LEN};

/// Spark's `spark.streaming.{receiver,driver}.writeAheadLog.rollingIntervalSecs` default, in ms.
pub const DEFAULT_ROLLING_INTERVAL_MS: i64 = 60_000;
/// Default maximum segment size before rolling.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Every `append` returns only once its record is durable; concurrent appends share fsyncs.
    #[default]
    Always,
    /// fsync when at least this long has passed since the last fsync, on roll, on
    /// [`WriteAheadLog::flush`] and on drop. A crash may lose the last interval's records.
    Interval(Duration),
    /// Never fsync explicitly (the OS writes back eventually). For tests and scratch data.
    Never,
}

/// Configuration of a [`WriteAheadLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// Roll to a new segment once a record's time is this far past the segment's first record.
    pub rolling_interval_ms: i64,
    /// Roll to a new segment before a segment would grow past this many bytes.
    pub max_segment_bytes: u64,
    /// When to fsync.
    pub fsync: FsyncPolicy,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            rolling_interval_ms: DEFAULT_ROLLING_INTERVAL_MS,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// Where a record is: enough to read it back without scanning. Serializable, so it can be
/// logged elsewhere (the block tracker records the handle of each block it is told about).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WalRecordHandle {
    /// Sequence number of the segment file.
    pub segment: u64,
    /// Byte offset of the record's frame inside the segment.
    pub offset: u64,
    /// Payload length in bytes.
    pub length: u32,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Where it is.
    pub handle: WalRecordHandle,
    /// The time it was appended with.
    pub time_ms: i64,
    /// Its bytes.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
struct SegmentInfo {
    min_time: Option<i64>,
    max_time: Option<i64>,
}

impl SegmentInfo {
    fn empty() -> Self {
        SegmentInfo {
            min_time: None,
            max_time: None,
        }
    }

    fn note(&mut self, time_ms: i64) {
        self.min_time = Some(self.min_time.map_or(time_ms, |m| m.min(time_ms)));
        self.max_time = Some(self.max_time.map_or(time_ms, |m| m.max(time_ms)));
    }
}

#[derive(Debug)]
struct Active {
    seq: u64,
    file: Arc<File>,
    first_time: i64,
    len: u64,
}

#[derive(Debug)]
struct Inner {
    /// Every segment on disk (sealed and active), by sequence number.
    segments: BTreeMap<u64, SegmentInfo>,
    active: Option<Active>,
    next_seq: u64,
    /// Bytes appended by this process across all segments: a position that only grows, so
    /// "is my record synced?" is one comparison even across rolls.
    logical_end: u64,
    synced_to: u64,
    last_sync: Instant,
}

/// A write-ahead log in one directory. See the module docs. Thread-safe: share it behind an
/// `Arc` and `append` from any thread; appends are serialized internally.
#[derive(Debug)]
pub struct WriteAheadLog {
    dir: PathBuf,
    config: WalConfig,
    inner: Mutex<Inner>,
    /// Serializes fsyncs so that concurrent appenders wait for one fsync instead of issuing many.
    sync_lock: Mutex<()>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StreamingError + '_ {
    move |source| StreamingError::WalIo {
        path: path.to_path_buf(),
        source,
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl WriteAheadLog {
    /// Opens (creating if needed) the log in `dir`, truncating a torn tail left by a crash.
    pub fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if config.rolling_interval_ms <= 0 {
            return Err(StreamingError::InvalidConfig {
                name: "writeAheadLog.rollingIntervalSecs".into(),
                value: format!("{} ms", config.rolling_interval_ms),
                reason: "must be positive".into(),
            });
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if let Some(seq) = entry
                .file_name()
                .to_str()
                .and_then(segment::parse_segment_name)
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut segments = BTreeMap::new();
        let last = seqs.last().copied();
        for seq in seqs {
            let path = dir.join(segment_file_name(seq));
            // Only the newest segment can have been cut short by a crash: every older one was
            // fsynced when it was rolled. So only it is fully verified here.
            let is_last = Some(seq) == last;
            let scan = segment::scan_segment(&path, is_last, None)?;
            if let Some(torn) = &scan.torn {
                if scan.valid_end < SEGMENT_HEADER_LEN {
                    tracing::warn!(path = %path.display(), reason = %torn.reason,
                        "removing write-ahead log segment whose header was never completely written");
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    continue;
                }
                tracing::warn!(
                    path = %path.display(),
                    offset = torn.offset,
                    dropped_bytes = scan.file_len - scan.valid_end,
                    reason = %torn.reason,
                    "truncating torn tail of write-ahead log segment"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                file.set_len(scan.valid_end).map_err(io_err(&path))?;
                file.sync_all().map_err(io_err(&path))?;
            }
            let mut info = SegmentInfo::empty();
            for r in &scan.records {
                info.note(r.time_ms);
            }
            segments.insert(seq, info);
        }
        let next_seq = segments.keys().next_back().map_or(0, |s| s + 1);
        Ok(WriteAheadLog {
            dir,
            config,
            inner: Mutex::new(Inner {
                segments,
                active: None,
                next_seq,
                logical_end: 0,
                synced_to: 0,
                last_sync: Instant::now(),
            }),
            sync_lock: Mutex::new(()),
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a record with time `time_ms` and returns its handle. With [`FsyncPolicy::Always`]
    /// the record is durable when this returns.
    pub fn append(&self, time_ms: i64, payload: &[u8]) -> Result<WalRecordHandle> {
        let header = segment::encode_record_header(time_ms, payload)?;
        let frame_len = (header.len() + payload.len()) as u64;
        let (handle, my_end) = {
            let mut inner = self.inner.lock();
            self.roll_if_needed(&mut inner, time_ms, frame_len)?;
            let active = self.active_segment(&mut inner, time_ms)?;
            let offset = active.len;
            let seq = active.seq;
            if let Err(source) = segment::write_frame(&*active.file, &header, payload) {
                // A partial frame may be on disk. Cut it off if we can; either way stop using
                // this segment, so later records never sit behind garbage.
                let path = self.segment_path(seq);
                let _ = active.file.set_len(offset);
                let _ = active.file.sync_all();
                inner.active = None;
                return Err(StreamingError::WalIo { path, source });
            }
            active.len += frame_len;
            inner.logical_end += frame_len;
            if let Some(info) = inner.segments.get_mut(&seq) {
                info.note(time_ms);
            }
            (
                WalRecordHandle {
                    segment: seq,
                    offset,
                    length: payload.len() as u32,
                },
                inner.logical_end,
            )
        };
        match self.config.fsync {
            FsyncPolicy::Always => self.sync_to(my_end)?,
            FsyncPolicy::Interval(every) => {
                let due = self.inner.lock().last_sync.elapsed() >= every;
                if due {
                    self.sync_to(my_end)?;
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(handle)
    }

    /// fsyncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        let end = self.inner.lock().logical_end;
        self.sync_to(end)
    }

    /// Group commit: makes sure bytes up to logical position `end` are durable, issuing at most
    /// one fsync for any number of threads waiting on overlapping positions.
    fn sync_to(&self, end: u64) -> Result<()> {
        let _serial = self.sync_lock.lock();
        let (file, covers, seq) = {
            let inner = self.inner.lock();
            if inner.synced_to >= end {
                return Ok(()); // another thread's fsync covered us while we waited
            }
            match &inner.active {
                Some(a) => (Arc::clone(&a.file), inner.logical_end, a.seq),
                // Rolled or cleaned since: rolling fsyncs the old segment, so we are covered.
                None => return Ok(()),
            }
        };
        file.sync_data().map_err(io_err(&self.segment_path(seq)))?;
        let mut inner = self.inner.lock();
        inner.synced_to = inner.synced_to.max(covers);
        inner.last_sync = Instant::now();
        Ok(())
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_file_name(seq))
    }

    fn roll_if_needed(&self, inner: &mut Inner, time_ms: i64, frame_len: u64) -> Result<()> {
        let Some(active) = &inner.active else {
            return Ok(());
        };
        let by_time = time_ms
            >= active
                .first_time
                .saturating_add(self.config.rolling_interval_ms);
        let has_records = active.len > SEGMENT_HEADER_LEN;
        let by_size = has_records && active.len + frame_len > self.config.max_segment_bytes;
        if by_time || by_size {
            self.seal_active(inner)?;
        }
        Ok(())
    }

    /// Fsyncs and forgets the active segment; the next append starts a new one.
    fn seal_active(&self, inner: &mut Inner) -> Result<()> {
        if let Some(active) = inner.active.take() {
            if self.config.fsync != FsyncPolicy::Never {
                active
                    .file
                    .sync_all()
                    .map_err(io_err(&self.segment_path(active.seq)))?;
            }
            inner.synced_to = inner.synced_to.max(inner.logical_end);
            tracing::debug!(
                segment = active.seq,
                bytes = active.len,
                "rolled write-ahead log segment"
            );
        }
        Ok(())
    }

    fn active_segment<'a>(&self, inner: &'a mut Inner, time_ms: i64) -> Result<&'a mut Active> {
        if inner.active.is_none() {
            let seq = inner.next_seq;
            let path = self.segment_path(seq);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err(&path))?;
            file.write_all(&segment::segment_header())
                .map_err(io_err(&path))?;
            // The new file and its directory entry must be durable before any record in it is
            // acknowledged, or an fsynced record could vanish with its file.
            if self.config.fsync != FsyncPolicy::Never {
                file.sync_all().map_err(io_err(&path))?;
                fsync_dir(&self.dir)?;
            }
            inner.next_seq += 1;
            inner.segments.insert(seq, SegmentInfo::empty());
            inner.active = Some(Active {
                seq,
                file: Arc::new(file),
                first_time: time_ms,
                len: SEGMENT_HEADER_LEN,
            });
        }
        inner.active.as_mut().ok_or_else(|| StreamingError::WalIo {
            path: self.dir.clone(),
            source: std::io::Error::other("no active segment"),
        })
    }

    /// Reads one record by handle, verifying its CRC.
    pub fn read(&self, handle: &WalRecordHandle) -> Result<Vec<u8>> {
        read_record_in(&self.dir, handle).map(|(_, payload)| payload)
    }

    /// Reads every record in log order (segment by segment, in append order within a segment),
    /// verifying CRCs. A torn tail ends its segment's records with a warning; damage anywhere else
    /// is [`StreamingError::WalCorrupt`] naming the segment and byte offset.
    pub fn read_all(&self) -> Result<Vec<WalRecord>> {
        let seqs: Vec<(u64, Option<u64>)> = {
            let inner = self.inner.lock();
            let active = inner.active.as_ref().map(|a| (a.seq, a.len));
            inner
                .segments
                .keys()
                .map(|seq| (*seq, active.filter(|(s, _)| s == seq).map(|(_, len)| len)))
                .collect()
        };
        let mut out = Vec::new();
        for (seq, limit) in seqs {
            let path = self.segment_path(seq);
            let scan = match segment::scan_segment(&path, true, limit) {
                Ok(scan) => scan,
                // Cleaned concurrently: its records were older than someone's threshold.
                Err(StreamingError::WalIo { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            if let Some(torn) = &scan.torn {
                tracing::warn!(path = %path.display(), offset = torn.offset, reason = %torn.reason,
                    "write-ahead log segment ends in a torn record; stopping at the last valid one");
            }
            out.extend(scan.records.into_iter().map(|r| WalRecord {
                handle: WalRecordHandle {
                    segment: seq,
                    offset: r.offset,
                    length: r.len,
                },
                time_ms: r.time_ms,
                payload: r.payload,
            }));
        }
        Ok(out)
    }

    /// Deletes every segment whose records are all older than `older_than_ms` (and empty
    /// segments). Returns how many segment files were deleted. The active segment is sealed
    /// first if it qualifies.
    pub fn clean(&self, older_than_ms: i64) -> Result<usize> {
        let mut inner = self.inner.lock();
        let doomed: Vec<u64> = inner
            .segments
            .iter()
            .filter(|(_, info)| info.max_time.is_none_or(|t| t < older_than_ms))
            .map(|(seq, _)| *seq)
            .collect();
        let mut deleted = 0;
        for seq in doomed {
            if inner.active.as_ref().is_some_and(|a| a.seq == seq) {
                if inner
                    .segments
                    .get(&seq)
                    .is_some_and(|i| i.max_time.is_none())
                {
                    continue; // freshly created, about to receive its first record
                }
                self.seal_active(&mut inner)?;
            }
            let path = self.segment_path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StreamingError::WalIo { path, source }),
            }
            inner.segments.remove(&seq);
            deleted += 1;
        }
        if deleted > 0 {
            fsync_dir(&self.dir)?;
            tracing::debug!(dir = %self.dir.display(), deleted, older_than_ms, "cleaned write-ahead log");
        }
        Ok(deleted)
    }

    /// Number of segment files currently in the log.
    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }
}

impl Drop for WriteAheadLog {
    fn drop(&mut self) {
        if let FsyncPolicy::Interval(_) = self.config.fsync {
            if let Err(e) = self.flush() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "final write-ahead log fsync failed");
            }
        }
    }
}

/// Reads one record of the log in `dir` by handle without opening the log (no recovery, no
/// locks): for readers in another component, such as a batch re-reading a block.
pub fn read_record_in(dir: &Path, handle: &WalRecordHandle) -> Result<(i64, Vec<u8>)> {
    segment::read_record(
        &dir.join(segment_file_name(handle.segment)),
        handle.offset,
        handle.length,
    )
}

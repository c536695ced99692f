//! One log segment: `<base offset>.log` holding record batches back to back exactly as appended,
//! with its offset index and time index.
//!
//! Concurrency: only the partition's appender writes, and it publishes each batch by storing the
//! new `size` (release) after the bytes and index entries are in place; readers load `size`
//! (acquire) and never look past it, so a reader never sees a half-written batch. All file access
//! is positional (`pread`/`pwrite`), so any number of readers share the file handle with the
//! appender without a lock. A deleted segment's open handle stays readable until its last reader
//! drops it.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::index::{floor_entry, IndexFile, OffsetEntry};
use super::time_index::TimeEntry;
use super::txn_index::{txn_index_path, TxnIndex};
use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, BatchHeader};

/// Largest size a segment may reach: index positions are 32-bit, as in Kafka.
pub(crate) const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// How much a header scan reads ahead, so that walking small batches is not a syscall each.
const SCAN_CHUNK: usize = 16 * 1024;

/// `<20-digit base offset>` — the stem shared by a segment's three files.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// The base offset named by a `<20 digits>.log` file name.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Paths of the `.log`, `.index` and `.timeindex` files of the segment at `base_offset`.
pub(crate) fn segment_paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = file_stem(base_offset);
    (
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.index")),
        dir.join(format!("{stem}.timeindex")),
    )
}

/// One segment of a partition log.
pub(crate) struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    file: File,
    size: AtomicU64,
    pub index: IndexFile<OffsetEntry>,
    pub time_index: IndexFile<TimeEntry>,
    /// Aborted transactions whose marker is in this segment.
    pub txn_index: TxnIndex,
    /// `(max timestamp, last offset of the batch holding it)`; ties go to the later batch.
    max_timestamp: Mutex<Option<(i64, i64)>>,
    /// Wall-clock time the segment was created (or found, after a restart): `segment.ms` rolls
    /// count from here, and retention falls back to it for batches without timestamps.
    pub created_ms: i64,
    /// Set by appends, cleared by `flush`: whether an fsync has anything to do.
    dirty: AtomicBool,
    /// Set once an offset index entry was found not to match the log (warn only once).
    index_suspect: AtomicBool,
}

impl Segment {
    /// Creates an empty segment (replacing leftovers of the same name).
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Segment> {
        let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| BrokerError::io(&log_path, e))?;
        let index = IndexFile::create(index_path, Vec::new())?;
        let time_index = IndexFile::create(time_path, Vec::new())?;
        let txn_path = txn_index_path(dir, base_offset);
        match std::fs::remove_file(&txn_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(BrokerError::io(&txn_path, e)),
        }
        Ok(Segment::from_parts(
            base_offset,
            log_path,
            file,
            0,
            index,
            time_index,
            TxnIndex::empty(txn_path),
            None,
            now_ms,
        ))
    }

    /// Assembles a segment whose files recovery has checked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        size: u64,
        index: IndexFile<OffsetEntry>,
        time_index: IndexFile<TimeEntry>,
        txn_index: TxnIndex,
        max_timestamp: Option<(i64, i64)>,
        created_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log_path,
            file,
            size: AtomicU64::new(size),
            index,
            time_index,
            txn_index,
            max_timestamp: Mutex::new(max_timestamp),
            created_ms,
            dirty: AtomicBool::new(false),
            index_suspect: AtomicBool::new(false),
        }
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Committed bytes: everything below is whole batches.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Writes batch bytes at `position` (the current size); invisible until [`Self::commit`].
    pub(crate) fn write_at(&self, bytes: &[u8], position: u64) -> Result<()> {
        self.dirty.store(true, Ordering::Relaxed);
        self.file
            .write_all_at(bytes, position)
            .map_err(|e| BrokerError::io(&self.log_path, e))
    }

    /// Publishes the bytes written below `new_size` and the batch's max timestamp.
    ///
    /// The size is stored first: a reader that sees the new max timestamp (under the mutex) is
    /// then guaranteed to see the batch that holds it.
    pub(crate) fn commit(&self, new_size: u64, max_timestamp: Option<(i64, i64)>) {
        self.size.store(new_size, Ordering::Release);
        *self.max_timestamp.lock() = max_timestamp;
    }

    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        *self.max_timestamp.lock()
    }

    /// fsyncs the log file only (the "fsync every append" path; indexes can be rebuilt).
    pub(crate) fn sync_log(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| BrokerError::io(&self.log_path, e))
    }

    /// Makes the next [`Self::flush`] sync even without new appends (e.g. after an index-only
    /// change).
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Makes everything appended so far durable: the log file and both indexes.
    pub(crate) fn flush(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let res = self
            .sync_log()
            .and_then(|_| self.index.flush(true))
            .and_then(|_| self.time_index.flush(true))
            .and_then(|_| self.txn_index.flush());
        if res.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        res
    }

    /// Pushes buffered index entries to the OS (no fsync: after this a process crash loses
    /// nothing of the indexes) and closes the index files; for a segment that stops being active.
    pub(crate) fn seal_indexes(&self) -> Result<()> {
        self.index.seal()?;
        self.time_index.seal()
    }

    /// Removes the segment's three files. Open handles (readers) stay valid.
    pub(crate) fn delete_files(&self) -> Result<()> {
        for path in [
            self.log_path.as_path(),
            self.index.path(),
            self.time_index.path(),
            self.txn_index.path(),
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(BrokerError::io(path, e)),
            }
        }
        Ok(())
    }

    fn corrupt(&self, position: u64, reason: impl Into<String>) -> BrokerError {
        BrokerError::CorruptSegment {
            path: self.log_path.clone(),
            position,
            reason: reason.into(),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, position)
            .map_err(|e| BrokerError::io(&self.log_path, e))
    }

    /// Total length of the batch whose first bytes are `head` (at least `LOG_OVERHEAD` bytes).
    fn batch_len(&self, head: &[u8], position: u64, end: u64) -> Result<usize> {
        let batch_length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let min = (layout::HEADER_LEN - layout::LOG_OVERHEAD) as i32;
        if batch_length < min {
            return Err(self.corrupt(position, format!("batchLength {batch_length} < {min}")));
        }
        let len = batch_length as usize + layout::LOG_OVERHEAD;
        if position + len as u64 > end {
            return Err(self.corrupt(
                position,
                format!("batch of {len} bytes runs past the end of the segment at {end}"),
            ));
        }
        Ok(len)
    }

    /// Calls `f(position, header)` for each batch from `position` (a batch start) to `end`,
    /// until it returns `Break`.
    pub(crate) fn scan_from(
        &self,
        mut position: u64,
        end: u64,
        f: &mut dyn FnMut(u64, &BatchHeader) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        let mut buf_start = 0u64;
        while position < end {
            if end - position < layout::HEADER_LEN as u64 {
                return Err(self.corrupt(position, "truncated batch header"));
            }
            let have = position >= buf_start
                && position + layout::HEADER_LEN as u64 <= buf_start + buf.len() as u64;
            if !have {
                let n = (end - position).min(SCAN_CHUNK as u64) as usize;
                buf.resize(n, 0);
                self.read_exact_at(&mut buf, position)?;
                buf_start = position;
            }
            let at = (position - buf_start) as usize;
            let header = BatchHeader::parse(&buf[at..at + layout::HEADER_LEN])
                .map_err(|e| self.corrupt(position, e.to_string()))?;
            let len = self.batch_len(&buf[at..], position, end)?;
            if f(position, &header).is_break() {
                return Ok(());
            }
            position += len as u64;
        }
        Ok(())
    }

    /// `(offset, byte position)` of the offset index entry at or below `offset`, or the segment
    /// start if there is none.
    fn index_lookup(&self, offset: i64) -> (i64, u64) {
        let relative = offset - self.base_offset;
        if relative <= 0 {
            return (self.base_offset, 0);
        }
        let relative = relative.min(u32::MAX as i64) as u32;
        let entries = self.index.entries();
        match floor_entry(&entries, relative, |e| e.relative_offset) {
            Some(i) => (
                self.base_offset + entries[i].relative_offset as i64,
                entries[i].position as u64,
            ),
            None => (self.base_offset, 0),
        }
    }

    /// Like [`Self::scan_from`], starting at the batch the offset index names for `offset` (so
    /// every batch holding an offset `>= offset` is visited, and a few before it). Recovery only
    /// checks an index's last entry, as Kafka does; should an earlier entry not name the batch
    /// it claims, the scan falls back to the segment start instead of reading garbage.
    pub(crate) fn scan_indexed(
        &self,
        offset: i64,
        end: u64,
        f: &mut dyn FnMut(u64, &BatchHeader) -> ControlFlow<()>,
    ) -> Result<()> {
        let (entry_offset, position) = self.index_lookup(offset);
        if position == 0 || position >= end {
            return self.scan_from(0, end, f);
        }
        let mut checked = false;
        let mut mismatch = false;
        let res = self.scan_from(position, end, &mut |pos, h| {
            if !checked {
                checked = true;
                if h.base_offset != entry_offset {
                    mismatch = true;
                    return ControlFlow::Break(());
                }
            }
            f(pos, h)
        });
        let bad_entry = mismatch
            || matches!(&res, Err(BrokerError::CorruptSegment { position: p, .. }) if *p == position);
        if !bad_entry {
            return res;
        }
        if !self.index_suspect.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                file = %self.index.path().display(),
                entry_offset,
                position,
                "offset index entry does not match the log; scanning from the segment start \
                 (the index is rebuilt on the next unclean start, or delete it to force that)"
            );
        }
        self.scan_from(0, end, f)
    }

    /// Position of the first batch below `end` whose last offset is `>= offset`, if any.
    pub(crate) fn position_for(&self, offset: i64, end: u64) -> Result<Option<u64>> {
        let mut found = None;
        self.scan_indexed(offset, end, &mut |pos, h| {
            if h.last_offset() >= offset {
                found = Some(pos);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// The offset from which a scan for the first batch with max timestamp `>= target` may
    /// start: the last time index entry older than `target` (every batch up to it is older).
    pub(crate) fn time_scan_offset(&self, target: i64) -> i64 {
        let entries = self.time_index.entries();
        let n = entries.partition_point(|e| e.timestamp < target);
        match n.checked_sub(1) {
            Some(i) => self.base_offset + entries[i].relative_offset as i64,
            None => self.base_offset,
        }
    }

    /// Appends to `out` the whole batches from `position` (a batch start) to `end`, at most
    /// `budget` bytes, except that with `at_least_one` the first batch is returned even when
    /// larger. Returns the number of bytes appended.
    pub(crate) fn read_batches(
        &self,
        position: u64,
        end: u64,
        budget: usize,
        at_least_one: bool,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        if position >= end {
            return Ok(0);
        }
        let avail = usize::try_from(end - position).unwrap_or(usize::MAX);
        let want = avail.min(budget);
        let old = out.len();
        out.resize(old + want, 0);
        if let Err(e) = self.read_exact_at(&mut out[old..], position) {
            out.truncate(old);
            return Err(e);
        }
        let mut cut = 0usize;
        let mut first_len = None;
        while want - cut >= layout::LOG_OVERHEAD {
            let len = match self.batch_len(&out[old + cut..], position + cut as u64, end) {
                Ok(len) => len,
                Err(e) => {
                    out.truncate(old);
                    return Err(e);
                }
            };
            if cut == 0 {
                first_len = Some(len);
            }
            if cut + len > want {
                break;
            }
            cut += len;
        }
        if cut > 0 || !at_least_one {
            out.truncate(old + cut);
            return Ok(cut);
        }
        // The first batch alone exceeds the budget: return it whole anyway.
        let len = match first_len {
            Some(len) => len,
            None => {
                let mut head = [0u8; layout::LOG_OVERHEAD];
                self.read_exact_at(&mut head, position)?;
                self.batch_len(&head, position, end)?
            }
        };
        out.truncate(old);
        out.resize(old + len, 0);
        if let Err(e) = self.read_exact_at(&mut out[old..], position) {
            out.truncate(old);
            return Err(e);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_stem(42), "00000000000000000042");
        assert_eq!(parse_log_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_file_name("0000000000000000042.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_file_name("0000000000000000004x.log"), None);
    }
}

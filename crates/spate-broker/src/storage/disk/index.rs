//! Sparse per-segment index files, and the offset index (`.index`) in particular.
//!
//! Kafka memory-maps preallocated index files; this crate forbids `unsafe`, so an index is an
//! in-memory vector of entries (the authority for lookups) plus an append-only file written
//! through a buffer (the copy that saves a rescan on the next start). The file holds the entries
//! back to back in Kafka's encoding, with no preallocation, so its length is always a multiple of
//! the entry size unless a write was torn; recovery treats any file that does not match the log
//! as a cache miss and rebuilds it from the segment. A failed index write is therefore never fatal
//! to an append: it is logged, the file stops being written, and it is rebuilt on the next open.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::error::{BrokerError, Result};

/// Upper bound of [`IndexEntry::SIZE`], for stack buffers.
pub(crate) const MAX_ENTRY_SIZE: usize = 16;

/// One fixed-size entry of an index file.
pub(crate) trait IndexEntry: Copy + Send + Sync + 'static {
    /// Encoded size in bytes (at most [`MAX_ENTRY_SIZE`]).
    const SIZE: usize;
    /// Writes the entry into `out[..SIZE]`.
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
}

/// Offset index entry: `(offset - segment base offset, byte position of the batch)`, both
/// big-endian 32-bit as in Kafka's `.index`. The offset is the batch's base offset, so the batch
/// that starts at `position` is the first one whose offsets reach `relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;

    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// The file side of an index.
enum Writer {
    /// Appendable, through a buffer.
    Open(BufWriter<File>),
    /// Complete on disk and closed, so that an older segment costs no descriptor for its
    /// indexes; reopened if it ever gets appended to again.
    Sealed,
    /// A write failed: the file is stale and is rebuilt on the next open.
    Failed,
}

/// An index: entries in memory for lookups, and their file.
pub(crate) struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    entries: RwLock<Vec<E>>,
    writer: Mutex<Writer>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Reads the entries of an existing index file. `Ok(None)` when the file is missing or its
    /// length is not a whole number of entries (torn or garbage); the caller validates the
    /// entries themselves against the log.
    pub(crate) fn read_entries(path: &Path) -> Result<Option<Vec<E>>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BrokerError::io(path, e)),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        Ok(Some(bytes.chunks_exact(E::SIZE).map(E::decode).collect()))
    }

    /// Writes `entries` to a fresh file at `path` (replacing any old one) and opens it for
    /// appending.
    pub(crate) fn create(path: PathBuf, entries: Vec<E>) -> Result<Self> {
        let mut bytes = vec![0u8; entries.len() * E::SIZE];
        for (e, out) in entries.iter().zip(bytes.chunks_exact_mut(E::SIZE)) {
            e.encode(out);
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        file.write_all(&bytes)
            .map_err(|e| BrokerError::io(&path, e))?;
        Ok(Self::with_writer(
            path,
            Writer::Open(buffered(file)),
            entries,
        ))
    }

    /// Adopts an existing file whose contents are exactly `entries` (as read and validated by
    /// the caller), without keeping it open.
    pub(crate) fn existing(path: PathBuf, entries: Vec<E>) -> Self {
        Self::with_writer(path, Writer::Sealed, entries)
    }

    fn with_writer(path: PathBuf, writer: Writer, entries: Vec<E>) -> Self {
        IndexFile {
            path,
            entries: RwLock::new(entries),
            writer: Mutex::new(writer),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Adds an entry. The in-memory copy always succeeds; a file error disables the file.
    pub(crate) fn append(&self, entry: E) {
        {
            let mut writer = self.writer.lock();
            if matches!(*writer, Writer::Sealed) {
                match OpenOptions::new().append(true).open(&self.path) {
                    Ok(file) => *writer = Writer::Open(buffered(file)),
                    Err(e) => self.disable(&mut writer, e),
                }
            }
            if let Writer::Open(w) = &mut *writer {
                let mut buf = [0u8; MAX_ENTRY_SIZE];
                entry.encode(&mut buf);
                if let Err(e) = w.write_all(&buf[..E::SIZE]) {
                    self.disable(&mut writer, e);
                }
            }
        }
        self.entries.write().push(entry);
    }

    fn disable(&self, writer: &mut Writer, e: std::io::Error) {
        tracing::warn!(
            file = %self.path.display(),
            error = %e,
            "index write failed; the index stays correct in memory and is rebuilt on next open"
        );
        *writer = Writer::Failed;
    }

    /// All entries, sorted by key.
    pub(crate) fn entries(&self) -> RwLockReadGuard<'_, Vec<E>> {
        self.entries.read()
    }

    /// Pushes buffered entries to the OS, and to stable storage when `sync`.
    pub(crate) fn flush(&self, sync: bool) -> Result<()> {
        let mut writer = self.writer.lock();
        match &mut *writer {
            Writer::Open(w) => {
                if let Err(e) = w.flush() {
                    self.disable(&mut writer, e);
                    return Ok(());
                }
                if sync {
                    w.get_ref()
                        .sync_data()
                        .map_err(|e| BrokerError::io(&self.path, e))?;
                }
                Ok(())
            }
            Writer::Sealed if sync => File::open(&self.path)
                .and_then(|f| f.sync_data())
                .map_err(|e| BrokerError::io(&self.path, e)),
            Writer::Sealed | Writer::Failed => Ok(()),
        }
    }

    /// Flushes buffered entries to the OS and closes the file (the segment is no longer
    /// appended to).
    pub(crate) fn seal(&self) -> Result<()> {
        self.flush(false)?;
        let mut writer = self.writer.lock();
        if matches!(*writer, Writer::Open(_)) {
            *writer = Writer::Sealed;
        }
        Ok(())
    }
}

fn buffered(file: File) -> BufWriter<File> {
    BufWriter::with_capacity(16 * 1024, file)
}

/// Index of the last entry whose key is `<= key` (`None` if the first entry's key is larger),
/// for entries sorted by strictly increasing key.
pub(crate) fn floor_entry<E: IndexEntry, K: Ord>(
    entries: &[E],
    key: K,
    key_of: impl Fn(&E) -> K,
) -> Option<usize> {
    let n = entries.partition_point(|e| key_of(e) <= key);
    n.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_entries_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let a = OffsetEntry {
            relative_offset: 3,
            position: 100,
        };
        let idx = IndexFile::create(path.clone(), vec![a]).unwrap();
        let b = OffsetEntry {
            relative_offset: 9,
            position: 5000,
        };
        idx.append(b);
        idx.flush(true).unwrap();
        let read = IndexFile::<OffsetEntry>::read_entries(&path)
            .unwrap()
            .unwrap();
        assert_eq!(read, vec![a, b]);
        assert_eq!(floor_entry(&read, 2, |e| e.relative_offset), None);
        assert_eq!(floor_entry(&read, 3, |e| e.relative_offset), Some(0));
        assert_eq!(floor_entry(&read, 8, |e| e.relative_offset), Some(0));
        assert_eq!(floor_entry(&read, 100, |e| e.relative_offset), Some(1));

        // Sealed, then appended to again: the file is reopened for appending.
        idx.seal().unwrap();
        let adopted = IndexFile::existing(path.clone(), read);
        let c = OffsetEntry {
            relative_offset: 12,
            position: 7000,
        };
        adopted.append(c);
        adopted.flush(true).unwrap();
        let read = IndexFile::<OffsetEntry>::read_entries(&path)
            .unwrap()
            .unwrap();
        assert_eq!(read, vec![a, b, c]);
        assert_eq!(*adopted.entries(), read);
    }

    #[test]
    fn torn_file_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 11]).unwrap();
        assert!(IndexFile::<OffsetEntry>::read_entries(&path)
            .unwrap()
            .is_none());
        assert!(
            IndexFile::<OffsetEntry>::read_entries(&dir.path().join("nope"))
                .unwrap()
                .is_none()
        );
    }
}

//! A segment's transaction index (`<base offset>.txnindex`, Kafka's name and entry layout): the
//! aborted transactions whose ABORT marker is in the segment, so that read_committed fetches
//! can list them after a restart and until retention deletes the segment with its index.
//!
//! ```text
//! entry := version:i16be(0) producer_id:i64be first_offset:i64be last_offset:i64be
//!          last_stable_offset:i64be                                  (34 bytes)
//! ```
//!
//! Entries are appended (not fsynced per entry, like the segment's other indexes); the file is
//! read whole on open and a torn last entry is cut off. A crash can lose an entry whose
//! marker survived; the partition re-adds it when it replays its tail on open.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{BrokerError, Result};
use crate::storage::AbortedTxn;

const ENTRY_LEN: usize = 34;

/// Path of the transaction index of the segment at `base_offset`.
pub(crate) fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!(
        "{}.txnindex",
        super::segment::file_stem(base_offset)
    ))
}

/// One segment's aborted transactions, in memory and in its file.
pub(crate) struct TxnIndex {
    path: PathBuf,
    entries: Mutex<Vec<AbortedTxn>>,
    file: Mutex<Option<File>>,
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

fn encode(t: &AbortedTxn) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    e[2..10].copy_from_slice(&t.producer_id.to_be_bytes());
    e[10..18].copy_from_slice(&t.first_offset.to_be_bytes());
    e[18..26].copy_from_slice(&t.last_offset.to_be_bytes());
    e[26..34].copy_from_slice(&t.last_stable_offset.to_be_bytes());
    e
}

impl TxnIndex {
    /// An index with no file yet (a new segment); the file appears with the first entry.
    pub(crate) fn empty(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            entries: Mutex::new(Vec::new()),
            file: Mutex::new(None),
        }
    }

    /// Loads the index at `path` (absent = empty), cutting a torn last entry.
    pub(crate) fn open(path: PathBuf) -> Result<TxnIndex> {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(TxnIndex::empty(path)),
            Err(e) => return Err(BrokerError::io(&path, e)),
        };
        let whole = bytes.len() / ENTRY_LEN * ENTRY_LEN;
        if whole < bytes.len() {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(whole as u64))
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        let entries = bytes[..whole]
            .chunks_exact(ENTRY_LEN)
            .map(|e| AbortedTxn {
                producer_id: be_i64(&e[2..]),
                first_offset: be_i64(&e[10..]),
                last_offset: be_i64(&e[18..]),
                last_stable_offset: be_i64(&e[26..]),
            })
            .collect();
        Ok(TxnIndex {
            path,
            entries: Mutex::new(entries),
            file: Mutex::new(None),
        })
    }

    /// Appends one entry to the file and the in-memory list.
    pub(crate) fn append(&self, txn: AbortedTxn) -> Result<()> {
        let mut file = self.file.lock();
        if file.is_none() {
            *file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(|e| BrokerError::io(&self.path, e))?,
            );
        }
        if let Some(f) = file.as_mut() {
            f.write_all(&encode(&txn))
                .map_err(|e| BrokerError::io(&self.path, e))?;
        }
        self.entries.lock().push(txn);
        Ok(())
    }

    /// Entries overlapping `[from, upto)`.
    pub(crate) fn collect(&self, from: i64, upto: i64, out: &mut Vec<AbortedTxn>) {
        out.extend(
            self.entries
                .lock()
                .iter()
                .filter(|t| t.last_offset >= from && t.first_offset < upto),
        );
    }

    /// fsyncs the file if it was written.
    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(f) = self.file.lock().as_ref() {
            f.sync_data().map_err(|e| BrokerError::io(&self.path, e))?;
        }
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = txn_index_path(dir.path(), 0);
        let idx = TxnIndex::empty(path.clone());
        let t = |first, last| AbortedTxn {
            producer_id: 3,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        };
        idx.append(t(0, 5)).unwrap();
        idx.append(t(10, 12)).unwrap();
        drop(idx);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);
        let idx = TxnIndex::open(path).unwrap();
        let mut out = Vec::new();
        idx.collect(4, 11, &mut out);
        assert_eq!(out, vec![t(0, 5), t(10, 12)]);
        out.clear();
        idx.collect(6, 10, &mut out);
        assert!(out.is_empty());
    }
}

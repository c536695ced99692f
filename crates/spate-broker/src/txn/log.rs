//! The durable transaction log: every state change of a transactional id, appended to
//! `<data dir>/meta/transactions/transactions.log` and fsynced before the change takes effect,
//! replayed on start. Kafka keeps this in the compacted `__transaction_state` topic; a single
//! broker needs only an ordered, durable, bounded file with the same content.
//!
//! ```text
//! record  := length:u32be crc32c:u32be payload[length]      (crc over payload)
//! payload := JSON of the whole TransactionMetadata of one id (state Dead = the id is removed)
//! ```
//!
//! Each record holds the id's whole state, so replay keeps the last record per id. A torn or
//! corrupt tail (a crash mid-append) is cut at the last valid record on open. Once the file
//! holds more than twice the live ids (and at least `COMPACT_MIN_RECORDS`), it is rewritten
//! with the live set through a temp file, fsync and rename, so a crash leaves the old or the new
//! file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::metadata::{TransactionMetadata, TxnState};
use crate::error::{BrokerError, Result};

const LOG_FILE: &str = "transactions.log";
const TMP_FILE: &str = "transactions.log.tmp";
const COMPACT_MIN_RECORDS: usize = 1000;

/// The open transaction log.
#[derive(Debug)]
pub struct TxnLog {
    dir: PathBuf,
    file: File,
    records: usize,
}

fn frame(m: &TransactionMetadata, buf: &mut Vec<u8>) -> Result<()> {
    let payload = serde_json::to_vec(m).map_err(|e| BrokerError::MetadataStore {
        path: PathBuf::from(LOG_FILE),
        reason: e.to_string(),
    })?;
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    buf.extend_from_slice(&payload);
    Ok(())
}

/// Every valid record in order, and the length of the valid prefix.
fn decode_all(bytes: &[u8]) -> (Vec<TransactionMetadata>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let (len, crc) = (word(pos) as usize, word(pos + 4));
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(m) = serde_json::from_slice::<TransactionMetadata>(payload) else {
            break;
        };
        out.push(m);
        pos += 8 + len;
    }
    (out, pos)
}

impl TxnLog {
    /// Opens (creating) the log in `dir`; returns it with the last state of every live id.
    pub fn open(dir: &Path) -> Result<(TxnLog, HashMap<String, TransactionMetadata>)> {
        fs::create_dir_all(dir).map_err(|e| BrokerError::io(dir, e))?;
        let _ = fs::remove_file(dir.join(TMP_FILE));
        let path = dir.join(LOG_FILE);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        let (records, valid) = decode_all(&bytes);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        if valid < bytes.len() {
            tracing::warn!(path = %path.display(), valid, len = bytes.len(),
                           "truncating corrupt tail of the transaction log");
            file.set_len(valid as u64)
                .and_then(|_| file.sync_all())
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        let count = records.len();
        let mut live = HashMap::new();
        for m in records {
            if m.state == TxnState::Dead {
                live.remove(&m.transactional_id);
            } else {
                live.insert(m.transactional_id.clone(), m);
            }
        }
        let log = TxnLog {
            dir: dir.to_owned(),
            file,
            records: count,
        };
        Ok((log, live))
    }

    /// Appends the new state of one id; with `sync` it is fsynced before this returns.
    pub fn append(&mut self, m: &TransactionMetadata, sync: bool) -> Result<()> {
        let mut buf = Vec::new();
        frame(m, &mut buf)?;
        let path = self.dir.join(LOG_FILE);
        self.file
            .write_all(&buf)
            .map_err(|e| BrokerError::io(&path, e))?;
        if sync {
            self.file
                .sync_data()
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        self.records += 1;
        Ok(())
    }

    /// Rewrites the file with `live` when it holds mostly superseded records.
    pub fn maybe_compact<'a>(
        &mut self,
        live: impl ExactSizeIterator<Item = &'a TransactionMetadata>,
    ) -> Result<()> {
        if self.records < COMPACT_MIN_RECORDS || self.records <= 2 * live.len() {
            return Ok(());
        }
        let tmp = self.dir.join(TMP_FILE);
        let path = self.dir.join(LOG_FILE);
        let mut buf = Vec::new();
        let mut count = 0;
        for m in live {
            frame(m, &mut buf)?;
            count += 1;
        }
        let write_tmp = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()
        };
        write_tmp().map_err(|e| BrokerError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| BrokerError::io(&path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BrokerError::io(&self.dir, e))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        self.records = count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_the_last_state_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, live) = TxnLog::open(dir.path()).unwrap();
        assert!(live.is_empty());
        let mut a = TransactionMetadata::new("a", 1, 1000, 0);
        log.append(&a, true).unwrap();
        a.state = TxnState::PrepareCommit;
        log.append(&a, true).unwrap();
        let mut b = TransactionMetadata::new("b", 2, 1000, 0);
        log.append(&b, false).unwrap();
        b.state = TxnState::Dead;
        log.append(&b, true).unwrap();
        drop(log);
        // A crash mid-append leaves half a record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(f);
        let (mut log, live) = TxnLog::open(dir.path()).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live["a"].state, TxnState::PrepareCommit);
        a.state = TxnState::CompleteCommit;
        log.append(&a, true).unwrap();
        drop(log);
        let (_, live) = TxnLog::open(dir.path()).unwrap();
        assert_eq!(live["a"].state, TxnState::CompleteCommit);
    }

    #[test]
    fn compacts_to_the_live_set() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = TxnLog::open(dir.path()).unwrap();
        let mut a = TransactionMetadata::new("a", 1, 1000, 0);
        for i in 0..COMPACT_MIN_RECORDS as i64 {
            a.last_update_ms = i;
            log.append(&a, false).unwrap();
        }
        log.maybe_compact([&a].into_iter()).unwrap();
        assert_eq!(log.records, 1);
        log.append(&a, true).unwrap();
        drop(log);
        let (log, live) = TxnLog::open(dir.path()).unwrap();
        assert_eq!(log.records, 2);
        assert_eq!(live["a"].last_update_ms, COMPACT_MIN_RECORDS as i64 - 1);
    }
}

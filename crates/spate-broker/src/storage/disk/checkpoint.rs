//! The durable log start offset of a partition (`log-start-offset-checkpoint`).
//!
//! DeleteRecords and retention move the log start offset forward; it must not move back after a
//! restart, even if the segment below it has not been deleted yet (DeleteRecords only drops
//! whole segments). Kafka keeps one checkpoint file per data directory; here each partition
//! directory holds its own, so partitions never contend for it. Format, in text like Kafka's:
//! a version line `0` and the offset. Written to a temporary file, fsynced, renamed over the old
//! one and the directory fsynced, so a crash leaves either the old or the new value.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use crate::error::{BrokerError, Result};

/// File name of the checkpoint inside a partition directory.
pub(crate) const FILE_NAME: &str = "log-start-offset-checkpoint";
const VERSION: &str = "0";

#[cfg(test)]
fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The checkpointed log start offset, or `None` when there is none or it does not parse (then
/// the first segment's base offset is used, which only ever exposes more data, never less).
pub(crate) fn read(dir: &Path, partition: &str) -> Result<Option<i64>> {
    read_named(dir, FILE_NAME, partition)
}

/// Durably replaces the checkpoint with `offset`.
pub(crate) fn write(dir: &Path, offset: i64) -> Result<()> {
    write_named(dir, FILE_NAME, offset)
}

/// Reads an offset checkpoint in this format from the file `name` in `dir` (the log cleaner
/// keeps its progress in one too).
pub(crate) fn read_named(dir: &Path, name: &str, partition: &str) -> Result<Option<i64>> {
    let p = dir.join(name);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == ErrorKind::InvalidData => String::new(),
        Err(e) => return Err(BrokerError::io(&p, e)),
    };
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next()) {
        (Some(VERSION), Some(offset)) => offset.trim().parse::<i64>().ok().filter(|o| *o >= 0),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(
            partition,
            file = %p.display(),
            "ignoring unreadable log start offset checkpoint"
        );
    }
    Ok(parsed)
}

/// Durably replaces the checkpoint file `name` in `dir` with `offset`.
pub(crate) fn write_named(dir: &Path, name: &str, offset: i64) -> Result<()> {
    let p = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| BrokerError::io(&tmp, e))?;
    f.write_all(format!("{VERSION}\n{offset}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| BrokerError::io(&tmp, e))?;
    std::fs::rename(&tmp, &p).map_err(|e| BrokerError::io(&p, e))?;
    sync_dir(dir)
}

/// fsyncs a directory, so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), "t-0").unwrap(), None);
        write(dir.path(), 1234).unwrap();
        assert_eq!(read(dir.path(), "t-0").unwrap(), Some(1234));
        std::fs::write(path(dir.path()), b"\xff\xfe garbage").unwrap();
        assert_eq!(read(dir.path(), "t-0").unwrap(), None);
        std::fs::write(path(dir.path()), b"0\n-5\n").unwrap();
        assert_eq!(read(dir.path(), "t-0").unwrap(), None);
    }
}

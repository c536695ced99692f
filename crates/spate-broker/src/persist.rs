//! Crash-safe small files for broker metadata (topics, producer id blocks): write a temp file,
//! fsync it, rename it over the old one, fsync the directory. A reader therefore sees either the
//! old or the new content, never a torn mix, whatever moment the process dies.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{BrokerError, Result};

fn store_err(path: &Path, reason: impl std::fmt::Display) -> BrokerError {
    BrokerError::MetadataStore {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Atomically replaces `path` with `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| store_err(path, e))?;
    let dir = path
        .parent()
        .ok_or_else(|| store_err(path, "has no parent directory"))?;
    fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| store_err(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| store_err(&tmp, e))?;
        f.sync_all().map_err(|e| store_err(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| store_err(path, e))?;
    // The rename is only durable once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| store_err(dir, e))?;
    Ok(())
}

/// Reads JSON written by [`write_json`]; `None` when the file does not exist yet.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| store_err(path, format!("corrupt JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(store_err(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta/x.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        write_json(&p, &vec![1u32, 2]).unwrap();
        write_json(&p, &vec![3u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![3]));
        fs::write(&p, b"{not json").unwrap();
        assert!(read_json::<Vec<u32>>(&p).is_err());
    }
}

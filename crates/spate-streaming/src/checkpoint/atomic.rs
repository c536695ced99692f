//! Crash-safe file replacement: write a temp file, fsync it, rename it over the target, fsync the
//! directory.
//!
//! This is what makes a checkpoint file all-or-nothing. A crash before the rename leaves only a
//! temp file (which readers ignore and [`super::Checkpoint::open`] deletes); a crash after it
//! leaves the complete new file. The directory fsync makes the rename itself durable, so a
//! commit record that was acknowledged cannot vanish after power loss.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, StreamingError};

/// Prefix of every temp file. Real checkpoint files are named by batch time (digits), so a name
/// starting with a dot can never be mistaken for one.
pub(crate) const TEMP_PREFIX: &str = ".";
/// Suffix of every temp file.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is a temp file left by [`write_atomic`] (possibly by a crashed process).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StreamingError + '_ {
    move |source| StreamingError::CheckpointIo {
        path: path.to_path_buf(),
        source,
    }
}

/// Atomically replaces `dir/name` with `bytes` (temp file, write, fsync, rename, fsync dir).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let target = dir.join(name);
    let temp = dir.join(format!("{TEMP_PREFIX}{name}{TEMP_SUFFIX}"));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io_err(&temp))?;
        file.write_all(bytes).map_err(io_err(&temp))?;
        file.sync_all().map_err(io_err(&temp))?;
    }
    fs::rename(&temp, &target).map_err(io_err(&target))?;
    fsync_dir(dir)?;
    Ok(target)
}

/// Makes the directory entry changes (create, rename, unlink) in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(io_err(dir))?;
    handle.sync_all().map_err(io_err(dir))
}

/// Creates `dir` (and parents) if missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Deletes temp files left in `dir` by a crashed writer. Returns how many were removed.
pub(crate) fn remove_temp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(name) = name.to_str() {
            if is_temp_name(name) {
                let path = entry.path();
                tracing::debug!(path = %path.display(), "removing leftover checkpoint temp file");
                fs::remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Lists the files in `dir` whose names are batch times (decimal `i64`), ascending, with their
/// paths. Temp files are skipped silently; any other stray name is skipped with a warning, because
/// a user may have dropped a README or an editor backup there and that must not break recovery.
pub(crate) fn list_batch_files(dir: &Path, suffix: &str) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if is_temp_name(name) {
            continue;
        }
        let stem = name.strip_suffix(suffix).unwrap_or("");
        match stem.parse::<i64>() {
            Ok(time) if !stem.is_empty() => out.push((time, entry.path())),
            _ => {
                tracing::warn!(path = %entry.path().display(), "ignoring unexpected file in checkpoint directory");
            }
        }
    }
    out.sort_unstable_by_key(|(time, _)| *time);
    Ok(out)
}

/// Reads a whole file, mapping errors to [`StreamingError::CheckpointIo`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io_err(path))
}

/// Removes a file, mapping errors to [`StreamingError::CheckpointIo`]; a file that is already gone
/// is fine (purge may race with an operator cleaning up by hand).
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

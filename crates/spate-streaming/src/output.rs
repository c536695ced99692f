//! Output operations (Spark's output operations): `foreach_batch`, `print`, `save_as_text_files`.
//!
//! Outputs are what make a batch run: each is a job of the batch, run in the order defined. A
//! batch is committed only when all its outputs succeeded, so after a crash an output may see
//! the same batch again (at-least-once): make it idempotent — keyed by batch time, like
//! `save_as_text_files`, which writes `prefix-TIME_IN_MS.suffix` atomically (temp file, fsync,
//! rename) so a re-run overwrites the same file with the same content.

use std::fmt::{Debug, Display, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dstream::DStream;
use crate::error::{BoxError, Result, StreamingError};
use crate::exec::{Batch, Data};
use crate::time::Time;

impl<T: Data> DStream<T> {
    /// Runs `f` with every batch and its time (Spark's `foreachRDD`). The closure runs on the
    /// job thread; use [`Batch::foreach_partition`] to work on partitions in parallel.
    pub fn foreach_batch<E>(
        &self,
        f: impl Fn(Batch<T>, Time) -> std::result::Result<(), E> + Send + Sync + 'static,
    ) where
        E: Into<BoxError>,
    {
        let node = self.node.clone();
        self.ctx
            .register_output("foreach_batch", self.node.slide, move |bc| {
                let b = node.get(bc)?;
                f(b, bc.time).map_err(|e| {
                    let e: BoxError = e.into();
                    StreamingError::OutputFailed {
                        operation: "foreach_batch".into(),
                        time: bc.time,
                        message: e.to_string(),
                        source: Some(Arc::from(e)),
                    }
                })
            });
    }

    /// Prints the first `num` elements of every batch to stdout, under a header with the batch
    /// time (Spark's `print`).
    pub fn print(&self, num: usize)
    where
        T: Debug,
    {
        let node = self.node.clone();
        self.ctx
            .register_output("print", self.node.slide, move |bc| {
                let first = node.get(bc)?.take(num + 1)?;
                let mut s = String::new();
                let _ = writeln!(s, "-------------------------------------------");
                let _ = writeln!(s, "Time: {} ms", bc.time.as_millis());
                let _ = writeln!(s, "-------------------------------------------");
                for x in first.iter().take(num) {
                    let _ = writeln!(s, "{x:?}");
                }
                if first.len() > num {
                    let _ = writeln!(s, "...");
                }
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{s}");
                Ok(())
            });
    }

    /// Writes every batch to the file `prefix-TIME_IN_MS.suffix` (`prefix-TIME_IN_MS` when
    /// `suffix` is empty), one element per line, atomically.
    pub fn save_as_text_files(&self, prefix: impl Into<String>, suffix: impl Into<String>)
    where
        T: Display,
    {
        let (prefix, suffix) = (prefix.into(), suffix.into());
        let node = self.node.clone();
        self.ctx
            .register_output("save_as_text_files", self.node.slide, move |bc| {
                let b = node.get(bc)?;
                // Format partitions in parallel; write once.
                let chunks = b
                    .map_partitions(|it| {
                        let mut s = String::new();
                        for x in it {
                            let _ = writeln!(s, "{x}");
                        }
                        std::iter::once(s)
                    })
                    .collect()?;
                let path = text_file_path(&prefix, &suffix, bc.time);
                write_atomically(&path, chunks.iter().map(|c| c.as_bytes()))
            });
    }
}

/// `prefix-TIME_IN_MS[.suffix]`, as Spark names the output of `saveAsTextFiles`.
pub fn text_file_path(prefix: &str, suffix: &str, time: Time) -> PathBuf {
    if suffix.is_empty() {
        PathBuf::from(format!("{prefix}-{}", time.as_millis()))
    } else {
        PathBuf::from(format!("{prefix}-{}.{suffix}", time.as_millis()))
    }
}

/// Writes `chunks` to `path` via a temp file in the same directory, fsync and rename, so readers
/// see the old file or the complete new one.
pub(crate) fn write_atomically<'a>(
    path: &Path,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| StreamingError::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| StreamingError::io(&tmp, e))?;
    for c in chunks {
        f.write_all(c).map_err(|e| StreamingError::io(&tmp, e))?;
    }
    f.sync_all().map_err(|e| StreamingError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| StreamingError::io(path, e))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

//! `text_file_stream`: new files appearing in a directory, each processed once (Spark's
//! `textFileStream`).
//!
//! Each batch plans the files that appeared since the previous batch (names not starting with
//! `.` or `_`, which are temp files by convention — move finished files into the directory
//! atomically). The plan lists the files, so a recovered batch re-reads exactly them; the set of
//! files already seen is kept in state snapshots, so after a restart no file is processed twice.
//! One partition per file. Unlike Spark's default (`newFilesOnly`), files already in the
//! directory when the job first starts are processed too (once); after a restart, only files
//! not yet seen are.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::error::{Result, StreamingError};
use crate::exec::{Partitions, VecPartitions};
use crate::input::InputStream;
use crate::listener::InputInfo;
use crate::time::Time;

/// A batch's plan: the new files, in name order, and their lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FilePlan {
    files: Vec<String>,
    records: u64,
}

/// The input's snapshot state: every file already planned.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SeenFiles {
    #[serde(default)]
    seen: BTreeSet<String>,
}

struct TextFileInput {
    dir: PathBuf,
    seen: Mutex<BTreeSet<String>>,
}

impl TextFileInput {
    fn read(&self, name: &str) -> Result<String> {
        let p = self.dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| StreamingError::io(p, e))
    }
}

impl InputStream<String> for TextFileInput {
    type Plan = FilePlan;
    type State = SeenFiles;

    fn kind(&self) -> &str {
        "text_file_stream"
    }

    fn plan(&self, _time: Time) -> Result<FilePlan> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| StreamingError::io(&self.dir, e))?;
        let mut seen = self.seen.lock();
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StreamingError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') || seen.contains(&name) {
                continue;
            }
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                files.push(name);
            }
        }
        files.sort();
        let mut records = 0u64;
        for f in &files {
            records += self.read(f)?.lines().count() as u64;
            seen.insert(f.clone());
        }
        Ok(FilePlan { files, records })
    }

    fn info(&self, _time: Time, p: &FilePlan) -> InputInfo {
        InputInfo {
            num_records: p.records,
            description: p.files.join("\n"),
            metadata: serde_json::to_value(p).unwrap_or_default(),
            ..InputInfo::default()
        }
    }

    fn compute(&self, _time: Time, p: &FilePlan) -> Result<Arc<dyn Partitions<String>>> {
        let mut parts = Vec::with_capacity(p.files.len());
        for f in &p.files {
            parts.push(self.read(f)?.lines().map(str::to_owned).collect::<Vec<_>>());
        }
        Ok(Arc::new(VecPartitions::new(parts)))
    }

    fn replayed(&self, _time: Time, p: &FilePlan) -> Result<()> {
        self.seen.lock().extend(p.files.iter().cloned());
        Ok(())
    }

    fn snapshot_state(&self) -> Result<Option<SeenFiles>> {
        Ok(Some(SeenFiles {
            seen: self.seen.lock().clone(),
        }))
    }

    fn restore_state(&self, state: SeenFiles) -> Result<()> {
        self.seen.lock().extend(state.seen);
        Ok(())
    }
}

impl StreamingContext {
    /// Lines of the new text files in `dir` (Spark's `textFileStream`).
    pub fn text_file_stream(&self, dir: impl Into<PathBuf>) -> DStream<String> {
        self.input_stream(TextFileInput {
            dir: dir.into(),
            seen: Mutex::new(BTreeSet::new()),
        })
    }
}

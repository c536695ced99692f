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

#[derive(Debug, Default, Serialize, Deserialize)]
struct FilePlan {
    files: Vec<String>,
    records: u64,
}

struct TextFileInput {
    dir: PathBuf,
    seen: Mutex<BTreeSet<String>>,
}

impl TextFileInput {
    fn parse(&self, plan: &serde_json::Value) -> Result<FilePlan> {
        serde_json::from_value(plan.clone())
            .map_err(|e| StreamingError::input("text_file_stream", format!("bad plan {plan}: {e}")))
    }

    fn read(&self, name: &str) -> Result<String> {
        let p = self.dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| StreamingError::io(p, e))
    }
}

impl InputStream<String> for TextFileInput {
    fn kind(&self) -> &str {
        "text_file_stream"
    }

    fn plan(&self, _time: Time) -> Result<serde_json::Value> {
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
        serde_json::to_value(FilePlan { files, records })
            .map_err(|e| StreamingError::serialization("text_file_stream plan", e))
    }

    fn info(&self, _time: Time, plan: &serde_json::Value) -> InputInfo {
        let p = self.parse(plan).unwrap_or_default();
        InputInfo {
            num_records: p.records,
            description: p.files.join("\n"),
            metadata: plan.clone(),
            ..InputInfo::default()
        }
    }

    fn compute(
        &self,
        _time: Time,
        plan: &serde_json::Value,
    ) -> Result<Arc<dyn Partitions<String>>> {
        let p = self.parse(plan)?;
        let mut parts = Vec::with_capacity(p.files.len());
        for f in &p.files {
            parts.push(self.read(f)?.lines().map(str::to_owned).collect::<Vec<_>>());
        }
        Ok(Arc::new(VecPartitions::new(parts)))
    }

    fn replayed(&self, _time: Time, plan: &serde_json::Value) -> Result<()> {
        let p = self.parse(plan)?;
        self.seen.lock().extend(p.files);
        Ok(())
    }

    fn snapshot_state(&self) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!({ "seen": *self.seen.lock() })))
    }

    fn restore_state(&self, state: serde_json::Value) -> Result<()> {
        let seen: BTreeSet<String> =
            serde_json::from_value(state.get("seen").cloned().unwrap_or_default())
                .map_err(|e| StreamingError::serialization("text_file_stream state", e))?;
        self.seen.lock().extend(seen);
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

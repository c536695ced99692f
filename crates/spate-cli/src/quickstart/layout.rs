//! What the quickstart keeps under `--dir`, and which Kafka source that state belongs to.
//!
//! The checkpoint and the stored offsets are positions in one topic of one cluster. Resuming
//! them against another cluster (the embedded broker, then `--bootstrap-server`) or another
//! topic would read the wrong records or fail on offsets that do not exist, so the first run
//! writes `source.json` and later runs refuse a different source with a clear message.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// Where the quickstart keeps its state under `--dir`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The `--dir` itself.
    pub root: PathBuf,
    /// The embedded broker's partition logs and metadata.
    pub broker: PathBuf,
    /// The job's checkpoint (plans, commits).
    pub checkpoint: PathBuf,
    /// Window counts and the offsets they include.
    pub results: PathBuf,
    /// The Kafka source the state belongs to.
    pub source: PathBuf,
}

/// The Kafka source of a quickstart directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `embedded` or the `--bootstrap-server` value.
    pub kafka: String,
    /// The topic the events are read from.
    pub topic: String,
    /// Where the counts go: `sqlite`, or `kafka:<output topic>`. Directories of runs before
    /// `--sink` existed hold SQLite results.
    #[serde(default = "sqlite_sink")]
    pub sink: String,
}

fn sqlite_sink() -> String {
    "sqlite".to_owned()
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
            broker: root.join("broker"),
            checkpoint: root.join("checkpoint"),
            results: root.join("results.db"),
            source: root.join("source.json"),
        }
    }

    /// Creates the directory and records `source`, or checks that an existing directory was
    /// made for the same source.
    pub fn claim(&self, source: &Source) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("could not create {}", self.root.display()))?;
        match std::fs::read(&self.source) {
            Ok(bytes) => {
                let recorded: Source = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{} is not a quickstart source record",
                        self.source.display()
                    )
                })?;
                if recorded != *source {
                    bail!(
                        "{} holds the state of a quickstart over topic {:?} of {} with results in \
                         {}; this run reads topic {:?} of {} with results in {}: use another --dir",
                        self.root.display(),
                        recorded.topic,
                        recorded.kafka,
                        recorded.sink,
                        source.topic,
                        source.kafka,
                        source.sink
                    );
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let json =
                    serde_json::to_vec_pretty(source).context("encoding the source record")?;
                std::fs::write(&self.source, json)
                    .with_context(|| format!("could not write {}", self.source.display()))
            }
            Err(e) => Err(e).with_context(|| format!("could not read {}", self.source.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_belongs_to_one_source() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("qs"));
        let embedded = Source {
            kafka: "embedded".into(),
            topic: "ad-events".into(),
            sink: "sqlite".into(),
        };
        layout.claim(&embedded).unwrap();
        layout.claim(&embedded).unwrap();
        let other = Source {
            kafka: "kafka:9092".into(),
            ..embedded.clone()
        };
        let err = layout.claim(&other).unwrap_err().to_string();
        assert!(err.contains("use another --dir"), "{err}");
        let topic = Source {
            topic: "clicks".into(),
            ..embedded.clone()
        };
        assert!(layout.claim(&topic).is_err());
        let sink = Source {
            sink: "kafka:campaign-windows".into(),
            ..embedded
        };
        assert!(layout.claim(&sink).is_err());
        let old: Source =
            serde_json::from_str(r#"{"kafka": "embedded", "topic": "ad-events"}"#).unwrap();
        assert_eq!(old.sink, "sqlite");
    }
}

//! Job metadata: what the job that owns a checkpoint looks like, and the compatibility check a
//! restarted (possibly upgraded) job must pass before it continues from that checkpoint.
//!
//! Spark stores the whole serialized DStream graph and fails obscurely when the code changes. We store only what recovery depends on — the batch interval (batch times are multiples
//! of it), the inputs (pending plans are keyed by input id) and the stateful operators (snapshots
//! are keyed by operator id) — and say precisely what changed when it matters. Anything else about
//! the job may change freely between runs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamingError};

/// Current version of the `metadata` file format.
pub const METADATA_FORMAT_VERSION: u32 = 1;

/// An input stream of the job, as recorded in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDescriptor {
    /// Stable id of the input; the key of its entry in every [`super::BatchPlan`].
    pub id: String,
    /// What kind of input it is and how its plan is shaped, e.g. `"kafka-direct/v1"`. A change of
    /// kind means old plans cannot be replayed by the new input.
    pub kind: String,
}

/// A stateful operator of the job, as recorded in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorDescriptor {
    /// Stable id of the operator; the key of its entry in every [`super::StateSnapshot`].
    pub id: String,
    /// Description of the operator and its state type, e.g.
    /// `"update_state_by_key<String,u64>/v1"`. A change means the stored state cannot be decoded.
    pub state_type: String,
}

/// What a checkpoint records about the job that writes it (the `metadata` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMetadata {
    /// Format version of this file; [`METADATA_FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// The application name (`Config::new(name)`).
    pub app_name: String,
    /// The batch interval in milliseconds.
    pub batch_interval_ms: i64,
    /// The job's input streams.
    #[serde(default)]
    pub inputs: Vec<InputDescriptor>,
    /// The job's stateful operators.
    #[serde(default)]
    pub stateful_operators: Vec<OperatorDescriptor>,
}

impl JobMetadata {
    /// Metadata for a job with no inputs or stateful operators yet; add them with
    /// [`with_input`](Self::with_input) and [`with_stateful_operator`](Self::with_stateful_operator).
    pub fn new(app_name: impl Into<String>, batch_interval_ms: i64) -> Self {
        JobMetadata {
            version: METADATA_FORMAT_VERSION,
            app_name: app_name.into(),
            batch_interval_ms,
            inputs: Vec::new(),
            stateful_operators: Vec::new(),
        }
    }

    /// Adds an input stream.
    pub fn with_input(mut self, id: impl Into<String>, kind: impl Into<String>) -> Self {
        self.inputs.push(InputDescriptor {
            id: id.into(),
            kind: kind.into(),
        });
        self
    }

    /// Adds a stateful operator.
    pub fn with_stateful_operator(
        mut self,
        id: impl Into<String>,
        state_type: impl Into<String>,
    ) -> Self {
        self.stateful_operators.push(OperatorDescriptor {
            id: id.into(),
            state_type: state_type.into(),
        });
        self
    }

    /// Lists every way in which a job described by `new` cannot continue from a checkpoint
    /// written by a job described by `self`. Empty means compatible.
    ///
    /// Rules (each is a line in the result):
    /// - the stored format version must not be newer than this build understands;
    /// - the app name and the batch interval must be equal;
    /// - every stored input must still exist with the same kind (its pending plans would be
    ///   unreadable or silently dropped otherwise); new inputs are fine — they start fresh;
    /// - every stored stateful operator must still exist with the same state type (its state would
    ///   be undecodable or silently dropped otherwise); new operators are fine — they start empty.
    pub fn mismatches(&self, new: &JobMetadata) -> Vec<String> {
        let mut out = Vec::new();
        if self.version > METADATA_FORMAT_VERSION {
            out.push(format!(
                "metadata format version {} is newer than the supported version {}",
                self.version, METADATA_FORMAT_VERSION
            ));
        }
        if self.app_name != new.app_name {
            out.push(format!(
                "app name: checkpoint has {:?}, job has {:?}",
                self.app_name, new.app_name
            ));
        }
        if self.batch_interval_ms != new.batch_interval_ms {
            out.push(format!(
                "batch interval: checkpoint has {} ms, job has {} ms",
                self.batch_interval_ms, new.batch_interval_ms
            ));
        }
        let new_inputs: BTreeMap<&str, &str> = new
            .inputs
            .iter()
            .map(|i| (i.id.as_str(), i.kind.as_str()))
            .collect();
        for old in &self.inputs {
            match new_inputs.get(old.id.as_str()) {
                None => out.push(format!(
                    "input {:?} ({}) is in the checkpoint but not in the job",
                    old.id, old.kind
                )),
                Some(kind) if *kind != old.kind => out.push(format!(
                    "input {:?}: checkpoint has kind {:?}, job has kind {:?}",
                    old.id, old.kind, kind
                )),
                Some(_) => {}
            }
        }
        let new_ops: BTreeMap<&str, &str> = new
            .stateful_operators
            .iter()
            .map(|o| (o.id.as_str(), o.state_type.as_str()))
            .collect();
        for old in &self.stateful_operators {
            match new_ops.get(old.id.as_str()) {
                None => out.push(format!(
                    "stateful operator {:?} ({}) is in the checkpoint but not in the job",
                    old.id, old.state_type
                )),
                Some(ty) if *ty != old.state_type => out.push(format!(
                    "stateful operator {:?}: checkpoint has state type {:?}, job has {:?}",
                    old.id, old.state_type, ty
                )),
                Some(_) => {}
            }
        }
        out
    }

    /// Parses a `metadata` file's bytes; `path` is only used to name the file in errors.
    pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let meta: JobMetadata =
            serde_json::from_slice(bytes).map_err(|e| StreamingError::CheckpointCorrupt {
                path: path.to_path_buf(),
                reason: format!("invalid job metadata JSON: {e}"),
            })?;
        if meta.version > METADATA_FORMAT_VERSION {
            return Err(StreamingError::CheckpointIncompatible {
                path: path.to_path_buf(),
                mismatches: vec![format!(
                    "metadata format version {} is newer than the supported version {}",
                    meta.version, METADATA_FORMAT_VERSION
                )],
            });
        }
        Ok(meta)
    }

    /// Serializes for the `metadata` file (pretty JSON: it is meant to be read by people).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| StreamingError::Serialization {
            what: "job metadata".into(),
            reason: e.to_string(),
        })
    }
}

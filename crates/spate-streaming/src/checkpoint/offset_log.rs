//! The offset log (`offsets/<batch_time_ms>`) and the commit log (`commits/<batch_time_ms>`).
//!
//! A [`BatchPlan`] is written before a batch runs; a [`CommitInfo`] after all of its outputs
//! succeeded. Both are small JSON documents with a `"version"` field so a person can read them and
//! a later build can still parse them (unknown fields are ignored; missing optional fields take
//! defaults). This is Structured Streaming's offset-log / commit-log split, which is what lets a
//! restart tell "planned" from "done" without a second source of truth.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamingError};

/// Current version of the offset-log file format.
pub const OFFSET_LOG_VERSION: u32 = 1;
/// Current version of the commit-log file format.
pub const COMMIT_LOG_VERSION: u32 = 1;

/// The plan of one batch: for each input, exactly what the batch reads.
///
/// Replaying a pending batch must produce the same result, so the plan holds everything an input
/// needs to re-read identical data (Kafka offset ranges for the direct stream, block ids for a
/// receiver stream). The per-input value is opaque to the checkpoint: each input defines and
/// versions its own shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPlan {
    /// The batch time in milliseconds since the epoch.
    pub batch_time_ms: i64,
    /// Input id → the input's plan for this batch.
    pub inputs: BTreeMap<String, serde_json::Value>,
}

impl BatchPlan {
    /// A plan with no inputs yet.
    pub fn new(batch_time_ms: i64) -> Self {
        BatchPlan {
            batch_time_ms,
            inputs: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) one input's plan.
    pub fn with_input(mut self, input_id: impl Into<String>, plan: serde_json::Value) -> Self {
        self.inputs.insert(input_id.into(), plan);
        self
    }
}

/// What is recorded when a batch completes: small metadata for monitoring and the UI. Its mere
/// presence is what marks the batch as committed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Wall-clock time of the commit, ms since the epoch.
    #[serde(default)]
    pub commit_time_ms: i64,
    /// Number of input records the batch processed.
    #[serde(default)]
    pub num_records: u64,
    /// Processing delay of the batch in ms (end − start), if known.
    #[serde(default)]
    pub processing_delay_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct PlanFile {
    version: u32,
    #[serde(flatten)]
    plan: BatchPlan,
}

#[derive(Serialize, Deserialize)]
struct CommitFile {
    version: u32,
    batch_time_ms: i64,
    #[serde(flatten)]
    info: CommitInfo,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn check_version(path: &Path, bytes: &[u8], supported: u32, what: &str) -> Result<()> {
    let v: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!("invalid {what} JSON: {e}"),
        })?;
    if v.version > supported {
        return Err(StreamingError::CheckpointIncompatible {
            path: path.to_path_buf(),
            mismatches: vec![format!(
                "{what} format version {} is newer than the supported version {supported}",
                v.version
            )],
        });
    }
    Ok(())
}

pub(crate) fn encode_plan(plan: &BatchPlan) -> Result<Vec<u8>> {
    serde_json::to_vec(&PlanFile {
        version: OFFSET_LOG_VERSION,
        plan: plan.clone(),
    })
    .map_err(|e| StreamingError::Serialization {
        what: format!("plan of batch {}", plan.batch_time_ms),
        reason: e.to_string(),
    })
}

/// Parses an offset-log file; the batch time inside must match the file name.
pub(crate) fn decode_plan(path: &Path, name_time: i64, bytes: &[u8]) -> Result<BatchPlan> {
    check_version(path, bytes, OFFSET_LOG_VERSION, "offset log")?;
    let file: PlanFile =
        serde_json::from_slice(bytes).map_err(|e| StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!("invalid offset log JSON: {e}"),
        })?;
    if file.plan.batch_time_ms != name_time {
        return Err(StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!(
                "file is named for batch {name_time} but holds the plan of batch {}",
                file.plan.batch_time_ms
            ),
        });
    }
    Ok(file.plan)
}

pub(crate) fn encode_commit(batch_time_ms: i64, info: &CommitInfo) -> Result<Vec<u8>> {
    serde_json::to_vec(&CommitFile {
        version: COMMIT_LOG_VERSION,
        batch_time_ms,
        info: info.clone(),
    })
    .map_err(|e| StreamingError::Serialization {
        what: format!("commit of batch {batch_time_ms}"),
        reason: e.to_string(),
    })
}

/// Parses a commit-log file; the batch time inside must match the file name.
pub(crate) fn decode_commit(path: &Path, name_time: i64, bytes: &[u8]) -> Result<CommitInfo> {
    check_version(path, bytes, COMMIT_LOG_VERSION, "commit log")?;
    let file: CommitFile =
        serde_json::from_slice(bytes).map_err(|e| StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!("invalid commit log JSON: {e}"),
        })?;
    if file.batch_time_ms != name_time {
        return Err(StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!(
                "file is named for batch {name_time} but commits batch {}",
                file.batch_time_ms
            ),
        });
    }
    Ok(file.info)
}

//! Operator state snapshots (`state/<batch_time_ms>.snapshot`).
//!
//! State maps can be large, so snapshots are binary, not JSON. The file is a fixed header followed
//! by a body:
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"SPATESNP"
//!      8     4  format version, u32 little-endian (currently 1)
//!     12     8  body length in bytes, u64 little-endian
//!     20     4  CRC-32C (Castagnoli) of the body, u32 little-endian
//!     24     n  body: postcard encoding of { batch_time_ms: i64, operators: map<string, bytes> }
//! ```
//!
//! Each operator's state is an opaque byte string that the operator encodes itself (the helpers
//! [`StateSnapshot::put`] / [`StateSnapshot::get`] use postcard too), so one operator's change of
//! state type never makes the others' state unreadable.
//!
//! Why postcard: its wire format is documented and frozen for the 1.x series, it is compact
//! (varint lengths and integers), maintained, and `serde`-driven. bincode was the alternative, but
//! its 1.x and 2.x wire formats differ and the project's future is unclear; a checkpoint format
//! must outlive such churn. The header's length + CRC make a truncated or bit-flipped snapshot
//! a clear error instead of garbage state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamingError};

/// Current version of the snapshot file format.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"SPATESNP";
const HEADER_LEN: usize = 24;
/// File-name suffix of snapshot files.
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// The state of every stateful operator after a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// The batch after which this is the state.
    pub batch_time_ms: i64,
    /// Operator id → the operator's encoded state.
    pub operators: BTreeMap<String, Vec<u8>>,
}

impl StateSnapshot {
    /// An empty snapshot for `batch_time_ms`.
    pub fn new(batch_time_ms: i64) -> Self {
        StateSnapshot {
            batch_time_ms,
            operators: BTreeMap::new(),
        }
    }

    /// Encodes `state` with postcard and stores it as operator `operator_id`'s state.
    ///
    /// postcard is not self-describing: use concrete serde types (maps, structs, numbers,
    /// strings), not `serde_json::Value`.
    pub fn put<T: Serialize + ?Sized>(&mut self, operator_id: &str, state: &T) -> Result<()> {
        let bytes = postcard::to_stdvec(state).map_err(|e| StreamingError::Serialization {
            what: format!("state of operator {operator_id:?}"),
            reason: e.to_string(),
        })?;
        self.operators.insert(operator_id.to_owned(), bytes);
        Ok(())
    }

    /// Decodes operator `operator_id`'s state written by [`put`](Self::put); `None` if the
    /// snapshot has no state for it.
    pub fn get<T: DeserializeOwned>(&self, operator_id: &str) -> Result<Option<T>> {
        let Some(bytes) = self.operators.get(operator_id) else {
            return Ok(None);
        };
        postcard::from_bytes(bytes)
            .map(Some)
            .map_err(|e| StreamingError::Serialization {
                what: format!("state of operator {operator_id:?}"),
                reason: e.to_string(),
            })
    }
}

/// Where a snapshot is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The batch time the snapshot belongs to.
    pub batch_time_ms: i64,
    /// The snapshot file, or for a snapshot kept in the batch log, the log's directory.
    pub path: PathBuf,
}

pub(crate) fn snapshot_file_name(batch_time_ms: i64) -> String {
    format!("{batch_time_ms}{SNAPSHOT_SUFFIX}")
}

pub(crate) fn encode_snapshot(snapshot: &StateSnapshot) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(snapshot).map_err(|e| StreamingError::Serialization {
        what: format!("state snapshot of batch {}", snapshot.batch_time_ms),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StreamingError {
    StreamingError::CheckpointCorrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(a)
}

/// Validates and decodes a snapshot file; the batch time inside must match `name_time`.
pub(crate) fn decode_snapshot(path: &Path, name_time: i64, bytes: &[u8]) -> Result<StateSnapshot> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            path,
            format!("file is {} bytes, shorter than the header", bytes.len()),
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt(path, "bad magic, not a spate state snapshot"));
    }
    let version = le_u32(&bytes[8..12]);
    if version > SNAPSHOT_FORMAT_VERSION {
        return Err(StreamingError::CheckpointIncompatible {
            path: path.to_path_buf(),
            mismatches: vec![format!(
                "snapshot format version {version} is newer than the supported version {SNAPSHOT_FORMAT_VERSION}"
            )],
        });
    }
    let body_len = le_u64(&bytes[12..20]);
    let crc = le_u32(&bytes[20..24]);
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != body_len {
        return Err(corrupt(
            path,
            format!(
                "header says the body is {body_len} bytes but {} follow",
                body.len()
            ),
        ));
    }
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(corrupt(
            path,
            format!("body CRC-32C mismatch: header {crc:#010x}, computed {actual:#010x}"),
        ));
    }
    let snapshot: StateSnapshot = postcard::from_bytes(body)
        .map_err(|e| corrupt(path, format!("cannot decode snapshot body: {e}")))?;
    if snapshot.batch_time_ms != name_time {
        return Err(corrupt(
            path,
            format!(
                "file is named for batch {name_time} but holds the state after batch {}",
                snapshot.batch_time_ms
            ),
        ));
    }
    Ok(snapshot)
}

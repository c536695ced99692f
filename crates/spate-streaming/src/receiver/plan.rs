//! [`ReceiverPlan`]: what a receiver input stream records in a batch's checkpoint plan, and how a
//! batch gets its blocks back (Spark's `WriteAheadLogBackedBlockRDD`).
//!
//! A receiver batch is defined by the blocks allocated to it. Writing their infos (ids, record
//! counts, write-ahead-log handles) into the [`BatchPlan`](crate::checkpoint::BatchPlan) before the
//! batch runs makes a re-run after a crash read exactly the same blocks, even without consulting
//! the tracker. The JSON shape is versioned:
//! `{"version":1,"blocks":[{"block_id":{"stream_id":..,"unique_id":..},"num_records":..,"wal_handle":{..}|null}]}`.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::block::{Block, ReceivedBlockInfo};
use super::handler::{read_block_from_wal_with, BlockCodec, BlockStore};
use crate::error::{Result, StreamingError};

/// Current version of the receiver plan shape.
pub const RECEIVER_PLAN_VERSION: u32 = 1;

/// The blocks one receiver input stream reads in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverPlan {
    /// Shape version; [`RECEIVER_PLAN_VERSION`] when built by this crate.
    pub version: u32,
    /// The blocks, in allocation (arrival) order.
    pub blocks: Vec<ReceivedBlockInfo>,
}

impl ReceiverPlan {
    /// A plan reading `blocks` (typically `tracker.get_blocks_of_batch_and_stream(t, stream)`).
    pub fn new(blocks: Vec<ReceivedBlockInfo>) -> Self {
        ReceiverPlan {
            version: RECEIVER_PLAN_VERSION,
            blocks,
        }
    }

    /// Total records in the plan's blocks.
    pub fn num_records(&self) -> u64 {
        self.blocks.iter().map(|b| b.num_records).sum()
    }

    /// The JSON value to put in `BatchPlan::inputs[input_id]`.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| StreamingError::Serialization {
            what: "receiver plan".into(),
            reason: e.to_string(),
        })
    }

    /// Parses the plan of input `input_id` back from a checkpointed `BatchPlan`.
    pub fn from_json(input_id: &str, value: &serde_json::Value) -> Result<Self> {
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if version > u64::from(RECEIVER_PLAN_VERSION) {
            return Err(StreamingError::CheckpointIncompatible {
                path: input_id.into(),
                mismatches: vec![format!(
                    "receiver plan of input {input_id:?} has version {version}, newer than the supported {RECEIVER_PLAN_VERSION}"
                )],
            });
        }
        serde_json::from_value(value.clone()).map_err(|e| StreamingError::Serialization {
            what: format!("receiver plan of input {input_id:?}"),
            reason: e.to_string(),
        })
    }

    /// Fetches the plan's blocks: from memory when the receiver still holds them, otherwise from
    /// the receiver write-ahead log under `checkpoint_dir` (after a restart). A block found in
    /// neither place is a [`StreamingError::BlockStore`] error naming it — without a log, a crash
    /// loses received data, and the batch must say so rather than silently read less.
    pub fn read_blocks<T: DeserializeOwned>(
        &self,
        store: &BlockStore<T>,
        checkpoint_dir: Option<&Path>,
    ) -> Result<Vec<Arc<Block<T>>>> {
        self.read_blocks_with(store, checkpoint_dir, None)
    }

    /// [`ReceiverPlan::read_blocks`] also reading blocks the log stored with `codec`.
    pub fn read_blocks_with<T: DeserializeOwned>(
        &self,
        store: &BlockStore<T>,
        checkpoint_dir: Option<&Path>,
        codec: Option<&dyn BlockCodec<T>>,
    ) -> Result<Vec<Arc<Block<T>>>> {
        self.blocks
            .iter()
            .map(|info| {
                if let Some(block) = store.get(&info.block_id) {
                    return Ok(block);
                }
                match (checkpoint_dir, info.wal_handle) {
                    (Some(dir), Some(_)) => {
                        read_block_from_wal_with(dir, info, codec).map(Arc::new)
                    }
                    _ => Err(StreamingError::BlockStore {
                        block_id: info.block_id.to_string(),
                        reason: "block is not in memory and was not written to a write-ahead log (lost in a restart?)".into(),
                    }),
                }
            })
            .collect()
    }
}

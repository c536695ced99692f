//! Blocks: the unit in which received records are stored, logged and assigned to batches.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::budget::BudgetPermit;
use crate::wal::WalRecordHandle;

/// Identifies a block of received records (Spark's `StreamBlockId`, named `input-<stream>-<id>`).
///
/// The unique id is the block's time in ms (the block-interval tick that cut it, minus one
/// interval, as in Spark), made strictly increasing per generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamBlockId {
    /// The input stream (receiver) that produced the block.
    pub stream_id: u32,
    /// Unique per stream: the block time in ms.
    pub unique_id: i64,
}

impl fmt::Display for StreamBlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input-{}-{}", self.stream_id, self.unique_id)
    }
}

/// A block: the records one receiver accumulated during one block interval (or until the
/// generator's block size cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block<T> {
    /// The block's id.
    pub id: StreamBlockId,
    /// The records, in the order they were stored.
    pub items: Vec<T>,
    /// The receiver memory budget the records hold, returned when the block is dropped (not
    /// serialized: a block read back from the log is not accounted).
    #[serde(skip)]
    pub(crate) permit: BudgetPermit,
}

impl<T> Block<T> {
    /// A block of `items` outside any memory budget.
    pub fn new(id: StreamBlockId, items: Vec<T>) -> Self {
        Block {
            id,
            items,
            permit: BudgetPermit::default(),
        }
    }

    /// Bytes of the receiver memory budget this block holds (0 when not accounted).
    pub fn budget_bytes(&self) -> usize {
        self.permit.bytes()
    }
}

/// What the driver knows about a stored block (Spark's `ReceivedBlockInfo`): enough to find its
/// records again, in memory or in the receiver's write-ahead log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedBlockInfo {
    /// The block's id (which includes the stream id).
    pub block_id: StreamBlockId,
    /// Number of records in the block.
    pub num_records: u64,
    /// Where the block is in the receiver write-ahead log, when it was stored there.
    #[serde(default)]
    pub wal_handle: Option<WalRecordHandle>,
}

impl ReceivedBlockInfo {
    /// The input stream the block belongs to.
    pub fn stream_id(&self) -> u32 {
        self.block_id.stream_id
    }
}

//! [`ReceivedBlockTracker`]: the driver's record of which received blocks exist and which batch
//! each was allocated to (Spark's `ReceivedBlockTracker`).
//!
//! Receivers report stored blocks ([`add_block`](ReceivedBlockTracker::add_block)); at each batch
//! time the scheduler calls [`allocate_blocks_to_batch`](ReceivedBlockTracker::allocate_blocks_to_batch),
//! which moves every unallocated block into that batch; the batch reads
//! [`get_blocks_of_batch`](ReceivedBlockTracker::get_blocks_of_batch); old batches are dropped with
//! [`cleanup_old_batches`](ReceivedBlockTracker::cleanup_old_batches).
//!
//! With a checkpoint directory every change is first logged to a write-ahead log at
//! `<checkpoint>/receivedBlockMetadata` (fsync per event) and only then applied, so after a crash
//! [`ReceivedBlockTracker::open`] replays the log: batches that were allocated keep exactly their
//! blocks (a re-run of a pending batch reads the same data — allocating it again is a no-op);
//! blocks that were added but not allocated go to the next batch; cleaned batches stay gone. The
//! blocks' records come back from the receivers' write-ahead logs (`read_block_from_wal`).
//!
//! Events are stored as JSON (`{"version":1,"event":{"BlockAddition":{..}}}`): they are small, and
//! a readable, versioned log is part of the checkpoint-is-data contract.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::block::ReceivedBlockInfo;
use crate::checkpoint::RECEIVED_BLOCK_METADATA_DIR;
use crate::error::{Result, StreamingError};
use crate::wal::{WalConfig, WriteAheadLog};

/// Current version of the tracker's event format.
pub const TRACKER_EVENT_VERSION: u32 = 1;

/// The blocks allocated to one batch, by stream id (Spark's `AllocatedBlocks`).
pub type AllocatedBlocks = BTreeMap<u32, Vec<ReceivedBlockInfo>>;

/// One change to the tracker, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TrackerEvent {
    BlockAddition {
        block: ReceivedBlockInfo,
    },
    BatchAllocation {
        batch_time_ms: i64,
        blocks: AllocatedBlocks,
    },
    BatchCleanup {
        batch_times_ms: Vec<i64>,
    },
}

#[derive(Serialize, Deserialize)]
struct EventRecord {
    version: u32,
    event: TrackerEvent,
}

/// A block waiting for a batch, with the time its addition was logged under (which bounds how
/// far the log may be cleaned while the block is still unallocated).
#[derive(Debug, Clone)]
struct Unallocated {
    log_time_ms: i64,
    block: ReceivedBlockInfo,
}

#[derive(Debug, Default)]
struct TrackerState {
    unallocated: BTreeMap<u32, VecDeque<Unallocated>>,
    allocated: BTreeMap<i64, AllocatedBlocks>,
    last_allocated_batch: Option<i64>,
    /// Highest record time logged so far; see [`ReceivedBlockTracker::log`].
    max_logged_time_ms: i64,
}

impl TrackerState {
    fn apply(&mut self, event: TrackerEvent, log_time_ms: i64) {
        self.max_logged_time_ms = self.max_logged_time_ms.max(log_time_ms);
        match event {
            TrackerEvent::BlockAddition { block } => {
                self.unallocated
                    .entry(block.stream_id())
                    .or_default()
                    .push_back(Unallocated { log_time_ms, block });
            }
            TrackerEvent::BatchAllocation {
                batch_time_ms,
                blocks,
            } => {
                // Remove exactly the allocated blocks: on replay, additions logged after this
                // allocation are applied after it, so "clear the queue" would work too, but this
                // is right regardless of order.
                for (stream, infos) in &blocks {
                    if let Some(queue) = self.unallocated.get_mut(stream) {
                        queue.retain(|u| !infos.iter().any(|a| a.block_id == u.block.block_id));
                    }
                }
                self.allocated.insert(batch_time_ms, blocks);
                self.last_allocated_batch = Some(
                    self.last_allocated_batch
                        .map_or(batch_time_ms, |t| t.max(batch_time_ms)),
                );
            }
            TrackerEvent::BatchCleanup { batch_times_ms } => {
                for t in batch_times_ms {
                    self.allocated.remove(&t);
                }
            }
        }
    }
}

/// Tracks received blocks and their allocation to batches. See the module docs.
#[derive(Debug)]
pub struct ReceivedBlockTracker {
    stream_ids: Vec<u32>,
    state: Mutex<TrackerState>,
    wal: Option<WriteAheadLog>,
}

impl ReceivedBlockTracker {
    /// A tracker without a log (nothing survives a restart), for the given input streams.
    pub fn new(stream_ids: impl IntoIterator<Item = u32>) -> Self {
        ReceivedBlockTracker {
            stream_ids: stream_ids.into_iter().collect(),
            state: Mutex::new(TrackerState::default()),
            wal: None,
        }
    }

    /// A tracker logging to `<checkpoint_dir>/receivedBlockMetadata`, recovering whatever that
    /// log already holds.
    pub fn open(
        stream_ids: impl IntoIterator<Item = u32>,
        checkpoint_dir: &Path,
        config: WalConfig,
    ) -> Result<Self> {
        let wal = WriteAheadLog::open(checkpoint_dir.join(RECEIVED_BLOCK_METADATA_DIR), config)?;
        let mut state = TrackerState::default();
        let records = wal.read_all()?;
        let count = records.len();
        for record in records {
            let parsed: EventRecord = serde_json::from_slice(&record.payload).map_err(|e| {
                StreamingError::WalCorrupt {
                    path: wal.dir().to_path_buf(),
                    offset: record.handle.offset,
                    reason: format!(
                        "segment {}: not a block tracker event: {e}",
                        record.handle.segment
                    ),
                }
            })?;
            if parsed.version > TRACKER_EVENT_VERSION {
                return Err(StreamingError::CheckpointIncompatible {
                    path: wal.dir().to_path_buf(),
                    mismatches: vec![format!(
                        "block tracker event version {} is newer than the supported {TRACKER_EVENT_VERSION}",
                        parsed.version
                    )],
                });
            }
            state.apply(parsed.event, record.time_ms);
        }
        tracing::info!(
            events = count,
            allocated_batches = state.allocated.len(),
            unallocated_blocks = state.unallocated.values().map(VecDeque::len).sum::<usize>(),
            "recovered received block tracker"
        );
        Ok(ReceivedBlockTracker {
            stream_ids: stream_ids.into_iter().collect(),
            state: Mutex::new(state),
            wal: Some(wal),
        })
    }

    /// The input streams this tracker allocates blocks of.
    pub fn stream_ids(&self) -> &[u32] {
        &self.stream_ids
    }

    /// Logs `event` (if there is a log) and returns the time it was logged under. Called with the
    /// state lock held so that the log order is the order in which events are applied.
    ///
    /// Record times are made non-decreasing (`max(natural time, latest logged time)`): then
    /// cleaning the log by time always deletes a prefix of it, so a cleanup event can never be
    /// deleted while an allocation it cancelled survives in an older segment.
    fn log(&self, state: &TrackerState, natural_time_ms: i64, event: &TrackerEvent) -> Result<i64> {
        let time_ms = natural_time_ms.max(state.max_logged_time_ms);
        let Some(wal) = &self.wal else {
            return Ok(time_ms);
        };
        let bytes = serde_json::to_vec(&EventRecord {
            version: TRACKER_EVENT_VERSION,
            event: event.clone(),
        })
        .map_err(|e| StreamingError::Serialization {
            what: "block tracker event".into(),
            reason: e.to_string(),
        })?;
        wal.append(time_ms, &bytes)?;
        Ok(time_ms)
    }

    /// Records a stored block. It is only tracked if logging it succeeded.
    pub fn add_block(&self, block: ReceivedBlockInfo) -> Result<()> {
        let mut state = self.state.lock();
        let natural = block.block_id.unique_id;
        let event = TrackerEvent::BlockAddition { block };
        let t = self.log(&state, natural, &event)?;
        state.apply(event, t);
        Ok(())
    }

    /// Moves every unallocated block of every stream into batch `batch_time_ms`.
    ///
    /// A batch time not after the last allocated one is ignored (as in Spark): that is a pending
    /// batch being re-run after recovery, which must keep the blocks it was allocated.
    pub fn allocate_blocks_to_batch(&self, batch_time_ms: i64) -> Result<()> {
        let mut state = self.state.lock();
        if state
            .last_allocated_batch
            .is_some_and(|t| batch_time_ms <= t)
        {
            tracing::info!(
                batch_time_ms,
                "possibly processed batch needs to be processed again in WAL recovery; keeping its allocation"
            );
            return Ok(());
        }
        let mut blocks = AllocatedBlocks::new();
        for stream in &self.stream_ids {
            let queued: Vec<ReceivedBlockInfo> = state
                .unallocated
                .get(stream)
                .map(|q| q.iter().map(|u| u.block.clone()).collect())
                .unwrap_or_default();
            blocks.insert(*stream, queued);
        }
        let event = TrackerEvent::BatchAllocation {
            batch_time_ms,
            blocks,
        };
        let t = self.log(&state, batch_time_ms, &event)?;
        state.apply(event, t);
        Ok(())
    }

    /// The blocks allocated to batch `batch_time_ms`, by stream (empty if none or cleaned).
    pub fn get_blocks_of_batch(&self, batch_time_ms: i64) -> AllocatedBlocks {
        self.state
            .lock()
            .allocated
            .get(&batch_time_ms)
            .cloned()
            .unwrap_or_default()
    }

    /// The blocks of one stream allocated to batch `batch_time_ms`.
    pub fn get_blocks_of_batch_and_stream(
        &self,
        batch_time_ms: i64,
        stream_id: u32,
    ) -> Vec<ReceivedBlockInfo> {
        self.state
            .lock()
            .allocated
            .get(&batch_time_ms)
            .and_then(|b| b.get(&stream_id).cloned())
            .unwrap_or_default()
    }

    /// Whether any block is waiting for a batch.
    pub fn has_unallocated_blocks(&self) -> bool {
        self.state
            .lock()
            .unallocated
            .values()
            .any(|q| !q.is_empty())
    }

    /// The blocks of `stream_id` waiting for a batch, in arrival order.
    pub fn unallocated_blocks(&self, stream_id: u32) -> Vec<ReceivedBlockInfo> {
        self.state
            .lock()
            .unallocated
            .get(&stream_id)
            .map(|q| q.iter().map(|u| u.block.clone()).collect())
            .unwrap_or_default()
    }

    /// Batch times that currently have an allocation, ascending.
    pub fn allocated_batch_times(&self) -> Vec<i64> {
        self.state.lock().allocated.keys().copied().collect()
    }

    /// The newest batch time blocks were allocated to.
    pub fn last_allocated_batch(&self) -> Option<i64> {
        self.state.lock().last_allocated_batch
    }

    /// Forgets the allocations of batches before `before_ms` and deletes log segments that only
    /// hold events older than that. Call it once those batches are committed and no longer
    /// remembered (Spark: batch time − maxRememberDuration).
    pub fn cleanup_old_batches(&self, before_ms: i64) -> Result<()> {
        let mut state = self.state.lock();
        let batch_times_ms: Vec<i64> = state
            .allocated
            .range(..before_ms)
            .map(|(t, _)| *t)
            .collect();
        if !batch_times_ms.is_empty() {
            tracing::debug!(?batch_times_ms, "cleaning up old batch allocations");
            let event = TrackerEvent::BatchCleanup { batch_times_ms };
            let t = self.log(&state, before_ms, &event)?;
            state.apply(event, t);
        }
        if let Some(wal) = &self.wal {
            // A segment entirely older than `before_ms` describes only cleaned batches — except
            // for additions of blocks still waiting for a batch, so never clean past the oldest
            // of those. (Retained batches are rebuilt from their allocation events, which carry
            // the full block infos.)
            let oldest_waiting = state
                .unallocated
                .values()
                .filter_map(|q| q.front().map(|u| u.log_time_ms))
                .min();
            wal.clean(oldest_waiting.map_or(before_ms, |t| t.min(before_ms)))?;
        }
        Ok(())
    }
}

//! The generic receiver API: how a push-style source (the Kafka receiver, a socket, a test
//! generator) feeds the engine, and how the driver tracks what it received (Spark's receiver
//! approach: receivers, block generator, block handlers, received-block tracker).
//!
//! ```text
//! Receiver::run ──store()──▶ BlockGenerator ──(every block interval)──▶ bounded queue
//!                  (rate limit,               cuts a Block              (blocks when full)
//!                   backpressure)                                           │ pusher thread
//!                                                                           ▼
//!                         BlockHandler::store_block (memory, or WAL + fsync) → reporter
//!                         (ReceivedBlockTracker::add_block) → listener.on_push_block
//!                         (a reliable receiver commits its source offsets here)
//!
//! scheduler, each batch: tracker.allocate_blocks_to_batch(t); blocks = tracker.get_blocks_of_batch(t)
//! ```
//!
//! Modules: [`block`] (ids and infos), [`block_generator`], [`budget`] (the receiver's memory
//! bound), [`handler`] (in-memory and
//! write-ahead-log block storage), [`plan`] (a batch's blocks in the checkpoint plan, and
//! reading them back from memory or the log), [`supervisor`] (the `Receiver` trait and its runner),
//! [`tracker`] (driver-side allocation with its own write-ahead log).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use spate_streaming::receiver::*;
//! use spate_streaming::wal::WalConfig;
//!
//! struct Numbers;
//! impl Receiver<u64> for Numbers {
//!     fn run(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), ReceiverError> {
//!         ctx.store_many((0..10).collect())?; // a source would loop until ctx.is_stopped()
//!         Ok(())
//!     }
//! }
//!
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let checkpoint = dir.path();
//! let handler = WalBlockHandler::open(checkpoint, 0, Arc::new(BlockStore::new()), WalConfig::default())?;
//! let tracker = Arc::new(ReceivedBlockTracker::open([0], checkpoint, WalConfig::default())?);
//! let report_to = Arc::clone(&tracker);
//! let supervisor = ReceiverSupervisor::builder(0, Arc::new(handler))
//!     .reporter(Box::new(move |info| report_to.add_block(info.clone())))
//!     .start(Numbers)?;
//! # while !supervisor.is_finished() { std::thread::sleep(std::time::Duration::from_millis(5)); }
//! supervisor.stop(); // drains: every stored record is in a block, logged and tracked
//!
//! tracker.allocate_blocks_to_batch(1_000)?;
//! let mut records = Vec::new();
//! for info in tracker.get_blocks_of_batch_and_stream(1_000, 0) {
//!     records.extend(read_block_from_wal::<u64>(checkpoint, &info)?.items);
//! }
//! assert_eq!(records, (0..10).collect::<Vec<_>>());
//! # Ok::<(), spate_streaming::StreamingError>(())
//! ```

pub mod block;
pub mod block_generator;
pub mod budget;
pub mod handler;
pub mod plan;
pub mod supervisor;
pub mod tracker;

pub use block::{Block, ReceivedBlockInfo, StreamBlockId};
pub use block_generator::{
    BlockGenerator, BlockGeneratorBuilder, BlockGeneratorConfig, BlockGeneratorListener,
    BlockReporter, GeneratorState, GeneratorStats, NoopListener, Weigher, DEFAULT_BLOCK_INTERVAL,
    DEFAULT_BLOCK_QUEUE_SIZE,
};
pub use budget::{BudgetPermit, MemoryBudget};
pub use handler::{
    decode_block_payload, read_block_from_wal, read_block_from_wal_with, received_data_dir,
    BlockCodec, BlockHandler, BlockStore, InMemoryBlockHandler, WalBlockHandler,
};
pub use plan::{ReceiverPlan, RECEIVER_PLAN_VERSION};
pub use supervisor::{
    Receiver, ReceiverConfig, ReceiverContext, ReceiverError, ReceiverSupervisor,
    ReceiverSupervisorBuilder,
};
pub use tracker::{AllocatedBlocks, ReceivedBlockTracker, TRACKER_EVENT_VERSION};

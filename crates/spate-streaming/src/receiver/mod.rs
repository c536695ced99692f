//! The generic receiver API: how a push-style source (the Kafka receiver, a socket, a test
//! generator) feeds the engine, and how the driver tracks what it received (Spark's receiver
//! approach, R5–R11; DESIGN §3.4).
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
//! Modules: [`block`] (ids and infos), [`block_generator`], [`handler`] (in-memory and
//! write-ahead-log block storage), [`supervisor`] (the `Receiver` trait and its runner),
//! [`tracker`] (driver-side allocation with its own write-ahead log).

pub mod block;
pub mod block_generator;
pub mod handler;
pub mod supervisor;
pub mod tracker;

pub use block::{Block, ReceivedBlockInfo, StreamBlockId};
pub use block_generator::{
    BlockGenerator, BlockGeneratorBuilder, BlockGeneratorConfig, BlockGeneratorListener,
    BlockReporter, GeneratorState, GeneratorStats, NoopListener, DEFAULT_BLOCK_INTERVAL,
    DEFAULT_BLOCK_QUEUE_SIZE,
};
pub use handler::{
    read_block_from_wal, received_data_dir, BlockHandler, BlockStore, InMemoryBlockHandler,
    WalBlockHandler,
};
pub use supervisor::{
    Receiver, ReceiverConfig, ReceiverContext, ReceiverError, ReceiverSupervisor,
    ReceiverSupervisorBuilder,
};
pub use tracker::{AllocatedBlocks, ReceivedBlockTracker, TRACKER_EVENT_VERSION};

//! The receiver-based Kafka stream (Spark's first approach, `KafkaUtils.createStream`):
//! long-running receivers consume with a consumer group, and their records are cut into blocks
//! every block interval; batches are made of blocks.
//!
//! ```text
//! consumer threads ──store()──▶ BlockGenerator ──block──▶ handler (memory | WAL + fsync)
//!  (group members,   rate limit                              │ reporter: tracker.add_block
//!   Kafka assigns)                                           ▼
//!                                          ReliableListener::on_push_block → commit offsets
//! ```
//!
//! # Two modes, and what each can lose
//!
//! - **Unreliable** (default, as in Spark): blocks live in memory and the consumer auto-commits
//!   its offsets on librdkafka's timer (`auto.commit.interval.ms`, 5 s by default),
//!   independently of what happened to the records. **If the process dies, records that were
//!   received but not yet processed by a completed batch are lost**: their offsets may already be
//!   committed, so nobody reads them again. That includes the current block buffer, the block
//!   queue, and every block of a batch that had not finished.
//! - **Reliable** (`spate.streaming.receiver.write.ahead.log.enable = true`): auto-commit is off.
//!   Every block is appended to the receiver write-ahead log under
//!   `<checkpoint>/receivers/<input id>/receivedData/0` and fsynced, then reported to the
//!   `ReceivedBlockTracker` (whose own log is fsynced), and only then are the offsets of the
//!   records in that block committed — as the *next* offset to read (`last + 1`; Spark commits
//!   `last`, which re-reads a record per partition). A crash at any point loses nothing: a
//!   committed record is in the log, an uncommitted one is read again. Duplicates are possible
//!   (records stored but not yet committed are re-read): **at-least-once**.
//!
//! Before a rebalance revokes partitions (rdkafka `pre_rebalance`), and before a consumer leaves
//! the group, a reliable receiver waits until what it received from those partitions is durable
//! and commits it synchronously, so the next owner does not re-read it.
//!
//! # Memory
//!
//! A receiver holds at most `spate.streaming.receiver.max.buffered.bytes` (48 MiB by default) of
//! received records — its block buffer, its block queue and the stored blocks that no completed
//! batch has released — measured per record by [`block_codec::record_weight`]. When that is
//! spent, `store` waits and the consumer threads stop polling until a batch completes and its
//! blocks are dropped (with the log on they are durable long before). A block is cut early when it
//! reaches an eighth of the budget. librdkafka's own pre-fetch queue is bounded separately:
//! `queued.max.messages.kbytes` (16 MiB by default here) and `queued.min.messages` (four
//! messages per KiB of it by default) are the receiver's totals, divided evenly over its consumer threads.
//!
//! Kafka partitions do not map to batch partitions: a batch has one partition per block (about
//! `batch interval / block interval` per receiver). For more parallelism in receiving, create
//! several streams in the same group and union them; Kafka splits the partitions between them.
//!
//! Records are stored as the crate's [`ConsumerRecord`](crate::ConsumerRecord) (owned, serde),
//! the same type the direct stream yields, so the two approaches are interchangeable in a job.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use spate_kafka::KafkaUtils;
//! use spate_streaming::{Config, StreamingContext, StreamingError};
//!
//! let ctx = StreamingContext::get_or_create("ckpt/receiver-wordcount", || {
//!     let ctx = StreamingContext::new(Config::new("wordcount").batch_interval(Duration::from_secs(2)))?;
//!     let params = [
//!         ("bootstrap.servers", "127.0.0.1:9092"),
//!         ("group.id", "wordcount"),
//!         ("spate.streaming.receiver.write.ahead.log.enable", "true"), // reliable receiver
//!     ];
//!     // Two receivers in one group, unioned: Kafka splits the partitions between them.
//!     let streams = (0..2)
//!         .map(|_| KafkaUtils::create_stream(&ctx, params, [("lines", 1)]).map(|s| s.dstream().clone()))
//!         .collect::<Result<Vec<_>, _>>()
//!         .map_err(StreamingError::from)?;
//!     ctx.union(&streams)?
//!         .flat_map(|r| r.value_str().unwrap_or_default().split_whitespace().map(str::to_owned).collect::<Vec<_>>())
//!         .map(|w| (w, 1u64))
//!         .reduce_by_key(|a, b| a + b)
//!         .print(10);
//!     Ok(ctx)
//! })?;
//! ctx.start()?;
//! ctx.await_termination()?;
//! # Ok::<(), StreamingError>(())
//! ```
//!
//! # Layout
//!
//! - [`block_codec`] — how blocks of records are stored in the write-ahead log, and what a
//!   record weighs in the receiver's memory budget.
//! - [`config`] — [`KafkaReceiverConfig`] (Kafka parameters, topic → threads, receiver settings).
//! - [`offsets`] — [`OffsetBook`], which offsets are durable and committable.
//! - [`consumer`] — the rdkafka consumer context (commit before revoke) and group state.
//! - [`kafka_receiver`] — [`KafkaReceiver`], the run loop and the reliable block listener.
//! - [`running`] — [`RunningKafkaReceiver`], the receiver wired to a block handler and supervisor.
//! - [`input`] — [`KafkaReceiverInputStream`] and [`KafkaUtils::create_stream`](crate::KafkaUtils::create_stream),
//!   the receiver as an input of the engine.

pub mod block_codec;
pub mod config;
pub mod consumer;
pub mod input;
pub mod kafka_receiver;
pub mod offsets;
pub mod running;

/// The receiver's setting keys (defined in [`crate::keys`], the crate's one key table).
pub use crate::keys::{
    BACKPRESSURE_ENABLED, BACKPRESSURE_INITIAL_RATE, BLOCK_INTERVAL_MS, BLOCK_QUEUE_SIZE,
    RECEIVER_MAX_BUFFERED_BYTES, RECEIVER_MAX_RATE, RECEIVER_RESTART_DELAY_MS,
    WRITE_AHEAD_LOG_ENABLE, WRITE_AHEAD_LOG_ENABLE_ALIAS,
};
pub use block_codec::ConsumerRecordCodec;
pub use config::KafkaReceiverConfig;
pub use consumer::ConsumerGroupState;
pub use input::{
    KafkaReceiverInputStream, KafkaReceiverPlan, KafkaReceiverStream, ReceiverPosition,
};
pub use kafka_receiver::KafkaReceiver;
pub use offsets::OffsetBook;
pub use running::{KafkaReceiverBuilder, RunningKafkaReceiver};

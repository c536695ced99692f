//! Kafka integration for spate on `rdkafka`: the **direct stream** — Spark Streaming's
//! `kafka-0-10` approach, in which the driver plans every batch as offset ranges and tasks read
//! exactly those ranges.
//!
//! Map of the crate:
//! * [`KafkaUtils`] — the entry points, named as in Spark: `create_direct_stream`, `create_rdd`,
//!   `create_stream`.
//! * [`direct`] — the direct stream: [`OffsetRange`], [`KafkaParams`], [`ConsumerStrategy`],
//!   [`DirectStreamConfig`], the rate clamp and [`OffsetPlanner`], the cached-consumer
//!   [`KafkaRangeReader`], [`OffsetCommitter`] (`commit_async`), and the stream itself.
//! * [`receiver`] — the **receiver-based stream** (Spark's first approach,
//!   [`KafkaUtils::create_stream`]): consumer-group receivers that cut records into blocks, with a
//!   reliable mode backed by the receiver write-ahead log.
//! * [`sink`] — exactly-once outputs: [`SqliteOffsetStore`] (feature `sqlite`, on by default)
//!   stores a batch's results and its offset ranges in one SQLite transaction and resumes from
//!   them; `PostgresOffsetStore` (feature `postgres`, on by default) does the same in a
//!   PostgreSQL database shared by several instances; [`IdempotentSqliteSink`] upserts records
//!   keyed by (topic, partition, offset).
//! * [`changelog`] — keyed state (`update_state_by_key`, `map_with_state`) backed by compacted
//!   changelog topics, written in the exactly-once output's transactions and restored at start.
//! * [`repartition`] — repartition topics (Kafka Streams' `repartition()`): a re-keyed stream
//!   written through an internal topic partitioned by the new key and read back as an internal
//!   stream, exactly-once with the output's transactions, purged once consumed.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use spate_kafka::{ConsumerStrategy, KafkaParams, KafkaUtils};
//! use spate_streaming::{Config, StreamingContext};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let ctx = StreamingContext::new(Config::new("lines").batch_interval(Duration::from_millis(500)))?;
//!     let params = KafkaParams::new()
//!         .set("bootstrap.servers", "127.0.0.1:9092")
//!         .set("group.id", "lines")
//!         .set("auto.offset.reset", "earliest");
//!     let stream = KafkaUtils::create_direct_stream(&ctx, ConsumerStrategy::subscribe(["lines"], params))?;
//!     let handle = stream.clone();
//!     stream.foreach_batch(move |batch, time| {
//!         let records = batch.collect()?;
//!         println!("{time}: {} records", records.len());
//!         // Outputs succeeded: let lag tools see the progress.
//!         if let Some(ranges) = handle.offset_ranges(time) {
//!             handle.commit_async(&ranges, |_| {})?;
//!         }
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//!     });
//!     ctx.start()?;
//!     ctx.await_termination()?;
//!     Ok(())
//! }
//! ```

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod changelog;
pub mod direct;
pub mod error;
pub mod kafka_utils;
pub mod keys;
pub mod receiver;
pub mod record;
pub mod repartition;
pub mod sink;

/// The type of [`ConsumerRecord`]'s key and value, re-exported so jobs need no `bytes` dependency.
pub use bytes::Bytes;
pub use direct::{
    AutoOffsetReset, CacheKey, CanCommitOffsets, CommitCallback, CommitResult, ConsumerCache,
    ConsumerLease, ConsumerStrategy, DirectBatchInfo, DirectKafkaInputStream, DirectKafkaStream,
    DirectPlan, DirectPosition, DirectStreamConfig, DriverClient, GroupMember, HasOffsetRanges,
    KafkaParams, KafkaRangeReader, KafkaRdd, LostOffsets, OffsetCommitter, OffsetPlanner,
    OffsetRange, PerPartitionConfig, RangeRead, RebalanceCounts, RebalanceListener, RetryPolicy,
    Subscription, TopicPartition, Watermarks,
};
pub use error::{Result, SpateKafkaError};
pub use kafka_utils::KafkaUtils;
pub use record::{ConsumerRecord, RecordArena};
pub use repartition::{Repartition, RepartitionConfig, RepartitionStream};
#[cfg(feature = "postgres")]
pub use sink::PostgresOffsetStore;
pub use sink::TransactionalStore;
pub use sink::{
    BatchWrite, DeliveryGuarantee, KafkaOffsetStore, KafkaOutput, OutputRecord, SaveToKafka,
};
#[cfg(feature = "sqlite")]
pub use sink::{IdempotentSqliteSink, SqliteOffsetStore};

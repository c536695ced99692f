//! Kafka integration for spate on `rdkafka`: the **direct stream** — Spark Streaming's
//! `kafka-0-10` approach, in which the driver plans every batch as offset ranges and tasks read
//! exactly those ranges.
//!
//! Map of the crate:
//! * [`OffsetRange`], [`TopicPartition`], [`HasOffsetRanges`] — the unit of planning.
//! * [`KafkaParams`] (Kafka's setting names), [`ConsumerStrategy`] (Subscribe, SubscribePattern,
//!   Assign), [`DirectStreamConfig`] and [`PerPartitionConfig`] (rates, data loss, timeouts).
//! * [`clamp`] — Spark's rate clamp, exactly; [`OffsetPlanner`] — the driver's per-batch plan.
//! * [`ConsumerCache`] and [`KafkaRangeReader`] — reading ranges with exclusive cached consumers.
//! * [`KafkaUtils::create_rdd`] — batch read of explicit ranges; [`OffsetCommitter`] —
//!   `commit_async` to the consumer group.
//! * [`KafkaUtils::create_direct_stream`] — the stream, as an input of the engine.
//! * [`receiver`] — the **receiver-based stream** (Spark's first approach,
//!   [`KafkaUtils::create_stream`]): consumer-group receivers that cut records into blocks, with a
//!   reliable mode backed by the receiver write-ahead log.
//! * [`sink`] — exactly-once outputs: [`SqliteOffsetStore`] stores a batch's results and its
//!   offset ranges in one SQLite transaction and resumes from them; [`IdempotentSqliteSink`]
//!   upserts records keyed by (topic, partition, offset).
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

pub mod clamp;
pub mod commit;
pub mod config;
pub mod consumer_cache;
pub mod direct_stream;
pub mod driver;
pub mod error;
pub mod offset_range;
pub mod params;
pub mod per_partition;
pub mod planner;
pub mod rdd;
pub mod reader;
pub mod receiver;
pub mod record;
pub mod retry;
pub mod sink;
pub mod strategy;
pub mod stream_keys;

pub use commit::{CanCommitOffsets, CommitCallback, CommitResult, OffsetCommitter};
pub use config::DirectStreamConfig;
pub use consumer_cache::{CacheKey, ConsumerCache, ConsumerLease};
pub use direct_stream::{DirectKafkaInputStream, DirectKafkaStream};
pub use driver::{DriverClient, Watermarks};
pub use error::{Result, SpateKafkaError};
pub use offset_range::{HasOffsetRanges, OffsetRange, TopicPartition};
pub use params::{AutoOffsetReset, KafkaParams};
pub use per_partition::PerPartitionConfig;
pub use planner::{BatchPlan, LostOffsets, OffsetPlanner};
pub use rdd::{KafkaRdd, KafkaUtils};
pub use reader::{KafkaRangeReader, RangeRead};
pub use record::ConsumerRecord;
pub use retry::RetryPolicy;
pub use sink::{IdempotentSqliteSink, SqliteOffsetStore};
pub use strategy::{ConsumerStrategy, Subscription};

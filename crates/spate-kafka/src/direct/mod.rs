//! The **direct stream** (Spark's `kafka-0-10` approach): the driver plans every batch as offset
//! ranges before anything is read, records the plan in the checkpoint, and tasks read exactly
//! those ranges with cached consumers. A re-run batch reads the identical ranges, which is what
//! makes exactly-once outputs possible.
//!
//! - [`offset_range`] — [`OffsetRange`], [`TopicPartition`], [`HasOffsetRanges`]: the unit of planning.
//! - [`params`], [`strategy`], [`config`], [`per_partition`], [`stream_keys`] — what the user
//!   configures: Kafka's settings, which partitions and where to start, rates and timeouts.
//! - [`group`] — the group-managed stream: this instance's membership in the job's consumer
//!   group and the partitions it owns; [`rebalance_report`] — what it tells the UI and metrics
//!   about them.
//! - [`driver`] and [`retry`] — the driver's metadata and offset queries, and how long they wait
//!   for a broker.
//! - [`clamp`] and [`planner`] — Spark's rate clamp and the per-batch [`DirectPlan`].
//! - [`consumer_cache`], [`reader`] and [`range_stream`] — reading a range with an exclusive
//!   cached consumer, collected or streamed record by record.
//! - [`rdd`] — batch reads of explicit ranges ([`KafkaUtils::create_rdd`](crate::KafkaUtils::create_rdd)).
//! - [`stream`] — the stream as an input of the engine, and [`DirectBatchInfo`], the typed view
//!   of a batch's ranges for listeners and UIs.
//! - [`commit`] — `commit_async` of finished ranges to the consumer group.

pub mod clamp;
pub mod commit;
pub mod config;
pub mod consumer_cache;
pub mod driver;
pub mod group;
pub mod offset_range;
pub mod params;
pub mod per_partition;
pub mod planner;
pub mod range_stream;
pub mod rdd;
pub mod reader;
pub mod rebalance_report;
pub mod retry;
pub mod strategy;
pub mod stream;
pub mod stream_keys;

pub use commit::{CanCommitOffsets, CommitCallback, CommitResult, OffsetCommitter};
pub use config::DirectStreamConfig;
pub use consumer_cache::{CacheKey, ConsumerCache, ConsumerLease};
pub use driver::{DriverClient, Watermarks};
pub use group::{GroupMember, OwnedPartitions, Ownership, RebalanceCounts, RebalanceListener};
pub use offset_range::{HasOffsetRanges, OffsetRange, TopicPartition};
pub use params::{AutoOffsetReset, KafkaParams};
pub use per_partition::PerPartitionConfig;
pub use planner::{DirectPlan, LostOffsets, OffsetPlanner};
pub use range_stream::RangeRecords;
pub use rdd::KafkaRdd;
pub use reader::{KafkaRangeReader, RangeRead};
pub use rebalance_report::{RebalanceEvent, RebalanceObserver};
pub use retry::RetryPolicy;
pub use strategy::{ConsumerStrategy, Subscription};
pub use stream::{DirectBatchInfo, DirectKafkaInputStream, DirectKafkaStream, DirectPosition};

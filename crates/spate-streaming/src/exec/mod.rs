//! Execution of one batch: the worker pool, partitioned data, and shuffles.
//!
//! A batch's data is a [`Batch`]: a set of partitions computed lazily. Narrow operations (map,
//! filter, flat_map, …) compose iterator adapters per partition, so a chain of them runs as one
//! fused pass over each partition on one worker; key operations end a stage with a hash shuffle
//! (map-side combined) into N partitions. Tasks run on a bounded worker pool (`pool`).

pub mod batch;
pub mod partition;
pub(crate) mod pool;
pub mod shuffle;
pub(crate) mod task_failure;

pub use batch::Batch;
pub use partition::{PartitionIter, Partitions, VecPartitions};
pub use task_failure::fail_task;

/// Element types that can flow through a stream: cloned when a batch is read twice (windows,
/// two outputs on one stream), moved between worker threads.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// Key types of key-value streams: hashed to pick a shuffle partition.
pub trait Key: Data + std::hash::Hash + Eq {}
impl<T: Data + std::hash::Hash + Eq> Key for T {}

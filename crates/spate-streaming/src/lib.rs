//! spate-streaming: a typed micro-batch engine in the shape of Spark Streaming.
//!
//! A job is a lazy graph of `DStream`s evaluated once per batch interval; each batch is planned,
//! recorded in the checkpoint, run in parallel on a bounded worker pool, and committed when every
//! output has succeeded. This crate knows nothing about Kafka: inputs plug in through the
//! input-stream and receiver interfaces.
//!
//! Map of the crate: [`StreamingContext`] (entry point, lifecycle) · [`Config`] (keys, defaults,
//! TOML, environment) · [`DStream`] and its operators (`dstream`, `window`, `state`, `output`) ·
//! [`Batch`] (one batch's partitioned data; `exec`) · `scheduler` (job generator and runner) ·
//! [`input`] (the plan → compute input interface; queue, socket, text-file and receiver inputs) ·
//! [`receiver`], [`wal`] and [`rate`] (receivers, write-ahead logs, rate control) · `recovery`
//! and [`checkpoint`] (fault tolerance) · [`listener`] and [`metrics`] (observability).

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod checkpoint;
pub mod config;
pub mod context;
pub mod dstream;
pub mod error;
pub mod exec;
mod graph;
pub mod input;
pub mod listener;
pub mod metrics;
pub mod output;
pub mod rate;
pub mod receiver;
mod recovery;
mod scheduler;
pub mod state;
pub mod time;
pub mod wal;
pub mod window;

pub use config::{Config, StreamingConfig};
pub use context::{ContextState, StreamingContext};
pub use dstream::DStream;
pub use error::{Result, StreamingError};
pub use exec::{fail_task, Batch, Data, Key, PartitionIter, Partitions, VecPartitions};
pub use input::ownership::{
    InputOwnershipInfo, InputOwnershipReporter, InputPartition, RebalanceInfo, RebalanceKind,
    RebalanceTotals,
};
pub use input::{InputContext, InputErrorReporter, InputStream, InputTasks, RecordCount};
pub use listener::{
    BatchInfo, InputErrorInfo, InputInfo, OutputOperationInfo, ReceiverInfo, StateRestoreInfo,
    StreamingListener,
};
pub use metrics::{InputOwnership, StreamingMetrics};
pub use state::{
    ChangelogEntry, MapWithStateDStream, State, StateChangelog, StateChanges, StateSpec, TaskStates,
};
pub use time::Time;

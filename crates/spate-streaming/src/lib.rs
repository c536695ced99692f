//! spate-streaming: a typed micro-batch engine in the shape of Spark Streaming.
//!
//! A job is a lazy graph of `DStream`s evaluated once per batch interval; each batch is planned,
//! recorded in the checkpoint, run in parallel on a bounded worker pool, and committed when every
//! output has succeeded. This crate knows nothing about Kafka: inputs plug in through the
//! input-stream and receiver interfaces.

pub mod checkpoint;
pub mod error;
pub mod rate;
pub mod receiver;
pub mod wal;

pub use error::{Result, StreamingError};

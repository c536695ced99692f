//! spate-broker: an embedded, Kafka-compatible broker.
//!
//! It speaks the Kafka wire protocol so that real clients (librdkafka, the Java client, and
//! independent implementations) can produce to and fetch from it over a socket, and keeps each
//! partition in a segmented on-disk log. The streaming engine never depends on this crate; it
//! exists so that a whole pipeline, and every test, runs on one machine with no JVM.

pub mod error;
pub mod group;
pub mod record_batch;
pub mod storage;

pub use error::{BrokerError, Result};
pub use storage::{LogConfig, LogStorage, PartitionLog, TopicPartition};

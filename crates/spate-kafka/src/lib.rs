//! Kafka integration for spate on rdkafka (librdkafka).
//!
//! # Layout
//!
//! - [`receiver`]: the receiver-based stream (Spark's first approach, `KafkaUtils.createStream`):
//!   consumer-group receivers whose records are cut into blocks, with a reliable mode backed by
//!   the receiver write-ahead log.

pub mod receiver;

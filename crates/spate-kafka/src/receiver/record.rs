//! [`ReceivedRecord`]: what a Kafka receiver stores — one consumed record with the coordinates it
//! came from. It is owned and serde-serializable because blocks of records are written to the
//! receiver write-ahead log and read back after a restart (Spark's receiver stored `(key, value)`
//! pairs; we keep topic, partition and offset too, so outputs can be made idempotent by
//! `(topic, partition, offset)` as DESIGN §3.6 asks).

use rdkafka::message::{BorrowedMessage, Message};
use serde::{Deserialize, Serialize};

/// One record received from Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReceivedRecord {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// Create or log-append time in ms since the epoch, when the broker sent one.
    pub timestamp_ms: Option<i64>,
    /// Key bytes (`None` for a null key).
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` for a null value, e.g. a tombstone).
    pub value: Option<Vec<u8>>,
}

impl ReceivedRecord {
    /// Copies a consumed message out of librdkafka's buffer.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Self {
        ReceivedRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
        }
    }

    /// The key as UTF-8 text (`None` when null or not UTF-8), like Spark's `StringDecoder`.
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8 text (`None` when null or not UTF-8).
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_deref().and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The record's topic-partition.
    pub fn topic_partition(&self) -> (String, i32) {
        (self.topic.clone(), self.partition)
    }
}

//! The broker's one error type. Variants are named after what failed, so that a handler can map
//! each to the Kafka error code a client expects (see `kafka_error_code`).

use std::path::PathBuf;

/// Result alias used across the broker.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// Everything that can fail inside the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A record batch did not parse (too short, wrong magic, length mismatch).
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),

    /// A record batch's CRC-32C does not match its contents.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },

    /// A fetch or lookup asked for an offset outside `[log_start_offset, log_end_offset]`.
    #[error(
        "offset {requested} is out of range for {partition}: \
         the log holds [{log_start_offset}, {log_end_offset})"
    )]
    OffsetOutOfRange {
        partition: TopicPartitionName,
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },

    /// A batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes = {max}")]
    RecordBatchTooLarge { size: usize, max: usize },

    /// Reading or writing a file of the log failed.
    #[error("log I/O on {path}: {source}")]
    LogIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A partition that the caller named does not exist in storage.
    #[error("unknown topic partition {0}")]
    UnknownTopicPartition(TopicPartitionName),

    /// A segment file of the log holds bytes that are not a valid record batch where one must
    /// start (found while reading or recovering a partition).
    #[error("corrupt log segment {path} at byte {position}: {reason}")]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },

    /// A topic name cannot be used as a partition directory name (Kafka allows only
    /// `[a-zA-Z0-9._-]`, at most 249 characters, and neither `.` nor `..`).
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopicName { topic: String, reason: String },

    /// A topic or broker configuration value is invalid.
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
}

/// `topic-partition`, as Kafka prints it in messages.
pub type TopicPartitionName = String;

impl BrokerError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BrokerError::LogIo {
            path: path.into(),
            source,
        }
    }
}

//! [`KafkaReceiverError`]: what can go wrong in the receiver-based stream, one variant per thing
//! that failed. It lives with the receiver (rather than in the crate-wide error enum) so the
//! receiver can be developed and merged on its own; it converts into
//! [`StreamingError`] for the engine.

use spate_streaming::StreamingError;

/// Result alias of the receiver module.
pub type Result<T, E = KafkaReceiverError> = std::result::Result<T, E>;

/// An error of the Kafka receiver stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaReceiverError {
    /// A Kafka parameter or receiver setting is missing or has a value we cannot use.
    #[error("invalid Kafka receiver setting {key}={value:?}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },

    /// Creating the consumer (from the Kafka parameters) failed.
    #[error("creating the consumer of group {group} failed: {source}")]
    CreateConsumer {
        group: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// Subscribing to the topics failed.
    #[error("subscribing group {group} to {topics:?} failed: {source}")]
    Subscribe {
        group: String,
        topics: Vec<String>,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// Polling the consumer returned an error that restarting the receiver may fix.
    #[error("consumer of group {group} failed while polling: {source}")]
    Poll {
        group: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// Committing offsets of stored blocks to the consumer group failed.
    #[error("committing offsets of group {group} failed: {source}")]
    Commit {
        group: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// The reliable receiver needs a checkpoint directory for its write-ahead log.
    #[error(
        "the receiver write-ahead log is enabled but there is no checkpoint directory (call \
         StreamingContext::checkpoint, or turn {key} off)"
    )]
    NoCheckpointDir { key: String },

    /// The engine's receiver machinery (block generator, write-ahead log, tracker) failed.
    /// Boxed, like the rdkafka sources, to keep `Result`s small on the receive path.
    #[error(transparent)]
    Streaming(Box<StreamingError>),
}

impl From<StreamingError> for KafkaReceiverError {
    fn from(e: StreamingError) -> Self {
        KafkaReceiverError::Streaming(Box::new(e))
    }
}

impl KafkaReceiverError {
    pub(crate) fn config(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        KafkaReceiverError::InvalidConfig {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

impl From<KafkaReceiverError> for StreamingError {
    fn from(e: KafkaReceiverError) -> Self {
        match e {
            KafkaReceiverError::Streaming(inner) => *inner,
            other => StreamingError::input("kafka_receiver", other.to_string()),
        }
    }
}

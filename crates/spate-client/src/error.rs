//! The one error type of the client plumbing: what failed while creating a client, reaching the
//! cluster, reading a topic's metadata or starting the embedded broker. Binaries wrap it in
//! `anyhow` for display; libraries above (YSB, the benchmarks) wrap it in their own enums.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What failed in the client plumbing.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// librdkafka rejected a client setting; `origin` says where it came from (`-X setting`,
    /// `--command-config setting` or a built-in client setting).
    #[error("invalid {origin} {key}={value}: {message}")]
    InvalidSetting {
        /// Where the setting came from, as the user would name it.
        origin: &'static str,
        /// The librdkafka property name.
        key: String,
        /// The rejected value.
        value: String,
        /// librdkafka's explanation.
        message: String,
    },
    /// librdkafka could not create the client for a reason other than a bad setting.
    #[error("could not create Kafka client: {0}")]
    CreateClient(#[source] KafkaError),
    /// The bootstrap broker did not answer a metadata request within the request timeout.
    #[error("could not reach broker at {bootstrap} within {timeout_secs}s ({cause})")]
    Unreachable {
        /// The `bootstrap.servers` that were tried.
        bootstrap: String,
        /// The request timeout, formatted in seconds.
        timeout_secs: String,
        /// librdkafka's error for the failed request.
        #[source]
        cause: Box<KafkaError>,
    },
    /// The topic is not in the cluster's metadata.
    #[error("topic {topic:?} does not exist (create it with `spate topics create {topic}`)")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },
    /// The metadata response carried an error code for the topic.
    #[error("metadata for topic {topic:?} has an error: {code}")]
    TopicMetadata {
        /// The topic asked for.
        topic: String,
        /// The error code the broker returned for it.
        code: RDKafkaErrorCode,
    },
    /// The topic is in the metadata but has no partitions.
    #[error("topic {topic:?} does not exist (no partitions in metadata)")]
    NoPartitions {
        /// The topic asked for.
        topic: String,
    },
    /// The topic has more partitions than a Kafka partition id (`i32`) can number.
    #[error("topic {topic:?} has more partitions than fit in an i32")]
    PartitionCountOverflow {
        /// The topic asked for.
        topic: String,
    },
    /// The embedded broker rejected a setting (by Kafka's broker config name).
    #[cfg(feature = "embedded")]
    #[error("broker setting {key}={value}: {source}")]
    BrokerSetting {
        /// The broker config name.
        key: String,
        /// The rejected value.
        value: String,
        /// Why the broker rejected it.
        #[source]
        source: Box<spate_broker::BrokerError>,
    },
    /// The temp dir for the embedded broker's log segments could not be created.
    #[cfg(feature = "embedded")]
    #[error("could not create a temp dir for the broker's data: {0}")]
    BrokerDataDir(#[source] std::io::Error),
    /// The embedded broker did not start (e.g. its listener could not bind).
    #[cfg(feature = "embedded")]
    #[error("could not start the embedded broker: {0}")]
    StartBroker(#[source] Box<spate_broker::BrokerError>),
}

/// Results of the client plumbing.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

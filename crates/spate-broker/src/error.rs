//! The broker's one error type. Variants are named after what failed, so that a handler can map
//! each to the Kafka error code a client expects (see `kafka_error_code`).

use std::path::PathBuf;

use kafka_protocol::ResponseError;

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
    CrcMismatch {
        /// The CRC the batch carries.
        stored: u32,
        /// The CRC of its bytes.
        computed: u32,
    },

    /// A fetch or lookup asked for an offset outside `[log_start_offset, log_end_offset]`.
    #[error(
        "offset {requested} is out of range for {partition}: \
         the log holds [{log_start_offset}, {log_end_offset})"
    )]
    OffsetOutOfRange {
        /// The partition read.
        partition: TopicPartitionName,
        /// The offset asked for.
        requested: i64,
        /// The partition's log start offset.
        log_start_offset: i64,
        /// The partition's log end offset.
        log_end_offset: i64,
    },

    /// A batch names a compression codec Kafka does not define (ids 5–7), or zstd in a Produce
    /// request older than v7 (clients that old cannot read zstd back).
    #[error("unsupported compression: {0}")]
    UnsupportedCompression(String),

    /// A compressed batch expands past the broker's bound (a multiple of `max.message.bytes`),
    /// as a decompression bomb would.
    #[error(
        "compressed records expand past {limit} bytes (16 x max.message.bytes, at least 16 MiB)"
    )]
    UncompressedTooLarge {
        /// The most bytes the records may expand to.
        limit: u64,
    },

    /// A record timestamp the broker must not accept (LogAppendTime set by a producer, or a
    /// timestamp delta that overflows).
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),

    /// A batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes = {max}")]
    RecordBatchTooLarge {
        /// The batch's size in bytes.
        size: usize,
        /// The topic's `max.message.bytes`.
        max: usize,
    },

    /// A batch is larger than the topic's `segment.bytes`, so no segment could hold it.
    #[error("record batch of {size} bytes exceeds segment.bytes = {segment_bytes}")]
    RecordListTooLarge {
        /// The batch's size in bytes.
        size: usize,
        /// The topic's `segment.bytes`.
        segment_bytes: u64,
    },

    /// A produce request breaks a rule about its records (e.g. not exactly one batch per
    /// partition, as Kafka requires from Produce v3 on).
    #[error("invalid record: {0}")]
    InvalidRecord(String),

    /// Records of a batch were rejected one by one (Produce v8+ reports their indexes).
    #[error("{reason} (records at batch index {record_indexes:?})")]
    InvalidRecords {
        /// Why the records were rejected.
        reason: String,
        /// The indexes of the rejected records within their batch.
        record_indexes: Vec<i32>,
    },

    /// `acks=all` with `min.insync.replicas` above the single replica this broker has.
    #[error("{partition} has 1 in-sync replica, fewer than min.insync.replicas = {required}")]
    NotEnoughReplicas {
        /// The partition produced to.
        partition: String,
        /// The topic's `min.insync.replicas`.
        required: i32,
    },

    /// Reading or writing a file of the log failed.
    #[error("log I/O on {path}: {source}")]
    LogIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
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
        /// The segment file.
        path: PathBuf,
        /// Where in the file the bad bytes start.
        position: u64,
        /// What is wrong with them.
        reason: String,
    },

    /// A topic name cannot be used as a partition directory name (Kafka allows only
    /// `[a-zA-Z0-9._-]`, at most 249 characters, and neither `.` nor `..`).
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopicName {
        /// The topic name.
        topic: String,
        /// The rule it breaks.
        reason: String,
    },

    /// A transactional batch whose producer has no ongoing transaction holding the partition
    /// at that epoch (Kafka answers INVALID_TXN_STATE).
    #[error("invalid transaction state for producer {producer_id} on {partition}: {reason}")]
    InvalidTxnState {
        /// The partition the batch was for.
        partition: String,
        /// The producer that sent it.
        producer_id: i64,
        /// Why the transaction does not hold the partition.
        reason: String,
    },

    /// A topic or broker configuration value is invalid.
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        /// The config's name.
        key: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },

    /// A dynamic config change Kafka refuses as a bad request: a key that cannot change at
    /// runtime, a value of the wrong type, a broker id that is not this broker's.
    #[error("{0}")]
    ConfigChangeRejected(String),

    /// A topic name breaks Kafka's rules (legal characters, length, `.`/`..`).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic {
        /// The topic name.
        name: String,
        /// The rule it breaks.
        reason: String,
    },

    /// CreateTopics for a name that is already taken.
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),

    /// A request named a topic (or topic id) the broker does not have.
    #[error("unknown topic {0}")]
    UnknownTopic(String),

    /// A partition count that is not allowed (less than 1, or a decrease).
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),

    /// A replication factor other than 1 (this broker is a single node).
    #[error("invalid replication factor {0}: this broker is a single node, so only 1 (or -1 for the default) is possible")]
    InvalidReplicationFactor(i16),

    /// An idempotent producer's batch leaves a gap in its sequence numbers.
    #[error("out of order sequence for producer {producer_id} on {partition}: expected {expected}, received {received}")]
    OutOfOrderSequence {
        /// The partition.
        partition: TopicPartitionName,
        /// The idempotent producer.
        producer_id: i64,
        /// The sequence number the partition expected next.
        expected: i32,
        /// The sequence number the batch starts with.
        received: i32,
    },

    /// A batch from an older epoch of a producer id than the partition has seen (a zombie).
    #[error(
        "producer {producer_id} epoch {epoch} on {partition} is fenced by epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// The partition.
        partition: TopicPartitionName,
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newest epoch the partition has seen for the producer.
        current_epoch: i16,
    },

    /// A transaction marker from a coordinator epoch older than the last marker the partition
    /// took for that producer (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error(
        "marker for producer {producer_id} on {partition} from coordinator epoch \
         {coordinator_epoch} is fenced by coordinator epoch {current}"
    )]
    TransactionCoordinatorFenced {
        /// The partition.
        partition: TopicPartitionName,
        /// The transactional producer.
        producer_id: i64,
        /// The marker's coordinator epoch.
        coordinator_epoch: i32,
        /// The coordinator epoch of the partition's last marker for the producer.
        current: i32,
    },

    /// A producer id the partition has no state for sent a batch that does not start its
    /// sequence at 0.
    #[error("unknown producer {producer_id} on {partition} (sequence {sequence} without state)")]
    UnknownProducerId {
        /// The partition.
        partition: TopicPartitionName,
        /// The producer id.
        producer_id: i64,
        /// The batch's first sequence number.
        sequence: i32,
    },

    /// Reading or writing the broker's metadata (topics, ids) failed.
    #[error("broker metadata {path}: {reason}")]
    MetadataStore {
        /// The metadata file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// A request frame is larger than `socket.request.max.bytes`.
    #[error("request frame of {size} bytes exceeds socket.request.max.bytes = {max}")]
    FrameTooLarge {
        /// The size the frame declares.
        size: usize,
        /// The broker's `socket.request.max.bytes`.
        max: usize,
    },

    /// A connection's bytes are not a valid request frame (negative length, cut short, header
    /// too short to hold an API key, version and correlation id).
    #[error("malformed request frame: {0}")]
    MalformedFrame(String),

    /// Reading from or writing to a client connection failed.
    #[error("connection I/O: {0}")]
    ConnectionIo(#[source] std::io::Error),

    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A client on a SASL listener sent a request other than ApiVersions, SaslHandshake or
    /// SaslAuthenticate before authenticating; Kafka closes such connections.
    #[error("{api} request before SASL authentication completed")]
    SaslRequired {
        /// The API the client called.
        api: String,
    },

    /// A SASL exchange broke the protocol's order (a raw token where none is expected, a
    /// second handshake); the connection is closed.
    #[error("SASL exchange out of order: {0}")]
    IllegalSaslState(String),

    /// The broker's runtime or a background thread failed to start or stop.
    #[error("broker runtime: {0}")]
    Runtime(String),

    /// A response could not be encoded at the version the client asked for.
    #[error("cannot encode {api} response v{version}: {reason}")]
    EncodeResponse {
        /// The API of the response.
        api: String,
        /// The version asked for.
        version: i16,
        /// Why it did not encode.
        reason: String,
    },

    /// A request body did not decode at the version its header names (a malformed request).
    #[error("cannot decode {api} request v{version}: {reason}")]
    DecodeRequest {
        /// The API of the request.
        api: String,
        /// The version in its header.
        version: i16,
        /// Why it did not decode.
        reason: String,
    },
}

/// `topic-partition`, as Kafka prints it in messages.
pub type TopicPartitionName = String;

impl BrokerError {
    /// The Kafka error code a client should see for this failure.
    pub fn error_code(&self) -> ResponseError {
        match self {
            BrokerError::CorruptBatch(_) | BrokerError::CrcMismatch { .. } => {
                ResponseError::CorruptMessage
            }
            BrokerError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            BrokerError::RecordBatchTooLarge { .. } | BrokerError::UncompressedTooLarge { .. } => {
                ResponseError::MessageTooLarge
            }
            BrokerError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
            BrokerError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
            BrokerError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge,
            BrokerError::InvalidRecord(_) | BrokerError::InvalidRecords { .. } => {
                ResponseError::InvalidRecord
            }
            BrokerError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            BrokerError::LogIo { .. }
            | BrokerError::MetadataStore { .. }
            | BrokerError::CorruptSegment { .. } => ResponseError::KafkaStorageError,
            BrokerError::UnknownTopicPartition(_) | BrokerError::UnknownTopic(_) => {
                ResponseError::UnknownTopicOrPartition
            }
            BrokerError::InvalidConfig { .. } => ResponseError::InvalidConfig,
            BrokerError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
            BrokerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            BrokerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            BrokerError::TransactionCoordinatorFenced { .. } => {
                ResponseError::TransactionCoordinatorFenced
            }
            BrokerError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
            BrokerError::InvalidTopic { .. } | BrokerError::InvalidTopicName { .. } => {
                ResponseError::InvalidTopicException
            }
            BrokerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            BrokerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            BrokerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            BrokerError::Listen { .. }
            | BrokerError::Runtime(_)
            | BrokerError::EncodeResponse { .. } => ResponseError::UnknownServerError,
            BrokerError::DecodeRequest { .. }
            | BrokerError::ConfigChangeRejected(_)
            | BrokerError::FrameTooLarge { .. }
            | BrokerError::MalformedFrame(_) => ResponseError::InvalidRequest,
            BrokerError::SaslRequired { .. } => ResponseError::SaslAuthenticationFailed,
            BrokerError::IllegalSaslState(_) => ResponseError::IllegalSaslState,
            BrokerError::ConnectionIo(_) => ResponseError::NetworkException,
        }
    }

    /// Kafka's numeric error code for this failure.
    pub fn code(&self) -> i16 {
        self.error_code().code()
    }

    /// Shorthand for an `InvalidConfig` error.
    pub fn invalid_config(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        BrokerError::InvalidConfig {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BrokerError::LogIo {
            path: path.into(),
            source,
        }
    }
}

//! [`SpateKafkaError`]: everything that can go wrong in the Kafka integration, one variant per
//! thing that failed, each with a message a user can act on (which partition, which offsets,
//! which setting) — of the direct stream, the receiver stream and the sinks alike. rdkafka's own
//! error is kept as the `source` where there is one.

use spate_streaming::StreamingError;

/// Result alias for this crate.
pub type Result<T, E = SpateKafkaError> = std::result::Result<T, E>;

/// An error of the Kafka integration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpateKafkaError {
    /// A Kafka parameter or stream setting is missing or has a value we cannot use.
    #[error("invalid Kafka setting {key}={value:?}: {reason}")]
    InvalidConfig {
        /// The parameter or setting.
        key: String,
        /// The value given (empty when it was missing).
        value: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The planned offsets are no longer (or not yet) in the partition's log, e.g. retention
    /// deleted them. With `fail_on_data_loss(false)` the read skips to the earliest offset instead.
    #[error(
        "offsets out of range for {topic}-{partition}: the batch needs [{requested_from}, \
         {requested_until}) but the broker has [{available_start}, {available_end}); the records \
         were probably deleted by retention (set fail_on_data_loss(false) to skip to the earliest \
         available offset and report the loss instead)"
    )]
    OffsetsOutOfRange {
        /// The topic of the partition.
        topic: String,
        /// The partition read.
        partition: i32,
        /// First offset of the batch's range.
        requested_from: i64,
        /// End (exclusive) of the batch's range.
        requested_until: i64,
        /// The partition's earliest offset when read.
        available_start: i64,
        /// The partition's latest offset when read.
        available_end: i64,
    },

    /// Reading a range did not finish within the poll timeout.
    #[error(
        "timed out after {waited_ms} ms reading {topic}-{partition} at offset {offset} (range ends \
         at {until}); the broker is slow or unreachable (raise DirectStreamConfig::poll_timeout)"
    )]
    PollTimeout {
        /// The topic of the partition.
        topic: String,
        /// The partition being read.
        partition: i32,
        /// The offset the task was waiting for.
        offset: i64,
        /// End (exclusive) of the range being read.
        until: i64,
        /// How long it waited.
        waited_ms: u64,
    },

    /// The broker stayed unreachable (or kept failing) through every retry.
    #[error("{operation} failed after {attempts} attempts over {waited_ms} ms: {source}")]
    BrokerUnavailable {
        /// What was being done, e.g. "fetching metadata".
        operation: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent over all attempts.
        waited_ms: u64,
        /// The last attempt's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// A Kafka client call failed with an error that retrying will not fix.
    #[error("{operation} failed: {source}")]
    Client {
        /// What was being done.
        operation: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// A topic or partition the strategy names does not exist on the broker.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// The topic named.
        topic: String,
        /// The partition named.
        partition: i32,
    },

    /// A `SubscribePattern` regex does not compile.
    #[error("invalid topic pattern {pattern:?}: {source}")]
    InvalidPattern {
        /// The pattern as given (before anchoring).
        pattern: String,
        /// Why the regex does not compile.
        #[source]
        source: regex::Error,
    },

    /// Committing offsets to the consumer group failed.
    #[error("committing offsets of group {group} failed: {source}")]
    CommitFailed {
        /// The consumer group.
        group: String,
        /// The commit's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// A batch plan recorded in the checkpoint could not be decoded.
    #[error("invalid direct stream plan: {0}")]
    InvalidPlan(String),

    /// The SQLite database of a sink (offset store or idempotent table) failed.
    #[cfg(feature = "sqlite")]
    #[error("sink database {path}: {operation} failed: {source}")]
    SinkDatabase {
        /// The database file.
        path: String,
        /// What was being done, e.g. "opening the database".
        operation: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The PostgreSQL database of a sink ([`crate::sink::PostgresOffsetStore`]) failed.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL sink of job {job}: {operation} failed: {source}")]
    SinkPostgres {
        /// The job whose store failed.
        job: String,
        /// What was being done, e.g. "connecting".
        operation: String,
        /// The client's error (with the server's SQLSTATE and message when it answered).
        #[source]
        source: postgres::Error,
    },

    /// A batch of a partition whose writer epoch in the store is newer than the one this writer
    /// holds: another instance claimed the partition since (this one is a zombie). Nothing of
    /// the batch was written.
    #[error(
        "writer of job {job} fenced on {topic}-{partition}: it holds writer epoch {held} but the \
         store is at epoch {stored} (another instance claimed the partition); the batch was \
         rolled back"
    )]
    WriterFenced {
        /// The job whose offsets are stored.
        job: String,
        /// The topic of the partition.
        topic: String,
        /// The partition claimed by another writer.
        partition: i32,
        /// The epoch this writer holds.
        held: i64,
        /// The newer epoch in the store.
        stored: i64,
    },

    /// A batch's range does not start where the offsets stored with the outputs end: offsets
    /// between them would never be written (a gap) or would be written twice (an overlap).
    #[error(
        "offset range of {topic}-{partition} for job {job} starts at {actual} but the offsets \
         stored with the outputs end at {expected}: {what}; the stream was not started from \
         the stored offsets (use the offset store's assign_strategy: SqliteOffsetStore or \
         KafkaOffsetStore), or offsets were skipped (fail_on_data_loss(false))"
    )]
    StoredOffsetMismatch {
        /// The job whose offsets are stored.
        job: String,
        /// The topic of the partition.
        topic: String,
        /// The partition whose offsets disagree.
        partition: i32,
        /// The next offset stored in the sink.
        expected: i64,
        /// The first offset of the batch's range.
        actual: i64,
        /// "gap" (offsets would be skipped) or "overlap" (offsets would be written twice).
        what: &'static str,
    },

    /// The caller's writes inside a sink transaction failed; the transaction was rolled back.
    #[error("sink writes of job {job} failed (transaction rolled back): {source}")]
    SinkWriteFailed {
        /// The job whose batch failed.
        job: String,
        /// The caller's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Creating the Kafka producer of an output failed (bad settings).
    #[error("creating the Kafka producer of output {output} failed: {source}")]
    CreateProducer {
        /// The output's name.
        output: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// A record of a Kafka output was not acknowledged (after the producer's own retries).
    #[error("producing to topic {topic} failed: {source}")]
    ProduceFailed {
        /// The output topic.
        topic: String,
        /// The delivery report's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// A step of a Kafka output's transaction failed; a fenced producer (another instance
    /// with the same `transactional.id` started) reports it here too.
    #[error("{operation} of transactional.id {transactional_id} failed: {source}")]
    Transaction {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// The step, e.g. "begin_transaction".
        operation: &'static str,
        /// Boxed to keep the error (and every `Result` of this crate) small.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// A batch of a group-managed direct stream is about to commit, but this instance no longer
    /// owns (continuously since the batch was planned) some of its partitions: the group moved
    /// them to another member, which reads them from the committed offsets. The batch is
    /// refused so that a stale instance (a zombie) cannot write them a second time.
    #[error(
        "batch {batch_time_ms} of group {group} covers {partitions}, which this instance no \
         longer owns (the group reassigned them since the batch was planned); the batch is \
         fenced off"
    )]
    PartitionsNotOwned {
        /// The consumer group.
        group: String,
        /// The batch time (ms).
        batch_time_ms: u64,
        /// The partitions lost, as `topic-partition` separated by commas.
        partitions: String,
    },

    /// A sink table name that is not a plain SQL identifier.
    #[error("invalid sink table name {0:?}: use letters, digits and '_' only, not starting with a digit")]
    InvalidTableName(String),

    // ---- state changelogs ----
    /// A state changelog topic exists with another partition count than its operator's state
    /// partitions: state partition p is changelog partition p, so they must be equal.
    #[error(
        "changelog topic {topic} of state operator {operator} has {topic_partitions} \
         partitions but the operator has {state_partitions} state partitions; they must be \
         equal (delete the topic to start the state afresh, or run the operator with \
         {topic_partitions} partitions)"
    )]
    ChangelogPartitions {
        /// The changelog topic.
        topic: String,
        /// The state operator (its `uid()`).
        operator: String,
        /// The topic's partition count.
        topic_partitions: i32,
        /// The operator's state partitions.
        state_partitions: usize,
    },

    /// A repartition topic exists with another partition count than the repartition needs.
    #[error(
        "repartition topic {topic} has {topic_partitions} partitions but the repartition needs \
         {expected} (the source's partition count or RepartitionConfig::number_of_partitions): \
         the keys already written are partitioned for {topic_partitions} partitions (delete \
         the topic once the job has consumed it, or set number_of_partitions to \
         {topic_partitions})"
    )]
    RepartitionPartitions {
        /// The repartition topic.
        topic: String,
        /// The topic's partition count.
        topic_partitions: i32,
        /// The partition count the repartition needs.
        expected: usize,
    },

    /// Creating or inspecting a topic through the admin API failed.
    #[error("{operation} of topic {topic} failed: {reason}")]
    TopicAdmin {
        /// The topic.
        topic: String,
        /// What was being done, e.g. "creating".
        operation: &'static str,
        /// The broker's or client's error.
        reason: String,
    },

    /// Restoring a state partition from its changelog made no progress for too long.
    #[error(
        "restoring {topic}-{partition} stalled at offset {offset} (restoring up to {end}) for \
         {waited_ms} ms: the broker is unreachable or a transaction on the topic stays open"
    )]
    RestoreStalled {
        /// The changelog topic.
        topic: String,
        /// The changelog partition.
        partition: i32,
        /// The next offset the restore waited for.
        offset: i64,
        /// The end offset the restore reads up to.
        end: i64,
        /// How long it waited without a record.
        waited_ms: u64,
    },

    // ---- the receiver stream ----
    /// Creating a receiver's consumer (from the Kafka parameters) failed.
    #[error("creating the consumer of group {group} failed: {source}")]
    CreateConsumer {
        /// The receiver's consumer group.
        group: String,
        /// The client's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// Subscribing a receiver's consumer to its topics failed.
    #[error("subscribing group {group} to {topics:?} failed: {source}")]
    Subscribe {
        /// The receiver's consumer group.
        group: String,
        /// The topics it subscribed to.
        topics: Vec<String>,
        /// The client's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// A receiver's consumer returned an error while polling that restarting the receiver may fix.
    #[error("consumer of group {group} failed while polling: {source}")]
    Poll {
        /// The receiver's consumer group.
        group: String,
        /// The client's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },

    /// The reliable receiver needs a checkpoint directory for its write-ahead log.
    #[error(
        "the receiver write-ahead log is enabled but there is no checkpoint directory (call \
         StreamingContext::checkpoint, or turn {key} off)"
    )]
    NoCheckpointDir {
        /// The parameter that turns the log on.
        key: String,
    },

    /// The engine's receiver machinery (block generator, write-ahead log, tracker) failed.
    /// Boxed, like the rdkafka sources, to keep `Result`s small on the receive path.
    #[error(transparent)]
    Streaming(Box<StreamingError>),
}

impl From<StreamingError> for SpateKafkaError {
    fn from(e: StreamingError) -> Self {
        SpateKafkaError::Streaming(Box::new(e))
    }
}

impl SpateKafkaError {
    pub(crate) fn config(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        SpateKafkaError::InvalidConfig {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn client(operation: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        SpateKafkaError::Client {
            operation: operation.into(),
            source,
        }
    }
}

impl SpateKafkaError {
    /// Whether the error belongs to the receiver stream (named `kafka_receiver` to the engine)
    /// rather than to the direct stream (`kafka_direct`).
    fn is_receiver(&self) -> bool {
        matches!(
            self,
            SpateKafkaError::CreateConsumer { .. }
                | SpateKafkaError::Subscribe { .. }
                | SpateKafkaError::Poll { .. }
                | SpateKafkaError::NoCheckpointDir { .. }
        )
    }
}

impl From<SpateKafkaError> for StreamingError {
    fn from(e: SpateKafkaError) -> Self {
        match e {
            SpateKafkaError::Streaming(inner) => *inner,
            e if e.is_receiver() => StreamingError::input("kafka_receiver", e.to_string()),
            e => StreamingError::input("kafka_direct", e.to_string()),
        }
    }
}

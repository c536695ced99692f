//! What can go wrong in YSB: the crate's one error type, for records that are not the events or
//! window counts the benchmark writes, and for the generator, the job's output and the checker
//! failing to talk to Kafka.

use rdkafka::error::KafkaError;
use spate_client::ClientError;

/// What failed in YSB.
#[derive(Debug, thiserror::Error)]
pub enum YsbError {
    /// A record that is not a YSB event in the expected encoding.
    #[error("malformed ad event: {0}")]
    Malformed(String),
    /// An output record that is not a window count.
    #[error("malformed window count: {0}")]
    MalformedCount(String),
    /// Creating a client or reading the cluster's metadata failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The generator was asked for a rate that is not a positive number of events per second.
    #[error("the offered rate must be positive, got {0}")]
    BadRate(f64),
    /// The producer refused an event (not a full queue: that is waited out).
    #[error("could not send event {index}: {source}")]
    SendEvent {
        /// The event's position in the generated sequence.
        index: u64,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The generator's producer did not get every event acknowledged within the flush timeout.
    #[error("flush did not complete: {0}")]
    Flush(#[source] KafkaError),
    /// Some events were not delivered (the broker rejected them or they timed out).
    #[error("{delivered} of {sent} events delivered, {failed} failed: {errors}")]
    Undelivered {
        /// Events acknowledged by the broker.
        delivered: u64,
        /// Events sent.
        sent: u64,
        /// Events whose delivery failed.
        failed: u64,
        /// The delivery errors seen, joined.
        errors: String,
    },
    /// The direct stream over the input topic could not be created.
    #[error("could not create the direct stream: {0}")]
    DirectStream(#[source] spate_kafka::SpateKafkaError),
    /// Computing a batch's window-count updates failed.
    #[error("computing a batch's window counts: {0}")]
    Batch(#[source] spate_streaming::StreamingError),
    /// A window count names a campaign index that the campaign map does not have.
    #[error("no campaign {0}")]
    UnknownCampaign(u32),
    /// The producer refused a window count for the output topic.
    #[error("could not write a window count: {0}")]
    WriteCount(#[source] KafkaError),
    /// The output topic did not acknowledge a batch's window counts in time.
    #[error("{pending} window counts not acknowledged within {timeout_secs} s")]
    CountsNotAcknowledged {
        /// Window counts still in flight.
        pending: i32,
        /// How long the job waited.
        timeout_secs: u64,
    },
    /// The output topic rejected some window counts.
    #[error("window counts failed to write: {0}")]
    CountsFailed(String),
    /// The checker could not read a partition's low and high watermarks.
    #[error("could not read the offsets of {topic}-{partition}: {source}")]
    Watermarks {
        /// The topic read.
        topic: String,
        /// The partition whose offsets were asked for.
        partition: i32,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The checker's consumer could not be assigned the topic's partitions.
    #[error("could not assign {topic}: {source}")]
    Assign {
        /// The topic read.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The checker read nothing for 30 s before reaching the end offsets it started with.
    #[error("reading {topic}: no progress for 30 s, partitions left: {partitions_left}")]
    ReadStalled {
        /// The topic read.
        topic: String,
        /// The partitions not read to their end, with their end offsets.
        partitions_left: String,
    },
}

/// Results of YSB's generator, job and checker.
pub(crate) type Result<T, E = YsbError> = std::result::Result<T, E>;

//! The one error type of the benchmarks: what failed while setting up a target, loading a topic,
//! running a job or writing the report. `spate bench` (a binary) shows it through `anyhow`.

use rdkafka::error::KafkaError;
use spate_client::ClientError;

/// What failed in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The benchmark's options do not describe a run (e.g. an empty list of sizes).
    #[error("{0}")]
    InvalidOptions(String),
    /// Creating a client or reading the cluster's metadata failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The Yahoo Streaming Benchmark's generator, job or checker failed.
    #[error(transparent)]
    Ysb(#[from] spate_ysb::YsbError),
    /// The streaming engine failed (context start, a batch, termination).
    #[error(transparent)]
    Streaming(#[from] spate_streaming::StreamingError),
    /// A Kafka stream or sink could not be defined.
    #[error(transparent)]
    Kafka(#[from] spate_kafka::SpateKafkaError),
    /// The embedded broker failed an operation the benchmark drives directly (a cleaner pass).
    #[error(transparent)]
    Broker(#[from] spate_broker::BrokerError),
    /// librdkafka failed a request; `what` names it (sending record 12, assigning a topic).
    #[error("{what}: {source}")]
    ClientRequest {
        /// The request that failed.
        what: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The broker did not answer a CreateTopics request, or answered with an error code.
    #[error("could not create topic {topic:?}: {reason}")]
    CreateTopic {
        /// The topic asked for.
        topic: String,
        /// The timeout or the error code.
        reason: String,
    },
    /// Some produced records were not delivered (rejected or timed out).
    #[error("{delivered} of {sent} records delivered, {failed} failed: {errors}")]
    Undelivered {
        /// Records acknowledged by the broker.
        delivered: u64,
        /// Records sent.
        sent: u64,
        /// Records whose delivery failed.
        failed: u64,
        /// The delivery errors seen, joined.
        errors: String,
    },
    /// A consumer stopped receiving records before reaching the end offsets it was given.
    #[error("only {records} records arrived from {topic}; none for {idle_secs}s")]
    DrainStalled {
        /// The topic drained.
        topic: String,
        /// Records received before it stalled.
        records: u64,
        /// How long nothing arrived.
        idle_secs: u64,
    },
    /// A job's streaming context stopped before the job had processed its input.
    #[error("{job}: the streaming context stopped early")]
    StoppedEarly {
        /// The job's name.
        job: String,
    },
    /// A job did not process its input within its time limit.
    #[error("{job}: only {done} of {expected} processed after {secs} s")]
    TimedOut {
        /// The job's name.
        job: String,
        /// Units (records, events) processed.
        done: u64,
        /// Units expected.
        expected: u64,
        /// The time limit.
        secs: u64,
    },
    /// A batch of the job under measurement failed.
    #[error("a batch failed: {0}")]
    BatchFailed(String),
    /// Something the run needs was not produced (the broker's state, a partition, a ceiling).
    #[error("{0} is missing")]
    Missing(String),
    /// The instances of `bench scale` did not do what was awaited (one exited, or time ran out).
    #[error("scale benchmark instances: {0}")]
    Instances(String),
    /// A worker thread of the benchmark panicked.
    #[error("the {0} thread panicked")]
    ThreadPanicked(&'static str),
    /// The YSB checker found counts that differ from the input.
    #[error("the YSB checker found wrong counts (see the log)")]
    WrongCounts,
    /// Reading or writing a local file or the terminal failed; `what` names the operation.
    #[error("{what}: {source}")]
    Io {
        /// The operation that failed.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON report could not be serialized.
    #[error("could not serialize the report: {0}")]
    Report(#[from] serde_json::Error),
    /// The many-partitions bench's own Fetch client got an answer it cannot use.
    #[error("the session fetcher's Fetch exchange: {0}")]
    FetchExchange(String),
    /// The YSB generator running as its own process (`spate ysb-generate`) failed.
    #[error("the YSB generator process: {0}")]
    GeneratorProcess(String),
    /// Drawing an SVG plot failed.
    #[error("plot: {0}")]
    Plot(String),
    /// A step of a run failed; `stage` says which (e.g. "producing 100-byte records").
    #[error("{stage}: {source}")]
    Stage {
        /// The step that failed.
        stage: String,
        /// What failed in it.
        #[source]
        source: Box<BenchError>,
    },
}

impl BenchError {
    /// Wraps `self` as the failure of `stage`.
    pub fn during(self, stage: impl Into<String>) -> BenchError {
        BenchError::Stage {
            stage: stage.into(),
            source: Box::new(self),
        }
    }

    /// An I/O failure of `what`, for `map_err`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }

    /// A librdkafka failure of `what`, for `map_err`.
    pub(crate) fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> BenchError {
        let what = what.into();
        move |source| BenchError::ClientRequest { what, source }
    }
}

/// Results of the benchmarks.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

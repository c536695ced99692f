//! The crate's one error type, [`StreamingError`].
//!
//! Variants are named after what failed (the rdkafka / tansu convention), and every variant that
//! concerns a file names that file, so an operator reading a log line knows which checkpoint or
//! write-ahead-log file to look at without a debugger.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::time::Time;

/// A boxed error returned by user code (output operations, inputs).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in spate-streaming.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamingError {
    /// Reading or writing a checkpoint file or directory failed at the OS level.
    #[error("checkpoint I/O error on {path}: {source}")]
    CheckpointIo {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// A checkpoint file exists but its content is not a valid record of its kind.
    #[error("corrupt checkpoint file {path}: {reason}")]
    CheckpointCorrupt {
        /// The corrupt file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The checkpoint was written by a job (or format version) this job cannot continue from.
    #[error("checkpoint {path} is incompatible with this job: {}", mismatches.join("; "))]
    CheckpointIncompatible {
        /// The checkpoint's metadata file (or the file whose version is unsupported).
        path: PathBuf,
        /// One human-readable line per thing that does not match.
        mismatches: Vec<String>,
    },

    /// A checkpoint write would contradict what the checkpoint already records (e.g. a different
    /// plan for a batch time that is already planned) — usually two jobs sharing one directory.
    #[error("checkpoint conflict on {path}: {reason}")]
    CheckpointConflict {
        /// The file that already exists.
        path: PathBuf,
        /// What conflicts.
        reason: String,
    },

    /// Reading or writing a write-ahead-log segment failed at the OS level.
    #[error("write-ahead log I/O error on {path}: {source}")]
    WalIo {
        /// The segment file or log directory.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// A write-ahead-log record is damaged somewhere other than the torn tail (which is truncated,
    /// not reported), or a record handle points at something that is not a record.
    #[error("corrupt write-ahead log segment {path} at byte {offset}: {reason}")]
    WalCorrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record inside the segment.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A state operator's changelog (see `crate::state::changelog`) failed: opening it at
    /// start, restoring a partition from it, or recording a batch's changes.
    #[error("state changelog of operator `{operator}`: {operation} failed: {source}")]
    StateChangelog {
        /// The state operator's id (its `uid()`).
        operator: String,
        /// What was being done, e.g. "restoring partition 3".
        operation: String,
        /// The changelog's error.
        #[source]
        source: BoxError,
    },

    /// Restoring the state of a task this instance was assigned failed (reported to the planner
    /// of its input, which fails the batch it was planning).
    #[error("restoring the state of task {task} failed: {source}")]
    StateRestoreFailed {
        /// The task (input partition).
        task: usize,
        /// Why (shared: every look at the task's restore reports it).
        #[source]
        source: Arc<StreamingError>,
    },

    /// Encoding or decoding a value (block, snapshot body, tracker event) failed.
    #[error("serialization of {what} failed: {reason}")]
    Serialization {
        /// What was being encoded or decoded.
        what: String,
        /// The serializer's message.
        reason: String,
    },

    /// A configuration value is out of range (e.g. a negative PID gain).
    #[error("invalid configuration {name} = {value}: {reason}")]
    InvalidConfig {
        /// The configuration key or parameter name (Spark's name where there is one).
        name: String,
        /// The offending value, rendered.
        value: String,
        /// Why it is rejected.
        reason: String,
    },

    /// Data was handed to a receiver or block generator that is not (or no longer) accepting it.
    #[error("receiver for stream {stream_id} is not accepting data: {reason}")]
    ReceiverStopped {
        /// The input stream id of the receiver.
        stream_id: u32,
        /// Why (not started, stopped, ...).
        reason: String,
    },

    /// Storing a received block (in memory or in the receiver write-ahead log) failed.
    #[error("storing block {block_id} failed: {reason}")]
    BlockStore {
        /// The block's name (`input-<stream>-<unique id>`).
        block_id: String,
        /// What failed.
        reason: String,
    },

    // ---- engine (context, operators, tasks, outputs, inputs) ----
    /// A configuration file could not be read or parsed.
    #[error("cannot load configuration file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be loaded.
        message: String,
    },

    /// A DStream operator was defined with bad arguments (e.g. a window that is not a multiple
    /// of the batch interval) or combined with an incompatible stream.
    #[error("invalid operator `{operator}`: {message}")]
    InvalidOperator {
        /// The operator, e.g. `window`.
        operator: String,
        /// What is wrong.
        message: String,
    },

    /// The context was used in a state that does not allow the call (e.g. `start` twice, adding
    /// an operator after `start`).
    #[error("streaming context {0}")]
    ContextState(String),

    /// A task (one partition of one stage of a batch) panicked in user code.
    #[error("task for partition {partition} of batch {time} panicked: {message}")]
    TaskPanicked {
        /// Batch time.
        time: Time,
        /// Partition index.
        partition: usize,
        /// The panic payload, when it is a string.
        message: String,
    },

    /// A task (one partition) of an action such as `Batch::foreach_partition` returned an error.
    #[error("task for partition {partition} of batch {time} failed: {message}")]
    TaskFailed {
        /// Batch time.
        time: Time,
        /// Partition index.
        partition: usize,
        /// The error text.
        message: String,
        /// The user's error.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    },

    /// An output operation returned an error or panicked.
    #[error("output operation `{operation}` failed for batch {time}: {message}")]
    OutputFailed {
        /// Output operation name, e.g. `foreach_batch#0`.
        operation: String,
        /// Batch time.
        time: Time,
        /// Error or panic message.
        message: String,
        /// The user's error, when there was one.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    },

    /// An input stream failed to plan or compute a batch.
    #[error("input `{input}` failed: {message}")]
    InputFailed {
        /// Input id, e.g. `queue_stream-0`.
        input: String,
        /// What failed.
        message: String,
    },

    /// A file system operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The context stopped because of an earlier error (returned by `await_termination`).
    #[error("streaming context stopped with an error: {0}")]
    ContextFailed(#[source] Arc<StreamingError>),

    /// Stopping did not finish within the configured timeout.
    #[error("graceful stop did not finish within {timeout_ms} ms; {pending} planned batch(es) left uncommitted")]
    StopTimeout {
        /// The timeout.
        timeout_ms: u64,
        /// Batches planned but not committed (they re-run on restart).
        pending: usize,
    },
}

/// `Result` with [`StreamingError`] as the default error.
pub type Result<T, E = StreamingError> = std::result::Result<T, E>;

impl StreamingError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StreamingError::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error naming `key` and its bad `value`.
    pub fn config(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StreamingError::InvalidConfig {
            name: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// An operator-definition error naming `operator`.
    pub fn operator(operator: impl Into<String>, message: impl Into<String>) -> Self {
        StreamingError::InvalidOperator {
            operator: operator.into(),
            message: message.into(),
        }
    }

    /// An input error naming `input`.
    pub fn input(input: impl Into<String>, message: impl Into<String>) -> Self {
        StreamingError::InputFailed {
            input: input.into(),
            message: message.into(),
        }
    }

    pub(crate) fn serialization(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        StreamingError::Serialization {
            what: what.into(),
            reason: e.to_string(),
        }
    }
}

/// Turns a panic payload into a readable message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(f) = payload.downcast_ref::<crate::exec::task_failure::TaskFailure>() {
        f.0.to_string()
    } else {
        "non-string panic payload".to_owned()
    }
}

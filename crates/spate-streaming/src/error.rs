//! The crate's one error type, [`StreamingError`].
//!
//! Variants are named after what failed (the rdkafka / tansu convention), and every variant that
//! concerns a file names that file, so an operator reading a log line knows which checkpoint or
//! write-ahead-log file to look at without a debugger.

use std::io;
use std::path::PathBuf;

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
}

/// `Result` with [`StreamingError`] as the default error.
pub type Result<T, E = StreamingError> = std::result::Result<T, E>;

//! Exactly-once outputs for the direct stream (Spark's "semantics of output operations"): the
//! stream replays whole offset ranges after a failure, so outputs must either be idempotent or be
//! stored atomically together with the offsets they were computed from.
//!
//! * [`SqliteOffsetStore`] — the transactional pattern: the caller's writes and the batch's offset
//!   ranges go into one SQLite transaction; a replayed batch is fenced off, a gap is refused, and
//!   a restarted job resumes from the stored offsets (`Assign` with starting offsets).
//! * [`IdempotentSqliteSink`] — the idempotent pattern: rows keyed by (topic, partition, offset),
//!   so writing a replayed record again overwrites it with the same row.
//! * [`foreach_batch_transactional`] — the output operation that runs a job's results through a
//!   [`SqliteOffsetStore`] with the direct stream's ranges of the same batch.
//!
//! Both use SQLite in WAL mode with `synchronous=FULL`: a committed transaction survives the
//! process being killed, and readers (dashboards, tests) never block the job's writer.

mod db;
mod idempotent;
mod offset_store;
mod output;

/// The SQLite binding the sinks are built on, so callers write their statements against the
/// same version (`rusqlite::Transaction` in [`SqliteOffsetStore::commit_batch`]).
pub use rusqlite;

pub use idempotent::IdempotentSqliteSink;
pub use offset_store::{SqliteOffsetStore, OFFSETS_TABLE};
pub use output::{foreach_batch_transactional, TransactionalOutput};

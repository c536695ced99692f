//! Exactly-once outputs for the direct stream (Spark's "semantics of output operations"): the
//! stream replays whole offset ranges after a failure, so outputs must either be idempotent or be
//! stored atomically together with the offsets they were computed from.
//!
//! * [`SqliteOffsetStore`] — the transactional pattern: the caller's writes and the batch's offset
//!   ranges go into one SQLite transaction; a replayed batch is fenced off, a gap is refused, and
//!   a restarted job resumes from the stored offsets (`Assign` with starting offsets).
//! * [`IdempotentSqliteSink`] — the idempotent pattern: rows keyed by (topic, partition, offset),
//!   so writing a replayed record again overwrites it with the same row.
//! * [`PostgresOffsetStore`] (feature `postgres`) — the same transactional pattern on a
//!   PostgreSQL database that several instances of a job share, with per-partition writer
//!   epochs that fence a stale instance.
//! * [`TransactionalStore`] — the contract both stores fulfil (one test suite runs against each).
//! * [`foreach_batch_transactional`] — the output operation that runs a job's results through a
//!   [`TransactionalStore`] with the direct stream's ranges of the same batch.
//!
//! * [`SaveToKafka`] — the Kafka output of DStreams: at-least-once, or exactly-once with one
//!   Kafka transaction per batch holding the outputs and the batch's offsets committed to the
//!   job's group ([`KafkaOffsetStore`]). Other records can join that transaction through
//!   [`TransactionParticipant`] (a keyed state's changelog does).
//!
//! The SQLite sinks (feature `sqlite`) use SQLite in WAL mode with `synchronous=FULL`: a committed transaction survives the
//! process being killed, and readers (dashboards, tests) never block the job's writer.

#[cfg(feature = "sqlite")]
mod db;
#[cfg(feature = "sqlite")]
mod idempotent;
mod kafka;
mod kafka_offset_store;
mod offset_check;
#[cfg(feature = "sqlite")]
mod offset_store;
mod output;
mod participant;
#[cfg(feature = "postgres")]
mod postgres_store;
mod store;

/// The SQLite binding the sinks are built on, so callers write their statements against the
/// same version (`rusqlite::Transaction` in [`SqliteOffsetStore::commit_batch`]).
#[cfg(feature = "sqlite")]
pub use rusqlite;

/// The PostgreSQL client the PostgreSQL store is built on (`postgres::Transaction` in
/// [`PostgresOffsetStore`]'s batches), so callers write their statements against the same version.
#[cfg(feature = "postgres")]
pub use postgres;

#[cfg(feature = "sqlite")]
pub use idempotent::IdempotentSqliteSink;
pub(crate) use kafka::{producer_config, OutputProducer};
pub use kafka::{BatchWrite, DeliveryGuarantee, KafkaOutput, OutputRecord, SaveToKafka};
pub use kafka_offset_store::KafkaOffsetStore;
#[cfg(feature = "sqlite")]
pub use offset_store::{SqliteOffsetStore, OFFSETS_TABLE};
pub use output::{foreach_batch_transactional, TransactionalOutput};
pub use participant::{TopicRecords, TransactionParticipant};
#[cfg(feature = "postgres")]
pub use postgres_store::{PostgresOffsetStore, IDLE_IN_TRANSACTION_TIMEOUT};
pub use store::{TransactionalStore, WriteError};

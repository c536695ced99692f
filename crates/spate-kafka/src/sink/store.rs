//! [`TransactionalStore`]: the contract every database that stores a batch's results together
//! with its offsets fulfils (SQLite, PostgreSQL), so that a job, [`super::foreach_batch_transactional`]
//! and one shared test suite are written once against it.
//!
//! The contract, per batch and per partition of its offset ranges:
//! * the caller's writes and the new offsets commit in ONE transaction, or neither does;
//! * a batch the stored offsets already cover (a replay) writes nothing and reports `false`;
//! * a batch that does not start where the stored offsets end (a gap or an overlap) is refused
//!   with [`SpateKafkaError::StoredOffsetMismatch`](crate::SpateKafkaError::StoredOffsetMismatch);
//! * a restarted job resumes from [`TransactionalStore::starting_offsets`];
//! * several writers of one job may share the database. Each partition has a writer epoch: a
//!   store that [claims](TransactionalStore::claim_partitions) a partition raises it, and from
//!   then on every batch of a store holding an older epoch for that partition is refused with
//!   [`SpateKafkaError::WriterFenced`](crate::SpateKafkaError::WriterFenced) — in the same
//!   transaction that would have written it, so a paused instance whose partitions moved (a
//!   zombie) cannot write after the new owner took over. A store that never claims writes with
//!   epoch 0, which is what a single-instance job does.

use std::collections::BTreeMap;

use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::direct::strategy::ConsumerStrategy;
use crate::error::{Result, SpateKafkaError};

/// The caller's error type inside a batch transaction, boxed into
/// [`SpateKafkaError::SinkWriteFailed`].
pub type WriteError = Box<dyn std::error::Error + Send + Sync>;

/// A database holding a job's outputs and offsets (see the module docs for the contract).
pub trait TransactionalStore: Send + 'static {
    /// The backend's open transaction, handed to the caller's writes.
    type Tx<'a>;

    /// The job (consumer group or application id) whose offsets this store reads and writes.
    fn job(&self) -> &str;

    /// The next offset to read per partition, as stored by the last committed batch. Partitions
    /// never written are absent (the stream starts them from `auto.offset.reset`).
    fn starting_offsets(&mut self) -> Result<BTreeMap<TopicPartition, i64>>;

    /// Overwrites the stored offsets of some partitions outside any batch (an operator accepting
    /// a loss, or skipping ahead); the results are not touched.
    fn reset_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()>;

    /// Makes this store the writer of `partitions`: raises each partition's writer epoch in one
    /// transaction, after any batch of a previous writer that is committing has finished, and
    /// returns the new epochs. Batches of stores holding an older epoch are refused from then on.
    fn claim_partitions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>>;

    /// The writer epoch this store holds for `tp` (0 unless claimed).
    fn writer_epoch(&self, tp: &TopicPartition) -> i64;

    /// Runs `writes` and stores `ranges` in one transaction. Returns `true` when the batch was
    /// committed and `false` when the stored offsets show it was already applied (nothing is
    /// written). A gap or overlap, a fenced writer, a failure of `writes` or of the database
    /// rolls everything back and returns the error.
    fn commit_batch<F, E>(&mut self, ranges: &[OffsetRange], writes: F) -> Result<bool>
    where
        F: FnOnce(&mut Self::Tx<'_>) -> std::result::Result<(), E>,
        E: Into<WriteError>;

    /// `Assign(partitions)` starting at the stored offsets: the strategy of a job restarting
    /// from this store.
    fn assign_strategy(
        &mut self,
        partitions: &[TopicPartition],
        params: KafkaParams,
    ) -> Result<ConsumerStrategy> {
        let stored = self.starting_offsets()?;
        let offsets: Vec<(TopicPartition, i64)> = stored
            .into_iter()
            .filter(|(tp, _)| partitions.contains(tp))
            .collect();
        Ok(ConsumerStrategy::assign(partitions.to_vec(), params).with_offsets(offsets))
    }
}

/// The partitions of `ranges`, each once and in order: the order every backend locks them in,
/// so that two writers of overlapping batches cannot deadlock.
pub(crate) fn partitions_of(ranges: &[OffsetRange]) -> Vec<TopicPartition> {
    let mut tps: Vec<TopicPartition> = ranges.iter().map(OffsetRange::topic_partition).collect();
    tps.sort();
    tps.dedup();
    tps
}

/// Refuses a batch when a partition's stored epoch is newer than the writer's: another store
/// claimed the partition since this one did.
pub(crate) fn check_epoch(job: &str, tp: &TopicPartition, held: i64, stored: i64) -> Result<()> {
    if stored > held {
        return Err(SpateKafkaError::WriterFenced {
            job: job.to_owned(),
            topic: tp.topic.clone(),
            partition: tp.partition,
            held,
            stored,
        });
    }
    Ok(())
}

/// Wraps the caller's error of a batch transaction.
pub(crate) fn write_failed<E: Into<WriteError>>(
    job: &str,
) -> impl FnOnce(E) -> SpateKafkaError + '_ {
    move |e| SpateKafkaError::SinkWriteFailed {
        job: job.to_owned(),
        source: e.into(),
    }
}

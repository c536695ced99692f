//! The extension point of the exactly-once Kafka output: other parts of a job that must write
//! records in the same Kafka transaction as a batch's outputs and offsets — a keyed state's
//! changelog ([`crate::changelog::KafkaChangelog`]), a repartition topic
//! ([`crate::repartition`]) — join the output with
//! [`KafkaOutput::add_participant`](super::KafkaOutput::add_participant). Each batch's
//! transaction then carries the output's records, every participant's records for that batch,
//! and the batch's offsets — the source stream's and any participant's own (a repartition
//! topic's internal stream): all commit or all abort together.

use spate_streaming::Time;

use super::OutputRecord;
use crate::direct::offset_range::OffsetRange;
use crate::error::Result;

/// Records of one topic that a participant adds to a transaction (each record names its
/// partition, or leaves it to the producer's partitioner).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicRecords {
    /// The topic the records go to.
    pub topic: String,
    /// The records.
    pub records: Vec<OutputRecord>,
}

/// A part of the job whose records ride in the exactly-once output's per-batch transaction.
pub trait TransactionParticipant: Send + Sync {
    /// Hands over the records of batch `time` and of any earlier batch not handed over yet.
    /// Called once per batch inside the batch's transaction; records handed over belong to
    /// that transaction (if it aborts, the batch fails and the job stops, so they are not
    /// offered again).
    fn take_records(&self, time: Time) -> Result<Vec<TopicRecords>>;

    /// Offset ranges of another input that batch `time` consumed and that must be committed to
    /// the output's group in the batch's transaction (a repartition topic's internal stream);
    /// none by default. Called once per batch, after [`TransactionParticipant::take_records`].
    fn offset_ranges(&self, _time: Time) -> Result<Vec<OffsetRange>> {
        Ok(Vec::new())
    }

    /// Fails when the input behind [`TransactionParticipant::offset_ranges`] no longer owns
    /// what batch `time` read (a group-managed internal stream whose partitions the group moved
    /// since the batch was planned). The output calls it in every attempt at the batch's
    /// transaction, after reading the group metadata the offsets are sent with: a refused
    /// attempt retried under a newer generation must not commit partitions that moved
    /// meanwhile. `Ok` by default.
    fn check_owned(&self, _time: Time) -> Result<()> {
        Ok(())
    }

    /// How often the group assigned partitions to the input behind
    /// [`TransactionParticipant::offset_ranges`] (a group-managed internal stream): when it
    /// changes, the output re-reads the group's offsets, which another instance may have
    /// advanced. 0 by default.
    fn assignments(&self) -> u64 {
        0
    }

    /// Batch `time`'s transaction committed (records and offsets are durable): what the
    /// participant handed over for it may be acted on (a repartition topic purges the records
    /// its offsets cover). Also called for a batch with nothing to commit, once every earlier
    /// batch committed. Not called for a batch whose transaction aborted or was skipped.
    fn transaction_committed(&self, _time: Time) {}
}

//! One transactional id's coordinator state and its transitions, as Kafka's
//! `TransactionMetadata` defines them: the producer id and epoch it owns, the state of its
//! current transaction, the partitions and consumer groups in it, and its timeout.
//!
//! Everything here is pure (time is passed in): each `prepare_*` method checks a request
//! against the current state and returns the state to write, or the Kafka error the client
//! gets. The coordinator makes the returned state durable before it replaces the current one.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch (`RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction in progress (a fresh id, or one whose producer was just (re)initialised).
    Empty,
    /// Partitions or offsets were added; data may be in the log.
    Ongoing,
    /// The commit decision is durable; markers are being written.
    PrepareCommit,
    /// The abort decision is durable; markers are being written.
    PrepareAbort,
    /// Markers are written; the transaction committed.
    CompleteCommit,
    /// Markers are written; the transaction aborted.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
    /// An ongoing transaction is being aborted to fence its producer (InitProducerId from a
    /// new producer instance, or the transaction timed out).
    PrepareEpochFence,
}

impl TxnState {
    /// Kafka's name of the state (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (Kafka's spelling), if any.
    pub fn parse(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
            TxnState::Dead,
            TxnState::PrepareEpochFence,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Whether a commit or abort decision has been taken and its markers are not all written.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether no transaction is in progress (the id may expire in this state).
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// An offset committed inside a transaction (TxnOffsetCommit), applied to the group only
/// when the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    /// The offset committed for the partition.
    pub offset: i64,
    /// The leader epoch committed with it, -1 if unknown.
    pub leader_epoch: i32,
    /// The metadata string committed with it.
    pub metadata: String,
}

/// A partition in a transaction: `(topic, partition)`.
pub type TxnPartition = (String, i32);

/// The coordinator's record of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionMetadata {
    /// The producer's `transactional.id`.
    pub transactional_id: String,
    /// The producer id the transactional id is bound to.
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion), for retries (KIP-360).
    pub previous_producer_id: i64,
    /// The producer's current epoch; a request with an older one is fenced.
    pub producer_epoch: i16,
    /// The epoch before the last bump requested by the producer itself (KIP-360), so that a
    /// retried InitProducerId gets the same answer instead of being fenced.
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer than this.
    pub timeout_ms: i32,
    /// Where the transaction is in Kafka's state machine (Empty, Ongoing, PrepareCommit, …).
    pub state: TxnState,
    /// Partitions added to the current transaction (AddPartitionsToTxn).
    pub partitions: BTreeSet<TxnPartition>,
    /// Consumer groups added to the current transaction (AddOffsetsToTxn), each with the
    /// offsets committed to it so far in this transaction (TxnOffsetCommit).
    #[serde(with = "groups_as_lists")]
    pub groups: BTreeMap<String, BTreeMap<TxnPartition, PendingOffset>>,
    /// When the current transaction started (-1 when none): its timeout counts from here.
    pub start_ms: i64,
    /// When the record last changed (ms since the epoch).
    pub last_update_ms: i64,
}

/// JSON maps need string keys: each group's offsets are stored as a list of entries.
mod groups_as_lists {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{PendingOffset, TxnPartition};

    type Groups = BTreeMap<String, BTreeMap<TxnPartition, PendingOffset>>;

    pub(crate) fn serialize<S: Serializer>(groups: &Groups, s: S) -> Result<S::Ok, S::Error> {
        let lists: BTreeMap<&String, Vec<(&TxnPartition, &PendingOffset)>> = groups
            .iter()
            .map(|(g, offsets)| (g, offsets.iter().collect()))
            .collect();
        lists.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Groups, D::Error> {
        let lists = BTreeMap::<String, Vec<(TxnPartition, PendingOffset)>>::deserialize(d)?;
        Ok(lists
            .into_iter()
            .map(|(g, offsets)| (g, offsets.into_iter().collect()))
            .collect())
    }
}

/// What InitProducerId must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Write this state and answer with its producer id and epoch.
    Ready(TransactionMetadata),
    /// An ongoing transaction is in the way: abort it with this (bumped) epoch, then answer
    /// CONCURRENT_TRANSACTIONS so the producer retries, as Kafka does.
    AbortOngoing(TransactionMetadata),
}

/// What EndTxn must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Already done (a retry after success): answer without writing anything.
    AlreadyComplete,
    /// Write this PrepareCommit / PrepareAbort state, then the markers.
    Prepare(TransactionMetadata),
}

/// Kafka: an epoch this close to `i16::MAX` cannot be bumped again; a new producer id is
/// handed out instead.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: a fresh producer id with no epoch yet (the
    /// first InitProducerId bumps it to 0).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeMap::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// InitProducerId. `expected` is the producer id and epoch a producer resuming after an
    /// error sends (KIP-360, InitProducerId v3+); `new_producer_id` is called only when the
    /// epoch is exhausted.
    pub fn prepare_init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: impl FnOnce() -> Result<i64, ResponseError>,
        now_ms: i64,
    ) -> Result<InitOutcome, ResponseError> {
        if let Some((pid, epoch)) = expected {
            let valid = self.producer_epoch == NO_PRODUCER_EPOCH
                || pid == self.producer_id
                || (pid == self.previous_producer_id && is_epoch_exhausted(epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match self.state {
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => Ok(InitOutcome::AbortOngoing(self.fenced())),
            TxnState::Dead | TxnState::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => {
                let exhausted = is_epoch_exhausted(self.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == self.producer_epoch);
                let mut next = self.idle_copy(now_ms);
                next.timeout_ms = timeout_ms;
                if exhausted {
                    next.previous_producer_id = self.producer_id;
                    next.producer_id = new_producer_id()?;
                    next.producer_epoch = 0;
                    next.last_producer_epoch = NO_PRODUCER_EPOCH;
                    return Ok(InitOutcome::Ready(next));
                }
                let bumped = self.producer_epoch + 1;
                let (epoch, last) = match expected.map(|(_, e)| e) {
                    None => (bumped, NO_PRODUCER_EPOCH),
                    Some(e)
                        if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch =>
                    {
                        (bumped, self.producer_epoch)
                    }
                    Some(e) if e == self.last_producer_epoch => {
                        (self.producer_epoch, self.last_producer_epoch)
                    }
                    Some(_) => return Err(ResponseError::ProducerFenced),
                };
                next.producer_epoch = epoch;
                next.last_producer_epoch = last;
                Ok(InitOutcome::Ready(next))
            }
        }
    }

    /// The producer id and epoch of a request must be this id's current ones.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// The checks AddPartitionsToTxn and AddOffsetsToTxn share; a copy moved to Ongoing.
    fn prepare_ongoing(
        &self,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Result<TransactionMetadata, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Dead => Err(ResponseError::InvalidProducerIdMapping),
            TxnState::Ongoing => {
                let mut next = self.clone();
                next.last_update_ms = now_ms;
                Ok(next)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = self.idle_copy(now_ms);
                next.state = TxnState::Ongoing;
                next.start_ms = now_ms;
                Ok(next)
            }
        }
    }

    /// AddPartitionsToTxn: `None` when every partition is already in the ongoing transaction
    /// (nothing to write).
    pub fn prepare_add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<Option<TransactionMetadata>, ResponseError> {
        let mut next = self.prepare_ongoing(producer_id, epoch, now_ms)?;
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Ok(None);
        }
        next.partitions.extend(partitions.iter().cloned());
        Ok(Some(next))
    }

    /// AddOffsetsToTxn: `None` when the group is already in the ongoing transaction.
    pub fn prepare_add_group(
        &self,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
        now_ms: i64,
    ) -> Result<Option<TransactionMetadata>, ResponseError> {
        let mut next = self.prepare_ongoing(producer_id, epoch, now_ms)?;
        if self.state == TxnState::Ongoing && self.groups.contains_key(group_id) {
            return Ok(None);
        }
        next.groups.entry(group_id.to_string()).or_default();
        Ok(Some(next))
    }

    /// TxnOffsetCommit: the offsets become pending in the ongoing transaction. The group must
    /// have been added with AddOffsetsToTxn (else INVALID_TXN_STATE).
    pub fn prepare_offsets(
        &self,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
        offsets: Vec<(TxnPartition, PendingOffset)>,
        now_ms: i64,
    ) -> Result<TransactionMetadata, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        if self.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if self.state != TxnState::Ongoing || !self.groups.contains_key(group_id) {
            return Err(ResponseError::InvalidTxnState);
        }
        let mut next = self.clone();
        next.last_update_ms = now_ms;
        next.groups
            .entry(group_id.to_string())
            .or_default()
            .extend(offsets);
        Ok(next)
    }

    /// EndTxn from the producer (`from_client`) or the coordinator itself (timeouts, fencing,
    /// where the epoch was bumped first).
    pub fn prepare_end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        from_client: bool,
        now_ms: i64,
    ) -> Result<EndOutcome, ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        let valid_epoch =
            (!from_client || epoch == self.producer_epoch) && epoch >= self.producer_epoch;
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        match (self.state, commit) {
            (TxnState::Ongoing | TxnState::PrepareEpochFence, _) => {
                if self.state == TxnState::PrepareEpochFence && commit {
                    return Err(ResponseError::InvalidTxnState);
                }
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now_ms;
                Ok(EndOutcome::Prepare(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndOutcome::AlreadyComplete)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::Dead, _) => Err(ResponseError::InvalidProducerIdMapping),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// The state after every marker of a PrepareCommit / PrepareAbort is written.
    pub fn completed(&self, now_ms: i64) -> TransactionMetadata {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        next.partitions.clear();
        next.groups.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }

    /// The ongoing transaction aborted by the coordinator with the epoch bumped, so that the
    /// producer that owned it is fenced (Kafka's PrepareEpochFence followed by PrepareAbort).
    pub fn fenced(&self) -> TransactionMetadata {
        let mut next = self.clone();
        next.producer_epoch = self.producer_epoch.saturating_add(1);
        next.last_producer_epoch = NO_PRODUCER_EPOCH;
        next.state = TxnState::PrepareEpochFence;
        next
    }

    /// Whether the ongoing transaction has outlived its `transaction.timeout.ms`.
    pub fn is_timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && self.start_ms + self.timeout_ms as i64 <= now_ms
    }

    /// Whether the id has been idle past `transactional.id.expiration.ms`.
    pub fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.state.is_idle() && self.last_update_ms.saturating_add(expiration_ms) <= now_ms
    }

    /// Offsets pending in the current transaction for `group`, if any.
    pub fn pending_offsets(&self, group: &str) -> Option<&BTreeMap<TxnPartition, PendingOffset>> {
        self.groups.get(group)
    }

    /// A copy with no transaction in it (partitions, groups and start cleared).
    fn idle_copy(&self, now_ms: i64) -> TransactionMetadata {
        let mut next = self.clone();
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.groups.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> Result<i64, ResponseError> {
        panic!("no new producer id expected")
    }

    fn ready(o: Result<InitOutcome, ResponseError>) -> TransactionMetadata {
        match o {
            Ok(InitOutcome::Ready(m)) => m,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    fn tp(t: &str, p: i32) -> TxnPartition {
        (t.to_string(), p)
    }

    #[test]
    fn init_bumps_the_epoch_and_keeps_the_producer_id() {
        let m = TransactionMetadata::new("t", 7, 60_000, 0);
        let m = ready(m.prepare_init(60_000, None, never, 1));
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (7, 0, TxnState::Empty)
        );
        let m2 = ready(m.prepare_init(30_000, None, never, 2));
        assert_eq!(
            (m2.producer_id, m2.producer_epoch, m2.timeout_ms),
            (7, 1, 30_000)
        );
    }

    #[test]
    fn kip_360_resume_and_retry() {
        let m = ready(TransactionMetadata::new("t", 7, 1000, 0).prepare_init(1000, None, never, 0));
        // Resume with the current epoch: bumped, the old one remembered.
        let r = ready(m.prepare_init(1000, Some((7, 0)), never, 1));
        assert_eq!((r.producer_epoch, r.last_producer_epoch), (1, 0));
        // A retry of that request (it still sends epoch 0) gets the same answer.
        let again = ready(r.prepare_init(1000, Some((7, 0)), never, 2));
        assert_eq!(again.producer_epoch, 1);
        // A stale epoch is fenced; so is an unknown producer id.
        assert_eq!(
            again
                .prepare_init(1000, Some((7, 5)), never, 3)
                .unwrap_err(),
            ResponseError::ProducerFenced
        );
        assert_eq!(
            again
                .prepare_init(1000, Some((99, 1)), never, 3)
                .unwrap_err(),
            ResponseError::ProducerFenced
        );
    }

    #[test]
    fn exhausted_epoch_rotates_the_producer_id() {
        let mut m = TransactionMetadata::new("t", 7, 1000, 0);
        m.producer_epoch = i16::MAX - 1;
        let r = ready(m.prepare_init(1000, None, || Ok(8), 1));
        assert_eq!(
            (r.producer_id, r.previous_producer_id, r.producer_epoch),
            (8, 7, 0)
        );
    }

    #[test]
    fn a_transaction_goes_ongoing_prepare_complete() {
        let m = ready(TransactionMetadata::new("t", 7, 1000, 0).prepare_init(1000, None, never, 0));
        let m = m
            .prepare_add_partitions(7, 0, &[tp("a", 0), tp("a", 1)], 10)
            .unwrap()
            .unwrap();
        assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, 10));
        assert_eq!(
            m.prepare_add_partitions(7, 0, &[tp("a", 1)], 11).unwrap(),
            None
        );
        let m = m.prepare_add_group(7, 0, "g", 12).unwrap().unwrap();
        let m = m
            .prepare_offsets(
                7,
                0,
                "g",
                vec![(
                    tp("a", 0),
                    PendingOffset {
                        offset: 5,
                        leader_epoch: -1,
                        metadata: String::new(),
                    },
                )],
                13,
            )
            .unwrap();
        assert_eq!(m.pending_offsets("g").unwrap().len(), 1);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            serde_json::from_str::<TransactionMetadata>(&json).unwrap(),
            m
        );
        let EndOutcome::Prepare(p) = m.prepare_end(7, 0, true, true, 14).unwrap() else {
            panic!("expected a prepare")
        };
        assert_eq!(p.state, TxnState::PrepareCommit);
        assert_eq!(
            p.prepare_add_partitions(7, 0, &[tp("b", 0)], 15)
                .unwrap_err(),
            ResponseError::ConcurrentTransactions
        );
        assert_eq!(
            p.prepare_end(7, 0, true, true, 15).unwrap_err(),
            ResponseError::ConcurrentTransactions
        );
        assert_eq!(
            p.prepare_end(7, 0, false, true, 15).unwrap_err(),
            ResponseError::InvalidTxnState
        );
        let c = p.completed(16);
        assert_eq!(c.state, TxnState::CompleteCommit);
        assert!(c.partitions.is_empty() && c.groups.is_empty());
        assert_eq!(
            c.prepare_end(7, 0, true, true, 17).unwrap(),
            EndOutcome::AlreadyComplete
        );
        assert_eq!(
            c.prepare_end(7, 0, false, true, 17).unwrap_err(),
            ResponseError::InvalidTxnState
        );
    }

    #[test]
    fn stale_epochs_and_ids_are_refused() {
        let m = ready(TransactionMetadata::new("t", 7, 1000, 0).prepare_init(1000, None, never, 0));
        let m = ready(m.prepare_init(1000, None, never, 1)); // a second producer: epoch 1
        assert_eq!(
            m.prepare_add_partitions(7, 0, &[tp("a", 0)], 2)
                .unwrap_err(),
            ResponseError::ProducerFenced
        );
        assert_eq!(
            m.prepare_add_partitions(8, 1, &[tp("a", 0)], 2)
                .unwrap_err(),
            ResponseError::InvalidProducerIdMapping
        );
        assert_eq!(
            m.prepare_end(7, 1, false, true, 2).unwrap_err(),
            ResponseError::InvalidTxnState
        );
        assert_eq!(
            m.prepare_end(7, 0, false, true, 2).unwrap_err(),
            ResponseError::ProducerFenced
        );
    }

    #[test]
    fn offsets_need_the_group_added_first() {
        let m = ready(TransactionMetadata::new("t", 7, 1000, 0).prepare_init(1000, None, never, 0));
        let m = m
            .prepare_add_partitions(7, 0, &[tp("a", 0)], 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            m.prepare_offsets(7, 0, "g", vec![], 2).unwrap_err(),
            ResponseError::InvalidTxnState
        );
    }

    #[test]
    fn init_during_a_transaction_fences_and_aborts_it() {
        let m = ready(TransactionMetadata::new("t", 7, 1000, 0).prepare_init(1000, None, never, 0));
        let m = m
            .prepare_add_partitions(7, 0, &[tp("a", 0)], 1)
            .unwrap()
            .unwrap();
        let Ok(InitOutcome::AbortOngoing(f)) = m.prepare_init(1000, None, never, 2) else {
            panic!("expected the ongoing transaction to be aborted")
        };
        assert_eq!(
            (f.state, f.producer_epoch),
            (TxnState::PrepareEpochFence, 1)
        );
        let EndOutcome::Prepare(p) = f.prepare_end(7, 1, false, false, 3).unwrap() else {
            panic!("expected a prepare")
        };
        assert_eq!(p.state, TxnState::PrepareAbort);
        // The old producer can no longer end it.
        assert_eq!(
            p.prepare_end(7, 0, true, true, 3).unwrap_err(),
            ResponseError::ProducerFenced
        );
        let done = p.completed(4);
        let next = ready(done.prepare_init(1000, None, never, 5));
        assert_eq!(next.producer_epoch, 2);
    }

    #[test]
    fn timeouts_and_expiry() {
        let m = ready(TransactionMetadata::new("t", 7, 1000, 0).prepare_init(1000, None, never, 0));
        assert!(!m.is_timed_out(10_000));
        assert!(m.is_expired(10_000, 5_000));
        let o = m
            .prepare_add_partitions(7, 0, &[tp("a", 0)], 100)
            .unwrap()
            .unwrap();
        assert!(!o.is_timed_out(1099) && o.is_timed_out(1100));
        assert!(!o.is_expired(1_000_000, 5_000));
        assert_eq!(
            TxnState::parse("PrepareCommit"),
            Some(TxnState::PrepareCommit)
        );
        assert_eq!(TxnState::parse("nope"), None);
    }
}

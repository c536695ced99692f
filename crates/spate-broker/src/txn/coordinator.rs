//! The transaction coordinator: every transactional id of the broker, its durable log, and the
//! operations the transaction APIs map onto — InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn — plus the timer work (aborting transactions past
//! their timeout, forgetting idle ids) and the completion of decided transactions (markers).
//!
//! Locking: one mutex over the ids and the log; a state change is written (fsynced when it
//! matters) under it, so the log's order is the order changes took effect, and then published
//! to the producer view, a separate read-write lock that produce verification reads — a produce
//! holds its partition's append lock while it asks, and must not wait for an fsync. Markers are
//! written *without* the coordinator's locks, so the coordinator never waits for a partition
//! while a produce waits for the coordinator. While markers are written the id is in
//! PrepareCommit/PrepareAbort, which refuses every other request with CONCURRENT_TRANSACTIONS
//! and every produce with INVALID_TXN_STATE, so nothing can slip in behind a marker.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};

use super::config::TxnConfig;
use super::log::TxnLog;
use super::marker::MarkerKind;
use super::metadata::{
    EndOutcome, InitOutcome, PendingOffset, TransactionMetadata, TxnPartition, TxnState,
};
use crate::error::{BrokerError, Result};
use crate::group::txn_offsets::TxnCommittedOffset;
use crate::group::GroupCoordinator;
use crate::producer_state::ProducerIdAllocator;
use crate::topics::TopicRegistry;

/// The coordinator epoch this broker's markers carry. Kafka's is the leader epoch of the
/// transaction log partition that owns the id, which moves only when that partition's
/// leadership moves; this broker is the only coordinator and its log never moves, so its epoch
/// stays 0. A marker written through WriteTxnMarkers (`spate transactions abort`) carries
/// whatever epoch the admin gives, at least 0, as `kafka-transactions.sh` sends.
pub const COORDINATOR_EPOCH: i32 = 0;

/// What the coordinator works on besides its own state: the partitions markers go to, the
/// producer id allocator, and the group coordinator committed offsets go to.
#[derive(Clone, Copy)]
pub struct TxnEnv<'a> {
    /// The topics, whose partitions receive the transaction markers.
    pub topics: &'a TopicRegistry,
    /// The producer id allocator, for InitProducerId.
    pub producer_ids: &'a ProducerIdAllocator,
    /// The group coordinator, which takes the transaction's offsets when it commits.
    pub groups: &'a GroupCoordinator,
}

impl std::fmt::Debug for TxnEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnEnv").finish_non_exhaustive()
    }
}

struct Inner {
    txns: HashMap<String, TransactionMetadata>,
    /// Ids whose markers are being written right now (by a request or the timer).
    completing: HashSet<String>,
    log: Option<TxnLog>,
}

impl Inner {
    /// Makes `m` durable (fsynced with `sync`) and current; returns the state it replaced.
    fn store(&mut self, m: TransactionMetadata, sync: bool) -> Result<Option<TransactionMetadata>> {
        if let Some(log) = self.log.as_mut() {
            log.append(&m, sync)?;
        }
        let old = if m.state == TxnState::Dead {
            self.txns.remove(&m.transactional_id)
        } else {
            self.txns.insert(m.transactional_id.clone(), m)
        };
        // Every transaction writes a few records; keep the file near the live set's size.
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.maybe_compact(self.txns.values()) {
                tracing::warn!(error = %e, "compacting the transaction log failed");
            }
        }
        Ok(old)
    }
}

/// What produce verification needs to know of a producer id's transaction.
#[derive(Debug, Clone)]
struct ProducerView {
    epoch: i16,
    state: TxnState,
    partitions: std::collections::BTreeSet<TxnPartition>,
}

impl ProducerView {
    fn of(m: &TransactionMetadata) -> Self {
        ProducerView {
            epoch: m.producer_epoch,
            state: m.state,
            partitions: m.partitions.clone(),
        }
    }
}

/// The broker's transaction coordinator.
pub struct TransactionCoordinator {
    config: TxnConfig,
    inner: Mutex<Inner>,
    /// Producer id -> its transaction, as produce verification sees it (see the module doc).
    producers: RwLock<HashMap<i64, ProducerView>>,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A storage failure answers the client with a retriable error; the state did not change.
fn storage_failed(e: BrokerError) -> ResponseError {
    tracing::warn!(error = %e, "writing the transaction log failed");
    ResponseError::CoordinatorNotAvailable
}

impl TransactionCoordinator {
    /// A coordinator that keeps its state in memory only.
    pub fn in_memory(config: TxnConfig) -> Self {
        Self::with(config, None, HashMap::new())
    }

    /// A coordinator whose state is durable in `dir` (replayed now). Transactions found
    /// decided but not completed are completed by [`Self::complete_pending`].
    pub fn open(config: TxnConfig, dir: &Path) -> Result<Self> {
        let (log, txns) = TxnLog::open(dir)?;
        Ok(Self::with(config, Some(log), txns))
    }

    fn with(
        config: TxnConfig,
        log: Option<TxnLog>,
        txns: HashMap<String, TransactionMetadata>,
    ) -> Self {
        let producers = txns
            .values()
            .map(|m| (m.producer_id, ProducerView::of(m)))
            .collect();
        TransactionCoordinator {
            config,
            inner: Mutex::new(Inner {
                txns,
                completing: HashSet::new(),
                log,
            }),
            producers: RwLock::new(producers),
        }
    }

    /// The coordinator's `transaction.*` settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Stores `m` (see [`Inner::store`]) and publishes it to produce verification.
    fn persist(&self, inner: &mut Inner, m: TransactionMetadata, sync: bool) -> Result<()> {
        let (pid, view, dead) = (
            m.producer_id,
            ProducerView::of(&m),
            m.state == TxnState::Dead,
        );
        let old = inner.store(m, sync)?;
        let mut producers = self.producers.write();
        if let Some(old) = old.filter(|o| o.producer_id != pid) {
            producers.remove(&old.producer_id);
        }
        if dead {
            producers.remove(&pid);
        } else {
            producers.insert(pid, view);
        }
        Ok(())
    }

    /// Every producer id the coordinator knows (so the allocator never hands one out again).
    pub fn producer_ids(&self) -> Vec<i64> {
        let inner = self.inner.lock();
        inner
            .txns
            .values()
            .flat_map(|m| [m.producer_id, m.previous_producer_id])
            .filter(|id| *id >= 0)
            .collect()
    }

    /// InitProducerId with a transactional id: `(producer id, epoch)`.
    pub fn init_producer_id(
        &self,
        env: TxnEnv<'_>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let allocate = || env.producer_ids.allocate().map_err(|e| e.error_code());
        let outcome = {
            let mut inner = self.inner.lock();
            if inner.completing.contains(transactional_id) {
                return Err(ResponseError::ConcurrentTransactions);
            }
            let current = match inner.txns.get(transactional_id) {
                Some(m) => m.clone(),
                None => TransactionMetadata::new(transactional_id, allocate()?, timeout_ms, now_ms),
            };
            match current.prepare_init(timeout_ms, expected, allocate, now_ms)? {
                InitOutcome::Ready(m) => {
                    let answer = (m.producer_id, m.producer_epoch);
                    self.persist(&mut inner, m, true).map_err(storage_failed)?;
                    return Ok(answer);
                }
                InitOutcome::AbortOngoing(fenced) => {
                    self.decide(&mut inner, &fenced, false, false, now_ms)?
                }
            }
        };
        tracing::info!(
            transactional_id,
            "a new producer instance fences the ongoing transaction; aborting it"
        );
        if let Some(id) = outcome {
            self.complete(env, &id, now_ms).map_err(storage_failed)?;
        }
        Err(ResponseError::ConcurrentTransactions)
    }

    /// Moves `m` to PrepareCommit/PrepareAbort durably; returns the id to complete, or
    /// `None` when it was already complete.
    fn decide(
        &self,
        inner: &mut Inner,
        m: &TransactionMetadata,
        commit: bool,
        from_client: bool,
        now_ms: i64,
    ) -> Result<Option<String>, ResponseError> {
        match m.prepare_end(m.producer_id, m.producer_epoch, commit, from_client, now_ms)? {
            EndOutcome::AlreadyComplete => Ok(None),
            EndOutcome::Prepare(p) => {
                let id = p.transactional_id.clone();
                self.persist(inner, p, true).map_err(storage_failed)?;
                inner.completing.insert(id.clone());
                Ok(Some(id))
            }
        }
    }

    /// AddPartitionsToTxn (v0–3: one transaction).
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.update(transactional_id, |m| {
            m.prepare_add_partitions(producer_id, epoch, partitions, now_ms)
        })
    }

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    pub fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.update(transactional_id, |m| {
            m.prepare_add_group(producer_id, epoch, group_id, now_ms)
        })
    }

    /// Applies a transition that needs no markers; `None` from `f` means nothing to write.
    fn update(
        &self,
        transactional_id: &str,
        f: impl FnOnce(&TransactionMetadata) -> Result<Option<TransactionMetadata>, ResponseError>,
    ) -> Result<(), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let mut inner = self.inner.lock();
        let m = inner
            .txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if let Some(next) = f(m)? {
            // Adding a partition must be durable before the producer writes to it.
            self.persist(&mut inner, next, true)
                .map_err(storage_failed)?;
        }
        Ok(())
    }

    /// TxnOffsetCommit after the group's checks: the offsets become pending in the
    /// transaction.
    pub fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
        offsets: Vec<(TxnPartition, PendingOffset)>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.update(transactional_id, |m| {
            m.prepare_offsets(producer_id, epoch, group_id, offsets, now_ms)
                .map(Some)
        })
    }

    /// EndTxn: commits or aborts; returns once every marker is written.
    pub fn end_txn(
        &self,
        env: TxnEnv<'_>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let to_complete = {
            let mut inner = self.inner.lock();
            let m = inner
                .txns
                .get(transactional_id)
                .ok_or(ResponseError::InvalidProducerIdMapping)?
                .clone();
            if inner.completing.contains(transactional_id) {
                m.check_producer(producer_id, epoch)?;
                return Err(ResponseError::ConcurrentTransactions);
            }
            match m.prepare_end(producer_id, epoch, commit, true, now_ms)? {
                EndOutcome::AlreadyComplete => None,
                EndOutcome::Prepare(_) => self.decide(&mut inner, &m, commit, true, now_ms)?,
            }
        };
        if let Some(id) = to_complete {
            self.complete(env, &id, now_ms).map_err(storage_failed)?;
        }
        Ok(())
    }

    /// Writes the markers of a decided transaction, applies its offsets on commit, and
    /// records it complete. On failure the id stays decided and the timer retries.
    pub fn complete(&self, env: TxnEnv<'_>, transactional_id: &str, now_ms: i64) -> Result<()> {
        let decided = {
            let mut inner = self.inner.lock();
            inner.completing.insert(transactional_id.to_string());
            inner
                .txns
                .get(transactional_id)
                .filter(|m| m.state.is_preparing())
                .cloned()
        };
        let result = match decided {
            Some(m) => self
                .write_markers_and_offsets(env, &m, now_ms)
                .and_then(|()| {
                    let mut inner = self.inner.lock();
                    self.persist(&mut inner, m.completed(now_ms), false)
                }),
            None => Ok(()),
        };
        self.inner.lock().completing.remove(transactional_id);
        result
    }

    fn write_markers_and_offsets(
        &self,
        env: TxnEnv<'_>,
        m: &TransactionMetadata,
        now_ms: i64,
    ) -> Result<()> {
        let commit = m.state == TxnState::PrepareCommit;
        let kind = if commit {
            MarkerKind::Commit
        } else {
            MarkerKind::Abort
        };
        for (topic, index) in &m.partitions {
            // A partition deleted meanwhile has nothing left to mark.
            let Some(p) = env.topics.partition(topic, *index) else {
                continue;
            };
            match p.append_marker(kind, m.producer_id, m.producer_epoch, COORDINATOR_EPOCH) {
                Ok(_) => {}
                // A newer epoch already wrote here: this transaction's data, if any, was ended
                // by that producer's fencing; retrying would never succeed.
                Err(BrokerError::InvalidProducerEpoch { .. }) => {
                    tracing::warn!(partition = %p.tp, producer_id = m.producer_id,
                                   "skipping a marker older than the partition's producer epoch");
                }
                // An admin's WriteTxnMarkers (`transactions abort`) with a higher coordinator
                // epoch already ended the transaction here.
                Err(BrokerError::TransactionCoordinatorFenced { .. }) => {
                    tracing::warn!(partition = %p.tp, producer_id = m.producer_id,
                                   "skipping a marker older than the partition's coordinator epoch");
                }
                Err(e) => return Err(e),
            }
        }
        if commit {
            for (group, offsets) in &m.groups {
                let offsets = offsets
                    .iter()
                    .map(|((topic, partition), o)| TxnCommittedOffset {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                    })
                    .collect();
                env.groups.commit_txn_offsets(group, offsets, now_ms)?;
            }
        }
        Ok(())
    }

    /// Completes every decided transaction (on start: a crash between the decision and the
    /// last marker; later: a marker write that failed).
    pub fn complete_pending(&self, env: TxnEnv<'_>, now_ms: i64) {
        let decided: Vec<String> = {
            let inner = self.inner.lock();
            inner
                .txns
                .values()
                .filter(|m| {
                    m.state.is_preparing() && !inner.completing.contains(&m.transactional_id)
                })
                .map(|m| m.transactional_id.clone())
                .collect()
        };
        for id in decided {
            if let Err(e) = self.complete(env, &id, now_ms) {
                tracing::warn!(transactional_id = %id, error = %e, "completing a transaction failed; will retry");
            }
        }
    }

    /// Aborts every transaction past its timeout, bumping the epoch so that its producer is
    /// fenced (Kafka's `abortTimedOutTransactions`). Returns how many were aborted.
    pub fn abort_timed_out(&self, env: TxnEnv<'_>, now_ms: i64) -> usize {
        let timed_out: Vec<String> = {
            let mut inner = self.inner.lock();
            let ids: Vec<TransactionMetadata> = inner
                .txns
                .values()
                .filter(|m| {
                    m.is_timed_out(now_ms) && !inner.completing.contains(&m.transactional_id)
                })
                .cloned()
                .collect();
            ids.into_iter()
                .filter_map(|m| {
                    tracing::info!(transactional_id = %m.transactional_id, producer_id = m.producer_id,
                                   "transaction timed out; aborting it and fencing its producer");
                    self.decide(&mut inner, &m.fenced(), false, false, now_ms).ok().flatten()
                })
                .collect()
        };
        let count = timed_out.len();
        for id in timed_out {
            if let Err(e) = self.complete(env, &id, now_ms) {
                tracing::warn!(transactional_id = %id, error = %e, "aborting a timed-out transaction failed; will retry");
            }
        }
        count
    }

    /// Forgets ids idle past `transactional.id.expiration.ms`. Returns how many.
    pub fn expire_ids(&self, now_ms: i64) -> usize {
        let mut inner = self.inner.lock();
        let expired: Vec<TransactionMetadata> = inner
            .txns
            .values()
            .filter(|m| m.is_expired(now_ms, self.config.id_expiration_ms))
            .cloned()
            .collect();
        let mut count = 0;
        for mut m in expired {
            m.state = TxnState::Dead;
            m.last_update_ms = now_ms;
            match self.persist(&mut inner, m, true) {
                Ok(()) => count += 1,
                Err(e) => tracing::warn!(error = %e, "expiring a transactional id failed"),
            }
        }
        count
    }

    /// Produce verification: the producer's transaction must be ongoing, at this epoch, with
    /// the partition in it.
    pub fn verify_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<()> {
        let fail = |reason: String| BrokerError::InvalidTxnState {
            partition: format!("{topic}-{partition}"),
            producer_id,
            reason,
        };
        let producers = self.producers.read();
        let m = producers
            .get(&producer_id)
            .ok_or_else(|| fail("no transactional id owns this producer id".into()))?;
        if epoch < m.epoch {
            return Err(BrokerError::InvalidProducerEpoch {
                partition: format!("{topic}-{partition}"),
                producer_id,
                epoch,
                current_epoch: m.epoch,
            });
        }
        if epoch != m.epoch || m.state != TxnState::Ongoing {
            return Err(fail(format!(
                "transaction is {} at epoch {}",
                m.state.name(),
                m.epoch
            )));
        }
        if !m.partitions.contains(&(topic.to_string(), partition)) {
            return Err(fail("partition was not added to the transaction".into()));
        }
        Ok(())
    }

    /// Whether a transaction holds an uncommitted offset for the group's partition
    /// (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.inner.lock().txns.values().any(|m| {
            matches!(m.state, TxnState::Ongoing | TxnState::PrepareCommit)
                && m.pending_offsets(group)
                    .is_some_and(|o| o.contains_key(&key))
        })
    }

    /// One id's state (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<TransactionMetadata> {
        self.inner.lock().txns.get(transactional_id).cloned()
    }

    /// Every id's state (ListTransactions), by id.
    pub fn list(&self) -> Vec<TransactionMetadata> {
        let mut all: Vec<_> = self.inner.lock().txns.values().cloned().collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }
}

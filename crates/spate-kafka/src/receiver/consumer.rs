//! The receiver's consumers and their group bookkeeping: the rdkafka [`ConsumerContext`] that
//! commits before partitions are revoked, and [`ConsumerGroupState`], shared by the consumer
//! threads of one receiver and its block listener, which knows which consumer owns which
//! partition and commits through it.
//!
//! Why commit through the owning consumer: an OffsetCommit carries the member id and generation
//! of the consumer that sends it, and the coordinator only accepts it from a current member, so
//! the commit must come from a consumer that is in the group — and the owner is the one whose
//! commit is meaningful to the group (lag monitoring, the next owner's start position).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::OffsetBook;
use crate::TopicPartition;

/// A consumer of a Kafka receiver.
pub type ReceiverConsumer = BaseConsumer<ReceiverConsumerContext>;

/// State shared by the consumers of one receiver. See the module docs.
pub struct ConsumerGroupState {
    group: String,
    /// Present in reliable mode: which offsets are durable.
    book: Option<Arc<OffsetBook>>,
    flush_timeout: Duration,
    consumers: Mutex<BTreeMap<usize, Arc<ReceiverConsumer>>>,
    assignments: Mutex<BTreeMap<usize, BTreeSet<TopicPartition>>>,
    committed: Mutex<BTreeMap<TopicPartition, i64>>,
    commit_failures: Mutex<Vec<String>>,
}

impl std::fmt::Debug for ConsumerGroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroupState")
            .field("group", &self.group)
            .field(
                "consumers",
                &self.consumers.lock().keys().collect::<Vec<_>>(),
            )
            .field("assignments", &*self.assignments.lock())
            .finish_non_exhaustive()
    }
}

impl ConsumerGroupState {
    pub(crate) fn new(group: &str, book: Option<Arc<OffsetBook>>, flush_timeout: Duration) -> Self {
        ConsumerGroupState {
            group: group.to_owned(),
            book,
            flush_timeout,
            consumers: Mutex::new(BTreeMap::new()),
            assignments: Mutex::new(BTreeMap::new()),
            committed: Mutex::new(BTreeMap::new()),
            commit_failures: Mutex::new(Vec::new()),
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    pub(crate) fn register(&self, index: usize, consumer: Arc<ReceiverConsumer>) {
        let _ = self.consumers.lock().insert(index, consumer);
    }

    pub(crate) fn unregister(&self, index: usize) {
        let _ = self.consumers.lock().remove(&index);
        let _ = self.assignments.lock().remove(&index);
    }

    /// Partitions currently assigned to the receiver's consumers.
    pub fn assigned_partitions(&self) -> BTreeSet<TopicPartition> {
        self.assignments
            .lock()
            .values()
            .flat_map(|s| s.iter().cloned())
            .collect()
    }

    /// Partitions assigned to consumer `index`.
    pub(crate) fn assigned_to(&self, index: usize) -> Vec<TopicPartition> {
        self.assignments
            .lock()
            .get(&index)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Offsets this receiver committed successfully (next offset to read, per partition).
    pub fn committed(&self) -> BTreeMap<TopicPartition, i64> {
        self.committed.lock().clone()
    }

    /// Commit failures so far (they cost duplicates after a restart, never data).
    pub fn commit_failures(&self) -> Vec<String> {
        self.commit_failures.lock().clone()
    }

    /// Commits `offsets` (durable next offsets) through the consumers that own the partitions,
    /// asynchronously. Partitions no consumer of this receiver owns any more are skipped: the
    /// revoke already committed what was durable, and the new owner moves on from there.
    pub(crate) fn commit_durable(&self, offsets: &BTreeMap<TopicPartition, i64>) {
        let owners: Vec<(usize, Vec<(TopicPartition, i64)>)> = {
            let assignments = self.assignments.lock();
            assignments
                .iter()
                .map(|(index, owned)| {
                    let mine = offsets
                        .iter()
                        .filter(|(tp, _)| owned.contains(*tp))
                        .map(|(tp, o)| (tp.clone(), *o))
                        .collect::<Vec<_>>();
                    (*index, mine)
                })
                .filter(|(_, mine)| !mine.is_empty())
                .collect()
        };
        for (index, mine) in owners {
            let consumer = self.consumers.lock().get(&index).cloned();
            if let Some(consumer) = consumer {
                self.commit(&consumer, &mine, CommitMode::Async);
            }
        }
    }

    fn commit(
        &self,
        consumer: &ReceiverConsumer,
        offsets: &[(TopicPartition, i64)],
        mode: CommitMode,
    ) {
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in offsets {
            if let Err(e) = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
            {
                tracing::warn!(group = %self.group, topic = %tp.topic, partition = tp.partition, error = %e, "cannot build commit");
                return;
            }
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) if matches!(mode, CommitMode::Sync) => {
                self.committed_ok(offsets.iter().cloned())
            }
            Ok(()) => {}
            Err(e) => self.commit_failed(&e.to_string()),
        }
    }

    fn committed_ok(&self, offsets: impl IntoIterator<Item = (TopicPartition, i64)>) {
        let mut committed = self.committed.lock();
        for (tp, o) in offsets {
            tracing::trace!(group = %self.group, topic = %tp.topic, partition = tp.partition, offset = o, "committed");
            let _ = committed.insert(tp, o);
        }
    }

    fn commit_failed(&self, error: &str) {
        tracing::warn!(group = %self.group, %error, "offset commit failed (records may be re-read after a restart)");
        let mut failures = self.commit_failures.lock();
        if failures.len() < 100 {
            failures.push(error.to_owned());
        }
    }

    /// Waits until what consumer `index` handed over for `tps` is durable, then commits it
    /// synchronously through `consumer`. Called before partitions are revoked and before a
    /// consumer leaves the group.
    pub(crate) fn flush_and_commit(&self, consumer: &ReceiverConsumer, tps: &[TopicPartition]) {
        let Some(book) = &self.book else {
            return;
        };
        if tps.is_empty() {
            return;
        }
        let offsets: Vec<_> = book
            .wait_durable(tps, self.flush_timeout)
            .into_iter()
            .collect();
        tracing::debug!(group = %self.group, ?offsets, "committing stored offsets before giving partitions up");
        self.commit(consumer, &offsets, CommitMode::Sync);
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

/// The rdkafka context of consumer `index` of a receiver.
#[derive(Debug)]
pub struct ReceiverConsumerContext {
    index: usize,
    state: Arc<ConsumerGroupState>,
}

impl ReceiverConsumerContext {
    pub(crate) fn new(index: usize, state: Arc<ConsumerGroupState>) -> Self {
        ReceiverConsumerContext { index, state }
    }
}

impl ClientContext for ReceiverConsumerContext {}

impl ConsumerContext for ReceiverConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let revoked = partitions(tpl);
                tracing::info!(group = %self.state.group, consumer = self.index, ?revoked, "partitions revoked");
                // Still a member of the current generation here: commit what is stored now, so
                // the next owner starts after it instead of re-reading it.
                self.state.flush_and_commit(consumer, &revoked);
                let mut assignments = self.state.assignments.lock();
                if let Some(owned) = assignments.get_mut(&self.index) {
                    for tp in &revoked {
                        let _ = owned.remove(tp);
                    }
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.state.group, consumer = self.index, error = %e, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned = partitions(tpl);
            tracing::info!(group = %self.state.group, consumer = self.index, ?assigned, "partitions assigned");
            self.state
                .assignments
                .lock()
                .entry(self.index)
                .or_default()
                .extend(assigned);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self
                .state
                .committed_ok(offsets.elements().iter().filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                    _ => None,
                })),
            Err(e) => self.state.commit_failed(&e.to_string()),
        }
    }
}

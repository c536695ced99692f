//! [`KafkaOffsetStore`]: the job's consumer group as the store of its offsets, for outputs that
//! write to Kafka in a transaction ([`super::kafka`]). The contract is [`super::SqliteOffsetStore`]'s:
//! the batch's offsets are committed atomically with its outputs (here by
//! `send_offsets_to_transaction` inside the output's Kafka transaction), a restarted job starts
//! from the committed offsets, a replayed batch that the group already covers is skipped, and a
//! gap or an overlap is refused naming the partition and the offsets.
//!
//! The committed offsets are read with `isolation.level=read_committed`, which makes the
//! client send OffsetFetch with `require_stable` (KIP-447): while a transactional offset commit
//! is pending the broker answers UNSTABLE_OFFSET_COMMIT and the client retries, so a restart
//! never starts from offsets whose transaction may still abort. After the first read, the store
//! keeps the offsets in memory and advances them when a transaction commits: its output's
//! producer is the only writer of the group's offsets (a zombie with the same
//! `transactional.id` is fenced), so re-reading them per batch would only cost a round trip.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::{Offset, TopicPartitionList};

use super::offset_check::{judge, Verdict};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::direct::strategy::ConsumerStrategy;
use crate::error::{Result, SpateKafkaError};

/// How long a read of the group's committed offsets may take, retries of
/// UNSTABLE_OFFSET_COMMIT included (a pending transaction resolves within its timeout).
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(60);

/// The offsets of one job in its Kafka consumer group (see the module docs).
pub struct KafkaOffsetStore {
    consumer: BaseConsumer,
    params: KafkaParams,
    group: String,
    /// The group's committed offsets as far as known: read once per partition, then advanced
    /// by committed transactions. `None` marks a partition the group has no offset for.
    known: BTreeMap<TopicPartition, Option<i64>>,
}

impl std::fmt::Debug for KafkaOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOffsetStore")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl KafkaOffsetStore {
    /// Opens the store of the group named by `group.id` in `params` (required: the group is
    /// the job's identity, and the output's `transactional.id` is derived from it).
    pub fn open(params: KafkaParams) -> Result<Self> {
        let group = params
            .group_id()
            .ok_or_else(|| SpateKafkaError::InvalidConfig {
                key: "group.id".into(),
                value: String::new(),
                reason: "a KafkaOffsetStore stores the job's offsets in its consumer group".into(),
            })?
            .to_owned();
        let mut config = params.driver_config()?;
        // `require_stable` on OffsetFetch: never start from a commit that may still abort.
        config.set("isolation.level", "read_committed");
        let consumer: BaseConsumer =
            config
                .create()
                .map_err(|source| SpateKafkaError::CreateConsumer {
                    group: group.clone(),
                    source: Box::new(source),
                })?;
        Ok(KafkaOffsetStore {
            consumer,
            params,
            group,
            known: BTreeMap::new(),
        })
    }

    /// The consumer group (the job's name).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The Kafka settings the store was opened with.
    pub fn params(&self) -> &KafkaParams {
        &self.params
    }

    /// The `transactional.id` of the job's output named `output`: `<group>-<output>`, the same
    /// on every run, so a restarted job fences the producer of its predecessor.
    pub fn transactional_id(&self, output: &str) -> String {
        format!("{}-{output}", self.group)
    }

    /// The group's metadata for `send_offsets_to_transaction`. The store's consumer never
    /// joins the group (the direct stream assigns partitions itself), so the metadata carries
    /// generation -1 and no member id: the broker then accepts the commit only while the group
    /// has no active members, and a consumer joining the group cannot be overwritten silently.
    pub(crate) fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        self.consumer
            .group_metadata()
            .ok_or_else(|| SpateKafkaError::InvalidConfig {
                key: "group.id".into(),
                value: self.group.clone(),
                reason: "the consumer has no group metadata".into(),
            })
    }

    /// The group's committed offsets for `partitions` (partitions without a commit are left
    /// out): the starting offsets of a resumed stream.
    pub fn committed_offsets(
        &mut self,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let partitions: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        self.learn(&partitions)?;
        Ok(partitions
            .into_iter()
            .filter_map(|tp| self.known.get(&tp).copied().flatten().map(|o| (tp, o)))
            .collect())
    }

    /// `Assign(partitions)` starting at the group's committed offsets (partitions without one
    /// start from `auto.offset.reset`): the strategy a job restarting from this store uses.
    pub fn assign_strategy(
        &mut self,
        partitions: impl IntoIterator<Item = TopicPartition>,
        params: KafkaParams,
    ) -> Result<ConsumerStrategy> {
        let partitions: Vec<TopicPartition> = partitions.into_iter().collect();
        let offsets = self.committed_offsets(partitions.iter().cloned())?;
        Ok(ConsumerStrategy::assign(partitions, params).with_offsets(offsets))
    }

    /// Checks a batch's ranges against the committed offsets: `None` when the group already
    /// covers the batch (skip it), else the offsets to commit with the batch's outputs.
    pub(crate) fn plan_commit(
        &mut self,
        ranges: &[OffsetRange],
    ) -> Result<Option<BTreeMap<TopicPartition, i64>>> {
        let tps: BTreeSet<TopicPartition> = ranges.iter().map(|r| r.topic_partition()).collect();
        self.learn(&tps)?;
        let stored: BTreeMap<TopicPartition, i64> = tps
            .iter()
            .filter_map(|tp| {
                self.known
                    .get(tp)
                    .copied()
                    .flatten()
                    .map(|o| (tp.clone(), o))
            })
            .collect();
        Ok(match judge(&self.group, &stored, ranges)? {
            Verdict::Applied => None,
            Verdict::New(advance) => Some(advance),
        })
    }

    /// Records offsets committed by a transaction of this job.
    pub(crate) fn committed(&mut self, advance: &BTreeMap<TopicPartition, i64>) {
        for (tp, o) in advance {
            self.known.insert(tp.clone(), Some(*o));
        }
    }

    /// Forgets what the store knows, so the next batch re-reads the group (after a failed
    /// transaction whose outcome is unknown).
    pub(crate) fn forget(&mut self) {
        self.known.clear();
    }

    /// Reads the committed offsets of the partitions not known yet.
    fn learn(&mut self, partitions: &BTreeSet<TopicPartition>) -> Result<()> {
        let unknown: Vec<&TopicPartition> = partitions
            .iter()
            .filter(|tp| !self.known.contains_key(*tp))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in &unknown {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let got = self
            .consumer
            .committed_offsets(tpl, COMMITTED_TIMEOUT)
            .map_err(|source| SpateKafkaError::Client {
                operation: format!("reading the committed offsets of group {}", self.group),
                source,
            })?;
        for e in got.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            self.known
                .insert(TopicPartition::new(e.topic(), e.partition()), offset);
        }
        Ok(())
    }
}

/// The offsets to commit, as the client's partition list.
pub(crate) fn offsets_tpl(advance: &BTreeMap<TopicPartition, i64>) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (tp, o) in advance {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o))
            .map_err(|source| SpateKafkaError::Client {
                operation: format!("listing offset {o} of {tp}"),
                source,
            })?;
    }
    Ok(tpl)
}

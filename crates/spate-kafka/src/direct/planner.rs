//! [`OffsetPlanner`]: the driver side of the direct stream — decides each batch's offset ranges
//! before any record is read (Spark's `DirectKafkaInputDStream.compute`), so the plan can be
//! checkpointed and a replay reads the same ranges.
//!
//! For every batch it lists the subscription's partitions (new partitions join here), asks the
//! broker for each partition's earliest and latest offsets (ListOffsets; no poll loop), checks
//! that the stream's position is still in the log (data loss), clamps by the rate limits
//! ([`crate::direct::clamp`]) and emits one `[current, until)` range per partition, ranges of
//! consecutive batches being contiguous.
//!
//! Starting offsets of a partition the stream has not seen: explicit (strategy) > committed
//! (group) > `auto.offset.reset` — and a partition discovered *after* the first batch starts at
//! its earliest offset, because records written before discovery belong to the stream
//! (Spark would apply `auto.offset.reset=latest` and silently skip them).
//!
//! Group-managed ([`crate::direct::group`]): a batch covers only the partitions this instance
//! owns when it is planned, and the plan records them ([`DirectPlan::owned`]). A partition that
//! left is forgotten; when it is assigned again it starts afresh — from the job's offset store
//! (the [`RebalanceListener`]), else from the group's committed offsets — because another
//! instance may have advanced it meanwhile. A partition that left and came back between two
//! plans is noticed by its new incarnation and starts afresh too.
//!
//! With keyed state partitioned by task ([`TaskStates`], one task per partition number), the
//! planner is where a task changes hands: a partition that left drops its task's state (its
//! batches have committed: a cooperative revocation waits for them; a restore still running is
//! cancelled), and a partition that joins has its task's state restored from the changelog once
//! its starting offset is known. The starting offset comes first: reading it `read_committed`
//! waits until the previous owner's pending transaction settles, so the changelog then holds
//! every change up to that offset. The restore runs in the background: batches keep covering
//! the partitions this instance already owned, and the joined partition stays out of every
//! batch (and out of the plan's owned set) until its task's restore is done, so its first batch
//! sees the restored state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spate_streaming::TaskStates;

use crate::direct::clamp::{clamp, estimated_rate};
use crate::direct::config::DirectStreamConfig;
use crate::direct::driver::{DriverClient, Watermarks};
use crate::direct::group::{GroupMember, OwnedPartitions, RebalanceListener};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::AutoOffsetReset;
use crate::direct::strategy::{ConsumerStrategy, Subscription};
use crate::error::{Result, SpateKafkaError};

/// Offsets the planner had to skip because retention deleted them
/// (only with `fail_on_data_loss(false)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostOffsets {
    /// The topic of the partition.
    pub topic: String,
    /// The partition that lost offsets.
    pub partition: i32,
    /// Where the stream was.
    pub requested_from: i64,
    /// Where it resumed (the earliest available offset).
    pub resumed_from: i64,
}

impl LostOffsets {
    /// How many offsets were skipped: `resumed_from − requested_from`.
    pub fn count(&self) -> u64 {
        u64::try_from(self.resumed_from - self.requested_from).unwrap_or(0)
    }
}

/// One batch's plan: its ranges (one per partition, in partition order) and any reported loss.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectPlan {
    /// One range per partition, in partition order.
    pub ranges: Vec<OffsetRange>,
    /// Partitions whose planned start had been deleted by retention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<LostOffsets>,
    /// Group-managed streams: the partitions this instance owned when it planned the batch
    /// (`None` for other strategies, and in checkpoints written before group management).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned: Option<Vec<TopicPartition>>,
}

impl DirectPlan {
    /// Offsets planned (an upper bound on records; gaps make it smaller).
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(OffsetRange::count).sum()
    }
}

/// Kafka's `ListOffsets` sentinel for the earliest offset, accepted as an explicit starting
/// offset.
pub const EARLIEST: i64 = -2;
/// Kafka's `ListOffsets` sentinel for the latest offset, accepted as an explicit starting offset.
pub const LATEST: i64 = -1;

/// Plans a direct stream's batches. See the module docs.
pub struct OffsetPlanner {
    strategy: ConsumerStrategy,
    config: DirectStreamConfig,
    client: DriverClient,
    current: BTreeMap<TopicPartition, i64>,
    batches_planned: u64,
    member: Option<Arc<GroupMember>>,
    listener: Option<Arc<dyn RebalanceListener>>,
    /// Group-managed: the incarnation each tracked partition was planned from.
    incarnations: BTreeMap<TopicPartition, u64>,
    /// Group-managed with state partitioned by task: restored and dropped as partitions move.
    task_states: Option<TaskStates>,
    /// Joined partitions whose task's state is still being restored: in no batch yet.
    restoring: BTreeSet<TopicPartition>,
}

impl std::fmt::Debug for OffsetPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetPlanner")
            .field("strategy", &self.strategy)
            .field("current", &self.current)
            .field("batches_planned", &self.batches_planned)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl OffsetPlanner {
    /// A planner for `strategy`'s partitions; fails on invalid rate settings or
    /// `auto.offset.reset`, or when the driver's consumer cannot be created.
    pub fn new(strategy: ConsumerStrategy, config: DirectStreamConfig) -> Result<Self> {
        config.per_partition.validate()?;
        strategy.params.auto_offset_reset()?;
        let client = DriverClient::new(&strategy.params, &config)?;
        Ok(OffsetPlanner {
            strategy,
            config,
            client,
            current: BTreeMap::new(),
            batches_planned: 0,
            member: None,
            listener: None,
            incarnations: BTreeMap::new(),
            task_states: None,
            restoring: BTreeSet::new(),
        })
    }

    /// Makes the planner group-managed: committed offsets are read through `member`.
    pub fn set_group_member(&mut self, member: Arc<GroupMember>) {
        self.member = Some(member);
    }

    /// Where newly owned partitions of a group-managed stream start (see the module docs).
    pub fn set_rebalance_listener(&mut self, listener: Arc<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Restores and drops the state of tasks as this group-managed instance gains and loses
    /// partitions (see the module docs).
    pub fn set_task_states(&mut self, task_states: TaskStates) {
        self.task_states = Some(task_states);
    }

    /// The input stops: task restores still running are cancelled.
    pub fn stop(&self) {
        if let Some(ts) = &self.task_states {
            ts.stop();
        }
    }

    /// The next offset to read per partition (the `until` of the last planned batch).
    pub fn current_offsets(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.current
    }

    /// Moves the position past a batch planned earlier (after a restart: recorded plans are
    /// replayed in order). Idempotent: sets, never adds.
    pub fn advance_past(&mut self, ranges: &[OffsetRange]) {
        for r in ranges {
            self.current.insert(r.topic_partition(), r.until_offset);
        }
        if !ranges.is_empty() {
            self.batches_planned = self.batches_planned.max(1);
        }
    }

    /// The driver's metadata and offsets client.
    pub fn client(&self) -> &DriverClient {
        &self.client
    }

    /// Plans the next batch of `batch_interval`. `backpressure_rate` is the rate controller's
    /// latest estimate (−1 before it has one); it is ignored unless backpressure is on.
    ///
    /// Phases: the partitions and their watermarks; new partitions join at their starting
    /// offsets; positions outside the log fail the batch or skip to the earliest offset; the
    /// rate clamp decides how far each partition advances.
    pub fn plan_next(
        &mut self,
        backpressure_rate: Option<i64>,
        batch_interval: Duration,
    ) -> Result<DirectPlan> {
        self.plan_owned(backpressure_rate, batch_interval, None)
    }

    /// [`Self::plan_next`] for a group-managed stream: the batch covers `owned.plannable` only
    /// (`None`: the subscription's partitions); partitions that left, or left and came back
    /// (a new incarnation), are forgotten.
    pub fn plan_owned(
        &mut self,
        backpressure_rate: Option<i64>,
        batch_interval: Duration,
        owned: Option<&OwnedPartitions>,
    ) -> Result<DirectPlan> {
        let mut current = self.current.clone();
        if let Some(owned) = owned {
            self.forget_moved(&mut current, owned);
        }
        let plannable: Option<BTreeSet<TopicPartition>> =
            owned.map(|o| o.plannable.keys().cloned().collect());
        let watermarks = self.watermarks(&mut current, plannable.as_ref())?;
        let joined = self.join_new_partitions(&mut current, &watermarks)?;
        if let Some(owned) = owned {
            self.take_over(&joined, owned)?;
        }
        let lost = self.check_positions(&mut current, &watermarks)?;
        let rate = estimated_rate(
            backpressure_rate.filter(|_| self.config.backpressure),
            self.config.initial_rate,
            self.batches_planned == 0,
        );
        let ready = self.restored(&current)?;
        let ranges = self.clamped_ranges(&ready, &watermarks, rate, batch_interval);
        for r in &ranges {
            current.insert(r.topic_partition(), r.until_offset);
        }
        self.current = current;
        self.batches_planned += 1;
        tracing::debug!(
            ranges = ranges.len(),
            offsets = ranges.iter().map(OffsetRange::count).sum::<u64>(),
            ?rate,
            "batch planned"
        );
        let restoring = &self.restoring;
        Ok(DirectPlan {
            ranges,
            lost,
            owned: plannable.map(|o| o.into_iter().filter(|tp| !restoring.contains(tp)).collect()),
        })
    }

    /// Forgets the position of partitions a new batch may not cover, or that came back in a
    /// new incarnation (they start afresh when planned again), and drops the state of tasks
    /// whose partition is no longer owned in the incarnation their state was restored for.
    /// A partition being revoked keeps its state until it leaves: its last batches still run.
    fn forget_moved(
        &mut self,
        current: &mut BTreeMap<TopicPartition, i64>,
        owned: &OwnedPartitions,
    ) {
        let moved: Vec<TopicPartition> = current
            .keys()
            .filter(
                |tp| match (owned.plannable.get(*tp), self.incarnations.get(*tp)) {
                    (None, _) => true,
                    (Some(now), Some(then)) => now != then,
                    // Positioned from a checkpoint before this process saw the group: kept.
                    (Some(_), None) => false,
                },
            )
            .cloned()
            .collect();
        for tp in &moved {
            // Kept out of `self.current` too: a plan that fails later must not bring them back.
            current.remove(tp);
            self.current.remove(tp);
            self.restoring.remove(tp);
        }
        for tp in current.keys() {
            if let Some(&i) = owned.plannable.get(tp) {
                self.incarnations.entry(tp.clone()).or_insert(i);
            }
        }
        let gone: Vec<TopicPartition> = self
            .incarnations
            .iter()
            .filter(|(tp, i)| owned.owned.get(*tp) != Some(*i))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &gone {
            self.incarnations.remove(tp);
            self.restoring.remove(tp);
        }
        if let Some(ts) = &self.task_states {
            ts.revoked(&tasks_of(&gone));
        }
    }

    /// Partitions that joined this instance: their incarnations, and their tasks' state (its
    /// restore starts in the background; they join batches once it is done).
    fn take_over(&mut self, joined: &[TopicPartition], owned: &OwnedPartitions) -> Result<()> {
        for tp in joined {
            if let Some(&i) = owned.plannable.get(tp) {
                self.incarnations.insert(tp.clone(), i);
            }
        }
        if let Some(ts) = &self.task_states {
            ts.assigned(&tasks_of(joined))?;
            self.restoring.extend(joined.iter().cloned());
        }
        Ok(())
    }

    /// The positions a batch may cover now: those of partitions whose task's state is
    /// restored (a failed restore fails the plan).
    fn restored(
        &mut self,
        current: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if let Some(ts) = &self.task_states {
            let mut done = Vec::new();
            for tp in &self.restoring {
                if let Ok(task) = usize::try_from(tp.partition) {
                    if ts.restored(task)? {
                        done.push(tp.clone());
                    }
                }
            }
            for tp in done {
                tracing::info!(%tp, "state restored; the partition joins the batches");
                self.restoring.remove(&tp);
            }
        }
        Ok(current
            .iter()
            .filter(|(tp, _)| !self.restoring.contains(*tp))
            .map(|(tp, &o)| (tp.clone(), o))
            .collect())
    }

    /// Watermarks of every partition of the subscription, and of every tracked one.
    ///
    /// A tracked partition missing from the metadata may be a transient metadata error (leader
    /// election) or a deleted topic. Dropping it on a transient error would make it "new" again
    /// next batch and re-read it from its starting offset, so keep asking for its offsets; only
    /// the broker saying it does not exist removes it (from `current`).
    fn watermarks(
        &self,
        current: &mut BTreeMap<TopicPartition, i64>,
        owned: Option<&BTreeSet<TopicPartition>>,
    ) -> Result<BTreeMap<TopicPartition, Watermarks>> {
        let mut partitions = match owned {
            Some(owned) => owned.clone(),
            None => self.client.partitions(&self.strategy.subscription)?,
        };
        let assigned =
            owned.is_some() || matches!(self.strategy.subscription, Subscription::Assign(_));
        if !assigned {
            partitions.extend(current.keys().cloned());
        }
        let mut watermarks = BTreeMap::new();
        for tp in &partitions {
            match self.client.watermarks(tp) {
                Ok(w) => {
                    watermarks.insert(tp.clone(), w);
                }
                Err(SpateKafkaError::UnknownTopicOrPartition { .. })
                    if !assigned && current.contains_key(tp) =>
                {
                    tracing::warn!(%tp, position = current[tp],
                        "partition no longer exists (topic deleted?); it is not read any more");
                    current.remove(tp);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(watermarks)
    }

    /// Partitions with watermarks but no position join the stream at their starting offsets;
    /// returns them.
    fn join_new_partitions(
        &self,
        current: &mut BTreeMap<TopicPartition, i64>,
        watermarks: &BTreeMap<TopicPartition, Watermarks>,
    ) -> Result<Vec<TopicPartition>> {
        let new: BTreeSet<TopicPartition> = watermarks
            .keys()
            .filter(|tp| !current.contains_key(*tp))
            .cloned()
            .collect();
        if !new.is_empty() {
            let starts = self.starting_offsets(&new, watermarks)?;
            for (tp, o) in starts {
                tracing::info!(%tp, offset = o, "partition joins the stream");
                current.insert(tp, o);
            }
        }
        Ok(new.into_iter().collect())
    }

    /// A position outside `[earliest, latest]` of its partition fails the batch
    /// (`fail_on_data_loss`) or moves to the earliest offset, reporting what was skipped.
    fn check_positions(
        &self,
        current: &mut BTreeMap<TopicPartition, i64>,
        watermarks: &BTreeMap<TopicPartition, Watermarks>,
    ) -> Result<Vec<LostOffsets>> {
        let mut lost = Vec::new();
        for (tp, w) in watermarks {
            let Some(pos) = current.get_mut(tp) else {
                continue;
            };
            if *pos >= w.earliest && *pos <= w.latest {
                continue;
            }
            if self.config.fail_on_data_loss {
                return Err(SpateKafkaError::OffsetsOutOfRange {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    requested_from: *pos,
                    requested_until: w.latest.max(*pos),
                    available_start: w.earliest,
                    available_end: w.latest,
                });
            }
            tracing::warn!(%tp, position = *pos, earliest = w.earliest, latest = w.latest,
                "stream position is outside the log; resuming at the earliest offset (fail_on_data_loss=false)");
            if *pos < w.earliest {
                lost.push(LostOffsets {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    requested_from: *pos,
                    resumed_from: w.earliest,
                });
            }
            *pos = w.earliest;
        }
        Ok(lost)
    }

    /// The batch's ranges: from each position to where Spark's rate clamp lets it advance.
    fn clamped_ranges(
        &self,
        current: &BTreeMap<TopicPartition, i64>,
        watermarks: &BTreeMap<TopicPartition, Watermarks>,
        rate: Option<f64>,
        batch_interval: Duration,
    ) -> Vec<OffsetRange> {
        let latest: BTreeMap<TopicPartition, i64> = watermarks
            .iter()
            .map(|(tp, w)| (tp.clone(), w.latest))
            .collect();
        let until = clamp(
            current,
            &latest,
            rate,
            batch_interval.as_secs_f64(),
            &self.config.per_partition,
        );
        until
            .iter()
            .filter_map(|(tp, &u)| {
                let from = *current.get(tp)?;
                Some(OffsetRange::create(
                    tp.topic.clone(),
                    tp.partition,
                    from,
                    u.max(from),
                ))
            })
            .collect()
    }

    fn starting_offsets(
        &self,
        new: &BTreeSet<TopicPartition>,
        watermarks: &BTreeMap<TopicPartition, Watermarks>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut out = BTreeMap::new();
        let mut rest = BTreeSet::new();
        // The job's offset store is the truth for partitions a group assigned to this instance.
        let stored = match &self.listener {
            Some(l) => l.on_partitions_assigned(&new.iter().cloned().collect::<Vec<_>>())?,
            None => BTreeMap::new(),
        };
        for tp in new {
            let w = watermarks[tp];
            if let Some(&o) = stored.get(tp) {
                out.insert(tp.clone(), o);
                continue;
            }
            match self.strategy.offsets.get(tp) {
                Some(&EARLIEST) => {
                    out.insert(tp.clone(), w.earliest);
                }
                Some(&LATEST) => {
                    out.insert(tp.clone(), w.latest);
                }
                Some(&o) => {
                    out.insert(tp.clone(), o);
                }
                None => {
                    rest.insert(tp.clone());
                }
            }
        }
        let committed = match &self.member {
            Some(m) => m.committed(&rest)?,
            None => self.client.committed(&rest)?,
        };
        let first_batch = self.batches_planned == 0;
        let reset = self.strategy.params.auto_offset_reset()?;
        for tp in rest {
            let w = watermarks[&tp];
            let start = match committed.get(&tp) {
                Some(&o) => o,
                None if !first_batch => w.earliest,
                None => match reset {
                    AutoOffsetReset::Earliest => w.earliest,
                    AutoOffsetReset::Latest => w.latest,
                    AutoOffsetReset::None => {
                        return Err(SpateKafkaError::config(
                            "auto.offset.reset",
                            "none",
                            format!("{tp} has no explicit starting offset and no committed offset in the group"),
                        ))
                    }
                },
            };
            out.insert(tp, start);
        }
        Ok(out)
    }

    /// The subscription (for callers that need to know whether partitions can join).
    pub fn subscription(&self) -> &Subscription {
        &self.strategy.subscription
    }
}

/// The tasks of `partitions`: a task is a partition number (one per partition of a
/// co-partitioned subscription).
fn tasks_of(partitions: &[TopicPartition]) -> Vec<usize> {
    let tasks: BTreeSet<usize> = partitions
        .iter()
        .filter_map(|tp| usize::try_from(tp.partition).ok())
        .collect();
    tasks.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_without_owned_partitions_stay_readable_and_owned_ones_round_trip() {
        let old = r#"{"ranges":[{"topic":"t","partition":0,"from_offset":0,"until_offset":5}]}"#;
        let plan: DirectPlan = serde_json::from_str(old).unwrap();
        assert_eq!(plan.owned, None);
        assert!(!serde_json::to_string(&plan).unwrap().contains("owned"));
        let grouped = DirectPlan {
            owned: Some(vec![
                TopicPartition::new("t", 0),
                TopicPartition::new("t", 3),
            ]),
            ..plan
        };
        let json = serde_json::to_string(&grouped).unwrap();
        assert_eq!(serde_json::from_str::<DirectPlan>(&json).unwrap(), grouped);
    }
}

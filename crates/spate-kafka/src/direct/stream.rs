//! The direct stream as an input of the engine ([`KafkaUtils::create_direct_stream`](crate::KafkaUtils::create_direct_stream)).
//!
//! `plan(time)` runs the [`OffsetPlanner`] and returns the batch's [`DirectPlan`], which the
//! engine writes to the checkpoint (as JSON) before the batch runs; `compute(time, plan)` turns the plan
//! into one engine partition per offset range (1:1), each read by a task with a cached consumer.
//! A recovered batch is computed from its recorded plan, so it reads identical ranges;
//! `replayed` and the state snapshot move the planner's position past recorded batches.
//! Backpressure feeds completed batches to Spark's PID estimator.
//!
//! Group-managed ([`ConsumerStrategy::subscribe_group_managed`]): `plan` covers only the
//! partitions this instance owns, registers the batch as in flight over them until
//! `batch_completed` (a cooperative revocation waits for it), and records the owned set in the
//! plan; outputs check before committing that the batch's partitions are still owned
//! ([`DirectKafkaStream::check_owned`]).
//!
//! Listeners see each batch's ranges and lost offsets in its input info; [`DirectBatchInfo`]
//! reads them back, typed, so that no UI depends on the spelling of a JSON key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use spate_streaming::listener::{BatchInfo, InputInfo};
use spate_streaming::rate::{BatchCompleted, PidRateEstimator, RateController};
use spate_streaming::{
    fail_task, DStream, InputContext, InputErrorReporter, InputStream, InputTasks, PartitionIter,
    Partitions, StreamingContext, Time,
};

use crate::direct::commit::{CanCommitOffsets, CommitCallback, CommitResult, OffsetCommitter};
use crate::direct::config::DirectStreamConfig;
use crate::direct::group::{GroupMember, RebalanceCounts, RebalanceListener};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::planner::{DirectPlan, LostOffsets, OffsetPlanner};
use crate::direct::range_stream::RangeRecords;
use crate::direct::reader::KafkaRangeReader;
use crate::direct::rebalance_report::RebalanceReport;
use crate::direct::strategy::{ConsumerStrategy, Subscription};
use crate::error::{Result, SpateKafkaError};
use crate::record::ConsumerRecord;

const KIND: &str = "kafka_direct";
/// Plans kept for `offset_ranges(time)` lookups.
const RETAINED_PLANS: usize = 1000;

/// State shared by the engine-side input and the user's [`DirectKafkaStream`] handle.
struct Shared {
    planner: Mutex<OffsetPlanner>,
    reader: KafkaRangeReader,
    committer: Option<OffsetCommitter>,
    rate: Option<RateController>,
    batch_interval: Duration,
    input_id: Mutex<String>,
    /// Set when the context starts the stream: broker retries are reported to its listeners.
    reporter: Arc<Mutex<Option<InputErrorReporter>>>,
    plans: Mutex<BTreeMap<Time, Vec<OffsetRange>>>,
    lost_offsets: AtomicU64,
    /// The group membership of a group-managed stream.
    member: Option<Arc<GroupMember>>,
    /// What a group-managed stream reports about its membership to the UI and metrics.
    rebalance_report: Option<Arc<RebalanceReport>>,
    /// Set when a group-managed repartition re-keys this stream: the job's tasks are then the
    /// repartition topic's partitions (named here), owned through that topic's assignment, and
    /// this stream's partitions are no tasks (see [`DirectKafkaStream::hand_tasks_to`]).
    tasks_handed_to: OnceLock<String>,
}

impl Shared {
    fn remember(&self, time: Time, ranges: &[OffsetRange]) {
        let mut plans = self.plans.lock();
        plans.insert(time, ranges.to_vec());
        while plans.len() > RETAINED_PLANS {
            plans.pop_first();
        }
    }

    fn report_loss(&self, n: u64, what: &str) {
        if n > 0 {
            self.lost_offsets.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(
                offsets = n,
                "{what}: offsets deleted by retention were skipped (fail_on_data_loss=false)"
            );
        }
    }
}

/// The engine input of a direct stream (see the module docs).
pub struct DirectKafkaInputStream {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DirectKafkaInputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectKafkaInputStream")
            .field("batch_interval", &self.shared.batch_interval)
            .field("lost_offsets", &self.shared.lost_offsets)
            .finish_non_exhaustive()
    }
}

/// The partitions of one batch: partition *i* reads `ranges[i]`.
struct KafkaPartitions {
    shared: Arc<Shared>,
    ranges: Vec<OffsetRange>,
}

impl Partitions<ConsumerRecord> for KafkaPartitions {
    fn num_partitions(&self) -> usize {
        self.ranges.len()
    }

    /// A batch partition's task is its Kafka partition's number (Kafka Streams' tasks) —
    /// none once the tasks were handed to a repartition topic.
    fn task(&self, partition: usize) -> Option<usize> {
        if self.shared.tasks_handed_to.get().is_some() {
            return None;
        }
        let range = self.ranges.get(partition)?;
        usize::try_from(range.partition).ok()
    }

    fn compute(
        &self,
        partition: usize,
    ) -> spate_streaming::Result<PartitionIter<'_, ConsumerRecord>> {
        let Some(range) = self.ranges.get(partition) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let records = self.shared.reader.stream_planned(range)?;
        Ok(Box::new(PartitionRecords {
            records,
            shared: &self.shared,
            finished: false,
        }))
    }
}

/// A task's iterator over its range: records as the consumer delivers them. A failed read
/// (poll timeout, offsets deleted under `fail_on_data_loss`) ends the task with that error
/// through [`fail_task`], so no consumer of the iterator sees a truncated partition as whole.
struct PartitionRecords<'a> {
    records: RangeRecords,
    shared: &'a Shared,
    finished: bool,
}

impl Iterator for PartitionRecords<'_> {
    type Item = ConsumerRecord;

    fn next(&mut self) -> Option<ConsumerRecord> {
        match self.records.next_record() {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                if !self.finished {
                    // Reported once, however often the finished iterator is polled.
                    self.finished = true;
                    let range = self.records.range().to_string();
                    self.shared
                        .report_loss(self.records.skipped_offsets(), &range);
                }
                None
            }
            Err(e) => fail_task(e.into()),
        }
    }
}

/// The direct stream's state in state snapshots: the next offset to plan per partition, as
/// `(topic, partition, offset)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectPosition {
    /// Next offset per partition.
    pub offsets: Vec<(String, i32, i64)>,
}

/// A direct stream's part of a batch's listener info ([`InputInfo::metadata`]): the batch's
/// offset ranges and the offsets it skipped because retention had deleted them. The JSON keys
/// (`offsets`, `lost`) are what UIs and monitoring read; this type is their one definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectBatchInfo {
    /// The batch's ranges (partition *i* of the batch reads range *i*).
    #[serde(rename = "offsets")]
    pub ranges: Vec<OffsetRange>,
    /// Offsets skipped because retention deleted them (only with `fail_on_data_loss(false)`).
    #[serde(default)]
    pub lost: Vec<LostOffsets>,
}

impl DirectBatchInfo {
    fn of_plan(plan: &DirectPlan) -> Self {
        DirectBatchInfo {
            ranges: plan.ranges.clone(),
            lost: plan.lost.clone(),
        }
    }

    /// The direct stream's info in one input's info; `None` for an input that is not a direct
    /// stream.
    pub fn from_input(input: &InputInfo) -> Option<Self> {
        input.metadata.get("offsets")?;
        serde_json::from_value(input.metadata.clone()).ok()
    }

    /// The ranges and lost offsets of every direct stream of a batch, in input-id order;
    /// `None` when the batch has no direct stream.
    pub fn from_batch(batch: &BatchInfo) -> Option<Self> {
        let mut infos = batch.input_infos.values().filter_map(Self::from_input);
        let mut all = infos.next()?;
        for more in infos {
            all.ranges.extend(more.ranges);
            all.lost.extend(more.lost);
        }
        Some(all)
    }

    /// Offsets planned (an upper bound on records; gaps make it smaller).
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(OffsetRange::count).sum()
    }

    /// Offsets skipped.
    pub fn lost_count(&self) -> u64 {
        self.lost.iter().map(LostOffsets::count).sum()
    }
}

impl InputStream<ConsumerRecord> for DirectKafkaInputStream {
    type Plan = DirectPlan;
    type State = DirectPosition;

    fn kind(&self) -> &str {
        KIND
    }

    fn start(&self, ctx: &InputContext) -> spate_streaming::Result<()> {
        *self.shared.input_id.lock() = ctx.input_id().to_owned();
        *self.shared.reporter.lock() = Some(ctx.error_reporter());
        // A group-managed stream hands its tasks' state over as its partitions move, unless a
        // repartition topic's partitions are the tasks.
        let owns_tasks =
            self.shared.member.is_some() && self.shared.tasks_handed_to.get().is_none();
        if let Some(tasks) = ctx.task_states().filter(|_| owns_tasks) {
            self.shared.planner.lock().set_task_states(tasks.clone());
        }
        if let (Some(m), Some(r)) = (&self.shared.member, &self.shared.rebalance_report) {
            r.start(m, ctx.ownership_reporter());
        }
        Ok(())
    }

    /// One task per partition number of the subscription. Group-managed, a task is only
    /// owned whole when it is one partition: the assignor places partitions of different
    /// topics independently, so a multi-topic subscription is refused here. None once the
    /// tasks were handed to a repartition topic.
    fn tasks(&self) -> spate_streaming::Result<Option<InputTasks>> {
        if self.shared.tasks_handed_to.get().is_some() {
            return Ok(None);
        }
        let planner = self.shared.planner.lock();
        let partitions = planner.client().partitions(planner.subscription())?;
        let topics: BTreeSet<&str> = partitions.iter().map(|tp| tp.topic.as_str()).collect();
        let assigned = self.shared.member.is_some();
        if assigned && topics.len() > 1 {
            return Err(SpateKafkaError::config(
                "subscription",
                topics.into_iter().collect::<Vec<_>>().join(","),
                "state partitioned by task under group management needs one input topic (the \
                 group assigns partitions of different topics independently)",
            )
            .into());
        }
        let count = partitions
            .iter()
            .filter_map(|tp| usize::try_from(tp.partition).ok())
            .map(|p| p + 1)
            .max()
            .ok_or_else(|| {
                SpateKafkaError::config(
                    "subscription",
                    format!("{:?}", planner.subscription()),
                    "state partitioned by task needs the input's partition count, and the \
                     subscription has no partitions (does the topic exist?)",
                )
            })?;
        Ok(Some(InputTasks { count, assigned }))
    }

    fn stop(&self) -> spate_streaming::Result<()> {
        if let Some(m) = &self.shared.member {
            m.stop();
        }
        if let Some(r) = &self.shared.rebalance_report {
            r.stop();
        }
        self.shared.planner.lock().stop();
        // Close the cached task consumers (and their broker connections) with the stream.
        self.shared.reader.cache().clear();
        Ok(())
    }

    fn plan(&self, time: Time) -> spate_streaming::Result<DirectPlan> {
        let rate = self.shared.rate.as_ref().map(RateController::latest_rate);
        let ownership = self.shared.member.as_ref().map(|m| m.ownership());
        let owned = ownership.map(|o| o.begin_planning());
        let planned =
            self.shared
                .planner
                .lock()
                .plan_owned(rate, self.shared.batch_interval, owned.as_ref());
        if let Some(o) = ownership {
            match &planned {
                Ok(p) => {
                    o.planned(time, p.ranges.iter().map(OffsetRange::topic_partition));
                    if let Some(r) = &self.shared.rebalance_report {
                        r.planned(
                            time,
                            p.ranges.iter().map(OffsetRange::topic_partition).collect(),
                        );
                    }
                }
                Err(_) => o.planning_failed(),
            }
        }
        let plan = planned?;
        let lost: u64 = plan.lost.iter().map(|l| l.count()).sum();
        self.shared
            .report_loss(lost, &format!("planning batch {time}"));
        self.shared.remember(time, &plan.ranges);
        Ok(plan)
    }

    fn info(&self, _time: Time, p: &DirectPlan) -> InputInfo {
        let mut by_count: Vec<&OffsetRange> = p.ranges.iter().collect();
        by_count.sort_by_key(|r| std::cmp::Reverse(r.count()));
        let mut lines: Vec<String> = by_count
            .iter()
            .map(|r| {
                format!(
                    "topic: {}\tpartition: {}\toffsets: {} to {}",
                    r.topic, r.partition, r.from_offset, r.until_offset
                )
            })
            .collect();
        // Offsets skipped under fail_on_data_loss(false) are part of the batch's record, not
        // only a log line.
        lines.extend(p.lost.iter().map(|l| {
            format!(
                "topic: {}\tpartition: {}\tLOST {} offsets [{}, {}) deleted by retention",
                l.topic,
                l.partition,
                l.count(),
                l.requested_from,
                l.resumed_from
            )
        }));
        InputInfo {
            num_records: p.count(),
            description: lines.join("\n"),
            metadata: serde_json::to_value(DirectBatchInfo::of_plan(p)).unwrap_or_default(),
            ..InputInfo::default()
        }
    }

    fn compute(
        &self,
        time: Time,
        p: &DirectPlan,
    ) -> spate_streaming::Result<Arc<dyn Partitions<ConsumerRecord>>> {
        self.shared.remember(time, &p.ranges);
        self.shared.reader.set_batch_partitions(p.ranges.len());
        Ok(Arc::new(KafkaPartitions {
            shared: self.shared.clone(),
            ranges: p.ranges.clone(),
        }))
    }

    fn replayed(&self, time: Time, p: &DirectPlan) -> spate_streaming::Result<()> {
        self.shared.planner.lock().advance_past(&p.ranges);
        self.shared.remember(time, &p.ranges);
        Ok(())
    }

    fn snapshot_state(&self) -> spate_streaming::Result<Option<DirectPosition>> {
        let offsets = self
            .shared
            .planner
            .lock()
            .current_offsets()
            .iter()
            .map(|(tp, &o)| (tp.topic.clone(), tp.partition, o))
            .collect();
        Ok(Some(DirectPosition { offsets }))
    }

    fn restore_state(&self, s: DirectPosition) -> spate_streaming::Result<()> {
        let ranges: Vec<OffsetRange> = s
            .offsets
            .into_iter()
            .map(|(t, p, o)| OffsetRange::create(t, p, o, o))
            .collect();
        self.shared.planner.lock().advance_past(&ranges);
        Ok(())
    }

    fn batch_completed(&self, info: &BatchInfo) {
        if let Some(m) = &self.shared.member {
            // Outputs and offsets are committed: a revocation waiting for it may go on.
            m.ownership().completed(info.batch_time);
        }
        if let (Some(r), Some(end)) = (&self.shared.rebalance_report, info.processing_end_time) {
            if info.failure_reason().is_none() {
                r.completed(info.batch_time, end);
            }
        }
        let Some(rate) = &self.shared.rate else {
            return;
        };
        let id = self.shared.input_id.lock().clone();
        let (Some(end), Some(processing), Some(scheduling)) = (
            info.processing_end_time,
            info.processing_delay(),
            info.scheduling_delay(),
        ) else {
            return;
        };
        let records = info.input_infos.get(&id).map_or(0, |i| i.num_records);
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if let Some(new_rate) = rate.on_batch_completed(&BatchCompleted {
            processing_end_ms: to_i64(end.as_millis()),
            num_records: to_i64(records),
            processing_delay_ms: to_i64(processing),
            scheduling_delay_ms: to_i64(scheduling),
        }) {
            tracing::debug!(input = %id, new_rate, "backpressure rate updated");
        }
    }
}

/// The user's handle on a direct stream: the [`DStream`] of records, the offset ranges of each
/// batch, and `commit_async`.
#[derive(Clone)]
pub struct DirectKafkaStream {
    stream: DStream<ConsumerRecord>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DirectKafkaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectKafkaStream").finish_non_exhaustive()
    }
}

impl std::ops::Deref for DirectKafkaStream {
    type Target = DStream<ConsumerRecord>;
    fn deref(&self) -> &DStream<ConsumerRecord> {
        &self.stream
    }
}

impl DirectKafkaStream {
    /// The stream of records.
    pub fn dstream(&self) -> &DStream<ConsumerRecord> {
        &self.stream
    }

    /// The offset ranges of batch `time` (partition *i* of the batch reads range *i*), as
    /// Spark's `HasOffsetRanges` on the batch's RDD. Kept for the last 1000 batches.
    pub fn offset_ranges(&self, time: Time) -> Option<Vec<OffsetRange>> {
        self.shared.plans.lock().get(&time).cloned()
    }

    /// The partitions the stream's strategy subscribes to now, from the cluster's metadata
    /// (all of them for a group-managed stream, not only this instance's).
    pub fn subscribed_partitions(&self) -> Result<BTreeSet<TopicPartition>> {
        let planner = self.shared.planner.lock();
        planner.client().partitions(planner.subscription())
    }

    /// The next offset to read per partition.
    pub fn current_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.shared.planner.lock().current_offsets().clone()
    }

    /// The group membership of a group-managed stream (`None` for other strategies).
    pub fn group_member(&self) -> Option<&Arc<GroupMember>> {
        self.shared.member.as_ref()
    }

    /// The partitions this instance owns (group-managed streams; `None` otherwise).
    pub fn owned_partitions(&self) -> Option<Vec<TopicPartition>> {
        self.shared.member.as_ref().map(|m| m.ownership().owned())
    }

    /// How often partitions were assigned, revoked and lost (group-managed streams).
    pub fn rebalances(&self) -> Option<RebalanceCounts> {
        self.shared.member.as_ref().map(|m| m.rebalances())
    }

    /// Where newly assigned partitions of a group-managed stream start: Kafka's
    /// `ConsumerRebalanceListener` (e.g. a [`TransactionalOutput`](crate::sink::TransactionalOutput),
    /// which claims them in its store and returns the stored offsets). Set it before the
    /// context starts.
    pub fn set_rebalance_listener(&self, listener: impl RebalanceListener) {
        self.shared
            .planner
            .lock()
            .set_rebalance_listener(Arc::new(listener));
    }

    /// Fails with [`SpateKafkaError::PartitionsNotOwned`] when the group moved some of batch
    /// `time`'s partitions away from this instance since the batch was planned; an output
    /// calls it just before committing. Always `Ok` for streams not managed by a group.
    pub fn check_owned(&self, time: Time) -> Result<()> {
        match &self.shared.member {
            Some(m) => m.check_owned(time),
            None => Ok(()),
        }
    }

    /// A group-managed repartition re-keys this stream through `topic`: keyed state
    /// partitioned by task downstream follows the repartition topic's partitions, which the
    /// group assigns to instances independently of this stream's. The engine lets one
    /// group-managed input own the tasks, so from now on this stream reports none — its
    /// batches' partitions have no task, and a state partitioned by task read straight from
    /// it is refused at its first batch, where it would otherwise be keyed by partitions this
    /// instance's state does not follow. Call it before the context starts.
    pub(crate) fn hand_tasks_to(&self, topic: &str) {
        // Once: a second group-managed repartition of the same stream would have two topics
        // claiming the tasks, which the engine refuses at start (two group-managed inputs).
        let _ = self.shared.tasks_handed_to.set(topic.to_owned());
    }

    /// Offsets skipped because retention deleted them (with `fail_on_data_loss(false)`).
    pub fn lost_offsets(&self) -> u64 {
        self.shared.lost_offsets.load(Ordering::Relaxed)
    }

    /// The latest backpressure rate (records/s), −1 before the first estimate, `None` without
    /// backpressure.
    pub fn latest_rate(&self) -> Option<i64> {
        self.shared.rate.as_ref().map(RateController::latest_rate)
    }

    /// Commits `ranges` to the consumer group (`group.id`) once queued requests are done; call
    /// it after the batch's outputs succeeded. Fails if the stream has no `group.id`.
    pub fn commit_async(
        &self,
        ranges: &[OffsetRange],
        callback: impl FnOnce(&CommitResult) + Send + 'static,
    ) -> Result<()> {
        match &self.shared.committer {
            Some(c) => {
                c.commit_async_with(ranges, callback);
                Ok(())
            }
            None => Err(SpateKafkaError::config(
                "group.id",
                "",
                "commit_async needs the stream's consumer group",
            )),
        }
    }
}

impl CanCommitOffsets for DirectKafkaStream {
    fn commit_async(&self, ranges: &[OffsetRange], callback: Option<CommitCallback>) {
        match &self.shared.committer {
            Some(c) => CanCommitOffsets::commit_async(c, ranges, callback),
            None => {
                if let Some(cb) = callback {
                    cb(&Err(SpateKafkaError::config(
                        "group.id",
                        "",
                        "commit_async needs the stream's consumer group",
                    )));
                }
            }
        }
    }
}

/// Builds a direct stream on `ctx` ([`KafkaUtils::create_direct_stream_with`]).
pub(crate) fn create_direct_stream(
    ctx: &StreamingContext,
    strategy: ConsumerStrategy,
    config: DirectStreamConfig,
) -> Result<DirectKafkaStream> {
    let batch_interval = ctx.batch_interval();
    let params = strategy.params().clone();
    // Deployment-time `spate.streaming.*` keys in the Kafka params override the code's.
    let mut config = config.with_params(&params)?;
    // Every broker retry — planning, reading, committing — also reaches the listeners
    // (and so the UI), so a batch waiting on a broker that is down is visible, not silent.
    let reporter: Arc<Mutex<Option<InputErrorReporter>>> = Arc::default();
    let slot = Arc::clone(&reporter);
    config.retry = config.retry.and_on_retry(move |event| {
        if let Some(r) = slot.lock().as_ref() {
            r.report(format!(
                "{}: {} (attempt {}, retrying in {} ms)",
                event.operation,
                event.error,
                event.attempt,
                event.next_backoff.as_millis()
            ));
        }
    });
    let reader = KafkaRangeReader::new(params.clone(), config.clone())?;
    let committer = match params.group_id() {
        Some(_) => Some(OffsetCommitter::new(&params, &config)?),
        None => None,
    };
    let rate = if config.backpressure {
        let ms = i64::try_from(batch_interval.as_millis()).unwrap_or(i64::MAX);
        let pid = PidRateEstimator::with_defaults(ms)
            .map_err(|e| SpateKafkaError::config("backpressure", "pid", e.to_string()))?;
        Some(RateController::new(0, pid))
    } else {
        None
    };
    let (member, rebalance_report) = if strategy.is_group_managed() {
        let Subscription::Topics(topics) = strategy.subscription() else {
            return Err(SpateKafkaError::config(
                "subscription",
                "",
                "a group-managed stream subscribes to topics",
            ));
        };
        let report = RebalanceReport::new();
        let observer: Arc<dyn crate::direct::RebalanceObserver> = report.clone();
        let member = GroupMember::join_observed(&params, topics, Some(observer))?;
        (Some(Arc::new(member)), Some(report))
    } else {
        (None, None)
    };
    let mut planner = OffsetPlanner::new(strategy, config)?;
    if let Some(m) = &member {
        planner.set_group_member(m.clone());
    }
    let shared = Arc::new(Shared {
        planner: Mutex::new(planner),
        reader,
        committer,
        rate,
        batch_interval,
        input_id: Mutex::new(KIND.to_owned()),
        reporter,
        plans: Mutex::new(BTreeMap::new()),
        lost_offsets: AtomicU64::new(0),
        member,
        rebalance_report,
        tasks_handed_to: OnceLock::new(),
    });
    let stream = ctx.input_stream(DirectKafkaInputStream {
        shared: shared.clone(),
    });
    Ok(DirectKafkaStream { stream, shared })
}

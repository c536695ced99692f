//! The **group-managed** direct stream ([`ConsumerStrategy::subscribe_group_managed`](crate::direct::ConsumerStrategy::subscribe_group_managed)):
//! several instances of one job share a subscription's partitions through Kafka's consumer
//! group protocol, as Kafka Streams instances do, and each plans batches only for the
//! partitions it owns.
//!
//! [`GroupMember`] is one rdkafka consumer that joins the group (`group.id`, by default with
//! `partition.assignment.strategy=cooperative-sticky`, and `group.instance.id` for static
//! membership when the user sets it) and is polled on its own thread. It never reads records
//! for the job: every partition it is assigned is paused at once, and the task consumers read
//! the planned ranges as in the ungrouped stream. [`Ownership`] is what the planner, the
//! outputs and the rebalance callbacks share:
//!
//! * **assignment**: the partitions join the owned set (each with a new *incarnation*); the
//!   planner starts them from the job's offset store ([`RebalanceListener`], e.g. a
//!   [`TransactionalOutput`](crate::sink::TransactionalOutput) that claims them) or from the
//!   group's committed offsets;
//! * **revocation** (cooperative): no new batch covers the partitions, and the callback returns
//!   only when every planned batch covering them has committed (or the instance stops, or
//!   `max.poll.interval.ms` is nearly over) — then the partitions leave the owned set;
//! * **lost** (the member was removed from the group, e.g. after being paused past the session
//!   timeout): the partitions leave at once, and batches planned for them are refused at commit
//!   ([`SpateKafkaError::PartitionsNotOwned`]); the stores' own fencing (writer epochs, the
//!   group generation of `send_offsets_to_transaction`) refuses them too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::{ClientContext, TopicPartitionList};
use spate_streaming::{RebalanceKind, Time};

use crate::direct::offset_range::TopicPartition;
use crate::direct::params::KafkaParams;
use crate::direct::rebalance_report::{RebalanceEvent, RebalanceObserver};
use crate::error::{Result, SpateKafkaError};

/// Kafka's default `max.poll.interval.ms`.
const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;
/// How often the member's thread polls (serves rebalance callbacks and heartbeats' results).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a read of the group's committed offsets may take.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(30);

/// Where newly owned partitions start: Kafka's `ConsumerRebalanceListener`, for jobs that
/// keep their offsets outside Kafka. The planner calls it (on its own thread, before the
/// first batch covering them) with the partitions this instance was assigned.
pub trait RebalanceListener: Send + Sync + 'static {
    /// Takes over `partitions` (e.g. claims them in the offset store, fencing their previous
    /// writer) and returns where each starts: the stored offsets. Partitions left out start
    /// from the group's committed offsets or `auto.offset.reset`.
    fn on_partitions_assigned(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>>;
}

/// What the planner, the outputs and the rebalance callbacks know about this instance's
/// partitions (see the module docs).
#[derive(Default)]
pub struct Ownership {
    state: Mutex<OwnershipState>,
    changed: Condvar,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Ownership")
            .field("owned", &s.owned)
            .field("revoking", &s.revoking)
            .field("in_flight", &s.in_flight.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct OwnershipState {
    /// Owned partitions and the incarnation of their current assignment.
    owned: BTreeMap<TopicPartition, u64>,
    /// Owned partitions being revoked: no new batch covers them.
    revoking: BTreeSet<TopicPartition>,
    /// A plan is being made right now, from these partitions and incarnations.
    planning: bool,
    planning_from: BTreeMap<TopicPartition, u64>,
    /// Planned batches not committed yet: their partitions and incarnations at planning time.
    in_flight: BTreeMap<Time, BTreeMap<TopicPartition, u64>>,
    next_incarnation: u64,
    stopped: bool,
}

/// This instance's partitions as a plan starts, each with the *incarnation* of its assignment
/// (a partition that went away and came back has a new one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedPartitions {
    /// Owned and not being revoked: what a new batch may cover.
    pub plannable: BTreeMap<TopicPartition, u64>,
    /// Every owned partition, including those being revoked (their batches still run).
    pub owned: BTreeMap<TopicPartition, u64>,
}

/// How many times partitions came and went (for logs, tests and metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RebalanceCounts {
    /// Assignment callbacks with at least one partition.
    pub assigned: u64,
    /// Cooperative revocations (the instance finished its batches before releasing).
    pub revoked: u64,
    /// Lost assignments (the member had been removed from the group).
    pub lost: u64,
}

impl Ownership {
    /// The partitions a new batch may cover, and all owned ones; marks a plan as being made
    /// until [`Ownership::planned`] or [`Ownership::planning_failed`] (a revocation waits).
    pub(crate) fn begin_planning(&self) -> OwnedPartitions {
        let mut s = self.state.lock();
        let plannable: BTreeMap<TopicPartition, u64> = s
            .owned
            .iter()
            .filter(|(tp, _)| !s.revoking.contains(*tp))
            .map(|(tp, &i)| (tp.clone(), i))
            .collect();
        s.planning = true;
        s.planning_from = plannable.clone();
        OwnedPartitions {
            plannable,
            owned: s.owned.clone(),
        }
    }

    /// Records batch `time` as planned over `partitions` (in flight until it completes).
    pub(crate) fn planned(&self, time: Time, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut s = self.state.lock();
        // The incarnations the plan started from: a partition lost while planning still
        // counts as held by the batch, so that the commit check refuses it.
        let from = std::mem::take(&mut s.planning_from);
        let held: BTreeMap<TopicPartition, u64> = partitions
            .into_iter()
            .filter_map(|tp| from.get(&tp).map(|&i| (tp, i)))
            .collect();
        if !held.is_empty() {
            s.in_flight.insert(time, held);
        }
        s.planning = false;
        self.changed.notify_all();
    }

    /// The plan being made failed: nothing is in flight for it.
    pub(crate) fn planning_failed(&self) {
        let mut s = self.state.lock();
        s.planning = false;
        s.planning_from.clear();
        drop(s);
        self.changed.notify_all();
    }

    /// Batch `time` committed its outputs and offsets.
    pub(crate) fn completed(&self, time: Time) {
        let mut s = self.state.lock();
        if s.in_flight.remove(&time).is_some() {
            self.changed.notify_all();
        }
    }

    /// The partitions of batch `time` this instance no longer owns in the incarnation the batch
    /// was planned in (empty: the batch may commit). A batch not planned by this process (one
    /// recovered from a checkpoint) is left to the store's fencing.
    pub(crate) fn not_owned(&self, time: Time) -> Vec<TopicPartition> {
        let s = self.state.lock();
        let Some(held) = s.in_flight.get(&time) else {
            return Vec::new();
        };
        held.iter()
            .filter(|(tp, i)| s.owned.get(*tp) != Some(*i))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The partitions owned right now.
    pub fn owned(&self) -> Vec<TopicPartition> {
        self.state.lock().owned.keys().cloned().collect()
    }

    fn assign(&self, partitions: &[TopicPartition]) {
        let mut s = self.state.lock();
        for tp in partitions {
            s.next_incarnation += 1;
            let incarnation = s.next_incarnation;
            s.owned.insert(tp.clone(), incarnation);
        }
        self.changed.notify_all();
    }

    /// Blocks until no batch that is being planned or in flight covers `partitions`, the
    /// instance stops, or `bound` passes; then releases them. Returns whether the batches
    /// finished in time.
    fn revoke(&self, partitions: &[TopicPartition], bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut s = self.state.lock();
        s.revoking.extend(partitions.iter().cloned());
        let busy = |s: &OwnershipState| {
            !s.stopped
                && (s.planning
                    || s.in_flight
                        .values()
                        .any(|held| partitions.iter().any(|tp| held.contains_key(tp))))
        };
        let mut finished = true;
        while busy(&s) {
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                finished = !busy(&s);
                break;
            }
        }
        for tp in partitions {
            s.revoking.remove(tp);
            s.owned.remove(tp);
        }
        finished
    }

    fn lose(&self, partitions: &[TopicPartition]) {
        let mut s = self.state.lock();
        for tp in partitions {
            s.revoking.remove(tp);
            s.owned.remove(tp);
        }
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.state.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// The member's rebalance callbacks.
struct MemberContext {
    ownership: Arc<Ownership>,
    group: String,
    revoke_bound: Duration,
    assigned: AtomicU64,
    revoked: AtomicU64,
    lost: AtomicU64,
    /// Hears of every callback (the stream's report to the UI and metrics).
    observer: Option<Arc<dyn RebalanceObserver>>,
}

impl MemberContext {
    fn counts(&self) -> RebalanceCounts {
        RebalanceCounts {
            assigned: self.assigned.load(Ordering::Relaxed),
            revoked: self.revoked.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// Tells the observer what a callback did (`waited`: a revocation's wait and whether its
    /// batches finished in time).
    fn notify(
        &self,
        kind: RebalanceKind,
        partitions: Vec<TopicPartition>,
        time: Time,
        waited: Option<(Duration, bool)>,
    ) {
        if let Some(o) = &self.observer {
            o.on_rebalance(RebalanceEvent {
                kind,
                partitions,
                time,
                revocation_wait: waited.map(|w| w.0),
                revocation_finished: waited.map(|w| w.1),
                owned: self.ownership.owned(),
                counts: self.counts(),
            });
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let partitions = partitions_of(tpl);
        if partitions.is_empty() {
            return;
        }
        let time = Time::now();
        if consumer.assignment_lost() {
            // The group already gave them to another member: nothing to finish, and any batch
            // still in flight for them is refused at commit.
            self.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(group = %self.group, ?partitions, "group-managed: partitions lost");
            self.ownership.lose(&partitions);
            self.notify(RebalanceKind::Lost, partitions, time, None);
            return;
        }
        // Cooperative revocation: the partitions go to another member only after this callback
        // returns (the member rejoins then), so the batches covering them commit first and the
        // next owner starts exactly where they ended. The wait is bounded below
        // `max.poll.interval.ms`: past it librdkafka would leave the group and the hand-over
        // would become a lost assignment anyway; the late batch is then refused by the
        // ownership check and the stores' fencing.
        let started = Instant::now();
        let finished = self.ownership.revoke(&partitions, self.revoke_bound);
        self.revoked.fetch_add(1, Ordering::Relaxed);
        let waited = started.elapsed();
        tracing::info!(group = %self.group, ?partitions, finished,
            waited_ms = waited.as_millis() as u64,
            "group-managed: partitions revoked");
        self.notify(
            RebalanceKind::Revoked,
            partitions,
            time,
            Some((waited, finished)),
        );
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = partitions_of(tpl);
                if partitions.is_empty() {
                    return;
                }
                // The member only holds the assignment; the task consumers read the planned
                // ranges. Paused partitions are never fetched.
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(group = %self.group, error = %e, "pausing assigned partitions failed");
                }
                let time = Time::now();
                self.ownership.assign(&partitions);
                self.assigned.fetch_add(1, Ordering::Relaxed);
                tracing::info!(group = %self.group, ?partitions, "group-managed: partitions assigned");
                self.notify(RebalanceKind::Assigned, partitions, time, None);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "group-managed: rebalance error")
            }
        }
    }
}

/// This instance's membership in the job's consumer group (see the module docs).
pub struct GroupMember {
    consumer: Arc<BaseConsumer<MemberContext>>,
    ownership: Arc<Ownership>,
    group: String,
    instance_id: Option<String>,
    client_id: String,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("group", &self.group)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl GroupMember {
    /// Joins `params`' group with a subscription to `topics` and starts polling.
    pub fn join(params: &KafkaParams, topics: &[String]) -> Result<Self> {
        Self::join_observed(params, topics, None)
    }

    /// [`GroupMember::join`], with `observer` told of every rebalance callback from the first.
    pub fn join_observed(
        params: &KafkaParams,
        topics: &[String],
        observer: Option<Arc<dyn RebalanceObserver>>,
    ) -> Result<Self> {
        let group = params
            .group_id()
            .ok_or_else(|| {
                SpateKafkaError::config(
                    "group.id",
                    "",
                    "a group-managed stream shares its partitions through the consumer group",
                )
            })?
            .to_owned();
        let max_poll = match params.get("max.poll.interval.ms") {
            None => DEFAULT_MAX_POLL_INTERVAL_MS,
            Some(v) => v.parse().map_err(|_| {
                SpateKafkaError::config("max.poll.interval.ms", v, "expected milliseconds")
            })?,
        };
        let ownership = Arc::new(Ownership::default());
        let context = MemberContext {
            ownership: ownership.clone(),
            group: group.clone(),
            // 80%: room for the rejoin itself before librdkafka's poll deadline.
            revoke_bound: Duration::from_millis(max_poll / 5 * 4),
            assigned: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            observer,
        };
        // A client id of its own, unless the user set one: group tools list members by it, and
        // the member finds its own member id by it (`member_id`).
        let client_id = params.get("client.id").map_or_else(
            || {
                format!(
                    "spate-{group}-{}-{}",
                    std::process::id(),
                    Time::now().as_millis()
                )
            },
            str::to_owned,
        );
        let consumer: BaseConsumer<MemberContext> = params
            .member_config()?
            .set("client.id", &client_id)
            .create_with_context(context)
            .map_err(|source| SpateKafkaError::CreateConsumer {
                group: group.clone(),
                source: Box::new(source),
            })?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|source| SpateKafkaError::Subscribe {
                group: group.clone(),
                topics: topics.to_vec(),
                source: Box::new(source),
            })?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (consumer, stop) = (consumer.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("spate-group-{group}"))
                .spawn(move || poll_loop(&consumer, &stop))
                .map_err(|e| SpateKafkaError::config("group.id", &group, e.to_string()))?
        };
        tracing::info!(group = %group, instance = ?params.get("group.instance.id"), "group-managed: joined");
        Ok(GroupMember {
            consumer,
            ownership,
            group,
            instance_id: params.get("group.instance.id").map(str::to_owned),
            client_id,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The shared ownership state.
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// `group.instance.id`, when the member is static.
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    /// The member's `client.id` (the user's, or one unique to this member).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The member id the coordinator gave this member, looked up with DescribeGroups by the
    /// member's client id (librdkafka does not expose it); `None` before the member joined,
    /// when two members share the client id, or when the lookup fails within `timeout`.
    pub fn member_id(&self, timeout: Duration) -> Option<String> {
        let list = self
            .consumer
            .fetch_group_list(Some(&self.group), timeout)
            .map_err(|e| tracing::debug!(group = %self.group, error = %e, "member id lookup"))
            .ok()?;
        let group = list.groups().iter().find(|g| g.name() == self.group)?;
        let mut mine = group
            .members()
            .iter()
            .filter(|m| m.client_id() == self.client_id);
        match (mine.next(), mine.next()) {
            (Some(m), None) => Some(m.id().to_owned()),
            _ => None,
        }
    }

    /// How often partitions were assigned, revoked and lost so far.
    pub fn rebalances(&self) -> RebalanceCounts {
        self.consumer.context().counts()
    }

    /// Fails with [`SpateKafkaError::PartitionsNotOwned`] when batch `time` covers partitions
    /// this instance no longer owns in the incarnation the batch was planned in.
    pub fn check_owned(&self, time: Time) -> Result<()> {
        let lost = self.ownership.not_owned(time);
        if lost.is_empty() {
            return Ok(());
        }
        Err(SpateKafkaError::PartitionsNotOwned {
            group: self.group.clone(),
            batch_time_ms: time.as_millis(),
            partitions: lost
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        })
    }

    /// The member's group metadata (member id and generation) for committing batch `time`'s
    /// offsets in a transaction, checking after reading it that the batch's partitions are
    /// still owned. A member removed from the group since has a stale generation, and the
    /// broker refuses the commit (KIP-447). The order matters: a generation in which the
    /// partitions belong to another member completes only after this member's rebalance
    /// callback dropped them (a revocation before it rejoins, a loss before it joins again),
    /// so a check after the read sees that; checked before, the callback and the rejoin could
    /// both fall between the check and the read, and the commit would go out under a
    /// generation the broker accepts.
    pub fn group_metadata(&self, time: Time) -> Result<ConsumerGroupMetadata> {
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| SpateKafkaError::config("group.id", &self.group, "no group metadata"))?;
        self.check_owned(time)?;
        Ok(metadata)
    }

    /// The group's committed offsets of `partitions` (absent: none committed). The member is
    /// `read_committed`, so the broker answers only once pending transactional commits settle
    /// (OffsetFetch `require_stable`).
    pub fn committed(
        &self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in partitions {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let got = self
            .consumer
            .committed_offsets(tpl, COMMITTED_TIMEOUT)
            .map_err(|source| SpateKafkaError::Client {
                operation: format!("reading the committed offsets of group {}", self.group),
                source,
            })?;
        Ok(crate::direct::offset_range::committed_in(&got))
    }

    /// Stops polling and closes the member (a dynamic member leaves the group; a static one
    /// keeps its assignment until the session timeout, so a quick restart moves nothing).
    pub fn stop(&self) {
        self.ownership.stop();
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.lock().take() {
            if t.join().is_err() {
                tracing::warn!(group = %self.group, "the group member's thread panicked");
            }
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll_loop(consumer: &BaseConsumer<MemberContext>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(POLL_INTERVAL) {
            // Assigned partitions are paused; a record fetched before the pause took effect is
            // not the job's to read (the task consumers read the planned ranges).
            Some(Ok(_)) | None => {}
            Some(Err(e)) => tracing::debug!(error = %e, "group member poll"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn a_revocation_waits_for_the_batch_in_flight_and_then_releases() {
        let o = Arc::new(Ownership::default());
        o.assign(&[tp(0), tp(1)]);
        assert_eq!(o.begin_planning().plannable.len(), 2);
        let t = Time::from_millis(100);
        o.planned(t, [tp(0), tp(1)]);
        let revoker = {
            let o = o.clone();
            std::thread::spawn(move || o.revoke(&[tp(1)], Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(100));
        // Still owned while the batch runs, but no new batch covers it.
        assert_eq!(o.owned(), vec![tp(0), tp(1)]);
        assert_eq!(
            o.begin_planning().plannable.into_keys().collect::<Vec<_>>(),
            vec![tp(0)]
        );
        o.planning_failed();
        assert!(o.not_owned(t).is_empty(), "the batch may still commit");
        o.completed(t);
        assert!(
            revoker.join().unwrap(),
            "released after the batch completed"
        );
        assert_eq!(o.owned(), vec![tp(0)]);
    }

    #[test]
    fn a_revocation_gives_up_after_its_bound() {
        let o = Ownership::default();
        o.assign(&[tp(0)]);
        o.begin_planning();
        o.planned(Time::from_millis(1), [tp(0)]);
        assert!(!o.revoke(&[tp(0)], Duration::from_millis(50)));
        assert!(o.owned().is_empty());
        assert_eq!(o.not_owned(Time::from_millis(1)), vec![tp(0)]);
    }

    #[test]
    fn a_batch_planned_before_a_lost_assignment_is_not_owned_even_when_reassigned() {
        let o = Ownership::default();
        o.assign(&[tp(0)]);
        o.begin_planning();
        let t = Time::from_millis(5);
        o.planned(t, [tp(0)]);
        o.lose(&[tp(0)]);
        o.assign(&[tp(0)]);
        assert_eq!(o.not_owned(t), vec![tp(0)], "a new incarnation");
    }
}

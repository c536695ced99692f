//! What the group-managed stream tells operators about its membership: the partitions this
//! instance owns and each rebalance with its durations, posted to the engine as
//! [`InputOwnershipInfo`] (so the UI, the REST API and `/metrics` show them; the engine knows no
//! Kafka, only strings and numbers).
//!
//! The [`GroupMember`](crate::direct::GroupMember)'s rebalance callbacks hand each change to a
//! [`RebalanceObserver`]; [`RebalanceReport`] is the stream's observer. Callbacks must not block
//! (they run on the member's poll thread, between heartbeats), so the report only queues events
//! to its own thread, which also hears of planned and completed batches. That thread measures
//! an assignment's *assignment-to-first-batch* time — from the callback to the end of the first
//! batch covering any of the new partitions, i.e. until their records are processed again —
//! and looks up the member id the coordinator gave this member (DescribeGroups, matched by the
//! member's unique `client.id`), which librdkafka does not expose otherwise.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use parking_lot::Mutex;
use spate_streaming::{
    InputOwnershipInfo, InputOwnershipReporter, InputPartition, RebalanceInfo, RebalanceKind,
    RebalanceTotals, Time,
};

use crate::direct::group::{GroupMember, RebalanceCounts};
use crate::direct::offset_range::TopicPartition;

/// How long a member-id lookup may take (it only names the member in reports).
const MEMBER_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// One rebalance callback's outcome, as the member saw it.
#[derive(Debug, Clone)]
pub struct RebalanceEvent {
    /// Assigned, revoked or lost.
    pub kind: RebalanceKind,
    /// The partitions it concerned.
    pub partitions: Vec<TopicPartition>,
    /// When the callback started.
    pub time: Time,
    /// Revocations: how long the callback waited for the batches in flight.
    pub revocation_wait: Option<Duration>,
    /// Revocations: whether those batches finished within the bound.
    pub revocation_finished: Option<bool>,
    /// The partitions owned after the callback.
    pub owned: Vec<TopicPartition>,
    /// The member's callback counts after the callback.
    pub counts: RebalanceCounts,
}

/// Hears of a group member's rebalances; called on the member's poll thread, so it must not
/// block.
pub trait RebalanceObserver: Send + Sync + 'static {
    /// A rebalance callback finished.
    fn on_rebalance(&self, event: RebalanceEvent);
}

enum Message {
    Rebalance(RebalanceEvent),
    Planned(Time, Vec<TopicPartition>),
    Completed(Time, Time),
    Start(InputOwnershipReporter),
    Stop,
}

/// The group-managed stream's observer (see the module docs).
pub(crate) struct RebalanceReport {
    tx: Sender<Message>,
    rx: Mutex<Option<Receiver<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RebalanceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebalanceReport").finish_non_exhaustive()
    }
}

impl RebalanceObserver for RebalanceReport {
    fn on_rebalance(&self, event: RebalanceEvent) {
        let _ = self.tx.send(Message::Rebalance(event));
    }
}

impl RebalanceReport {
    /// A report whose events wait in its queue until [`RebalanceReport::start`].
    pub(crate) fn new() -> Arc<Self> {
        let (tx, rx) = unbounded();
        Arc::new(RebalanceReport {
            tx,
            rx: Mutex::new(Some(rx)),
            thread: Mutex::new(None),
        })
    }

    /// Starts reporting `member`'s changes through `reporter` (when the context starts).
    pub(crate) fn start(&self, member: &Arc<GroupMember>, reporter: InputOwnershipReporter) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let _ = self.tx.send(Message::Start(reporter));
        let worker = Worker {
            member: Arc::downgrade(member),
            group: member.group().to_owned(),
            instance: member.instance_id().map(str::to_owned),
            client_id: member.client_id().to_owned(),
            reporter: None,
            member_id: None,
            seq: 0,
            pending: Vec::new(),
            last: None,
            backlog: Vec::new(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("spate-rebalance-{}", member.group()))
            .spawn(move || worker.run(&rx));
        match spawned {
            Ok(h) => *self.thread.lock() = Some(h),
            Err(e) => tracing::warn!(error = %e, "cannot start the rebalance report thread"),
        }
    }

    /// Batch `time` was planned over `partitions`.
    pub(crate) fn planned(&self, time: Time, partitions: Vec<TopicPartition>) {
        let _ = self.tx.send(Message::Planned(time, partitions));
    }

    /// Batch `time` completed at `end`.
    pub(crate) fn completed(&self, time: Time, end: Time) {
        let _ = self.tx.send(Message::Completed(time, end));
    }

    /// Reports what is queued, then stops the thread.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Message::Stop);
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

/// An assignment waiting for its first batch.
struct PendingAssignment {
    info: RebalanceInfo,
    partitions: BTreeSet<TopicPartition>,
    batch: Option<Time>,
}

struct Worker {
    member: Weak<GroupMember>,
    group: String,
    instance: Option<String>,
    client_id: String,
    reporter: Option<InputOwnershipReporter>,
    member_id: Option<String>,
    seq: u64,
    pending: Vec<PendingAssignment>,
    /// The owned partitions and counts of the last callback.
    last: Option<(Vec<TopicPartition>, RebalanceCounts)>,
    /// Rebalances before the context started (the first assignment often is one).
    backlog: Vec<RebalanceInfo>,
}

fn input_partitions(tps: &[TopicPartition]) -> Vec<InputPartition> {
    tps.iter()
        .map(|tp| InputPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
        })
        .collect()
}

impl Worker {
    fn run(mut self, rx: &Receiver<Message>) {
        for message in rx {
            match message {
                Message::Start(reporter) => {
                    self.reporter = Some(reporter);
                    // The state as of the start, even before any rebalance.
                    self.report(None);
                    for info in std::mem::take(&mut self.backlog) {
                        self.report(Some(info));
                    }
                }
                Message::Rebalance(event) => self.rebalance(event),
                Message::Planned(time, partitions) => self.planned(time, &partitions),
                Message::Completed(time, end) => self.completed(time, end),
                Message::Stop => break,
            }
        }
    }

    fn rebalance(&mut self, event: RebalanceEvent) {
        self.seq += 1;
        if event.kind != RebalanceKind::Revoked {
            // A new assignment may come with a new member id (after a lost one, or the first).
            self.member_id = self.lookup_member_id().or(self.member_id.take());
        }
        let info = RebalanceInfo {
            seq: self.seq,
            kind: event.kind,
            partitions: input_partitions(&event.partitions),
            time: event.time,
            revocation_wait_ms: event.revocation_wait.map(|d| d.as_millis() as u64),
            revocation_finished: event.revocation_finished,
            first_batch_ms: None,
        };
        if event.kind == RebalanceKind::Assigned {
            self.pending.push(PendingAssignment {
                info: info.clone(),
                partitions: event.partitions.iter().cloned().collect(),
                batch: None,
            });
        } else {
            // Partitions that left before their first batch never get one.
            let gone: BTreeSet<&TopicPartition> = event.partitions.iter().collect();
            self.pending
                .retain(|p| p.batch.is_some() || !p.partitions.iter().all(|tp| gone.contains(tp)));
        }
        self.last = Some((event.owned, event.counts));
        self.report(Some(info));
    }

    fn planned(&mut self, time: Time, partitions: &[TopicPartition]) {
        for p in &mut self.pending {
            if p.batch.is_none() && partitions.iter().any(|tp| p.partitions.contains(tp)) {
                p.batch = Some(time);
            }
        }
    }

    fn completed(&mut self, time: Time, end: Time) {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.batch == Some(time));
        self.pending = waiting;
        for mut p in done {
            p.info.first_batch_ms = Some(end.millis_since(p.info.time));
            self.report(Some(p.info));
        }
    }

    fn lookup_member_id(&self) -> Option<String> {
        self.member.upgrade()?.member_id(MEMBER_LOOKUP_TIMEOUT)
    }

    fn report(&mut self, rebalance: Option<RebalanceInfo>) {
        let Some(reporter) = &self.reporter else {
            self.backlog.extend(rebalance);
            return;
        };
        let (owned, counts) = match (&self.last, self.member.upgrade()) {
            (Some((owned, counts)), _) => (owned.clone(), *counts),
            (None, Some(m)) => (m.ownership().owned(), m.rebalances()),
            (None, None) => (Vec::new(), RebalanceCounts::default()),
        };
        reporter.report(InputOwnershipInfo {
            input_id: String::new(),
            group: self.group.clone(),
            group_instance_id: self.instance.clone(),
            member_id: self.member_id.clone(),
            client_id: self.client_id.clone(),
            owned: input_partitions(&owned),
            rebalances: RebalanceTotals {
                assigned: counts.assigned,
                revoked: counts.revoked,
                lost: counts.lost,
            },
            rebalance,
            time: Time::now(),
        });
    }
}

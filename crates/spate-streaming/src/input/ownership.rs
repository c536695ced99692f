//! Input ownership: which partitions of a shared input this instance of a job owns, and the
//! rebalances that moved them — what an operator of several instances needs to see in the UI,
//! the REST API and the metrics.
//!
//! The engine knows no Kafka: an input whose partitions are shared through a group (the
//! group-managed Kafka direct stream) describes its membership in plain strings and numbers
//! ([`InputOwnershipInfo`]) and reports each change through an [`InputOwnershipReporter`]
//! (from [`InputContext::ownership_reporter`](crate::InputContext::ownership_reporter)). The
//! report updates the context's [`StreamingMetrics`](crate::StreamingMetrics) at once (so a
//! metrics scrape never sees a stale owner) and reaches the listeners
//! ([`StreamingListener::on_input_ownership`](crate::StreamingListener::on_input_ownership)).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::listener::{Event, ListenerBus};
use crate::metrics::StreamingMetrics;
use crate::time::Time;

/// One partition of a shared input (for Kafka: a topic partition).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InputPartition {
    /// The topic (or other named source) the partition belongs to.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl std::fmt::Display for InputPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What a rebalance did to this instance's partitions (Kafka's rebalance callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebalanceKind {
    /// Partitions were assigned to this instance.
    Assigned,
    /// Partitions were revoked cooperatively: the instance finished its batches over them
    /// before releasing them.
    Revoked,
    /// Partitions were lost: the group had already removed this member and given them away.
    Lost,
}

impl RebalanceKind {
    /// `assigned`, `revoked` or `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceKind::Assigned => "assigned",
            RebalanceKind::Revoked => "revoked",
            RebalanceKind::Lost => "lost",
        }
    }
}

/// One rebalance seen by this instance, with how long its parts took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceInfo {
    /// Numbers this instance's rebalances of the input from 1; a later report with the same
    /// number completes an earlier one (an assignment's first batch).
    pub seq: u64,
    /// What happened.
    pub kind: RebalanceKind,
    /// The partitions it concerned.
    pub partitions: Vec<InputPartition>,
    /// When the rebalance callback ran.
    pub time: Time,
    /// Revocations: how long the callback waited for the batches in flight over the partitions
    /// to commit before releasing them.
    pub revocation_wait_ms: Option<u64>,
    /// Revocations: false when those batches did not finish within the bound and the partitions
    /// were released anyway.
    pub revocation_finished: Option<bool>,
    /// Assignments: from the assignment to the end of the first batch that covered the new
    /// partitions (their data is being processed again); `None` until that batch completed.
    pub first_batch_ms: Option<u64>,
}

/// How many rebalance callbacks of each kind an instance has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceTotals {
    /// Assignments with at least one partition.
    pub assigned: u64,
    /// Cooperative revocations.
    pub revoked: u64,
    /// Lost assignments.
    pub lost: u64,
}

/// This instance's membership in the group that shares an input's partitions, as of one
/// change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputOwnershipInfo {
    /// The input id (set by the reporter).
    pub input_id: String,
    /// The group (Kafka: `group.id`).
    pub group: String,
    /// The static instance id (Kafka: `group.instance.id`), when the member is static.
    pub group_instance_id: Option<String>,
    /// The member id the group coordinator gave this member, once known.
    pub member_id: Option<String>,
    /// The client id the member presents (what group tools list it by).
    pub client_id: String,
    /// The partitions this instance owns now.
    pub owned: Vec<InputPartition>,
    /// Rebalance callbacks so far.
    pub rebalances: RebalanceTotals,
    /// The rebalance this report is about, if any.
    pub rebalance: Option<RebalanceInfo>,
    /// When the report was made.
    pub time: Time,
}

impl InputOwnershipInfo {
    /// How operators name this instance: `group.instance.id`, else the member id, else the
    /// client id (before the first assignment).
    pub fn instance_id(&self) -> &str {
        self.group_instance_id
            .as_deref()
            .or(self.member_id.as_deref())
            .unwrap_or(&self.client_id)
    }
}

/// Reports an input's ownership changes to the metrics and the listeners, from any thread
/// (see the module docs).
#[derive(Clone)]
pub struct InputOwnershipReporter {
    pub(crate) input_id: String,
    pub(crate) bus: Arc<ListenerBus>,
    pub(crate) metrics: Arc<StreamingMetrics>,
}

impl std::fmt::Debug for InputOwnershipReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputOwnershipReporter")
            .field("input_id", &self.input_id)
            .finish_non_exhaustive()
    }
}

impl InputOwnershipReporter {
    /// Records `info` (its `input_id` is set to this input's) and posts it to the listeners.
    pub fn report(&self, mut info: InputOwnershipInfo) {
        info.input_id.clone_from(&self.input_id);
        self.metrics.input_ownership(&info);
        self.bus.post(Event::InputOwnership(info));
    }
}

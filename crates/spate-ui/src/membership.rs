//! The REST documents of a job that runs as several instances (docs/scale-out.md): which
//! partitions of each group-shared input this instance owns, its rebalances with their
//! durations (`GET /api/v1/streaming/ownership`), and the progress of restoring keyed state
//! from changelogs (`GET /api/v1/streaming/state/restores`). Spark has neither; the field
//! names follow the rest of the API (camelCase, times as RFC 3339 and as milliseconds).
//!
//! Both are read from the engine's [`StreamingMetrics`], which the inputs and the state
//! restore update directly, so a UI started after the job still shows the whole story.

use serde::Serialize;
use spate_streaming::{InputOwnership, RebalanceInfo, StateRestoreInfo, StreamingMetrics};

use crate::api::format_time;

/// One input shared through a group: `GET /api/v1/streaming/ownership` returns one per input.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipDoc {
    /// The input id (`kafka_direct-0`, ...).
    pub input_id: String,
    /// The consumer group (`group.id`).
    pub group: String,
    /// How this instance is named: `group.instance.id`, else the member id.
    pub instance_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member id the coordinator gave this member, once known.
    pub member_id: Option<String>,
    /// The member's `client.id` (as `spate groups describe` lists it).
    pub client_id: String,
    /// The partitions owned now, as `topic-partition`.
    pub owned_partitions: Vec<PartitionDoc>,
    /// Rebalance callbacks so far by kind: `assigned`, `revoked`, `lost`.
    pub rebalances: RebalanceCountsDoc,
    /// The newest rebalances, newest first.
    pub recent_rebalances: Vec<RebalanceDoc>,
    /// When the last report was made (ms since the epoch).
    pub updated_ms: u64,
}

/// A partition owned.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionDoc {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

/// Rebalance callbacks by kind.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceCountsDoc {
    /// Assignments.
    pub assigned: u64,
    /// Cooperative revocations.
    pub revoked: u64,
    /// Lost assignments.
    pub lost: u64,
}

/// One rebalance and its durations.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceDoc {
    /// `assigned`, `revoked` or `lost`.
    pub kind: &'static str,
    /// When the callback ran.
    pub time: String,
    /// `time` in ms since the epoch.
    pub time_ms: u64,
    /// The partitions it moved.
    pub partitions: Vec<PartitionDoc>,
    /// Revocations: ms waited for the batches in flight over the partitions.
    pub revocation_wait_ms: Option<u64>,
    /// Revocations: false when those batches did not finish in time.
    pub revocation_finished: Option<bool>,
    /// Assignments: ms from the assignment to the end of the first batch over the partitions
    /// (`null` until it completed).
    pub first_batch_ms: Option<u64>,
}

/// One state partition's restore: `GET /api/v1/streaming/state/restores` returns one per
/// (operator, partition) restored in this run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDoc {
    /// The state operator's `uid()`.
    pub operator: String,
    /// The state partition (its changelog partition).
    pub partition: usize,
    /// Changelog records applied so far.
    pub records_restored: u64,
    /// Records the changelog expected to hand over, when known.
    pub records_expected: Option<u64>,
    /// True once the partition is restored.
    pub done: bool,
    /// ms since the partition's restore started (its duration once done).
    pub elapsed_ms: u64,
    /// Records restored per second so far.
    pub records_per_sec: f64,
}

fn partitions(ps: &[spate_streaming::InputPartition]) -> Vec<PartitionDoc> {
    ps.iter()
        .map(|p| PartitionDoc {
            topic: p.topic.clone(),
            partition: p.partition,
        })
        .collect()
}

fn rebalance_doc(r: &RebalanceInfo) -> RebalanceDoc {
    RebalanceDoc {
        kind: r.kind.as_str(),
        time: format_time(r.time.as_millis()),
        time_ms: r.time.as_millis(),
        partitions: partitions(&r.partitions),
        revocation_wait_ms: r.revocation_wait_ms,
        revocation_finished: r.revocation_finished,
        first_batch_ms: r.first_batch_ms,
    }
}

/// The document of one input's ownership.
pub fn ownership_doc(o: &InputOwnership) -> OwnershipDoc {
    let l = &o.latest;
    OwnershipDoc {
        input_id: l.input_id.clone(),
        group: l.group.clone(),
        instance_id: l.instance_id().to_owned(),
        group_instance_id: l.group_instance_id.clone(),
        member_id: l.member_id.clone(),
        client_id: l.client_id.clone(),
        owned_partitions: partitions(&l.owned),
        rebalances: RebalanceCountsDoc {
            assigned: l.rebalances.assigned,
            revoked: l.rebalances.revoked,
            lost: l.rebalances.lost,
        },
        recent_rebalances: o
            .recent_rebalances
            .iter()
            .rev()
            .map(rebalance_doc)
            .collect(),
        updated_ms: l.time.as_millis(),
    }
}

/// Every group-shared input's ownership, by input id.
pub fn ownership(metrics: &StreamingMetrics) -> Vec<OwnershipDoc> {
    metrics
        .input_ownerships()
        .iter()
        .map(ownership_doc)
        .collect()
}

/// The document of one state partition's restore.
pub fn restore_doc(r: &StateRestoreInfo) -> RestoreDoc {
    RestoreDoc {
        operator: r.operator.clone(),
        partition: r.partition,
        records_restored: r.records_restored,
        records_expected: r.records_expected,
        done: r.done,
        elapsed_ms: r.elapsed_ms,
        records_per_sec: r.records_per_sec(),
    }
}

/// Every state partition restored in this run, by operator and partition.
pub fn restores(metrics: &StreamingMetrics) -> Vec<RestoreDoc> {
    metrics.state_restores().iter().map(restore_doc).collect()
}

//! Committed offsets through the coordinator: OffsetCommit (validated against the group's
//! generation and membership first, then written durably), OffsetFetch, OffsetDelete, and the
//! periodic expiry of offsets of Empty groups.

use kafka_protocol::ResponseError;
use tracing::{info, warn};

use super::classic_group::GroupState;
use super::commit_rules::{CommitPath, Committer};
use super::coordinator::GroupCoordinator;
use super::offsets::{CommittedOffset, PartitionKey};

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    /// The topic of the committed partition.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset to commit: the next record the group reads.
    pub offset: i64,
    /// The leader epoch of the record before `offset`, -1 if unknown.
    pub leader_epoch: i32,
    /// The client's metadata string; `None` commits an empty one.
    pub metadata: Option<String>,
}

/// An OffsetCommit, version-independent.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The committing group.
    pub group_id: String,
    /// -1 for a commit outside group management (a standalone consumer or an admin tool).
    pub generation_id: i32,
    /// The committing member's id; empty outside group management.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// The OffsetCommit version: v9+ answers GROUP_ID_NOT_FOUND for an unknown group.
    pub api_version: i16,
    /// OffsetCommit v2–v4 `retention_time_ms`; -1 = the broker's retention.
    pub retention_time_ms: i64,
    /// The partitions to commit.
    pub partitions: Vec<CommitPartition>,
}

/// A committed offset as OffsetFetch returns it (offset -1 = none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset; -1 when the group has none.
    pub offset: i64,
    /// The leader epoch committed with the offset, -1 if unknown.
    pub leader_epoch: i32,
    /// The metadata string committed with the offset.
    pub metadata: String,
}

impl GroupCoordinator {
    /// OffsetCommit: validates the commit against the group (see [`super::commit_rules`]) and
    /// stores it durably. Returns one error per
    /// partition, in request order.
    pub fn commit_offsets(&self, request: CommitRequest, now_ms: i64) -> Vec<i16> {
        let all = |e: ResponseError| vec![e.code(); request.partitions.len()];
        if request.group_id.is_empty() {
            return all(ResponseError::InvalidGroupId);
        }
        let mut groups = self.groups.lock();
        let consumer = self.consumer_commit_check(
            &request.group_id,
            &request.member_id,
            request.generation_id,
            Some(request.api_version),
        );
        if let Some(Err(e)) = consumer {
            return all(e);
        }
        let who = Committer {
            group_id: &request.group_id,
            generation_id: request.generation_id,
            member_id: &request.member_id,
            group_instance_id: request.group_instance_id.as_deref(),
        };
        let path = CommitPath::OffsetCommit {
            api_version: request.api_version,
        };
        if consumer.is_none() {
            if let Err(e) = Self::validate_commit_locked(&mut groups, &who, path, now_ms) {
                return all(e);
            }
        }
        let mut errors = Vec::with_capacity(request.partitions.len());
        let mut accepted = Vec::new();
        for p in &request.partitions {
            let metadata = p.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(ResponseError::OffsetMetadataTooLarge.code());
                continue;
            }
            errors.push(0);
            accepted.push((
                (p.topic.clone(), p.partition),
                CommittedOffset {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: (request.retention_time_ms >= 0)
                        .then(|| now_ms.saturating_add(request.retention_time_ms)),
                },
            ));
        }
        let mut store = self.offsets.lock();
        drop(groups);
        if let Err(e) = store.commit(&request.group_id, accepted) {
            warn!(group = %request.group_id, error = %e, "storing committed offsets failed");
            return all(ResponseError::UnknownServerError);
        }
        errors
    }

    /// OffsetFetch of one group: the named partitions, or with `None` every partition the group
    /// has an offset for. Partitions without a commit (or an unknown group) get offset -1.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<FetchedOffset> {
        let store = self.offsets.lock();
        let none = |topic: &str, partition: i32| FetchedOffset {
            topic: topic.to_owned(),
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
        };
        let found = |(topic, partition): &PartitionKey, c: &CommittedOffset| FetchedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: c.offset,
            leader_epoch: c.leader_epoch,
            metadata: c.metadata.clone(),
        };
        match partitions {
            Some(requested) => requested
                .iter()
                .flat_map(|(topic, parts)| parts.iter().map(move |p| (topic, *p)))
                .map(|(topic, p)| match store.get(group_id, topic, p) {
                    Some(c) => found(&(topic.clone(), p), c),
                    None => none(topic, p),
                })
                .collect(),
            None => store
                .group_offsets(group_id)
                .map(|all| all.iter().map(|(k, c)| found(k, c)).collect())
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete: removes offsets of partitions the group is not subscribed to. Returns the
    /// group-level error and one error per partition.
    pub fn delete_offsets(&self, group_id: &str, partitions: &[PartitionKey]) -> (i16, Vec<i16>) {
        let groups = self.groups.lock();
        let Some(group) = groups.get(group_id) else {
            return (ResponseError::GroupIdNotFound.code(), Vec::new());
        };
        if group.is(GroupState::Dead) {
            return (ResponseError::GroupIdNotFound.code(), Vec::new());
        }
        let subscribed = if group.is(GroupState::Empty) {
            Vec::new()
        } else if group.protocol_type.as_deref() == Some("consumer") {
            super::consumer_protocol::subscribed_topics(group)
        } else {
            return (ResponseError::NonEmptyGroup.code(), Vec::new());
        };
        let mut errors = Vec::with_capacity(partitions.len());
        let mut deletable = Vec::new();
        for key in partitions {
            if subscribed.contains(&key.0) {
                errors.push(ResponseError::GroupSubscribedToTopic.code());
            } else {
                errors.push(0);
                deletable.push(key.clone());
            }
        }
        let mut store = self.offsets.lock();
        drop(groups);
        if let Err(e) = store.delete(group_id, &deletable) {
            warn!(group = %group_id, error = %e, "deleting offsets failed");
            return (ResponseError::UnknownServerError.code(), Vec::new());
        }
        (0, errors)
    }

    /// Deletes expired offsets, then removes Empty groups that have none left (Kafka's
    /// `cleanupGroupMetadata`).
    pub fn expire_offsets(&self, now_ms: i64) {
        let mut groups = self.groups.lock();
        let mut store = self.offsets.lock();
        let retention = self.config.offsets_retention_ms();
        let mut removable = Vec::new();
        for group in groups.values() {
            if !group.is(GroupState::Empty) {
                continue;
            }
            let empty_since = group
                .protocol_type
                .is_some()
                .then_some(group.state_since_ms);
            let expired = store.expired(&group.group_id, empty_since, retention, now_ms);
            if !expired.is_empty() {
                info!(group = %group.group_id, partitions = expired.len(), "offsets expired");
                if let Err(e) = store.delete(&group.group_id, &expired) {
                    warn!(group = %group.group_id, error = %e, "expiring offsets failed");
                    continue;
                }
            }
            if !store.has_offsets(&group.group_id) {
                removable.push(group.group_id.clone());
            }
        }
        for id in removable {
            info!(group = %id, "removing empty group without offsets");
            if let Err(e) = store.delete_membership(&id) {
                warn!(group = %id, error = %e, "forgetting the group's membership failed");
                continue;
            }
            groups.remove(&id);
        }
    }
}

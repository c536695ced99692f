//! Authorization of the group APIs, as Kafka's `KafkaApis` checks them, applied around the
//! coordinator's handlers (which know nothing of principals): a request the client may not
//! make at all is answered here with GROUP_AUTHORIZATION_FAILED (or the transactional id's
//! code for FindCoordinator); topics it may not touch are taken out of the request and
//! answered TOPIC_AUTHORIZATION_FAILED; listings and descriptions show only what it may
//! DESCRIBE, with authorized operations from the authorizer.
//!
//! | API | needs |
//! |---|---|
//! | FindCoordinator | DESCRIBE on the group or transactional id |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ConsumerGroupHeartbeat | READ on the group |
//! | OffsetCommit | READ on the group and on each topic |
//! | OffsetFetch | DESCRIBE on the group and on each topic |
//! | OffsetDelete | DELETE on the group, READ on each topic |
//! | ListGroups | DESCRIBE on the cluster, else only groups it may DESCRIBE |
//! | DescribeGroups, ConsumerGroupDescribe | DESCRIBE on each group |
//! | DeleteGroups | DELETE on each group |

use std::collections::BTreeSet;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::acl::{AclOperation, RequestAuthz, ResourceType};

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;

/// FindCoordinator: refuses the keys the client may not DESCRIBE (v4+ per key, earlier the
/// one key) in the coordinator's answer.
pub fn find_coordinator(
    authz: &RequestAuthz<'_>,
    req: &FindCoordinatorRequest,
    resp: &mut FindCoordinatorResponse,
) {
    let refusal = |key: &str| -> Option<ResponseError> {
        match req.key_type {
            KEY_GROUP => (!authz.group(AclOperation::Describe, key))
                .then_some(ResponseError::GroupAuthorizationFailed),
            _ => (!authz.transactional_id(AclOperation::Describe, key))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        }
    };
    if let Some(e) = refusal(req.key.as_str()).filter(|_| resp.coordinators.is_empty()) {
        resp.error_code = e.code();
        resp.error_message = Some(StrBytes::from_static_str("Authorization failed."));
        resp.node_id = BrokerId(-1);
        resp.host = StrBytes::default();
        resp.port = -1;
    }
    for c in resp.coordinators.iter_mut() {
        if let Some(e) = refusal(c.key.as_str()) {
            c.error_code = e.code();
            c.error_message = Some(StrBytes::from_static_str("Authorization failed."));
            c.node_id = BrokerId(-1);
            c.host = StrBytes::default();
            c.port = -1;
        }
    }
}

/// Whether the client may READ `group` (the membership APIs).
pub fn may_read_group(authz: &RequestAuthz<'_>, group: &str) -> bool {
    authz.group(AclOperation::Read, group)
}

/// The GROUP_AUTHORIZATION_FAILED code.
pub fn group_refused() -> i16 {
    ResponseError::GroupAuthorizationFailed.code()
}

/// OffsetCommit: takes out the topics the client may not READ; returns their error answers.
pub fn offset_commit_topics(
    authz: &RequestAuthz<'_>,
    req: &mut OffsetCommitRequest,
) -> Vec<offset_commit_response::OffsetCommitResponseTopic> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| authz.topic(AclOperation::Read, t.name.0.as_str()));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| offset_commit_refused(t, ResponseError::TopicAuthorizationFailed.code()))
        .collect()
}

/// Every partition of `t` answered with `code`.
pub fn offset_commit_refused(
    t: offset_commit_request::OffsetCommitRequestTopic,
    code: i16,
) -> offset_commit_response::OffsetCommitResponseTopic {
    let mut out = offset_commit_response::OffsetCommitResponseTopic::default();
    out.name = t.name;
    out.topic_id = t.topic_id;
    out.partitions = t
        .partitions
        .iter()
        .map(|p| {
            let mut r = offset_commit_response::OffsetCommitResponsePartition::default();
            r.partition_index = p.partition_index;
            r.error_code = code;
            r
        })
        .collect();
    out
}

/// OffsetDelete: takes out the topics the client may not READ; returns their error answers.
pub fn offset_delete_topics(
    authz: &RequestAuthz<'_>,
    req: &mut OffsetDeleteRequest,
) -> Vec<offset_delete_response::OffsetDeleteResponseTopic> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| authz.topic(AclOperation::Read, t.name.0.as_str()));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            let mut out = offset_delete_response::OffsetDeleteResponseTopic::default();
            out.name = t.name;
            out.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = offset_delete_response::OffsetDeleteResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = ResponseError::TopicAuthorizationFailed.code();
                    r
                })
                .collect();
            out
        })
        .collect()
}

/// Refused topics of one group, with the partitions asked for.
type RefusedTopics = Vec<(TopicName, Vec<i32>)>;

/// What OffsetFetch must answer itself: groups the client may not DESCRIBE, and topics it
/// may not DESCRIBE (taken out of the request).
#[derive(Debug, Default)]
pub struct OffsetFetchRefusals {
    /// v0-7: the one group is refused.
    single_group: bool,
    /// v8+: refused groups, answered GROUP_AUTHORIZATION_FAILED.
    groups: Vec<GroupId>,
    /// v0-7: refused topics with their partitions.
    topics: RefusedTopics,
    /// v8+: per group id, refused topics with their partitions.
    group_topics: Vec<(GroupId, RefusedTopics)>,
}

/// OffsetFetch, before the coordinator: takes out what the client may not DESCRIBE.
pub fn offset_fetch_before(
    authz: &RequestAuthz<'_>,
    req: &mut OffsetFetchRequest,
) -> OffsetFetchRefusals {
    let mut out = OffsetFetchRefusals::default();
    let describe_topic = |n: &TopicName| authz.topic(AclOperation::Describe, n.0.as_str());
    if req.groups.is_empty() {
        out.single_group = !authz.group(AclOperation::Describe, req.group_id.0.as_str());
        if let Some(topics) = req.topics.as_mut() {
            let (ok, refused): (Vec<_>, Vec<_>) = std::mem::take(topics)
                .into_iter()
                .partition(|t| describe_topic(&t.name));
            *topics = ok;
            out.topics = refused
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect();
        }
        return out;
    }
    let (ok, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups)
        .into_iter()
        .partition(|g| authz.group(AclOperation::Describe, g.group_id.0.as_str()));
    out.groups = refused.into_iter().map(|g| g.group_id).collect();
    req.groups = ok;
    for g in req.groups.iter_mut() {
        if let Some(topics) = g.topics.as_mut() {
            let (ok, refused): (Vec<_>, Vec<_>) = std::mem::take(topics)
                .into_iter()
                .partition(|t| describe_topic(&t.name));
            *topics = ok;
            let refused = refused
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect();
            out.group_topics.push((g.group_id.clone(), refused));
        }
    }
    out
}

/// OffsetFetch, after the coordinator: adds the refusals, and drops from "all topics"
/// answers the topics the client may not DESCRIBE.
pub fn offset_fetch_after(
    authz: &RequestAuthz<'_>,
    refusals: OffsetFetchRefusals,
    version: i16,
    resp: &mut OffsetFetchResponse,
) {
    let topic_code = ResponseError::TopicAuthorizationFailed.code();
    let describe_topic = |n: &TopicName| authz.topic(AclOperation::Describe, n.0.as_str());
    if refusals.single_group {
        resp.topics.clear();
        if version >= 2 {
            resp.error_code = group_refused();
        }
        return;
    }
    resp.topics.retain(|t| describe_topic(&t.name));
    for (name, partitions) in refusals.topics {
        let mut t = offset_fetch_response::OffsetFetchResponseTopic::default();
        t.name = name;
        t.partitions = partitions
            .into_iter()
            .map(|p| {
                let mut r = offset_fetch_response::OffsetFetchResponsePartition::default();
                r.partition_index = p;
                r.committed_offset = -1;
                r.committed_leader_epoch = -1;
                r.error_code = topic_code;
                r
            })
            .collect();
        resp.topics.push(t);
    }
    for g in resp.groups.iter_mut() {
        g.topics.retain(|t| describe_topic(&t.name));
        let refused = refusals
            .group_topics
            .iter()
            .find(|(id, _)| *id == g.group_id);
        for (name, partitions) in refused.map(|(_, t)| t.as_slice()).unwrap_or_default() {
            let mut t = offset_fetch_response::OffsetFetchResponseTopics::default();
            t.name = name.clone();
            t.partitions = partitions
                .iter()
                .map(|p| {
                    let mut r = offset_fetch_response::OffsetFetchResponsePartitions::default();
                    r.partition_index = *p;
                    r.committed_offset = -1;
                    r.committed_leader_epoch = -1;
                    r.error_code = topic_code;
                    r
                })
                .collect();
            g.topics.push(t);
        }
    }
    for id in refusals.groups {
        let mut g = offset_fetch_response::OffsetFetchResponseGroup::default();
        g.group_id = id;
        g.error_code = group_refused();
        resp.groups.push(g);
    }
}

/// ListGroups: every group for a client that may DESCRIBE the cluster, else the ones it may
/// DESCRIBE.
pub fn list_groups(authz: &RequestAuthz<'_>, resp: &mut ListGroupsResponse) {
    if !authz.cluster(AclOperation::Describe) {
        resp.groups
            .retain(|g| authz.group(AclOperation::Describe, g.group_id.0.as_str()));
    }
}

/// DescribeGroups: refused groups answered GROUP_AUTHORIZATION_FAILED, the others with the
/// authorizer's authorized operations (when asked for).
pub fn describe_groups(
    authz: &RequestAuthz<'_>,
    include_operations: bool,
    resp: &mut DescribeGroupsResponse,
) {
    for g in resp.groups.iter_mut() {
        let id = g.group_id.0.to_string();
        if !authz.group(AclOperation::Describe, &id) {
            let mut refused = describe_groups_response::DescribedGroup::default();
            refused.group_id = g.group_id.clone();
            refused.error_code = group_refused();
            refused.authorized_operations = i32::MIN;
            *g = refused;
        } else if include_operations {
            g.authorized_operations = authz.operations(ResourceType::Group, &id);
        }
    }
}

/// ConsumerGroupDescribe: as [`describe_groups`].
pub fn consumer_group_describe(
    authz: &RequestAuthz<'_>,
    include_operations: bool,
    resp: &mut ConsumerGroupDescribeResponse,
) {
    for g in resp.groups.iter_mut() {
        let id = g.group_id.0.to_string();
        if !authz.group(AclOperation::Describe, &id) {
            let mut refused = consumer_group_describe_response::DescribedGroup::default();
            refused.group_id = g.group_id.clone();
            refused.error_code = group_refused();
            refused.authorized_operations = i32::MIN;
            *g = refused;
        } else if include_operations {
            g.authorized_operations = authz.operations(ResourceType::Group, &id);
        }
    }
}

/// DeleteGroups: takes out the groups the client may not DELETE; returns their answers.
pub fn delete_groups(
    authz: &RequestAuthz<'_>,
    req: &mut DeleteGroupsRequest,
) -> Vec<delete_groups_response::DeletableGroupResult> {
    let (ok, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups_names)
        .into_iter()
        .partition(|g| authz.group(AclOperation::Delete, g.0.as_str()));
    req.groups_names = ok;
    refused
        .into_iter()
        .map(|g| {
            let mut r = delete_groups_response::DeletableGroupResult::default();
            r.group_id = g;
            r.error_code = group_refused();
            r
        })
        .collect()
}

/// ConsumerGroupHeartbeat: the subscribed topic names the client may not DESCRIBE.
pub fn undescribable_subscriptions(
    authz: &RequestAuthz<'_>,
    req: &ConsumerGroupHeartbeatRequest,
) -> BTreeSet<String> {
    req.subscribed_topic_names
        .iter()
        .flatten()
        .map(|n| n.0.to_string())
        .filter(|n| !authz.topic(AclOperation::Describe, n))
        .collect()
}

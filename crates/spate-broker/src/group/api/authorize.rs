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
    // The v0-3 answer and a v4+ coordinator carry the same fields; a refusal sets them alike.
    macro_rules! refuse {
        ($answer:expr, $e:expr) => {{
            $answer.error_code = $e.code();
            $answer.error_message = Some(StrBytes::from_static_str("Authorization failed."));
            $answer.node_id = BrokerId(-1);
            $answer.host = StrBytes::default();
            $answer.port = -1;
        }};
    }
    if let Some(e) = refusal(req.key.as_str()).filter(|_| resp.coordinators.is_empty()) {
        refuse!(resp, e);
    }
    for c in resp.coordinators.iter_mut() {
        if let Some(e) = refusal(c.key.as_str()) {
            refuse!(c, e);
        }
    }
}

/// Takes out of `items` those the client may not touch (`allowed` is false) and returns them,
/// keeping the allowed ones in their order: every per-topic or per-group refusal below starts so.
fn take_refused<T>(items: &mut Vec<T>, allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (ok, refused): (Vec<_>, Vec<_>) = std::mem::take(items).into_iter().partition(allowed);
    *items = ok;
    refused
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
    take_refused(&mut req.topics, |t| {
        authz.topic(AclOperation::Read, t.name.0.as_str())
    })
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
    take_refused(&mut req.topics, |t| {
        authz.topic(AclOperation::Read, t.name.0.as_str())
    })
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
            out.topics = take_refused(topics, |t| describe_topic(&t.name))
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect();
        }
        return out;
    }
    out.groups = take_refused(&mut req.groups, |g| {
        authz.group(AclOperation::Describe, g.group_id.0.as_str())
    })
    .into_iter()
    .map(|g| g.group_id)
    .collect();
    for g in req.groups.iter_mut() {
        if let Some(topics) = g.topics.as_mut() {
            let refused = take_refused(topics, |t| describe_topic(&t.name))
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

/// A group in a DescribeGroups or ConsumerGroupDescribe answer: the two APIs refuse and
/// annotate their groups alike.
trait DescribedGroupAnswer: Default {
    fn group_id(&self) -> &GroupId;
    fn refused(group_id: GroupId) -> Self;
    fn set_authorized_operations(&mut self, operations: i32);
}

/// Implements [`DescribedGroupAnswer`] for a generated answer type with the same three fields.
macro_rules! described_group_answer {
    ($ty:ty) => {
        impl DescribedGroupAnswer for $ty {
            fn group_id(&self) -> &GroupId {
                &self.group_id
            }
            fn refused(group_id: GroupId) -> Self {
                let mut refused = Self::default();
                refused.group_id = group_id;
                refused.error_code = group_refused();
                refused.authorized_operations = i32::MIN;
                refused
            }
            fn set_authorized_operations(&mut self, operations: i32) {
                self.authorized_operations = operations;
            }
        }
    };
}
described_group_answer!(describe_groups_response::DescribedGroup);
described_group_answer!(consumer_group_describe_response::DescribedGroup);

/// Replaces each group the client may not DESCRIBE by a GROUP_AUTHORIZATION_FAILED answer
/// and, when asked for, gives the others the authorizer's authorized operations.
fn authorize_described<G: DescribedGroupAnswer>(
    authz: &RequestAuthz<'_>,
    include_operations: bool,
    groups: &mut [G],
) {
    for g in groups.iter_mut() {
        let id = g.group_id().0.to_string();
        if !authz.group(AclOperation::Describe, &id) {
            *g = G::refused(g.group_id().clone());
        } else if include_operations {
            g.set_authorized_operations(authz.operations(ResourceType::Group, &id));
        }
    }
}

/// DescribeGroups: refused groups answered GROUP_AUTHORIZATION_FAILED, the others with the
/// authorizer's authorized operations (when asked for).
pub fn describe_groups(
    authz: &RequestAuthz<'_>,
    include_operations: bool,
    resp: &mut DescribeGroupsResponse,
) {
    authorize_described(authz, include_operations, &mut resp.groups);
}

/// ConsumerGroupDescribe: as [`describe_groups`].
pub fn consumer_group_describe(
    authz: &RequestAuthz<'_>,
    include_operations: bool,
    resp: &mut ConsumerGroupDescribeResponse,
) {
    authorize_described(authz, include_operations, &mut resp.groups);
}

/// DeleteGroups: takes out the groups the client may not DELETE; returns their answers.
pub fn delete_groups(
    authz: &RequestAuthz<'_>,
    req: &mut DeleteGroupsRequest,
) -> Vec<delete_groups_response::DeletableGroupResult> {
    take_refused(&mut req.groups_names, |g| {
        authz.group(AclOperation::Delete, g.0.as_str())
    })
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

//! DescribeTopicPartitions (API 75, Kafka 3.8+): the Java admin client's `describeTopics` asks
//! this instead of Metadata when the broker offers it, paging through topics with many
//! partitions. Answers as Kafka's handler does:
//! - no topics requested means every topic; topics come back sorted by name, from the cursor's
//!   topic (and, for that topic, the cursor's partition) on;
//! - at most `min(response_partition_limit, max.request.partition.size.limit)` partitions (at
//!   least 1); when the limit stops a topic part-way, `next_cursor` names where to resume, and
//!   when it is used up exactly at a topic's end, the next topic at partition 0;
//! - a requested topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
//!   for an illegal name); when listing all topics there are none such;
//! - a cursor naming a topic outside the requested list, or a negative partition, is
//!   INVALID_REQUEST for every requested topic;
//! - a topic the client may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED when requested and left
//!   out when listing all topics;
//! - each topic's authorized operations come from the authorizer (all of them without one).

use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{AclOperation, RequestAuthz, ResourceType};
use crate::error::Result;
use crate::state::BrokerState;
use crate::strings::topic_name;
use crate::topics::Topic;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds.
pub const MAX_REQUEST_PARTITION_SIZE_LIMIT: i32 = 2000;

/// DescribeTopicPartitions: topics' partitions, paged by a cursor.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> Result<DescribeTopicPartitionsResponse> {
    let node = state.advertised.node_id;
    let requested: Vec<String> = req.topics.iter().map(|t| t.name.0.to_string()).collect();
    let all_topics = requested.is_empty();
    let cursor = req
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map(|c| c.0.as_str()).unwrap_or("");
    let mut names: Vec<String> = if all_topics {
        state.topics.list().iter().map(|t| t.name.clone()).collect()
    } else {
        requested.clone()
    };
    names.retain(|n| n.as_str() >= cursor_topic);
    names.sort();
    names.dedup();
    let bad_cursor = match &cursor {
        Some((topic, partition)) => {
            *partition < 0 || (!all_topics && !names.iter().any(|n| n == topic))
        }
        None => false,
    };
    if bad_cursor {
        return Ok(invalid_request(&requested));
    }
    let limit = req
        .response_partition_limit
        .clamp(1, MAX_REQUEST_PARTITION_SIZE_LIMIT);
    let start = |name: &str| match &cursor {
        Some((topic, partition)) if topic == name => *partition,
        _ => 0,
    };
    let authz = ctx.authz(&state);
    if all_topics {
        names.retain(|n| authz.topic(AclOperation::Describe, n));
    }
    Ok(page(&state, &authz, node, &names, limit, start, all_topics))
}

/// The topics in `names` (sorted), up to `limit` partitions, with the cursor to resume from.
fn page(
    state: &BrokerState,
    authz: &RequestAuthz<'_>,
    node: i32,
    names: &[String],
    limit: i32,
    start: impl Fn(&str) -> i32,
    all_topics: bool,
) -> DescribeTopicPartitionsResponse {
    let mut resp = DescribeTopicPartitionsResponse::default();
    let mut remaining = limit;
    for name in names {
        if remaining == 0 {
            resp.next_cursor = Some(cursor(name, 0));
            break;
        }
        if !authz.topic(AclOperation::Describe, name) {
            let mut t = missing_topic(name);
            t.error_code = ResponseError::TopicAuthorizationFailed.code();
            resp.topics.push(t);
            continue;
        }
        let Some(topic) = state.topics.get(name) else {
            if !all_topics {
                resp.topics.push(missing_topic(name));
            }
            continue;
        };
        let first = start(name);
        let count = topic.partition_count();
        let end = count.min(first.saturating_add(remaining));
        let mut t = describe(&topic, node, first.min(end)..end);
        t.topic_authorized_operations = authz.operations(ResourceType::Topic, name);
        remaining -= i32::try_from(t.partitions.len()).unwrap_or(remaining);
        resp.topics.push(t);
        if end < count {
            resp.next_cursor = Some(cursor(name, end));
            break;
        }
    }
    resp
}

/// One topic with the partitions in `range`: this broker leads every one (epoch 0) and is its
/// only replica.
fn describe(
    topic: &Topic,
    node: i32,
    range: std::ops::Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.name = Some(topic_name(topic.name.clone()));
    t.topic_id = topic.id;
    t.partitions = range
        .map(|i| {
            let mut p = DescribeTopicPartitionsResponsePartition::default();
            p.partition_index = i;
            p.leader_id = BrokerId(node);
            p.leader_epoch = 0;
            p.replica_nodes = vec![BrokerId(node)];
            p.isr_nodes = vec![BrokerId(node)];
            p.eligible_leader_replicas = Some(Vec::new());
            p.last_known_elr = Some(Vec::new());
            p
        })
        .collect();
    t
}

fn missing_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let error = match crate::topics::name::validate(name) {
        Ok(()) => ResponseError::UnknownTopicOrPartition,
        Err(_) => ResponseError::InvalidTopicException,
    };
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.error_code = error.code();
    t.name = Some(topic_name(name.to_string()));
    t
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = topic_name(topic.to_string());
    c.partition_index = partition;
    c
}

/// Kafka's error response for a malformed request: every requested topic with the error.
fn invalid_request(requested: &[String]) -> DescribeTopicPartitionsResponse {
    let mut resp = DescribeTopicPartitionsResponse::default();
    resp.topics = requested
        .iter()
        .map(|name| {
            let mut t = DescribeTopicPartitionsResponseTopic::default();
            t.error_code = ResponseError::InvalidRequest.code();
            t.name = Some(topic_name(name.clone()));
            t
        })
        .collect();
    resp
}

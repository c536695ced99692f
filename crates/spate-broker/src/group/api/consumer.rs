//! ConsumerGroupHeartbeat (API 68) and ConsumerGroupDescribe (API 69): the consumer group
//! protocol of KIP-848 on the wire. Partitions travel by topic id; the coordinator works with
//! topic names, so a [`TopicImage`] of the topics that exist maps between them.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::ResponseError;

use crate::authorized_operations::Resource;
use crate::group::assignors::Assignment;
use crate::group::consumer_coordinator::GroupOverrides;
use crate::group::consumer_group::{HeartbeatRequest, TopicImage};
use crate::group::coordinator::GroupCoordinator;
use crate::group::now_ms;
use crate::handlers::RequestContext;
use crate::strings::{opt_str_bytes, opt_string, str_bytes};

/// ConsumerGroupHeartbeat (v0–v1).
pub fn handle_consumer_group_heartbeat(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
    image: &TopicImage,
    overrides: GroupOverrides,
) -> ConsumerGroupHeartbeatResponse {
    let owned = request.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            // A topic deleted meanwhile is no longer owned by anyone.
            if let Some(name) = image.by_id.get(&tp.topic_id) {
                a.entry(name.clone())
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
        }
        a
    });
    let req = HeartbeatRequest {
        group_id: request.group_id.0.as_str().to_owned(),
        member_id: request.member_id.as_str().to_owned(),
        member_epoch: request.member_epoch,
        instance_id: opt_string(&request.instance_id),
        rack_id: opt_string(&request.rack_id),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.as_str().to_owned()).collect()),
        // An empty regex means "no regex any more" (librdkafka sends it with topic names).
        subscribed_topic_regex: opt_string(&request.subscribed_topic_regex),
        server_assignor: opt_string(&request.server_assignor),
        owned,
        client_id: ctx.client_id().to_owned(),
        client_host: ctx.client_host(),
    };
    let result = coordinator.consumer_heartbeat(&req, ctx.api_version, image, overrides, now_ms());
    match result {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
            .with_assignment(answer.assignment.map(|a| {
                HeartbeatAssignment::default().with_topic_partitions(
                    by_id(&a, image)
                        .into_iter()
                        .map(|(id, _, ps)| {
                            HeartbeatTopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            })),
        Err((error, message)) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message((!message.is_empty()).then(|| str_bytes(message)))
            .with_member_epoch(-1),
    }
}

/// An assignment as (topic id, name, partitions), skipping topics that no longer exist.
fn by_id(a: &Assignment, image: &TopicImage) -> Vec<(uuid::Uuid, String, Vec<i32>)> {
    a.iter()
        .filter_map(|(name, ps)| {
            image
                .by_name
                .get(name)
                .map(|(id, _)| (*id, name.clone(), ps.iter().copied().collect()))
        })
        .collect()
}

fn described(a: &Assignment, image: &TopicImage) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        by_id(a, image)
            .into_iter()
            .map(|(id, name, ps)| {
                DescribedTopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

/// ConsumerGroupDescribe (v0–v1): epochs, each member's assignment and target assignment.
/// A classic or unknown group is GROUP_ID_NOT_FOUND, as Kafka answers.
pub fn handle_consumer_group_describe(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
    image: &TopicImage,
) -> ConsumerGroupDescribeResponse {
    let operations = if request.include_authorized_operations {
        Resource::Group.all_authorized()
    } else {
        i32::MIN
    };
    let groups = request
        .group_ids
        .iter()
        .map(|id| {
            let Some(g) = coordinator.consumer_group(id.0.as_str()) else {
                let what = if coordinator.describe_group(id.0.as_str()).state == "Dead" {
                    format!("Group {} not found.", id.0.as_str())
                } else {
                    format!("Group {} is not a consumer group.", id.0.as_str())
                };
                return DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(what)))
                    .with_authorized_operations(operations);
            };
            let empty = Assignment::new();
            let members = g
                .members
                .values()
                .map(|m| {
                    let member = DescribedMember::default()
                        .with_member_id(str_bytes(m.member_id.clone()))
                        .with_instance_id(opt_str_bytes(m.instance_id.clone()))
                        .with_rack_id(opt_str_bytes(m.rack_id.clone()))
                        .with_member_epoch(m.current.member_epoch)
                        .with_client_id(str_bytes(m.client_id.clone()))
                        .with_client_host(str_bytes(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed
                                .iter()
                                .map(|t| TopicName(str_bytes(t.clone())))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(opt_str_bytes(m.subscribed_regex.clone()))
                        .with_assignment(described(&m.current.assigned, image))
                        .with_target_assignment(described(
                            g.target.get(&m.member_id).unwrap_or(&empty),
                            image,
                        ));
                    // v1: 1 = consumer protocol (0 would be a classic member in the group).
                    if ctx.api_version >= 1 {
                        member.with_member_type(1)
                    } else {
                        member
                    }
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(str_bytes(g.state()))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.target_epoch)
                .with_assignor_name(str_bytes(g.assignor_name.clone()))
                .with_members(members)
                .with_authorized_operations(operations)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

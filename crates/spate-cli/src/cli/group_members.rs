//! Who is in a consumer group and which partitions each member owns, for `spate groups
//! describe` and `reset-offsets`: per member its member id, `group.instance.id` (static
//! membership), client id, host and assigned partitions.
//!
//! A classic group is described with DescribeGroups v5 sent to the group's coordinator (found
//! with FindCoordinator) over a raw connection, because librdkafka's group listing drops
//! `group.instance.id`; the assignment is decoded from the consumer protocol's bytes (the
//! `ConsumerProtocolAssignment` schema). A consumer-protocol (KIP-848) group is described with
//! ConsumerGroupDescribe, which adds the group and member epochs. When the raw requests fail
//! (e.g. a broker that refuses them), librdkafka's listing is the fallback, without instance
//! ids.

use anyhow::{anyhow, bail};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::groups::GroupInfo;
use spate_broker::group::consumer_protocol::assignment_partitions;
use spate_client::config::{CliContext, ClientArgs};

use super::raw_admin::Connection;

/// DescribeGroups version asked for: v4 added `group.instance.id`, v5 authorized operations.
const DESCRIBE_GROUPS_VERSION: i16 = 5;
/// FindCoordinator version asked for (one key per request).
const FIND_COORDINATOR_VERSION: i16 = 3;

/// A group as the coordinator reports it (a group the broker does not know is "Dead").
pub(crate) struct GroupState {
    pub(crate) state: String,
    /// The classic protocol's assignor, or the consumer protocol's server-side assignor.
    pub(crate) protocol: String,
    /// `None` for a classic group; the group epoch of a consumer-protocol group.
    pub(crate) group_epoch: Option<i32>,
    pub(crate) members: Vec<MemberRow>,
}

impl GroupState {
    fn dead() -> Self {
        GroupState {
            state: "Dead".into(),
            protocol: String::new(),
            group_epoch: None,
            members: Vec::new(),
        }
    }
}

/// One member and what it owns.
pub(crate) struct MemberRow {
    pub(crate) id: String,
    /// `group.instance.id` of a static member.
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) host: String,
    pub(crate) partitions: Vec<(String, i32)>,
    /// The member epoch of a consumer-protocol member.
    pub(crate) epoch: Option<i32>,
}

/// Describes `group`: ConsumerGroupDescribe for a consumer-protocol group, else DescribeGroups
/// at its coordinator, else librdkafka's listing through `consumer`.
pub(crate) fn describe_group(
    consumer: &BaseConsumer<CliContext>,
    client: &ClientArgs,
    group: &str,
) -> anyhow::Result<GroupState> {
    if let Some(state) = describe_consumer_group(client, group) {
        return Ok(state);
    }
    match describe_classic_group(client, group) {
        Ok(state) => return Ok(state),
        Err(e) => tracing::debug!(error = %e, "DescribeGroups failed; asking librdkafka"),
    }
    let list = consumer
        .fetch_group_list(Some(group), client.request_timeout())
        .map_err(|e| client.unreachable(e))?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map_or_else(GroupState::dead, listed_state))
}

/// ConsumerGroupDescribe of `group`: `None` if it is not a consumer-protocol group (or the
/// broker does not serve the API).
pub(crate) fn describe_consumer_group(client: &ClientArgs, group: &str) -> Option<GroupState> {
    let mut conn = Connection::connect(client).ok()?;
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = conn.call(&request, 0).ok()?;
    let g = response.groups.into_iter().next()?;
    if g.error_code != 0 {
        return None;
    }
    let members = g
        .members
        .iter()
        .map(|m| MemberRow {
            id: m.member_id.to_string(),
            instance_id: m.instance_id.as_ref().map(ToString::to_string),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|tp| {
                    tp.partitions
                        .iter()
                        .map(|p| (tp.topic_name.0.to_string(), *p))
                })
                .collect(),
            epoch: Some(m.member_epoch),
        })
        .collect();
    Some(GroupState {
        state: g.group_state.to_string(),
        protocol: g.assignor_name.to_string(),
        group_epoch: Some(g.group_epoch),
        members,
    })
}

/// A connection to `group`'s coordinator (FindCoordinator at the bootstrap broker, then the
/// coordinator's advertised address with the same security settings).
fn coordinator(client: &ClientArgs, group: &str) -> anyhow::Result<Connection> {
    let mut conn = Connection::connect(client)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let found = conn.call(&request, FIND_COORDINATOR_VERSION)?;
    if found.error_code != 0 {
        bail!(
            "FindCoordinator for group {group:?} failed with error code {}",
            found.error_code
        );
    }
    let mut at = client.clone();
    at.bootstrap_server = format!("{}:{}", found.host.as_str(), found.port);
    if at.bootstrap_server
        == client
            .bootstrap_server
            .split(',')
            .next()
            .unwrap_or_default()
    {
        return Ok(conn);
    }
    Connection::connect(&at)
}

/// DescribeGroups v5 of a classic group at its coordinator.
fn describe_classic_group(client: &ClientArgs, group: &str) -> anyhow::Result<GroupState> {
    let mut conn = coordinator(client, group)?;
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = conn.call(&request, DESCRIBE_GROUPS_VERSION)?;
    let g = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("DescribeGroups answered no group"))?;
    if g.error_code != 0 {
        bail!(
            "DescribeGroups of {group:?} failed with error code {}",
            g.error_code
        );
    }
    let consumer = g.protocol_type.as_str() == "consumer" || g.protocol_type.as_str().is_empty();
    let members = g
        .members
        .iter()
        .map(|m| MemberRow {
            id: m.member_id.to_string(),
            instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            // Only a `consumer` group's assignment is the consumer protocol's encoding.
            partitions: if consumer {
                assignment_partitions(&m.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            },
            epoch: None,
        })
        .collect();
    Ok(GroupState {
        state: g.group_state.to_string(),
        protocol: g.protocol_data.to_string(),
        group_epoch: None,
        members,
    })
}

/// librdkafka's listing of a group (no `group.instance.id`).
fn listed_state(info: &GroupInfo) -> GroupState {
    let members = info
        .members()
        .iter()
        .map(|m| MemberRow {
            id: m.id().to_owned(),
            instance_id: None,
            client_id: m.client_id().to_owned(),
            host: m.client_host().to_owned(),
            partitions: m
                .assignment()
                .and_then(assignment_partitions)
                .unwrap_or_default(),
            epoch: None,
        })
        .collect();
    GroupState {
        state: info.state().to_owned(),
        protocol: info.protocol().to_owned(),
        group_epoch: None,
        members,
    }
}

/// A member's partitions as Kafka's tool prints its ASSIGNMENT column: `topic(0,1,2)` per
/// topic, topics sorted, `-` for none.
pub(crate) fn assignment_column(partitions: &[(String, i32)]) -> String {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    if by_topic.is_empty() {
        return "-".into();
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(ToString::to_string).collect();
            format!("{t}({})", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_print_like_kafkas_tool() {
        let ps = vec![
            ("b".to_owned(), 2),
            ("a".to_owned(), 3),
            ("b".to_owned(), 0),
            ("a".to_owned(), 1),
        ];
        assert_eq!(assignment_column(&ps), "a(1,3), b(0,2)");
        assert_eq!(assignment_column(&[]), "-");
    }
}

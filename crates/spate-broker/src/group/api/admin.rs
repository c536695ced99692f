//! FindCoordinator, ListGroups, DescribeGroups and DeleteGroups.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::ResponseError;

use crate::authorized_operations::Resource;
use crate::group::coordinator::GroupCoordinator;
use crate::handlers::RequestContext;
use crate::strings::{opt_str_bytes, str_bytes};

/// The node clients should send group requests to: this broker, as it advertises itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorNode {
    /// The broker id.
    pub node_id: i32,
    /// The host clients connect to.
    pub host: String,
    /// The port clients connect to.
    pub port: i32,
}

/// FindCoordinator key types: 0 = group, 1 = transaction.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator (v0–v6). A single broker coordinates every group and every transactional
/// id; v4+ batches keys in `coordinator_keys`.
pub fn handle_find_coordinator(
    node: &CoordinatorNode,
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let key_type = if ctx.api_version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    let error = match key_type {
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => 0,
        _ => ResponseError::InvalidRequest.code(),
    };
    if ctx.api_version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                if error != 0 {
                    c.with_error_code(error)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                } else {
                    c.with_node_id(BrokerId(node.node_id))
                        .with_host(str_bytes(node.host.clone()))
                        .with_port(node.port)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default().with_error_code(error);
    let response = if ctx.api_version >= 1 && error != 0 {
        response.with_error_message(Some(str_bytes("unsupported coordinator key type")))
    } else {
        response
    };
    if error != 0 {
        return response.with_node_id(BrokerId(-1)).with_port(-1);
    }
    response
        .with_node_id(BrokerId(node.node_id))
        .with_host(str_bytes(node.host.clone()))
        .with_port(node.port)
}

/// ListGroups (v0–v5): v4 filters by state, v5 by group type ("classic" or "consumer", the
/// latter being KIP-848 groups, listed with protocol type "consumer" as Kafka 4 lists them).
pub fn handle_list_groups(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = if ctx.api_version >= 4 {
        request
            .states_filter
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let wanted = |kind: &str| {
        ctx.api_version < 5
            || request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(kind))
    };
    let listed = |group_id: String, protocol_type: String, state: String, kind: &str| {
        let listed = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_protocol_type(str_bytes(protocol_type));
        let listed = if ctx.api_version >= 4 {
            listed.with_group_state(str_bytes(state))
        } else {
            listed
        };
        if ctx.api_version >= 5 {
            listed.with_group_type(str_bytes(kind))
        } else {
            listed
        }
    };
    let mut groups: Vec<ListedGroup> = Vec::new();
    if wanted("classic") {
        groups.extend(
            coordinator
                .list_groups(&states)
                .into_iter()
                .map(|g| listed(g.group_id, g.protocol_type, g.state, "classic")),
        );
    }
    if wanted("consumer") {
        groups.extend(
            coordinator
                .consumer_group_listing()
                .into_iter()
                .filter(|(_, state)| {
                    states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state))
                })
                .map(|(id, state)| listed(id, "consumer".into(), state.into(), "consumer")),
        );
    }
    groups.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups (v0–v5).
pub fn handle_describe_groups(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let d = coordinator.describe_group(id.0.as_str());
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(if ctx.api_version >= 4 {
                            opt_str_bytes(m.group_instance_id)
                        } else {
                            None
                        })
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            // v3+: authorized operations when asked — all of them, there is no authorizer.
            let operations = if ctx.api_version >= 3 && request.include_authorized_operations {
                Resource::Group.all_authorized()
            } else {
                i32::MIN
            };
            if coordinator.is_consumer_group(id.0.as_str()) {
                // A consumer-protocol group is not described by DescribeGroups: Dead with no
                // members, and from v6 (KIP-1043) GROUP_ID_NOT_FOUND saying why, which tells
                // tools to use ConsumerGroupDescribe.
                let dead = DescribedGroup::default()
                    .with_authorized_operations(operations)
                    .with_group_id(id.clone())
                    .with_group_state(str_bytes("Dead"));
                return if ctx.api_version >= 6 {
                    dead.with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Group {} is not a classic group.",
                            id.0.as_str()
                        ))))
                } else {
                    dead
                };
            }
            DescribedGroup::default()
                .with_authorized_operations(operations)
                .with_error_code(d.error_code)
                .with_group_id(id.clone())
                .with_group_state(str_bytes(d.state))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol_data))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups (v0–v2).
pub fn handle_delete_groups(
    coordinator: &GroupCoordinator,
    _ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .iter()
        .map(|id| {
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(coordinator.delete_group(id.0.as_str()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

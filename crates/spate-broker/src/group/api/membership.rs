//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: group membership of the classic protocol.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::ResponseError;
use tracing::debug;

use crate::group::coordinator::GroupCoordinator;
use crate::group::member::MemberProtocol;
use crate::group::now_ms;
use crate::group::types::{JoinRequest, JoinResponse, LeavingMember, SyncRequest, SyncResponse};
use crate::handlers::RequestContext;
use crate::strings::{opt_str_bytes, opt_string, str_bytes};

/// JoinGroup (v0–v9). Waits until the group's join phase completes.
pub async fn handle_join_group(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = ctx.api_version;
    let join = JoinRequest {
        group_id: request.group_id.0.as_str().to_owned(),
        member_id: request.member_id.as_str().to_owned(),
        group_instance_id: if version >= 5 {
            opt_string(&request.group_instance_id)
        } else {
            None
        },
        client_id: ctx.client_id().to_owned(),
        client_host: ctx.client_host(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout bounds the rebalance.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.as_str().to_owned(),
        protocols: request
            .protocols
            .iter()
            .map(|p| MemberProtocol {
                name: p.name.as_str().to_owned(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    debug!(group = %join.group_id, member = %join.member_id, version,
           session_timeout_ms = join.session_timeout_ms,
           rebalance_timeout_ms = join.rebalance_timeout_ms, "JoinGroup received");
    let group_id = join.group_id.clone();
    let started = now_ms();
    let rx = coordinator.join_group(join, started);
    let response = rx.await.unwrap_or_else(|_| {
        JoinResponse::error(
            ResponseError::CoordinatorNotAvailable,
            request.member_id.as_str(),
        )
    });
    debug!(group = %group_id, member = %response.member_id, error = response.error_code,
           generation = response.generation_id, leader = %response.leader,
           waited_ms = now_ms() - started, "JoinGroup answered");
    join_response(version, response)
}

/// Builds a JoinGroup response of `version` (exposed for the encode-every-version test).
pub fn join_response(version: i16, r: JoinResponse) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    opt_str_bytes(m.group_instance_id)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error_code)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 {
            opt_str_bytes(r.protocol_type)
        } else {
            None
        })
        // Non-nullable before v7: an unset protocol is the empty string.
        .with_protocol_name(if version >= 7 {
            opt_str_bytes(r.protocol_name)
        } else {
            Some(str_bytes(r.protocol_name.unwrap_or_default()))
        })
        .with_leader(str_bytes(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(str_bytes(r.member_id))
        .with_members(members)
}

/// SyncGroup (v0–v5). The leader sends assignments; everyone waits for theirs.
pub async fn handle_sync_group(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = ctx.api_version;
    let sync = SyncRequest {
        group_id: request.group_id.0.as_str().to_owned(),
        generation_id: request.generation_id,
        member_id: request.member_id.as_str().to_owned(),
        group_instance_id: if version >= 3 {
            opt_string(&request.group_instance_id)
        } else {
            None
        },
        protocol_type: if version >= 5 {
            opt_string(&request.protocol_type)
        } else {
            None
        },
        protocol_name: if version >= 5 {
            opt_string(&request.protocol_name)
        } else {
            None
        },
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
            .collect(),
    };
    debug!(group = %sync.group_id, member = %sync.member_id, generation = sync.generation_id,
           assignments = sync.assignments.len(), "SyncGroup received");
    let (group_id, member_id) = (sync.group_id.clone(), sync.member_id.clone());
    let started = now_ms();
    let rx = coordinator.sync_group(sync, started);
    let response = rx
        .await
        .unwrap_or_else(|_| SyncResponse::error(ResponseError::CoordinatorNotAvailable));
    debug!(group = %group_id, member = %member_id, error = response.error_code,
           assignment_bytes = response.assignment.len(), waited_ms = now_ms() - started,
           "SyncGroup answered");
    sync_response(version, response)
}

/// Builds a SyncGroup response of `version`.
pub fn sync_response(version: i16, r: SyncResponse) -> SyncGroupResponse {
    let v5 = version >= 5;
    SyncGroupResponse::default()
        .with_error_code(r.error_code)
        .with_protocol_type(if v5 {
            opt_str_bytes(r.protocol_type)
        } else {
            None
        })
        .with_protocol_name(if v5 {
            opt_str_bytes(r.protocol_name)
        } else {
            None
        })
        .with_assignment(r.assignment)
}

/// Heartbeat (v0–v4).
pub fn handle_heartbeat(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let instance = if ctx.api_version >= 3 {
        opt_string(&request.group_instance_id)
    } else {
        None
    };
    let error_code = coordinator.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        instance.as_deref(),
        request.generation_id,
        now_ms(),
    );
    debug!(group = %request.group_id.0.as_str(), member = %request.member_id.as_str(),
           generation = request.generation_id, error = error_code, "Heartbeat answered");
    HeartbeatResponse::default().with_error_code(error_code)
}

/// LeaveGroup (v0–v5; v3+ names several members, possibly by `group.instance.id` only).
pub fn handle_leave_group(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let batched = ctx.api_version >= 3;
    let leaving: Vec<LeavingMember> = if batched {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.as_str().to_owned(),
                group_instance_id: opt_string(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.as_str().to_owned(),
            group_instance_id: None,
        }]
    };
    let (top, errors) = coordinator.leave_group(request.group_id.0.as_str(), &leaving, now_ms());
    debug!(group = %request.group_id.0.as_str(),
           members = ?leaving.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(),
           errors = ?errors, "LeaveGroup answered");
    if !batched {
        return LeaveGroupResponse::default().with_error_code(top);
    }
    let members = leaving
        .into_iter()
        .zip(errors)
        .map(|(m, e)| {
            MemberResponse::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(opt_str_bytes(m.group_instance_id))
                .with_error_code(e)
        })
        .collect();
    // v3+: per-member errors; the top level only reports group-level failures.
    let group_level = if top == ResponseError::CoordinatorNotAvailable.code() {
        top
    } else {
        0
    };
    LeaveGroupResponse::default()
        .with_error_code(group_level)
        .with_members(members)
}

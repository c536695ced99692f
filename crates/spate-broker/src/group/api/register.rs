//! Plugging the coordinator's APIs into the broker: [`register`] adds every group API, with the
//! versions served, to the broker's handler registry; the adapters below have the registry's
//! handler signature and reach the coordinator through [`BrokerState::groups`], with the
//! authorizer's checks around each ([`super::authorize`]).

use std::sync::Arc;

use kafka_protocol::messages::*;

use super::authorize as authz;
use super::CoordinatorNode;
use crate::acl::AclOperation;
use crate::error::{BrokerError, Result};
use crate::group::consumer_coordinator::GroupOverrides;
use crate::group::consumer_group::TopicImage;
use crate::group::group_configs;
use crate::handlers::{HandlerRegistry, RequestContext};
use crate::state::BrokerState;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// Registers the group APIs. The version ranges are what kafka-protocol implements, which
/// covers librdkafka 2.x and the Java 3.x/4.x classic-protocol clients.
pub fn register(r: &mut HandlerRegistry) {
    r.register::<FindCoordinatorRequest, _, _>(0, 6, find_coordinator)
        .register::<JoinGroupRequest, _, _>(0, 9, join_group)
        .register::<SyncGroupRequest, _, _>(0, 5, sync_group)
        .register::<HeartbeatRequest, _, _>(0, 4, heartbeat)
        .register::<LeaveGroupRequest, _, _>(0, 5, leave_group)
        .register::<OffsetCommitRequest, _, _>(2, 9, offset_commit)
        .register::<OffsetFetchRequest, _, _>(1, 9, offset_fetch)
        .register::<OffsetDeleteRequest, _, _>(0, 0, offset_delete)
        .register::<ListGroupsRequest, _, _>(0, 5, list_groups)
        .register::<DescribeGroupsRequest, _, _>(0, 6, describe_groups)
        .register::<DeleteGroupsRequest, _, _>(0, 2, delete_groups)
        .register::<ConsumerGroupHeartbeatRequest, _, _>(0, 1, consumer_group_heartbeat)
        .register::<ConsumerGroupDescribeRequest, _, _>(0, 1, consumer_group_describe);
}

/// The topics that exist now, for the consumer group protocol's id ↔ name mapping and its
/// subscription metadata.
fn topic_image(state: &BrokerState) -> TopicImage {
    let mut image = TopicImage::default();
    for t in state.topics.list() {
        image.insert(&t.name, t.id, t.partition_count());
    }
    image
}

async fn consumer_group_heartbeat(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> Result<ConsumerGroupHeartbeatResponse> {
    let a = ctx.authz(&state);
    if !authz::may_read_group(&a, req.group_id.0.as_str()) {
        return Ok(
            ConsumerGroupHeartbeatResponse::default().with_error_code(authz::group_refused())
        );
    }
    let refused = authz::undescribable_subscriptions(&a, &req);
    if !refused.is_empty() {
        let names: Vec<String> = refused.into_iter().collect();
        return Ok(ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from(format!(
                "Topic authorization failed for topics {names:?}"
            )))));
    }
    let configs = state.group_configs.get(req.group_id.0.as_str());
    let read = |key: &str| configs.get(key).and_then(|v| v.parse().ok());
    let overrides = GroupOverrides {
        session_timeout_ms: read(group_configs::CONSUMER_SESSION_TIMEOUT_MS),
        heartbeat_interval_ms: read(group_configs::CONSUMER_HEARTBEAT_INTERVAL_MS),
    };
    let image = topic_image(&state);
    Ok(super::handle_consumer_group_heartbeat(
        &state.groups,
        &ctx,
        req,
        &image,
        overrides,
    ))
}

async fn consumer_group_describe(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> Result<ConsumerGroupDescribeResponse> {
    let image = topic_image(&state);
    let include = req.include_authorized_operations;
    let mut resp = super::handle_consumer_group_describe(&state.groups, &ctx, req, &image);
    authz::consumer_group_describe(&ctx.authz(&state), include, &mut resp);
    Ok(resp)
}

async fn find_coordinator(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: FindCoordinatorRequest,
) -> Result<FindCoordinatorResponse> {
    let node = CoordinatorNode {
        node_id: state.advertised.node_id,
        host: ctx.advertised.host.clone(),
        port: ctx.advertised.port,
    };
    let mut resp = super::handle_find_coordinator(&node, &ctx, req.clone());
    authz::find_coordinator(&ctx.authz(&state), &req, &mut resp);
    Ok(resp)
}

async fn join_group(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: JoinGroupRequest,
) -> Result<JoinGroupResponse> {
    if !authz::may_read_group(&ctx.authz(&state), req.group_id.0.as_str()) {
        return Ok(JoinGroupResponse::default()
            .with_error_code(authz::group_refused())
            .with_generation_id(-1)
            .with_member_id(req.member_id));
    }
    Ok(super::handle_join_group(&state.groups, &ctx, req).await)
}

async fn sync_group(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: SyncGroupRequest,
) -> Result<SyncGroupResponse> {
    if !authz::may_read_group(&ctx.authz(&state), req.group_id.0.as_str()) {
        return Ok(SyncGroupResponse::default().with_error_code(authz::group_refused()));
    }
    Ok(super::handle_sync_group(&state.groups, &ctx, req).await)
}

async fn heartbeat(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: HeartbeatRequest,
) -> Result<HeartbeatResponse> {
    if !authz::may_read_group(&ctx.authz(&state), req.group_id.0.as_str()) {
        return Ok(HeartbeatResponse::default().with_error_code(authz::group_refused()));
    }
    Ok(super::handle_heartbeat(&state.groups, &ctx, req))
}

async fn leave_group(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: LeaveGroupRequest,
) -> Result<LeaveGroupResponse> {
    if !authz::may_read_group(&ctx.authz(&state), req.group_id.0.as_str()) {
        return Ok(LeaveGroupResponse::default().with_error_code(authz::group_refused()));
    }
    Ok(super::handle_leave_group(&state.groups, &ctx, req))
}

/// Commits are acknowledged only after the offsets log is fsynced, which takes milliseconds
/// on every commit: run them on the blocking pool so they do not stall the async workers that
/// serve every other connection. (Produce appends stay on the workers; see
/// [`Partition::append`](crate::partition::Partition::append) for why.)
async fn offset_commit(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    mut req: OffsetCommitRequest,
) -> Result<OffsetCommitResponse> {
    let a = ctx.authz(&state);
    if !authz::may_read_group(&a, req.group_id.0.as_str()) {
        let code = authz::group_refused();
        let topics = req
            .topics
            .into_iter()
            .map(|t| authz::offset_commit_refused(t, code))
            .collect();
        return Ok(OffsetCommitResponse::default().with_topics(topics));
    }
    let refused = authz::offset_commit_topics(&a, &mut req);
    drop(a);
    tokio::task::spawn_blocking(move || {
        let exists =
            |topic: &str, partition: i32| state.topics.partition(topic, partition).is_some();
        let mut resp = super::handle_offset_commit(&state.groups, &ctx, req, &exists);
        resp.topics.extend(refused);
        resp
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("offset commit task: {e}")))
}

async fn offset_fetch(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    mut req: OffsetFetchRequest,
) -> Result<OffsetFetchResponse> {
    let require_stable = ctx.api_version >= 7 && req.require_stable;
    let group_id = req.group_id.0.to_string();
    let a = ctx.authz(&state);
    let refusals = authz::offset_fetch_before(&a, &mut req);
    let mut resp = super::handle_offset_fetch(&state.groups, &ctx, req);
    if require_stable {
        crate::txn::api::mark_unstable(&state.txn, &group_id, &mut resp);
    }
    authz::offset_fetch_after(&a, refusals, ctx.api_version, &mut resp);
    Ok(resp)
}

/// Appends tombstones to the offsets log (fsynced), like a commit.
async fn offset_delete(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    mut req: OffsetDeleteRequest,
) -> Result<OffsetDeleteResponse> {
    let a = ctx.authz(&state);
    if !a.group(AclOperation::Delete, req.group_id.0.as_str()) {
        return Ok(OffsetDeleteResponse::default().with_error_code(authz::group_refused()));
    }
    let refused = authz::offset_delete_topics(&a, &mut req);
    drop(a);
    tokio::task::spawn_blocking(move || {
        let mut resp = super::handle_offset_delete(&state.groups, &ctx, req);
        resp.topics.extend(refused);
        resp
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("offset delete task: {e}")))
}

async fn list_groups(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ListGroupsRequest,
) -> Result<ListGroupsResponse> {
    let mut resp = super::handle_list_groups(&state.groups, &ctx, req);
    authz::list_groups(&ctx.authz(&state), &mut resp);
    Ok(resp)
}

async fn describe_groups(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeGroupsRequest,
) -> Result<DescribeGroupsResponse> {
    let include = ctx.api_version >= 3 && req.include_authorized_operations;
    let mut resp = super::handle_describe_groups(&state.groups, &ctx, req);
    authz::describe_groups(&ctx.authz(&state), include, &mut resp);
    Ok(resp)
}

/// Appends tombstones for the groups' offsets (fsynced), like a commit.
async fn delete_groups(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    mut req: DeleteGroupsRequest,
) -> Result<DeleteGroupsResponse> {
    let refused = authz::delete_groups(&ctx.authz(&state), &mut req);
    tokio::task::spawn_blocking(move || {
        let mut resp = super::handle_delete_groups(&state.groups, &ctx, req);
        resp.results.extend(refused);
        resp
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("delete groups task: {e}")))
}

//! Plugging the coordinator into the broker: [`install`] creates it when the broker starts
//! (replaying committed offsets from `<data dir>/meta/consumer_offsets/`) and starts its timer
//! task; the `handle_*` functions here have the handler registry's signature and look the
//! coordinator up in the broker state's extension slot.

use std::sync::Arc;

use kafka_protocol::messages::*;

use super::{CoordinatorNode, RequestContext as GroupContext};
use crate::error::{BrokerError, Result};
use crate::group::{ticker, GroupCoordinator};
use crate::handlers::RequestContext;
use crate::state::BrokerState;

/// Creates the broker's group coordinator (loading durable offsets) and starts its timers,
/// which stop when the broker shuts down. Called once by `Broker::start`.
pub async fn install(state: &Arc<BrokerState>) -> Result<Arc<GroupCoordinator>> {
    let config = state.config.group.clone();
    let dir = state.meta_dir().map(|d| d.join("consumer_offsets"));
    let coordinator = tokio::task::spawn_blocking(move || match dir {
        Some(dir) => GroupCoordinator::open(config, &dir, crate::group::now_ms()),
        None => Ok(GroupCoordinator::in_memory(config)),
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("loading committed offsets: {e}")))??;
    let coordinator = Arc::new(coordinator);
    state.extensions.insert(coordinator.clone());
    let timers = ticker::spawn(&coordinator);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        timers.abort();
    });
    Ok(coordinator)
}

/// The broker's coordinator; a broker started without [`install`] gets an in-memory one.
fn coordinator(state: &BrokerState) -> Arc<GroupCoordinator> {
    state
        .extensions
        .get_or_init(|| GroupCoordinator::in_memory(state.config.group.clone()))
}

/// Kafka shows a member's host as `/<ip>`.
fn client_host(ctx: &RequestContext) -> String {
    format!("/{}", ctx.peer.ip())
}

fn group_ctx<'a>(ctx: &'a RequestContext, host: &'a str) -> GroupContext<'a> {
    GroupContext {
        api_version: ctx.api_version,
        client_id: ctx.client_id.as_deref().unwrap_or_default(),
        client_host: host,
    }
}

pub async fn handle_find_coordinator(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: FindCoordinatorRequest,
) -> Result<FindCoordinatorResponse> {
    let node = CoordinatorNode {
        node_id: state.advertised.node_id,
        host: state.advertised.host.clone(),
        port: state.advertised.port,
    };
    let host = client_host(&ctx);
    Ok(super::handle_find_coordinator(
        &node,
        group_ctx(&ctx, &host),
        req,
    ))
}

pub async fn handle_join_group(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: JoinGroupRequest,
) -> Result<JoinGroupResponse> {
    let c = coordinator(&state);
    let host = client_host(&ctx);
    Ok(super::handle_join_group(&c, group_ctx(&ctx, &host), req).await)
}

pub async fn handle_sync_group(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: SyncGroupRequest,
) -> Result<SyncGroupResponse> {
    let c = coordinator(&state);
    let host = client_host(&ctx);
    Ok(super::handle_sync_group(&c, group_ctx(&ctx, &host), req).await)
}

pub async fn handle_heartbeat(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: HeartbeatRequest,
) -> Result<HeartbeatResponse> {
    let host = client_host(&ctx);
    Ok(super::handle_heartbeat(
        &coordinator(&state),
        group_ctx(&ctx, &host),
        req,
    ))
}

pub async fn handle_leave_group(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: LeaveGroupRequest,
) -> Result<LeaveGroupResponse> {
    let host = client_host(&ctx);
    Ok(super::handle_leave_group(
        &coordinator(&state),
        group_ctx(&ctx, &host),
        req,
    ))
}

pub async fn handle_offset_commit(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: OffsetCommitRequest,
) -> Result<OffsetCommitResponse> {
    let c = coordinator(&state);
    // The commit waits for an fsync: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let host = client_host(&ctx);
        let exists =
            |topic: &str, partition: i32| state.topics.partition(topic, partition).is_some();
        super::handle_offset_commit(&c, group_ctx(&ctx, &host), req, &exists)
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("offset commit task: {e}")))
}

pub async fn handle_offset_fetch(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: OffsetFetchRequest,
) -> Result<OffsetFetchResponse> {
    let host = client_host(&ctx);
    let require_stable = ctx.api_version >= 7 && req.require_stable;
    let group_id = req.group_id.0.to_string();
    let mut resp = super::handle_offset_fetch(&coordinator(&state), group_ctx(&ctx, &host), req);
    if require_stable {
        let txn = crate::txn::api::coordinator(&state);
        crate::txn::api::mark_unstable(&txn, &group_id, &mut resp);
    }
    Ok(resp)
}

pub async fn handle_offset_delete(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: OffsetDeleteRequest,
) -> Result<OffsetDeleteResponse> {
    let c = coordinator(&state);
    tokio::task::spawn_blocking(move || {
        let host = client_host(&ctx);
        super::handle_offset_delete(&c, group_ctx(&ctx, &host), req)
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("offset delete task: {e}")))
}

pub async fn handle_list_groups(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ListGroupsRequest,
) -> Result<ListGroupsResponse> {
    let host = client_host(&ctx);
    Ok(super::handle_list_groups(
        &coordinator(&state),
        group_ctx(&ctx, &host),
        req,
    ))
}

pub async fn handle_describe_groups(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeGroupsRequest,
) -> Result<DescribeGroupsResponse> {
    let host = client_host(&ctx);
    Ok(super::handle_describe_groups(
        &coordinator(&state),
        group_ctx(&ctx, &host),
        req,
    ))
}

pub async fn handle_delete_groups(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DeleteGroupsRequest,
) -> Result<DeleteGroupsResponse> {
    let c = coordinator(&state);
    tokio::task::spawn_blocking(move || {
        let host = client_host(&ctx);
        super::handle_delete_groups(&c, group_ctx(&ctx, &host), req)
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("delete groups task: {e}")))
}

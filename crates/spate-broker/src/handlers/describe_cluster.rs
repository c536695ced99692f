//! DescribeCluster: the cluster id and the one broker, which is also the controller, and when
//! asked the cluster's authorized operations: the authorizer's answer for a client that may
//! DESCRIBE the cluster, none otherwise (Kafka's `computeDescribeClusterResponse`); all of
//! them without an authorizer.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::RequestContext;
use crate::error::Result;
use crate::state::BrokerState;
use crate::strings::str_bytes;

/// DescribeCluster: this broker as the whole cluster, and the cluster id.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeClusterRequest,
) -> Result<DescribeClusterResponse> {
    let a = &ctx.advertised;
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = str_bytes(state.config.cluster_id.clone());
    resp.controller_id = BrokerId(a.node_id);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(a.node_id);
    b.host = str_bytes(a.host.clone());
    b.port = a.port;
    resp.brokers = vec![b];
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = ctx.authz(&state).cluster_operations();
    }
    Ok(resp)
}

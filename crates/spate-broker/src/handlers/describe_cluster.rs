//! DescribeCluster: the cluster id and the one broker, which is also the controller, and when
//! asked the cluster's authorized operations (all of them: there is no authorizer).

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::RequestContext;
use crate::authorized_operations::Resource;
use crate::error::Result;
use crate::state::BrokerState;
use crate::strings::str_bytes;

pub async fn handle(
    state: Arc<BrokerState>,
    _ctx: RequestContext,
    req: DescribeClusterRequest,
) -> Result<DescribeClusterResponse> {
    let a = &state.advertised;
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = str_bytes(state.config.cluster_id.clone());
    resp.controller_id = BrokerId(a.node_id);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(a.node_id);
    b.host = str_bytes(a.host.clone());
    b.port = a.port;
    resp.brokers = vec![b];
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = Resource::Cluster.all_authorized();
    }
    Ok(resp)
}

//! ApiVersions: the versions of every API this broker serves, derived from the handler registry.
//! Unsupported ApiVersions versions never reach this handler; the connection answers those
//! with a v0 UNSUPPORTED_VERSION response carrying the same list.

use std::sync::Arc;

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::RequestContext;
use crate::error::Result;
use crate::state::BrokerState;

/// ApiVersions: the APIs and version ranges this broker serves.
pub(crate) async fn handle(
    _state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ApiVersionsRequest,
) -> Result<ApiVersionsResponse> {
    if ctx.api_version >= 3 {
        tracing::debug!(
            peer = %ctx.peer,
            client = %req.client_software_name,
            version = %req.client_software_version,
            "client connected"
        );
    }
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = ctx.supported_apis.to_vec();
    Ok(resp)
}

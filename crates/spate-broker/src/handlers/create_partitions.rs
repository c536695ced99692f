//! CreatePartitions: raise a topic's partition count (Kafka never lowers one: INVALID_PARTITIONS).
//! It needs ALTER on the topic (else TOPIC_AUTHORIZATION_FAILED), as in Kafka.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::AclOperation;
use crate::error::Result;
use crate::state::BrokerState;
use crate::strings::str_opt;

/// CreatePartitions: adds partitions to existing topics.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: CreatePartitionsRequest,
) -> Result<CreatePartitionsResponse> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut resp = CreatePartitionsResponse::default();
    let authz = ctx.authz(&state);
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
            Err((
                ResponseError::InvalidRequest,
                format!("topic {name} appears more than once in the request"),
            ))
        } else if !authz.topic(AclOperation::Alter, &name) {
            Err((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            ))
        } else {
            state
                .topics
                .create_partitions(&name, t.count, req.validate_only)
                .map_err(|e| (e.error_code(), e.to_string()))
        };
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = str_opt(message);
        }
        resp.results.push(r);
    }
    Ok(resp)
}

//! DeleteTopics: by name (v1–v5 `topic_names`, v6 `topics`) or by topic id (v6). Deleting a
//! topic removes its partition logs and wakes fetchers parked on it. It needs DELETE on the
//! topic (else TOPIC_AUTHORIZATION_FAILED), as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use crate::acl::AclOperation;
use crate::error::Result;
use crate::state::BrokerState;
use crate::strings::{str_opt, topic_name};

/// DeleteTopics: deletes topics by name or id.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DeleteTopicsRequest,
) -> Result<DeleteTopicsResponse> {
    let mut targets: Vec<(Option<String>, Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut resp = DeleteTopicsResponse::default();
    let authz = ctx.authz(&state);
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.name = name.clone().map(topic_name);
        r.topic_id = id;
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => Ok(n.clone()),
            (None, false) => state.topics.get_by_id(&id).map(|t| t.name.clone()).ok_or((
                ResponseError::UnknownTopicId,
                format!("no topic with id {id}"),
            )),
            (None, true) => Err((
                ResponseError::InvalidRequest,
                "neither a topic name nor a topic id was given".to_string(),
            )),
        };
        let resolved = resolved.and_then(|n| match authz.topic(AclOperation::Delete, &n) {
            true => Ok(n),
            false => Err((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            )),
        });
        let outcome = resolved.and_then(|n| {
            state
                .topics
                .delete(&n)
                .map(|t| (n, t.id))
                .map_err(|e| (e.error_code(), e.to_string()))
        });
        match outcome {
            Ok((n, topic_id)) => {
                if ctx.api_version >= 6 {
                    r.name = Some(topic_name(n));
                    r.topic_id = topic_id;
                }
            }
            Err((code, message)) => {
                r.error_code = code.code();
                if ctx.api_version >= 5 {
                    r.error_message = str_opt(message);
                }
            }
        }
        resp.responses.push(r);
    }
    Ok(resp)
}

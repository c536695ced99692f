//! InitProducerId: idempotent producers (no `transactional.id`) get a fresh producer id at
//! epoch 0, as Kafka hands them out (a producer that bumps its epoch after an error gets a new
//! id too). With a `transactional.id` the transaction coordinator answers (see
//! `crate::txn::api::init_transactional`): the id's producer id, its epoch bumped.
//!
//! With an authorizer, as Kafka 3+: a transactional id needs WRITE on it (else
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs IDEMPOTENT_WRITE on the
//! cluster or WRITE on some topic (else CLUSTER_AUTHORIZATION_FAILED).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{AclOperation, ResourceType};
use crate::error::Result;
use crate::state::BrokerState;

/// InitProducerId: a producer id and epoch for an idempotent or transactional producer.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: InitProducerIdRequest,
) -> Result<InitProducerIdResponse> {
    let authz = ctx.authz(&state);
    let refused = match req.transactional_id.as_ref() {
        Some(id) => (!authz.transactional_id(AclOperation::Write, id.0.as_str()))
            .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        None => (!authz.cluster(AclOperation::IdempotentWrite)
            && !authz.any(AclOperation::Write, ResourceType::Topic))
        .then_some(ResponseError::ClusterAuthorizationFailed),
    };
    if let Some(error) = refused {
        let mut resp = InitProducerIdResponse::default();
        resp.error_code = error.code();
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        return Ok(resp);
    }
    if let Some(txn) = req.transactional_id.as_ref() {
        // Kafka: an empty transactional id is an INVALID_REQUEST, answered by the coordinator.
        let id = txn.0.to_string();
        return crate::txn::api::init_transactional(&state, &ctx, req, id).await;
    }
    let mut resp = InitProducerIdResponse::default();
    match state.producer_ids.allocate() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "producer id allocation failed");
            resp.error_code = e.error_code().code();
        }
    }
    Ok(resp)
}

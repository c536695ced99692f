//! InitProducerId: idempotent producers (no `transactional.id`) get a fresh producer id at
//! epoch 0, as Kafka hands them out (a producer that bumps its epoch after an error gets a new
//! id too). With a `transactional.id` the transaction coordinator answers (see
//! `crate::txn::api::init_transactional`): the id's producer id, its epoch bumped.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::RequestContext;
use crate::error::Result;
use crate::state::BrokerState;

pub async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: InitProducerIdRequest,
) -> Result<InitProducerIdResponse> {
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

//! InitProducerId: hands idempotent producers a fresh producer id at epoch 0, as Kafka does for
//! producers without a `transactional.id` (a producer that bumps its epoch after an error gets a
//! new id too). Transactions are not implemented yet: a `transactional.id` is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal error, so the client fails fast with a clear
//! message instead of retrying forever.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::error::Result;
use crate::state::BrokerState;

pub async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: InitProducerIdRequest,
) -> Result<InitProducerIdResponse> {
    let mut resp = InitProducerIdResponse::default();
    if let Some(txn) = req.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
        tracing::warn!(peer = %ctx.peer, transactional_id = %txn.0, "transactions are not supported yet");
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Ok(resp);
    }
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

//! DeleteRecords: move a partition's log start offset forward (offset -1 means the high
//! watermark). Whole segments below it are dropped by the log; fetches below it then get
//! OFFSET_OUT_OF_RANGE. As in Kafka, a log whose `cleanup.policy` does not include `delete`
//! (a compacted topic) refuses with POLICY_VIOLATION: its start offset is the cleaner's business.
//! It needs DELETE on the topic (else TOPIC_AUTHORIZATION_FAILED).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::AclOperation;
use crate::error::Result;
use crate::state::BrokerState;

/// DeleteRecords: moves partitions' log start offsets forward.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DeleteRecordsRequest,
) -> Result<DeleteRecordsResponse> {
    let mut resp = DeleteRecordsResponse::default();
    let authz = ctx.authz(&state);
    for t in req.topics {
        let authorized = authz.topic(AclOperation::Delete, t.name.0.as_str());
        let topic = state.topics.get(t.name.0.as_str());
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                _ if !authorized => pr.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(part) => {
                    let log = part.log();
                    let hw = log.log_end_offset();
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if !part.config().delete() {
                        tracing::debug!(partition = %part.tp, "records of a compacted partition cannot be deleted due to the configured policy");
                        pr.error_code = ResponseError::PolicyViolation.code();
                    } else if target < 0 || target > hw {
                        pr.error_code = ResponseError::OffsetOutOfRange.code();
                    } else {
                        match log.delete_records_before(target) {
                            Ok(low) => pr.low_watermark = low,
                            Err(e) => {
                                tracing::warn!(partition = %part.tp, error = %e, "delete records failed");
                                pr.error_code = e.error_code().code();
                            }
                        }
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    Ok(resp)
}

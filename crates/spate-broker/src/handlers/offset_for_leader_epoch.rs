//! OffsetForLeaderEpoch: clients (librdkafka, Java) validate their position after a leader
//! change or on assignment by asking where an epoch ended. This broker has one epoch, 0, which
//! has not ended: its end offset is the log end. An epoch above 0 is unknown here. A consumer
//! needs DESCRIBE on the topic (else TOPIC_AUTHORIZATION_FAILED), as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::{check_leader_epoch, RequestContext};
use crate::acl::AclOperation;
use crate::error::Result;
use crate::state::BrokerState;

/// OffsetForLeaderEpoch: the end offset of a leader epoch, for a client's truncation check.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> Result<OffsetForLeaderEpochResponse> {
    let mut resp = OffsetForLeaderEpochResponse::default();
    let authz = ctx.authz(&state);
    for t in req.topics {
        let authorized = authz.topic(AclOperation::Describe, t.topic.0.as_str());
        let topic = state.topics.get(t.topic.0.as_str());
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic;
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                _ if !authorized => e.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => e.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if check_leader_epoch(p.current_leader_epoch).is_some() => {
                    e.error_code = ResponseError::UnknownLeaderEpoch.code()
                }
                Some(part) if p.leader_epoch <= 0 => {
                    e.leader_epoch = 0;
                    e.end_offset = part.log().log_end_offset();
                }
                Some(_) => {
                    e.leader_epoch = -1;
                    e.end_offset = -1;
                }
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    Ok(resp)
}

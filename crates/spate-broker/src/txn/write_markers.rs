//! WriteTxnMarkers (API key 27): writes a COMMIT or ABORT marker for a producer to the given
//! partitions. In Kafka the transaction coordinator sends it to partition leaders; here the
//! coordinator writes its own markers in-process, so the request comes from admin tools —
//! `kafka-transactions.sh abort` and `spate transactions abort` end a hanging transaction
//! (a producer that began one and vanished) on one partition with it. A marker is written as
//! the coordinator's are (`Partition::append_marker`): the producer's open transaction on the
//! partition ends, an ABORT adds its range to the transaction index, and the last stable
//! offset moves on. It needs CLUSTER_ACTION on the cluster (else every partition is
//! CLUSTER_AUTHORIZATION_FAILED), as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::marker::MarkerKind;
use crate::error::{BrokerError, Result};
use crate::handlers::RequestContext;
use crate::state::BrokerState;

/// WriteTxnMarkers: writes COMMIT or ABORT markers to partitions.
pub(crate) async fn handle_write_txn_markers(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: WriteTxnMarkersRequest,
) -> Result<WriteTxnMarkersResponse> {
    if !ctx
        .authz(&state)
        .cluster(crate::acl::AclOperation::ClusterAction)
    {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        let markers = req.markers.into_iter().map(|m| refused(m, code)).collect();
        return Ok(WriteTxnMarkersResponse::default().with_markers(markers));
    }
    // Appends fsync; keep them off the request threads, as the coordinator does.
    let markers = tokio::task::spawn_blocking(move || {
        req.markers
            .into_iter()
            .map(|m| write_marker(&state, m))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("write txn markers task: {e}")))?;
    Ok(WriteTxnMarkersResponse::default().with_markers(markers))
}

/// One producer's markers, every partition answered with `code`.
fn refused(m: write_txn_markers_request::WritableTxnMarker, code: i16) -> WritableTxnMarkerResult {
    answer_each(m, |_, _| code)
}

/// Writes one producer's marker to each of its partitions; one error code per partition.
fn write_marker(
    state: &BrokerState,
    m: write_txn_markers_request::WritableTxnMarker,
) -> WritableTxnMarkerResult {
    let kind = if m.transaction_result {
        MarkerKind::Commit
    } else {
        MarkerKind::Abort
    };
    let (producer_id, producer_epoch, coordinator_epoch) =
        (m.producer_id.0, m.producer_epoch, m.coordinator_epoch);
    answer_each(m, |topic, index| {
        match state.topics.partition(topic.0.as_str(), index) {
            None => ResponseError::UnknownTopicOrPartition.code(),
            Some(p) => {
                match p.append_marker(kind, producer_id, producer_epoch, coordinator_epoch) {
                    Ok(offset) => {
                        tracing::info!(partition = %p.tp, producer_id, ?kind, offset,
                                       "marker written by WriteTxnMarkers");
                        0
                    }
                    Err(e) => e.code(),
                }
            }
        }
    })
}

/// The answer to one producer's markers: each of its partitions with the error code
/// `code_of(topic, partition)` gives it (0 for a written marker).
fn answer_each(
    m: write_txn_markers_request::WritableTxnMarker,
    mut code_of: impl FnMut(&TopicName, i32) -> i16,
) -> WritableTxnMarkerResult {
    let topics = m
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code_of(&t.name, index))
                })
                .collect();
            WritableTxnMarkerTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    WritableTxnMarkerResult::default()
        .with_producer_id(m.producer_id)
        .with_topics(topics)
}

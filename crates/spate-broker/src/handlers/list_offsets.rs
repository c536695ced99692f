//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local (-4, v8+)
//! and by timestamp. On a single broker the high watermark is the log end; latest answers it
//! for read_uncommitted and the last stable offset for read_committed (isolation level 1, v2+),
//! which differ only while a transaction is open. It needs DESCRIBE on each topic (else
//! TOPIC_AUTHORIZATION_FAILED), as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::{check_leader_epoch, RequestContext};
use crate::acl::AclOperation;
use crate::error::Result;
use crate::partition::Partition;
use crate::record_batch::BatchIter;
use crate::record_scan;
use crate::state::BrokerState;

/// ListOffsets timestamp -1: the log end offset (the next offset to be written).
pub const LATEST: i64 = -1;
/// ListOffsets timestamp -2: the log start offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp -3 (KIP-734): the offset of the record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;
/// ListOffsets timestamp -4 (KIP-405): the local log start offset (the log start here).
pub const EARLIEST_LOCAL: i64 = -4;

/// ListOffsets: per partition, the offset for a timestamp or for one of the special values.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ListOffsetsRequest,
) -> Result<ListOffsetsResponse> {
    let mut resp = ListOffsetsResponse::default();
    let read_committed = ctx.api_version >= 2 && req.isolation_level == 1;
    let authz = ctx.authz(&state);
    for t in req.topics {
        let authorized = authz.topic(AclOperation::Describe, t.name.0.as_str());
        let topic = state.topics.get(t.name.0.as_str());
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            let partition = topic.as_ref().and_then(|t| t.partition(p.partition_index));
            let result = match partition {
                _ if !authorized => Err(ResponseError::TopicAuthorizationFailed),
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(_) if check_leader_epoch(p.current_leader_epoch).is_some() => {
                    Err(ResponseError::UnknownLeaderEpoch)
                }
                Some(part) => lookup(&part, p.timestamp, ctx.api_version, read_committed),
            };
            match result {
                Ok((timestamp, offset)) => {
                    pr.timestamp = timestamp;
                    pr.offset = offset;
                    // leader_epoch exists from v4 on; earlier versions cannot carry it.
                    if ctx.api_version >= 4 && offset >= 0 {
                        pr.leader_epoch = 0;
                    }
                }
                Err(code) => {
                    pr.error_code = code.code();
                    pr.timestamp = -1;
                    pr.offset = -1;
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    Ok(resp)
}

/// The first record at or after `min_offset`, in the batch holding offset `at`, whose timestamp
/// reaches `timestamp`, as `(timestamp, offset)`. The log indexes batches; Kafka answers with
/// records, so both timestamp lookups look inside the batch the log found. `None` (the batch
/// cannot be read or scanned) falls back to the batch-level answer.
fn refine(p: &Partition, at: i64, min_offset: i64, timestamp: i64) -> Option<(i64, i64)> {
    let bytes = p.log().read(at, 1).ok()?;
    let (_, _, batch) = BatchIter::new(&bytes).next()?.ok()?;
    let limit = crate::validate::uncompressed_limit(p.config().max_message_bytes);
    match record_scan::first_record_at_or_after(batch, min_offset, timestamp, limit) {
        Ok(found) => found.map(|(o, ts)| (ts, o)),
        Err(e) => {
            tracing::debug!(partition = %p.tp, error = %e, "cannot scan batch records");
            None
        }
    }
}

/// MAX_TIMESTAMP (-3, KIP-734): the log knows the batch with the largest timestamp; Kafka
/// answers with the first record in it that has that timestamp (`RecordBatch.offsetOfMaxTimestamp`),
/// which is not the batch's last offset when a newer record precedes older ones.
fn max_timestamp(p: &Partition) -> (i64, i64) {
    let log = p.log();
    match log.max_timestamp() {
        None => (-1, -1),
        Some((ts, batch_offset)) => {
            refine(p, batch_offset, log.log_start_offset(), ts).unwrap_or((ts, batch_offset))
        }
    }
}

/// `(timestamp, offset)` for one partition; `(-1, -1)` when no record matches.
fn lookup(
    p: &Partition,
    timestamp: i64,
    version: i16,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let log = p.log();
    match timestamp {
        LATEST if read_committed => Ok((-1, p.last_stable_offset())),
        LATEST => Ok((-1, log.log_end_offset())),
        EARLIEST => Ok((-1, log.log_start_offset())),
        EARLIEST_LOCAL if version >= 8 => Ok((-1, log.log_start_offset())),
        MAX_TIMESTAMP if version >= 7 => Ok(max_timestamp(p)),
        ts if ts >= 0 => match log.offset_for_timestamp(ts) {
            Ok(Some((offset, batch_max_ts))) => {
                Ok(refine(p, offset, offset, ts).unwrap_or((batch_max_ts, offset)))
            }
            Ok(None) => Ok((-1, -1)),
            Err(e) => {
                tracing::warn!(partition = %p.tp, error = %e, "offset lookup by timestamp failed");
                Err(e.error_code())
            }
        },
        _ => Err(ResponseError::UnsupportedVersion),
    }
}

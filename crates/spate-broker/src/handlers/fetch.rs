//! Fetch: read whole batches from each requested partition, within `partition_max_bytes` and the
//! request's `max_bytes` (at least one batch is always returned when available, as KIP-74 asks,
//! so an oversized batch cannot stall a consumer).
//!
//! Long polls: when less than `min_bytes` is available the request parks on every requested
//! partition until an append wakes it or `max_wait_ms` passes — no polling loop. The fetcher
//! registers before it re-reads, so an append that lands in between is not missed.
//!
//! Isolation: a read_committed fetch (isolation level 1) gets only batches below the partition's
//! last stable offset and the aborted transactions overlapping what it got, so the client can
//! drop aborted records; a read_uncommitted fetch gets everything below the high watermark and
//! *no* aborted transactions (a list there makes some clients skip records that are not aborted).
//!
//! Fetch sessions (KIP-227) are declined: the response's session id is always 0, which both
//! librdkafka and the Java client treat as "this broker does not cache sessions" and keep sending
//! full fetch requests. A request naming a session id gets FETCH_SESSION_ID_NOT_FOUND, which makes
//! a client drop its session. Fetch v13+ identifies topics by id.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use tokio::sync::Notify;

use super::{check_leader_epoch, RequestContext};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::record_batch::BatchIter;
use crate::state::BrokerState;

/// A requested partition, resolved once per request.
struct Target {
    partition: Result<Arc<Partition>, ResponseError>,
    index: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
}

pub async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: FetchRequest,
) -> Result<FetchResponse> {
    let mut resp = FetchResponse::default();
    if ctx.api_version >= 7 && req.session_id != 0 {
        resp.error_code = ResponseError::FetchSessionIdNotFound.code();
        return Ok(resp);
    }
    let uses_ids = ctx.api_version >= 13;
    let read_committed = req.isolation_level == 1;
    let targets: Vec<(FetchTopic, Vec<Target>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = if uses_ids {
                state
                    .topics
                    .get_by_id(&t.topic_id)
                    .ok_or(ResponseError::UnknownTopicId)
            } else {
                state
                    .topics
                    .get(t.topic.0.as_str())
                    .ok_or(ResponseError::UnknownTopicOrPartition)
            };
            let targets = t
                .partitions
                .iter()
                .map(|p| Target {
                    partition: topic.clone().and_then(|topic| {
                        topic
                            .partition(p.partition)
                            .ok_or(ResponseError::UnknownTopicOrPartition)
                    }),
                    index: p.partition,
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                })
                .collect();
            (t, targets)
        })
        .collect();

    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let waiter = Arc::new(Notify::new());
    let mut registered = false;
    let topics = loop {
        let (topics, bytes, errors) = read_all(&targets, max_bytes, uses_ids, read_committed);
        let done = bytes >= min_bytes.max(1)
            || errors
            || min_bytes == 0
            || tokio::time::Instant::now() >= deadline
            || state.shutdown.is_cancelled();
        if done {
            break topics;
        }
        if !registered {
            // Park on every partition, then read once more before waiting.
            for (_, ts) in &targets {
                for t in ts {
                    if let Ok(p) = &t.partition {
                        p.register_fetcher(&waiter);
                    }
                }
            }
            registered = true;
            continue;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutdown.cancelled() => {}
        }
        for (_, ts) in &targets {
            for t in ts {
                if let Ok(p) = &t.partition {
                    p.register_fetcher(&waiter);
                }
            }
        }
    };
    resp.responses = topics;
    Ok(resp)
}

/// One pass over every requested partition: the response topics, the record bytes read, and
/// whether any partition has an error (which answers the fetch immediately, as in Kafka).
fn read_all(
    targets: &[(FetchTopic, Vec<Target>)],
    max_bytes: usize,
    uses_ids: bool,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut out = Vec::with_capacity(targets.len());
    for (topic, parts) in targets {
        let mut tr = FetchableTopicResponse::default();
        if uses_ids {
            tr.topic_id = topic.topic_id;
        } else {
            tr.topic = topic.topic.clone();
        }
        for t in parts {
            let budget = max_bytes.saturating_sub(total);
            let pd = read_partition(t, budget, total == 0, read_committed);
            if pd.error_code != 0 {
                errors = true;
            }
            total += pd.records.as_ref().map_or(0, Bytes::len);
            tr.partitions.push(pd);
        }
        out.push(tr);
    }
    (out, total, errors)
}

fn read_partition(
    t: &Target,
    budget: usize,
    first_with_data: bool,
    read_committed: bool,
) -> PartitionData {
    let mut pd = PartitionData::default();
    pd.partition_index = t.index;
    pd.aborted_transactions = None;
    let p = match &t.partition {
        Ok(p) => p,
        Err(code) => {
            pd.error_code = code.code();
            pd.high_watermark = -1;
            return pd;
        }
    };
    if let Some(code) = check_leader_epoch(t.current_leader_epoch) {
        pd.error_code = code.code();
        pd.high_watermark = -1;
        return pd;
    }
    let log = p.log();
    let hw = p.high_watermark();
    let lso = p.last_stable_offset();
    pd.high_watermark = hw;
    pd.last_stable_offset = lso;
    pd.log_start_offset = log.log_start_offset();
    if read_committed {
        pd.aborted_transactions = Some(Vec::new());
    }
    let limit = (t.partition_max_bytes.max(0) as usize).min(budget);
    // Past the request's max_bytes only the first partition with data may exceed it (KIP-74);
    // the others report their offsets without records.
    if limit == 0 && !first_with_data {
        pd.records = Some(Bytes::new());
        return pd;
    }
    match log.read(t.fetch_offset, limit.max(1)) {
        Ok(bytes) if read_committed => {
            let (stable, end) = below(bytes, lso);
            if end > t.fetch_offset {
                pd.aborted_transactions = Some(
                    p.aborted_txns(t.fetch_offset, end)
                        .into_iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect(),
                );
            }
            pd.records = Some(stable);
        }
        Ok(bytes) => pd.records = Some(bytes),
        Err(BrokerError::OffsetOutOfRange { .. }) => {
            pd.error_code = ResponseError::OffsetOutOfRange.code();
            pd.records = Some(Bytes::new());
        }
        Err(e) => {
            tracing::warn!(partition = %p.tp, error = %e, "fetch read failed");
            pd.error_code = e.error_code().code();
            pd.records = Some(Bytes::new());
        }
    }
    pd
}

/// The whole batches of `bytes` that start below `lso`, and the offset after the last of them
/// (0 when none). A batch never straddles the last stable offset: it is the first offset of a
/// transaction's first batch.
fn below(bytes: Bytes, lso: i64) -> (Bytes, i64) {
    let mut cut = 0;
    let mut end = 0;
    for item in BatchIter::new(&bytes) {
        let Ok((at, h, batch)) = item else { break };
        if h.base_offset >= lso {
            break;
        }
        cut = at + batch.len();
        end = h.last_offset() + 1;
    }
    (bytes.slice(..cut), end)
}

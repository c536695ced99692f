//! Fetch: read whole batches from each requested partition within the request's limits, long
//! polling when there is too little to return, through an incremental fetch session when the
//! client uses one.
//!
//! Limits as Kafka applies them (KIP-74): partitions are read in request (or session) order;
//! each gets at most `partition_max_bytes` and what is left of the request's `max_bytes`. The
//! first partition that has data returns at least one whole batch even when that batch is
//! larger than both limits, so an oversized batch cannot stall a consumer; every later partition
//! returns only batches that fit, so a response carries at most one oversized batch.
//!
//! Long polls: when less than `min_bytes` is available the request parks on every partition it
//! reads until an append wakes it or `max_wait_ms` passes — no polling loop. The fetcher
//! registers before it re-reads, so an append that lands in between is not missed.
//!
//! Isolation: a read_committed fetch (isolation level 1) gets only batches below the partition's
//! last stable offset and the aborted transactions overlapping what it got, so the client can
//! drop aborted records; a read_uncommitted fetch gets everything below the high watermark and
//! *no* aborted transactions (a list there makes some clients skip records that are not aborted).
//!
//! Fetch sessions (KIP-227, v7+) are served by [`FetchSessionCache`]: a full fetch with epoch 0
//! opens one, incremental fetches name only changed partitions and get only partitions with
//! something new. Fetch v13+ identifies topics by id. Reading needs READ on the topic.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;
use tokio::sync::Notify;

use super::{check_leader_epoch, RequestContext};
use crate::acl::{AclOperation, RequestAuthz};
use crate::error::{BrokerError, Result};
use crate::fetch_session::{
    FetchContext, FetchPartition, FetchSessionCache, PartitionResult, PartitionState, TopicKey,
};
use crate::partition::Partition;
use crate::record_batch::BatchIter;
use crate::state::BrokerState;
use crate::strings::str_bytes;

/// A partition to read, resolved once per request.
struct Target {
    fetch: FetchPartition,
    partition: Result<Arc<Partition>, ResponseError>,
}

/// Fetch: records from each partition, waiting up to `max_wait_ms` for `min_bytes`.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: FetchRequest,
) -> Result<FetchResponse> {
    let uses_ids = ctx.api_version >= 13;
    let requested = requested_partitions(&req, uses_ids);
    let context = if ctx.api_version >= 7 {
        let forgotten = forgotten_partitions(&req, uses_ids);
        match state.fetch_sessions.new_context(
            req.session_id,
            req.session_epoch,
            uses_ids,
            requested,
            &forgotten,
            crate::time::now_ms(),
        ) {
            Ok(context) => context,
            Err(e) => return Ok(FetchResponse::default().with_error_code(e.code())),
        }
    } else {
        FetchContext::Sessionless(requested)
    };
    let partitions = match &context {
        FetchContext::Sessionless(p) | FetchContext::Full(p) => p,
        FetchContext::Incremental { partitions, .. } => partitions,
    };
    let authz = ctx.authz(&state);
    let targets: Vec<Target> = partitions
        .iter()
        .map(|p| Target {
            fetch: p.clone(),
            partition: resolve(&state, &authz, p),
        })
        .collect();
    let read = long_poll(&state, &targets, &req).await;
    finish(&state.fetch_sessions, context, targets, read, uses_ids)
}

/// The request's partitions, in request order.
fn requested_partitions(req: &FetchRequest, uses_ids: bool) -> Vec<FetchPartition> {
    req.topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(uses_ids, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| FetchPartition {
                topic: topic.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
            })
        })
        .collect()
}

fn forgotten_partitions(req: &FetchRequest, uses_ids: bool) -> Vec<(TopicKey, i32)> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(uses_ids, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect()
}

fn topic_key(uses_ids: bool, name: &TopicName, id: uuid::Uuid) -> TopicKey {
    if uses_ids {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.0.as_str().to_owned())
    }
}

/// The partition to read; reading needs READ on the topic (TOPIC_AUTHORIZATION_FAILED, checked
/// before existence for names, as Kafka does, so a refused client learns nothing).
fn resolve(
    state: &BrokerState,
    authz: &RequestAuthz<'_>,
    p: &FetchPartition,
) -> Result<Arc<Partition>, ResponseError> {
    let topic = match &p.topic {
        TopicKey::Id(id) => state
            .topics
            .get_by_id(id)
            .ok_or(ResponseError::UnknownTopicId)?,
        TopicKey::Name(name) => {
            if !authz.topic(AclOperation::Read, name) {
                return Err(ResponseError::TopicAuthorizationFailed);
            }
            state
                .topics
                .get(name)
                .ok_or(ResponseError::UnknownTopicOrPartition)?
        }
    };
    if !authz.topic(AclOperation::Read, &topic.name) {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    topic
        .partition(p.partition)
        .ok_or(ResponseError::UnknownTopicOrPartition)
}

/// Reads until `min_bytes` are available, an error shows up, `max_wait_ms` passes or the
/// broker shuts down; returns the last read, one entry per target.
async fn long_poll(
    state: &BrokerState,
    targets: &[Target],
    req: &FetchRequest,
) -> Vec<PartitionData> {
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let waiter = Arc::new(Notify::new());
    let mut registered = false;
    loop {
        let (read, bytes, errors) = read_all(targets, max_bytes, read_committed);
        let done = bytes >= min_bytes.max(1)
            || errors
            || min_bytes == 0
            || tokio::time::Instant::now() >= deadline
            || state.shutdown.is_cancelled();
        if done {
            return read;
        }
        if registered {
            tokio::select! {
                _ = waiter.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = state.shutdown.cancelled() => {}
            }
        }
        // Park on every partition, then read once more before waiting.
        for t in targets {
            if let Ok(p) = &t.partition {
                p.register_fetcher(&waiter);
            }
        }
        registered = true;
    }
}

/// One pass over every partition: their data, the record bytes read, and whether any partition
/// has an error (which answers the fetch immediately, as in Kafka).
fn read_all(
    targets: &[Target],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let budget = max_bytes.saturating_sub(total);
        // Until a partition returned records, the next one may exceed the limits (KIP-74).
        let pd = read_partition(t, budget, total == 0, read_committed);
        errors |= pd.error_code != 0;
        total += pd.records.as_ref().map_or(0, Bytes::len);
        out.push(pd);
    }
    (out, total, errors)
}

fn read_partition(
    t: &Target,
    budget: usize,
    min_one_batch: bool,
    read_committed: bool,
) -> PartitionData {
    let mut pd = PartitionData::default();
    pd.partition_index = t.fetch.partition;
    pd.aborted_transactions = None;
    let p = match &t.partition {
        Ok(p) => p,
        Err(code) => {
            pd.error_code = code.code();
            pd.high_watermark = -1;
            return pd;
        }
    };
    if let Some(code) = check_leader_epoch(t.fetch.current_leader_epoch) {
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
    let limit = (t.fetch.partition_max_bytes.max(0) as usize).min(budget);
    pd.records = Some(Bytes::new());
    if read_committed {
        pd.aborted_transactions = Some(Vec::new());
    }
    if limit == 0 && !min_one_batch {
        return pd;
    }
    match log.read(t.fetch.fetch_offset, limit.max(1)) {
        // The log returns at least one whole batch; past the first partition with data a
        // batch that does not fit is left for a later fetch (Kafka would send a truncated
        // batch, which clients discard).
        Ok(bytes) if bytes.len() > limit && !min_one_batch => {}
        Ok(bytes) if read_committed => {
            let (stable, end) = below(bytes, lso);
            if end > t.fetch.fetch_offset {
                pd.aborted_transactions = Some(
                    p.aborted_txns(t.fetch.fetch_offset, end)
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
        }
        Err(e) => {
            tracing::warn!(partition = %p.tp, error = %e, "fetch read failed");
            pd.error_code = e.error_code().code();
        }
    }
    pd
}

/// Builds the response for the context: every partition (opening a session after a full fetch
/// with epoch 0), or for an incremental fetch only those with something new.
fn finish(
    cache: &FetchSessionCache,
    context: FetchContext,
    targets: Vec<Target>,
    read: Vec<PartitionData>,
    uses_ids: bool,
) -> Result<FetchResponse> {
    let results: Vec<(FetchPartition, PartitionResult)> = targets
        .into_iter()
        .zip(&read)
        .map(|(t, pd)| {
            let result = PartitionResult {
                state: PartitionState {
                    high_watermark: pd.high_watermark,
                    last_stable_offset: pd.last_stable_offset,
                    log_start_offset: pd.log_start_offset,
                },
                records_bytes: pd.records.as_ref().map_or(0, Bytes::len),
                error_code: pd.error_code,
            };
            (t.fetch, result)
        })
        .collect();
    let mut resp = FetchResponse::default();
    let keep = match context {
        FetchContext::Sessionless(_) => vec![true; read.len()],
        FetchContext::Full(_) => {
            resp.session_id = cache.create(uses_ids, &results, crate::time::now_ms());
            vec![true; read.len()]
        }
        FetchContext::Incremental {
            session_id,
            next_epoch,
            ..
        } => match cache.finish_incremental(session_id, next_epoch, &results) {
            Ok(keep) => {
                resp.session_id = session_id;
                keep
            }
            Err(e) => return Ok(resp.with_error_code(e.code())),
        },
    };
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (((fetch, _), pd), keep) in results.into_iter().zip(read).zip(keep) {
        if !keep {
            continue;
        }
        let same_topic = topics.last().is_some_and(|t| match &fetch.topic {
            TopicKey::Id(id) => t.topic_id == *id,
            TopicKey::Name(name) => t.topic.0.as_str() == name,
        });
        if !same_topic {
            let mut t = FetchableTopicResponse::default();
            match &fetch.topic {
                TopicKey::Id(id) => t.topic_id = *id,
                TopicKey::Name(name) => t.topic = TopicName(str_bytes(name.clone())),
            }
            topics.push(t);
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(pd);
        }
    }
    resp.responses = topics;
    Ok(resp)
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

//! The transaction APIs: each handler maps a request of any supported version onto the
//! coordinator's operations (run on the blocking pool: they fsync and write markers) and builds
//! the response for that version.
//!
//! Versions: InitProducerId 0–5, AddPartitionsToTxn 0–3 (v4+ is Kafka's broker-to-coordinator
//! batched form, not served), AddOffsetsToTxn, EndTxn and TxnOffsetCommit 0–3 — the
//! transactions-v1 flow every client uses while the broker does not advertise
//! `transaction.version` ≥ 2. Clients older than KIP-588 get INVALID_PRODUCER_EPOCH where newer
//! ones get PRODUCER_FENCED, as Kafka converts it.
//!
//! Authorization, as Kafka: each needs WRITE on the transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); AddPartitionsToTxn also WRITE on each topic (the
//! refused ones TOPIC_AUTHORIZATION_FAILED, the rest OPERATION_NOT_ATTEMPTED); AddOffsetsToTxn
//! READ on the group; TxnOffsetCommit READ on the group and on each topic.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::coordinator::{TransactionCoordinator, TxnEnv};
use super::metadata::{PendingOffset, TxnPartition};
use crate::acl::AclOperation;
use crate::error::{BrokerError, Result};
use crate::handlers::RequestContext;
use crate::state::BrokerState;
use crate::time::now_ms;

/// Runs `f` with the coordinator and its environment on the blocking pool.
pub(crate) async fn with_env<T: Send + 'static>(
    state: &Arc<BrokerState>,
    f: impl FnOnce(&TransactionCoordinator, TxnEnv<'_>) -> T + Send + 'static,
) -> Result<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let env = TxnEnv {
            topics: &state.topics,
            producer_ids: &state.producer_ids,
            groups: &state.groups,
        };
        f(&state.txn, env)
    })
    .await
    .map_err(|e| BrokerError::Runtime(format!("transaction coordinator task: {e}")))
}

/// PRODUCER_FENCED for clients that know it, INVALID_PRODUCER_EPOCH for older ones.
fn fenced_for(version: i16, since: i16, e: ResponseError) -> i16 {
    if e == ResponseError::ProducerFenced && version < since {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        e.code()
    }
}

fn code(r: Result<(), ResponseError>, version: i16, since: i16) -> i16 {
    r.err().map_or(0, |e| fenced_for(version, since, e))
}

/// InitProducerId with a transactional id (the idempotent case stays in
/// `handlers::init_producer_id`).
pub async fn init_transactional(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
    transactional_id: String,
) -> Result<InitProducerIdResponse> {
    // KIP-360 (v3+): a producer resuming after an error names its current id and epoch.
    let expected = (ctx.api_version >= 3 && req.producer_id.0 >= 0)
        .then_some((req.producer_id.0, req.producer_epoch));
    let timeout = req.transaction_timeout_ms;
    let result = with_env(state, move |txn, env| {
        txn.init_producer_id(env, &transactional_id, timeout, expected, now_ms())
    })
    .await?;
    let mut resp = InitProducerIdResponse::default();
    match result {
        Ok((id, epoch)) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = epoch;
        }
        Err(e) => {
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
            resp.error_code = fenced_for(ctx.api_version, 4, e);
        }
    }
    Ok(resp)
}

/// AddPartitionsToTxn: adds partitions to a producer's open transaction.
pub(crate) async fn handle_add_partitions_to_txn(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: AddPartitionsToTxnRequest,
) -> Result<AddPartitionsToTxnResponse> {
    let id = req.v3_and_below_transactional_id.0.to_string();
    let (pid, epoch) = (
        req.v3_and_below_producer_id.0,
        req.v3_and_below_producer_epoch,
    );
    let requested: Vec<TxnPartition> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    // Kafka: an unknown partition fails the whole request; the others are not attempted.
    let unknown: Vec<bool> = requested
        .iter()
        .map(|(t, p)| state.topics.partition(t, *p).is_none())
        .collect();
    let authz = ctx.authz(&state);
    let txn_refused = !authz.transactional_id(AclOperation::Write, &id);
    let topic_refused: Vec<bool> = requested
        .iter()
        .map(|(t, _)| !authz.topic(AclOperation::Write, t))
        .collect();
    drop(authz);
    let codes: Vec<i16> = if txn_refused {
        vec![ResponseError::TransactionalIdAuthorizationFailed.code(); requested.len()]
    } else if topic_refused.iter().any(|r| *r) {
        topic_refused
            .iter()
            .map(|r| match r {
                true => ResponseError::TopicAuthorizationFailed.code(),
                false => ResponseError::OperationNotAttempted.code(),
            })
            .collect()
    } else if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| {
                if *u {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else {
        let parts = requested.clone();
        let r = with_env(&state, move |txn, _| {
            txn.add_partitions(&id, pid, epoch, &parts, now_ms())
        })
        .await?;
        vec![code(r, ctx.api_version, 2); requested.len()]
    };
    let mut resp = AddPartitionsToTxnResponse::default();
    for ((topic, partition), c) in requested.into_iter().zip(codes) {
        let name = TopicName(crate::strings::str_bytes(topic));
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(c);
        match resp
            .results_by_topic_v3_and_below
            .iter_mut()
            .find(|t| t.name == name)
        {
            Some(t) => t.results_by_partition.push(result),
            None => resp.results_by_topic_v3_and_below.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(name)
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    Ok(resp)
}

/// AddOffsetsToTxn: adds a consumer group's offsets to a producer's open transaction.
pub(crate) async fn handle_add_offsets_to_txn(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: AddOffsetsToTxnRequest,
) -> Result<AddOffsetsToTxnResponse> {
    let id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let authz = ctx.authz(&state);
    let refused = if !authz.transactional_id(AclOperation::Write, &id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authz.group(AclOperation::Read, &group) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    drop(authz);
    if let Some(e) = refused {
        return Ok(AddOffsetsToTxnResponse::default().with_error_code(e.code()));
    }
    let r = with_env(&state, move |txn, _| {
        txn.add_offsets(&id, pid, epoch, &group, now_ms())
    })
    .await?;
    Ok(AddOffsetsToTxnResponse::default().with_error_code(code(r, ctx.api_version, 2)))
}

/// EndTxn: commits or aborts a producer's transaction.
pub(crate) async fn handle_end_txn(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: EndTxnRequest,
) -> Result<EndTxnResponse> {
    let id = req.transactional_id.0.to_string();
    if !ctx.authz(&state).transactional_id(AclOperation::Write, &id) {
        return Ok(EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
    }
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let r = with_env(&state, move |txn, env| {
        txn.end_txn(env, &id, pid, epoch, commit, now_ms())
    })
    .await?;
    Ok(EndTxnResponse::default().with_error_code(code(r, ctx.api_version, 2)))
}

/// TxnOffsetCommit: commits offsets for a group within a transaction.
pub(crate) async fn handle_txn_offset_commit(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: TxnOffsetCommitRequest,
) -> Result<TxnOffsetCommitResponse> {
    let wanted: Vec<(String, i32, i64, i32, String)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )
            })
        })
        .collect();
    let codes = txn_offset_commit_codes(&state, &ctx, &req, &wanted).await?;
    let mut resp = TxnOffsetCommitResponse::default();
    for ((topic, partition, ..), c) in wanted.into_iter().zip(codes) {
        let name = TopicName(crate::strings::str_bytes(topic));
        let p = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(c);
        match resp.topics.iter_mut().find(|t| t.name == name) {
            Some(t) => t.partitions.push(p),
            None => resp.topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(vec![p]),
            ),
        }
    }
    Ok(resp)
}

/// One error code per requested partition: unknown partitions get
/// UNKNOWN_TOPIC_OR_PARTITION; the rest share the group's and the transaction's verdict.
async fn txn_offset_commit_codes(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
    wanted: &[(String, i32, i64, i32, String)],
) -> Result<Vec<i16>> {
    let max_metadata = state.config.group.offset_metadata_max_bytes;
    let authz = ctx.authz(state);
    if !authz.transactional_id(AclOperation::Write, req.transactional_id.0.as_str()) {
        return Ok(vec![
            ResponseError::TransactionalIdAuthorizationFailed.code();
            wanted.len()
        ]);
    }
    if !authz.group(AclOperation::Read, req.group_id.0.as_str()) {
        return Ok(vec![
            ResponseError::GroupAuthorizationFailed.code();
            wanted.len()
        ]);
    }
    let mut codes = vec![0i16; wanted.len()];
    let mut offsets = Vec::new();
    for (i, (topic, partition, offset, leader_epoch, metadata)) in wanted.iter().enumerate() {
        if !authz.topic(AclOperation::Read, topic) {
            codes[i] = ResponseError::TopicAuthorizationFailed.code();
        } else if state.topics.partition(topic, *partition).is_none() {
            codes[i] = ResponseError::UnknownTopicOrPartition.code();
        } else if metadata.len() > max_metadata {
            codes[i] = ResponseError::OffsetMetadataTooLarge.code();
        } else {
            let pending = PendingOffset {
                offset: *offset,
                leader_epoch: *leader_epoch,
                metadata: metadata.clone(),
            };
            offsets.push(((topic.clone(), *partition), pending));
        }
    }
    drop(authz);
    if offsets.is_empty() {
        return Ok(codes);
    }
    let group = req.group_id.0.to_string();
    let id = req.transactional_id.0.to_string();
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let (generation, member) = if ctx.api_version >= 3 {
        (req.generation_id, req.member_id.to_string())
    } else {
        (-1, String::new())
    };
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let result = with_env(state, move |txn, env| {
        env.groups
            .validate_txn_offset_commit(&group, generation, &member, instance.as_deref())
            .and_then(|()| txn.txn_offset_commit(&id, pid, epoch, &group, offsets, now_ms()))
    })
    .await?;
    let shared = match result {
        Ok(()) => 0,
        // The transactional offsets of a fenced producer fail its epoch check in Kafka.
        Err(ResponseError::ProducerFenced) => ResponseError::InvalidProducerEpoch.code(),
        Err(e) => e.code(),
    };
    for c in codes.iter_mut().filter(|c| **c == 0) {
        *c = shared;
    }
    Ok(codes)
}

/// OffsetFetch with `require_stable` (v7+): a partition with a transactional offset commit
/// pending answers UNSTABLE_OFFSET_COMMIT (retriable) instead of its committed offset, so a
/// consumer does not start from an offset its predecessor's transaction may still change.
pub fn mark_unstable(txn: &TransactionCoordinator, group_v7: &str, resp: &mut OffsetFetchResponse) {
    let unstable = ResponseError::UnstableOffsetCommit.code();
    for t in &mut resp.topics {
        for p in &mut t.partitions {
            if txn.has_pending_offset(group_v7, t.name.0.as_str(), p.partition_index) {
                p.error_code = unstable;
                p.committed_offset = -1;
            }
        }
    }
    for g in &mut resp.groups {
        let group = g.group_id.0.to_string();
        for t in &mut g.topics {
            for p in &mut t.partitions {
                if txn.has_pending_offset(&group, t.name.0.as_str(), p.partition_index) {
                    p.error_code = unstable;
                    p.committed_offset = -1;
                }
            }
        }
    }
}

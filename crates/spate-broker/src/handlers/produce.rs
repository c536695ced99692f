//! Produce: validate each partition's record batch (exactly one per partition, magic 2, CRC,
//! size limits, and every record inside it: see [`crate::validate`]), apply the idempotent producer checks, append, and acknowledge with the base
//! offset. Batches are stored exactly as sent (compressed batches stay compressed); only the base
//! offset and partition leader epoch are rewritten, which the CRC does not cover.
//!
//! A transactional batch is appended only when the transaction coordinator confirms that its
//! producer's ongoing transaction holds the partition at the batch's epoch.
//!
//! acks=0 requests get no response at all, as in Kafka. acks=1 and acks=-1 are the same thing
//! on a single broker: the append is acknowledged once it is in the log (and flushed when the
//! topic's flush policy says so).
//!
//! With an authorizer, as Kafka: a transactional request needs WRITE on its transactional id
//! (else every partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED), each topic needs WRITE
//! (else TOPIC_AUTHORIZATION_FAILED), and nothing refused is appended.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{AclOperation, RequestAuthz};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::record_batch::BatchIter;
use crate::state::BrokerState;
use crate::strings::str_opt;
use crate::topics::{NewTopic, Topic};
use crate::validate::{self, ProduceRules};

/// Produce: validates and appends each partition's record batches.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ProduceRequest,
) -> Result<Option<ProduceResponse>> {
    let acks = req.acks;
    let mut resp = ProduceResponse::default();
    let valid_acks = matches!(acks, -1..=1);
    let authz = ctx.authz(&state);
    let txn_refused = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !authz.transactional_id(AclOperation::Write, id));
    for topic_data in req.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = if !valid_acks {
            Err(ResponseError::InvalidRequiredAcks)
        } else if txn_refused {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !authz.topic(AclOperation::Write, &name) {
            Err(ResponseError::TopicAuthorizationFailed)
        } else {
            find_or_create(&state, &authz, &name)
        };
        let mut tr = TopicProduceResponse::default();
        tr.name = topic_data.name;
        for pd in topic_data.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            let partition = topic.as_ref().map(|t| t.partition(pd.index));
            let outcome = match partition {
                Err(code) => Err((*code, None, Vec::new())),
                Ok(None) => Err((ResponseError::UnknownTopicOrPartition, None, Vec::new())),
                Ok(Some(p)) => append(&state, &p, pd.records.as_deref(), acks, ctx.api_version).map_err(|e| {
                    tracing::debug!(peer = %ctx.peer, partition = %p.tp, error = %e, "produce rejected");
                    let record_errors = match &e {
                        BrokerError::InvalidRecords { reason, record_indexes } => record_indexes
                            .iter()
                            .map(|i| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(*i)
                                    .with_batch_index_error_message(str_opt(reason.clone()))
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    (e.error_code(), Some(e.to_string()), record_errors)
                }),
            };
            match outcome {
                Ok(a) => {
                    pr.base_offset = a.base_offset;
                    pr.log_start_offset = a.log_start_offset;
                }
                Err((code, message, record_errors)) => {
                    pr.error_code = code.code();
                    pr.base_offset = -1;
                    if ctx.api_version >= 8 {
                        pr.error_message = message.and_then(str_opt);
                        pr.record_errors = record_errors;
                    }
                }
            }
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    Ok(if acks == 0 { None } else { Some(resp) })
}

/// The topic, auto-created when the broker allows it (a producer that skipped Metadata).
/// Auto-creation needs CREATE on the cluster or the topic, as Metadata's does.
fn find_or_create(
    state: &BrokerState,
    authz: &RequestAuthz<'_>,
    name: &str,
) -> Result<Arc<Topic>, ResponseError> {
    if let Some(t) = state.topics.get(name) {
        return Ok(t);
    }
    if !state.config.auto_create_topics_enable {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    if !authz.cluster(AclOperation::Create) && !authz.topic(AclOperation::Create, name) {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: state.config.num_partitions,
        configs: Default::default(),
    };
    match state.topics.create(new, false) {
        Ok(t) => Ok(t),
        // Lost a race with another creator: the topic exists now.
        Err(BrokerError::TopicAlreadyExists(_)) => state
            .topics
            .get(name)
            .ok_or(ResponseError::UnknownTopicOrPartition),
        Err(e) => Err(e.error_code()),
    }
}

fn append(
    state: &BrokerState,
    partition: &Partition,
    records: Option<&[u8]>,
    acks: i16,
    version: i16,
) -> Result<crate::partition::Appended> {
    let required = partition.config().min_insync_replicas;
    if acks == -1 && required > 1 {
        return Err(BrokerError::NotEnoughReplicas {
            partition: partition.tp.to_string(),
            required,
        });
    }
    let records = records.unwrap_or_default();
    let mut batches = BatchIter::new(records);
    let (_, _, first) = batches.next().ok_or_else(|| {
        BrokerError::InvalidRecord(
            "a produce request must carry a record batch per partition".into(),
        )
    })??;
    if first.len() != records.len() {
        return Err(BrokerError::InvalidRecord(
            "produce requests may carry only one record batch per partition".into(),
        ));
    }
    let mut batch = first.to_vec();
    let rules = ProduceRules::new(&partition.config(), version);
    validate::validate_produce_batch(&mut batch, &rules)?;
    if first_header_is_transactional(&batch) {
        let txn = &state.txn;
        let tp = &partition.tp;
        let verify = |producer_id: i64, epoch: i16| {
            txn.verify_produce(producer_id, epoch, &tp.topic, tp.partition)
        };
        return partition.append(&mut batch, Some(&verify));
    }
    partition.append(&mut batch, None)
}

fn first_header_is_transactional(batch: &[u8]) -> bool {
    crate::record_batch::BatchHeader::parse(batch).is_ok_and(|h| h.is_transactional())
}

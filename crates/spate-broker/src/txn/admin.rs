//! The transaction admin APIs, as `kafka-transactions.sh` uses them: DescribeTransactions (one
//! id's state, partitions and timing), ListTransactions (ids filtered by state, producer id and
//! minimum running time) and DescribeProducers (the producers a partition remembers, with the
//! start offset of their open transaction — what finds a hanging transaction).
//!
//! Authorization, as Kafka: DescribeTransactions needs DESCRIBE on each transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), ListTransactions shows only the ids the client may
//! DESCRIBE, DescribeProducers needs READ on each topic (TOPIC_AUTHORIZATION_FAILED).

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::metadata::{TransactionMetadata, TxnState};
use crate::acl::AclOperation;
use crate::error::Result;
use crate::handlers::RequestContext;
use crate::state::BrokerState;
use crate::strings::str_bytes;

/// DescribeTransactions: the coordinator's state of transactional ids.
pub(crate) async fn handle_describe_transactions(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeTransactionsRequest,
) -> Result<DescribeTransactionsResponse> {
    let txn = &state.txn;
    let authz = ctx.authz(&state);
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let base = TransactionState::default().with_transactional_id(id);
            if name.is_empty() {
                return base.with_error_code(ResponseError::InvalidRequest.code());
            }
            if !authz.transactional_id(AclOperation::Describe, &name) {
                return base
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            match txn.describe(&name) {
                Some(m) => described(base, &m),
                None => base.with_error_code(ResponseError::TransactionalIdNotFound.code()),
            }
        })
        .collect();
    Ok(DescribeTransactionsResponse::default().with_transaction_states(states))
}

fn described(base: TransactionState, m: &TransactionMetadata) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &m.partitions {
        let name = TopicName(str_bytes(topic.clone()));
        match topics.iter_mut().find(|t| t.topic == name) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(name)
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    base.with_transaction_state(str_bytes(m.state.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(m.start_ms)
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(topics)
}

/// ListTransactions: transactional ids, filtered by state and producer id.
pub(crate) async fn handle_list_transactions(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: ListTransactionsRequest,
) -> Result<ListTransactionsResponse> {
    let mut unknown = Vec::new();
    let mut wanted_states = Vec::new();
    for s in &req.state_filters {
        match TxnState::parse(s.as_str()) {
            Some(st) => wanted_states.push(st),
            None => unknown.push(s.clone()),
        }
    }
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    // v1+: only transactions running longer than this many milliseconds.
    let min_duration = if ctx.api_version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let now = crate::time::now_ms();
    let authz = ctx.authz(&state);
    let listed = state
        .txn
        .list()
        .into_iter()
        .filter(|m| authz.transactional_id(AclOperation::Describe, &m.transactional_id))
        .filter(|m| wanted_states.is_empty() || wanted_states.contains(&m.state))
        .filter(|m| pids.is_empty() || pids.contains(&m.producer_id))
        .filter(|m| min_duration < 0 || (m.start_ms >= 0 && now - m.start_ms >= min_duration))
        // Filters that name only unknown states match nothing, as in Kafka.
        .filter(|_| req.state_filters.is_empty() || !wanted_states.is_empty())
        .map(|m| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    Ok(ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed))
}

/// DescribeProducers: the active producers of partitions.
pub(crate) async fn handle_describe_producers(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeProducersRequest,
) -> Result<DescribeProducersResponse> {
    let authz = ctx.authz(&state);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    if !authz.topic(AclOperation::Read, t.name.0.as_str()) {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    match state.topics.partition(t.name.0.as_str(), index) {
                        None => base.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                        Some(p) => base.with_active_producers(
                            p.producers()
                                .into_iter()
                                .map(|info| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(info.producer_id))
                                        .with_producer_epoch(info.epoch as i32)
                                        .with_last_sequence(info.last_sequence)
                                        .with_last_timestamp(info.last_timestamp)
                                        .with_coordinator_epoch(info.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            info.current_txn_start_offset,
                                        )
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(DescribeProducersResponse::default().with_topics(topics))
}

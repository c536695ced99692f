//! CreateTopics: validate names, partition counts, replication factors (only 1, or -1 for the
//! default, on a single node) and configs, then create — or only validate (`validate_only`).
//! Each topic succeeds or fails on its own with Kafka's error code and a message.
//!
//! Creating needs CREATE on the cluster or on the topic (else TOPIC_AUTHORIZATION_FAILED); the
//! created topic's configs are returned only to a client that may DESCRIBE_CONFIGS it, as in
//! Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use crate::acl::AclOperation;
use crate::error::{BrokerError, Result};
use crate::state::BrokerState;
use crate::strings::{str_bytes, str_opt};
use crate::topics::{config, NewTopic};

/// CreateTopics: creates topics with their partition counts and configs.
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: CreateTopicsRequest,
) -> Result<CreateTopicsResponse> {
    let mut resp = CreateTopicsResponse::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let authz = ctx.authz(&state);
    let cluster_create = authz.cluster(AclOperation::Create);
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.error_message = None;
        r.configs = None;
        let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
            Err((
                ResponseError::InvalidRequest,
                format!("topic {name} appears more than once in the request"),
            ))
        } else if !cluster_create && !authz.topic(AclOperation::Create, &name) {
            Err((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            ))
        } else {
            create_one(&state, &t, req.validate_only).map_err(|e| (e.error_code(), e.to_string()))
        };
        match outcome {
            Ok((id, partitions, configs)) => {
                r.topic_id = id;
                r.num_partitions = partitions;
                r.replication_factor = 1;
                if ctx.api_version >= 5 && !authz.topic(AclOperation::DescribeConfigs, &name) {
                    r.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                } else if ctx.api_version >= 5 {
                    r.configs = Some(
                        config::describe(&state.topics.broker_defaults(), &configs)
                            .into_iter()
                            .map(|c| {
                                let mut e = CreatableTopicConfigs::default();
                                e.name = str_bytes(c.name);
                                e.value = str_opt(c.value);
                                e.config_source = c.source.code();
                                e
                            })
                            .collect(),
                    );
                }
            }
            Err((code, message)) => {
                tracing::debug!(peer = %ctx.peer, topic = %name, %message, "create topic failed");
                r.error_code = code.code();
                r.error_message = str_opt(message);
            }
        }
        resp.topics.push(r);
    }
    Ok(resp)
}

fn create_one(
    state: &BrokerState,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<(Uuid, i32, BTreeMap<String, String>)> {
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err(BrokerError::InvalidReplicationFactor(t.replication_factor));
    }
    let partitions = if !t.assignments.is_empty() {
        if t.num_partitions != -1 {
            return Err(BrokerError::InvalidPartitions(
                "give either num_partitions or a replica assignment, not both".into(),
            ));
        }
        let node = state.advertised.node_id;
        if let Some(a) = t
            .assignments
            .iter()
            .find(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1)
        {
            return Err(BrokerError::InvalidReplicationFactor(
                a.broker_ids.len() as i16
            ));
        }
        t.assignments.len() as i32
    } else if t.num_partitions == -1 {
        state.config.num_partitions
    } else {
        t.num_partitions
    };
    let configs = t
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    let topic = state.topics.create(
        NewTopic {
            name: t.name.0.to_string(),
            partitions,
            configs,
        },
        validate_only,
    )?;
    Ok((topic.id, partitions, topic.configs()))
}

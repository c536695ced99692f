//! Metadata: the one broker, and the requested topics with their partitions. This broker is the
//! controller and the leader (epoch 0) of every partition, with itself as the only replica.
//! Unknown topics are created when `auto.create.topics.enable` is on and the client allows it
//! (`allow_auto_topic_creation`, v4+), as Kafka does.
//!
//! With an authorizer, as in Kafka: a listing of all topics shows only those the client may
//! DESCRIBE; a requested topic it may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED (whether or
//! not it exists), and auto-creation needs CREATE on the cluster or the topic.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::RequestContext;
use crate::acl::{AclOperation, RequestAuthz, ResourceType};
use crate::error::{BrokerError, Result};
use crate::state::BrokerState;
use crate::strings::{str_bytes, str_opt, topic_name};
use crate::topics::{NewTopic, Topic};

/// Metadata: the broker, and the topics with their partitions (auto-creating unknown ones).
pub(crate) async fn handle(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: MetadataRequest,
) -> Result<MetadataResponse> {
    let node = state.advertised.node_id;
    let mut resp = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(node);
    broker.host = str_bytes(ctx.advertised.host.clone());
    broker.port = ctx.advertised.port;
    resp.brokers = vec![broker];
    resp.cluster_id = str_opt(state.config.cluster_id.clone());
    resp.controller_id = BrokerId(node);

    // v0 spells "all topics" as an empty list, later versions as null.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && ctx.api_version == 0 => None,
        Some(t) => Some(t),
    };
    let allow_create = state.config.auto_create_topics_enable
        && (ctx.api_version < 4 || req.allow_auto_topic_creation);
    let authz = ctx.authz(&state);

    resp.topics = match requested {
        None => state
            .topics
            .list()
            .iter()
            .filter(|t| authz.topic(AclOperation::Describe, &t.name))
            .map(|t| describe_topic(t, node))
            .collect(),
        Some(requested) => {
            let mut out = Vec::with_capacity(requested.len());
            for rt in requested {
                let entry = match rt.name {
                    Some(name) => lookup_or_create(&state, &authz, name.0.as_str(), allow_create),
                    None => match state.topics.get_by_id(&rt.topic_id) {
                        Some(t) if !authz.topic(AclOperation::Describe, &t.name) => {
                            error_topic(None, rt.topic_id, ResponseError::TopicAuthorizationFailed)
                        }
                        Some(t) => describe_topic(&t, node),
                        None => error_topic(None, rt.topic_id, ResponseError::UnknownTopicId),
                    },
                };
                out.push(entry);
            }
            out
        }
    };
    // Authorized operations (v8+; the cluster's only up to v10), from the authorizer (all of
    // them without one, as Kafka answers). Failed topics keep the "not provided" value.
    if ctx.api_version >= 8 && req.include_topic_authorized_operations {
        for t in resp.topics.iter_mut().filter(|t| t.error_code == 0) {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            t.topic_authorized_operations = authz.operations(ResourceType::Topic, &name);
        }
    }
    if (8..=10).contains(&ctx.api_version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = authz.cluster_operations();
    }
    Ok(resp)
}

fn lookup_or_create(
    state: &BrokerState,
    authz: &RequestAuthz<'_>,
    name: &str,
    allow_create: bool,
) -> MetadataResponseTopic {
    let node = state.advertised.node_id;
    let refused = || {
        error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::TopicAuthorizationFailed,
        )
    };
    if !authz.topic(AclOperation::Describe, name) {
        return refused();
    }
    if let Some(t) = state.topics.get(name) {
        return describe_topic(&t, node);
    }
    if allow_create
        && !authz.cluster(AclOperation::Create)
        && !authz.topic(AclOperation::Create, name)
    {
        return refused();
    }
    if !allow_create {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: state.config.num_partitions,
        configs: Default::default(),
    };
    match state.topics.create(new, false) {
        Ok(t) => describe_topic(&t, node),
        // Lost a race with another creator: the topic exists now.
        Err(BrokerError::TopicAlreadyExists(_)) => match state.topics.get(name) {
            Some(t) => describe_topic(&t, node),
            None => error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::UnknownTopicOrPartition,
            ),
        },
        Err(e) => {
            tracing::debug!(topic = name, error = %e, "auto-creation failed");
            error_topic(Some(name), Uuid::nil(), e.error_code())
        }
    }
}

fn error_topic(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = error.code();
    t.name = name.map(topic_name);
    t.topic_id = id;
    t
}

/// The metadata of an existing topic.
pub fn describe_topic(topic: &Topic, node: i32) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(topic_name(topic.name.clone()));
    t.topic_id = topic.id;
    t.partitions = (0..topic.partition_count())
        .map(|i| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = i;
            p.leader_id = BrokerId(node);
            p.leader_epoch = 0;
            p.replica_nodes = vec![BrokerId(node)];
            p.isr_nodes = vec![BrokerId(node)];
            p
        })
        .collect();
    t
}

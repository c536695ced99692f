//! The changelog topic of one state operator: its name (Kafka Streams' convention,
//! `<application.id>-<operator uid>-changelog`), and making sure it exists as a compacted topic
//! with one partition per state partition. The naming and creation are shared with the
//! repartition topics (`crate::repartition`), which differ in suffix and cleanup policy.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;

use crate::error::{Result, SpateKafkaError};

/// How long an admin or metadata call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest legal Kafka topic name.
const MAX_TOPIC_NAME: usize = 249;

/// `<application_id>-<operator>-changelog`, refused when Kafka would refuse it as a topic name
/// (only ASCII letters, digits, '.', '_' and '-'; at most 249 characters).
pub(crate) fn changelog_topic(application_id: &str, operator: &str) -> Result<String> {
    internal_topic_name(application_id, operator, "changelog", "state operator")
}

/// `<application_id>-<name>-<suffix>` (Kafka Streams' internal topic names), refused when Kafka
/// would refuse it as a topic name; `what` names the thing `name` belongs to in the error.
pub(crate) fn internal_topic_name(
    application_id: &str,
    name: &str,
    suffix: &str,
    what: &str,
) -> Result<String> {
    let (operator, topic) = (name, format!("{application_id}-{name}-{suffix}"));
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.len() > MAX_TOPIC_NAME || !topic.chars().all(legal) {
        return Err(SpateKafkaError::config(
            "application.id",
            application_id,
            format!(
                "the {suffix} topic of {what} `{operator}` would be named {topic:?}, which is \
                 not a legal Kafka topic name (letters, digits, '.', '_', '-', at most \
                 {MAX_TOPIC_NAME} characters); change the application id or the {what}'s name"
            ),
        ));
    }
    Ok(topic)
}

/// What a changelog topic is created with.
#[derive(Debug, Clone)]
pub(crate) struct TopicSpec {
    /// -1: the broker's `default.replication.factor` (KIP-464).
    pub(crate) replication_factor: i32,
    /// Topic configs; `cleanup.policy=compact` always.
    pub(crate) configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// Sets topic config `key=value` for a topic still to be created, replacing an earlier
    /// value; `cleanup.policy` is the internal topic's own (compact or delete) and ignored.
    pub(crate) fn set_config(&mut self, key: &str, value: &str) {
        if key != "cleanup.policy" {
            self.configs.retain(|(k, _)| k != key);
            self.configs.push((key.to_owned(), value.to_owned()));
        }
    }
}

/// Creates `topic` compacted with `partitions` partitions unless it exists; an existing topic
/// must have exactly `partitions` partitions.
pub(crate) fn ensure_topic(
    config: &ClientConfig,
    topic: &str,
    operator: &str,
    partitions: usize,
    spec: &TopicSpec,
) -> Result<()> {
    ensure_internal_topic(config, topic, partitions, spec, "compact", |existing| {
        check_partitions(topic, operator, existing, partitions)
    })
}

/// Creates the internal topic `topic` with `partitions` partitions and `cleanup.policy` unless
/// it exists; `check` judges the partition count of a topic that exists (or that another
/// instance created first). Shared by changelog and repartition topics.
pub(crate) fn ensure_internal_topic(
    config: &ClientConfig,
    topic: &str,
    partitions: usize,
    spec: &TopicSpec,
    cleanup_policy: &str,
    check: impl Fn(i32) -> Result<()>,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| admin_failed(topic, "creating an admin client for", e))?;
    let wanted = i32::try_from(partitions).map_err(|_| {
        SpateKafkaError::config(
            "num_partitions",
            partitions.to_string(),
            "more partitions than a topic can have",
        )
    })?;
    if let Some(existing) = partition_count(&admin, topic)? {
        return check(existing);
    }
    let mut new = NewTopic::new(
        topic,
        wanted,
        TopicReplication::Fixed(spec.replication_factor),
    )
    .set("cleanup.policy", cleanup_policy);
    for (k, v) in &spec.configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .map_err(|e| admin_failed(topic, "creating", e))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(%topic, partitions, cleanup_policy, "created internal topic"),
            // Another instance created it first: check what it created.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                check(partition_count(&admin, topic)?.unwrap_or(wanted))?;
            }
            Err((_, code)) => {
                return Err(SpateKafkaError::TopicAdmin {
                    topic: topic.to_owned(),
                    operation: "creating",
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

fn check_partitions(topic: &str, operator: &str, existing: i32, state: usize) -> Result<()> {
    if usize::try_from(existing).ok() == Some(state) {
        return Ok(());
    }
    Err(SpateKafkaError::ChangelogPartitions {
        topic: topic.to_owned(),
        operator: operator.to_owned(),
        topic_partitions: existing,
        state_partitions: state,
    })
}

/// The topic's partition count, `None` when it does not exist.
fn partition_count(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<Option<i32>> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(|e| admin_failed(topic, "reading the metadata", e))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None => Ok(Some(t.partitions().len() as i32)),
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(e) => Err(SpateKafkaError::TopicAdmin {
            topic: topic.to_owned(),
            operation: "reading the metadata",
            reason: RDKafkaErrorCode::from(e).to_string(),
        }),
    }
}

fn admin_failed(
    topic: &str,
    operation: &'static str,
    e: rdkafka::error::KafkaError,
) -> SpateKafkaError {
    SpateKafkaError::TopicAdmin {
        topic: topic.to_owned(),
        operation,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_streams_and_refuse_illegal_topics() {
        assert_eq!(
            changelog_topic("wordcount", "counts").unwrap(),
            "wordcount-counts-changelog"
        );
        assert!(changelog_topic("app", "has space").is_err());
        assert!(changelog_topic(&"a".repeat(240), "counts").is_err());
    }
}

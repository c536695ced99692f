//! [`ConsumerStrategy`]: which partitions a direct stream reads and where it starts — Spark's
//! `Subscribe`, `SubscribePattern` and `Assign`, each with optional explicit starting offsets.
//!
//! Unlike Spark, `Subscribe`, `SubscribePattern` and `Assign` never make the driver join the
//! consumer group: subscriptions are resolved from topic metadata on every batch, so new
//! partitions (and, for a pattern, new topics) join at the next batch, and two streams sharing
//! a `group.id` cannot revoke each other's partitions, as Spark's driver consumers do.
//!
//! `SubscribeGroupManaged` is the one that joins: several instances of a job (processes or
//! machines) share the topics' partitions through the group protocol, as Kafka Streams
//! instances do, and each plans only the partitions the group assigned to it
//! ([`crate::direct::group`]).

use std::collections::BTreeMap;

use regex::Regex;

use crate::direct::offset_range::TopicPartition;
use crate::direct::params::KafkaParams;
use crate::error::{Result, SpateKafkaError};

/// What a stream subscribes to.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// All partitions of these topics, including partitions added later.
    Topics(Vec<String>),
    /// All partitions of every topic whose whole name matches the regex.
    Pattern(Regex),
    /// Exactly these partitions.
    Assign(Vec<TopicPartition>),
}

impl Subscription {
    /// Whether a topic name is part of a `Topics` or `Pattern` subscription.
    pub fn matches_topic(&self, topic: &str) -> bool {
        match self {
            Subscription::Topics(t) => t.iter().any(|x| x == topic),
            Subscription::Pattern(re) => re.is_match(topic),
            Subscription::Assign(tps) => tps.iter().any(|tp| tp.topic == topic),
        }
    }
}

/// The partitions to read, the Kafka settings, and explicit starting offsets.
#[derive(Debug, Clone)]
pub struct ConsumerStrategy {
    pub(crate) subscription: Subscription,
    pub(crate) params: KafkaParams,
    pub(crate) offsets: BTreeMap<TopicPartition, i64>,
    pub(crate) group_managed: bool,
}

impl ConsumerStrategy {
    /// Spark's `Subscribe(topics, kafkaParams)`.
    pub fn subscribe<I, S>(topics: I, params: KafkaParams) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConsumerStrategy {
            subscription: Subscription::Topics(topics.into_iter().map(Into::into).collect()),
            params,
            offsets: BTreeMap::new(),
            group_managed: false,
        }
    }

    /// `Subscribe` with the partitions assigned through the consumer group (`group.id`,
    /// required): every instance of the job started with the same group shares the topics'
    /// partitions, and each plans batches only for those it owns. The member uses Kafka's
    /// settings from `params`: `partition.assignment.strategy` (default `cooperative-sticky`),
    /// `group.instance.id` (static membership: a restart within `session.timeout.ms` moves
    /// nothing), `session.timeout.ms`, `max.poll.interval.ms` (bounds how long a revocation
    /// waits for the batch in flight). See [`crate::direct::group`].
    pub fn subscribe_group_managed<I, S>(topics: I, params: KafkaParams) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if params.group_id().is_none() {
            return Err(SpateKafkaError::config(
                "group.id",
                "",
                "a group-managed stream shares its partitions through the consumer group",
            ));
        }
        let mut s = Self::subscribe(topics, params);
        s.group_managed = true;
        Ok(s)
    }

    /// Whether the group assigns the partitions ([`ConsumerStrategy::subscribe_group_managed`]).
    pub fn is_group_managed(&self) -> bool {
        self.group_managed
    }

    /// Spark's `SubscribePattern(pattern, kafkaParams)`; the regex must match a whole topic name.
    pub fn subscribe_pattern(pattern: &str, params: KafkaParams) -> Result<Self> {
        let anchored = format!("^(?:{pattern})$");
        let re = Regex::new(&anchored).map_err(|source| SpateKafkaError::InvalidPattern {
            pattern: pattern.to_owned(),
            source,
        })?;
        Ok(ConsumerStrategy {
            subscription: Subscription::Pattern(re),
            params,
            offsets: BTreeMap::new(),
            group_managed: false,
        })
    }

    /// Spark's `Assign(topicPartitions, kafkaParams)`.
    pub fn assign(
        partitions: impl IntoIterator<Item = TopicPartition>,
        params: KafkaParams,
    ) -> Self {
        ConsumerStrategy {
            subscription: Subscription::Assign(partitions.into_iter().collect()),
            params,
            offsets: BTreeMap::new(),
            group_managed: false,
        }
    }

    /// Explicit starting offsets; they win over committed offsets and `auto.offset.reset`.
    pub fn with_offsets(
        mut self,
        offsets: impl IntoIterator<Item = (TopicPartition, i64)>,
    ) -> Self {
        self.offsets.extend(offsets);
        self
    }

    /// The topics, pattern or partitions the strategy reads.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// The Kafka parameters of the stream's consumers.
    pub fn params(&self) -> &KafkaParams {
        &self.params
    }

    /// Explicit starting offsets per partition (the rest start from committed offsets or
    /// `auto.offset.reset`).
    pub fn starting_offsets(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.offsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matches_whole_names_only() {
        let s = ConsumerStrategy::subscribe_pattern("events-.*", KafkaParams::new()).unwrap();
        assert!(s.subscription().matches_topic("events-a"));
        assert!(!s.subscription().matches_topic("old-events-a"));
        assert!(ConsumerStrategy::subscribe_pattern("(", KafkaParams::new()).is_err());
    }

    #[test]
    fn explicit_offsets_are_kept() {
        let tp = TopicPartition::new("t", 2);
        let s =
            ConsumerStrategy::subscribe(["t"], KafkaParams::new()).with_offsets([(tp.clone(), 42)]);
        assert_eq!(s.starting_offsets().get(&tp), Some(&42));
        assert!(s.subscription().matches_topic("t"));
    }
}

//! [`DriverClient`]: the driver's view of the cluster — partitions of the subscription (topic
//! metadata), earliest/latest offsets per partition, and the group's committed offsets.
//!
//! Every call is one request/response (Metadata, ListOffsets, OffsetFetch): there is no poll
//! loop and no group membership, so planning cannot live-lock the way Spark's driver consumer
//! did (its `poll` inside a group could rebalance forever). Failures are retried per [`RetryPolicy`](crate::direct::retry::RetryPolicy).

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;

use crate::direct::config::DirectStreamConfig;
use crate::direct::offset_range::TopicPartition;
use crate::direct::params::KafkaParams;
use crate::direct::strategy::Subscription;
use crate::error::{Result, SpateKafkaError};

/// The earliest and latest offsets of a partition: records live in `[earliest, latest)`.
/// With `isolation.level=read_committed`, `latest` is the last stable offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// The first offset still in the log (the log start offset).
    pub earliest: i64,
    /// The offset the next record will get (or the last stable offset, see above).
    pub latest: i64,
}

/// Driver-side metadata and offsets client.
pub struct DriverClient {
    consumer: BaseConsumer,
    group: Option<String>,
    config: DirectStreamConfig,
}

impl std::fmt::Debug for DriverClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverClient")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl DriverClient {
    /// Creates the driver's consumer from `params` (no partitions assigned; it only asks for
    /// metadata and offsets).
    pub fn new(params: &KafkaParams, config: &DirectStreamConfig) -> Result<Self> {
        let consumer: BaseConsumer = params
            .driver_config()?
            .create()
            .map_err(|e| SpateKafkaError::client("creating the driver's Kafka client", e))?;
        Ok(DriverClient {
            consumer,
            group: params.group_id().map(str::to_owned),
            config: config.clone(),
        })
    }

    /// All partitions the subscription covers right now. Topics that do not exist (yet) have
    /// no partitions; for `Assign` the list is returned as given.
    pub fn partitions(&self, subscription: &Subscription) -> Result<BTreeSet<TopicPartition>> {
        let timeout = self.config.request_timeout;
        match subscription {
            Subscription::Assign(tps) => Ok(tps.iter().cloned().collect()),
            Subscription::Topics(topics) => {
                let mut out = BTreeSet::new();
                for topic in topics {
                    let md = self
                        .config
                        .retry
                        .run(&format!("fetching metadata of topic {topic}"), || {
                            self.consumer.fetch_metadata(Some(topic), timeout)
                        })?;
                    for t in md.topics() {
                        if t.name() != topic {
                            continue;
                        }
                        match t.error() {
                            None => out.extend(
                                t.partitions()
                                    .iter()
                                    .map(|p| TopicPartition::new(topic.clone(), p.id())),
                            ),
                            Some(code) => {
                                tracing::debug!(topic, ?code, "subscribed topic not available yet")
                            }
                        }
                    }
                }
                Ok(out)
            }
            Subscription::Pattern(re) => {
                let md = self
                    .config
                    .retry
                    .run("fetching metadata of all topics", || {
                        self.consumer.fetch_metadata(None, timeout)
                    })?;
                Ok(md
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none() && re.is_match(t.name()))
                    .flat_map(|t| {
                        t.partitions()
                            .iter()
                            .map(move |p| TopicPartition::new(t.name(), p.id()))
                    })
                    .collect())
            }
        }
    }

    /// Earliest and latest offsets of `tp` (one ListOffsets round trip, no polling).
    pub fn watermarks(&self, tp: &TopicPartition) -> Result<Watermarks> {
        let op = format!("fetching offsets of {tp}");
        let r = self.config.retry.run(&op, || {
            self.consumer
                .fetch_watermarks(&tp.topic, tp.partition, self.config.request_timeout)
        });
        match r {
            Ok((earliest, latest)) => Ok(Watermarks { earliest, latest }),
            Err(SpateKafkaError::Client { source, .. }) if is_unknown_partition(&source) => {
                Err(SpateKafkaError::UnknownTopicOrPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The group's committed offsets for `tps` (partitions without a commit are left out).
    /// Empty without a `group.id`.
    pub fn committed(
        &self,
        tps: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if self.group.is_none() || tps.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let got = self.config.retry.run("fetching committed offsets", || {
            self.consumer
                .committed_offsets(tpl.clone(), self.config.request_timeout)
        })?;
        Ok(crate::direct::offset_range::committed_in(&got))
    }

    /// The underlying rdkafka consumer (no subscription, no assignment).
    pub fn consumer(&self) -> &BaseConsumer {
        &self.consumer
    }
}

pub(crate) fn is_unknown_partition(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
        )
    )
}

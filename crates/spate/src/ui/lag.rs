//! Consumer lag of Kafka inputs: where the job is (the `until` offsets of the newest batch that
//! planned each partition) against where the log ends (the partition's latest offset).
//!
//! The direct stream records only the planned ranges in a batch's metadata, not the log end it
//! saw when planning, so the log end is asked from the cluster on demand by a
//! [`LatestOffsets`] source (one ListOffsets round trip per partition, no consumer group). A UI
//! without a source still exposes the job's position; lag then needs the broker's own metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use spate_kafka::{DirectStreamConfig, DriverClient, KafkaParams, RetryPolicy, TopicPartition};

use super::api::input_detail;
use super::error::{Result, UiError};
use super::store::Snapshot;

/// Where each partition's log ends now.
pub trait LatestOffsets: Send + Sync {
    /// The latest offset (log end, or last stable offset under `read_committed`) of each of
    /// `partitions` that could be read; partitions that failed are left out.
    fn latest_offsets(&self, partitions: &[TopicPartition]) -> BTreeMap<TopicPartition, i64>;
}

/// [`LatestOffsets`] from a Kafka cluster, through the direct stream's driver client.
pub struct KafkaLatestOffsets {
    client: Mutex<DriverClient>,
}

impl std::fmt::Debug for KafkaLatestOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLatestOffsets").finish_non_exhaustive()
    }
}

impl KafkaLatestOffsets {
    /// A client for the cluster in `params` (Kafka's setting names: `bootstrap.servers`,
    /// security settings). A scrape must not hang on a broker that is down, so a request
    /// gives up after two seconds instead of retrying like the planner does.
    pub fn new(params: &KafkaParams) -> Result<Self> {
        let config = DirectStreamConfig {
            request_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default().max_elapsed(Some(Duration::from_secs(2))),
            ..DirectStreamConfig::default()
        };
        let client = DriverClient::new(params, &config).map_err(UiError::KafkaClient)?;
        Ok(KafkaLatestOffsets {
            client: Mutex::new(client),
        })
    }
}

impl LatestOffsets for KafkaLatestOffsets {
    fn latest_offsets(&self, partitions: &[TopicPartition]) -> BTreeMap<TopicPartition, i64> {
        let client = self.client.lock();
        partitions
            .iter()
            .filter_map(|tp| match client.watermarks(tp) {
                Ok(w) => Some((tp.clone(), w.latest)),
                Err(e) => {
                    tracing::debug!(%tp, error = %e, "cannot read the latest offset for lag");
                    None
                }
            })
            .collect()
    }
}

/// One Kafka partition read by an input: the job's position and, when known, the log end.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionPosition {
    /// The input (`kafka_direct-0`, ...).
    pub input_id: String,
    /// The partition.
    pub partition: TopicPartition,
    /// `until` of the newest retained batch that planned this partition.
    pub until_offset: i64,
    /// The partition's latest offset, when a source gave it.
    pub latest_offset: Option<i64>,
}

impl PartitionPosition {
    /// `latest − until` (never negative), when the latest offset is known.
    pub fn lag(&self) -> Option<i64> {
        Some((self.latest_offset? - self.until_offset).max(0))
    }
}

/// The positions of every Kafka partition in the retained batches, newest batch first wins.
pub fn positions(snap: &Snapshot) -> Vec<PartitionPosition> {
    let mut out: BTreeMap<(String, TopicPartition), i64> = BTreeMap::new();
    for b in snap.completed.iter().rev() {
        for (id, input) in &b.info.input_infos {
            for r in input_detail(input).offset_ranges {
                out.entry((id.clone(), TopicPartition::new(r.topic, r.partition)))
                    .or_insert(r.until_offset);
            }
        }
    }
    out.into_iter()
        .map(|((input_id, partition), until_offset)| PartitionPosition {
            input_id,
            partition,
            until_offset,
            latest_offset: None,
        })
        .collect()
}

/// Fills in latest offsets from `source` (a blocking call: run it off the async runtime).
pub fn fill_latest(positions: &mut [PartitionPosition], source: &dyn LatestOffsets) {
    let mut tps: Vec<TopicPartition> = positions.iter().map(|p| p.partition.clone()).collect();
    tps.sort();
    tps.dedup();
    let latest = source.latest_offsets(&tps);
    for p in positions {
        p.latest_offset = latest.get(&p.partition).copied();
    }
}

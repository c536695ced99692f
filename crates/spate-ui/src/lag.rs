//! Consumer lag of Kafka inputs: where the job is (the `until` offsets of the newest batch that
//! planned each partition) against where the log ends (the partition's latest offset).
//!
//! The direct stream records only the planned ranges in a batch's metadata, not the log end it
//! saw when planning, so the log end is asked from the cluster on demand by a
//! [`LatestOffsets`] source (one ListOffsets round trip per partition, no consumer group). A UI
//! without a source still exposes the job's position; lag then needs the broker's own metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_kafka::{DirectStreamConfig, DriverClient, KafkaParams, RetryPolicy, TopicPartition};

use crate::api::input_detail;
use crate::error::{Result, UiError};
use crate::store::Snapshot;

/// Where each partition's log ends now.
pub trait LatestOffsets: Send + Sync {
    /// The latest offset (log end, or last stable offset under `read_committed`) of each of
    /// `partitions` that could be read; partitions that failed are left out.
    fn latest_offsets(&self, partitions: &[TopicPartition]) -> BTreeMap<TopicPartition, i64>;
}

/// How long latest offsets are reused: an open page and a scraper each ask every few seconds,
/// and the broker should see one round of requests for both.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// A scrape gives up on the remaining partitions after this long (a broker that is down must
/// not make `/metrics` time out).
const SCRAPE_BUDGET: Duration = Duration::from_secs(3);

/// [`LatestOffsets`] from a Kafka cluster, through the direct stream's driver client.
pub struct KafkaLatestOffsets {
    client: Mutex<DriverClient>,
    cache: Mutex<Option<(Instant, BTreeMap<TopicPartition, i64>)>>,
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
        let client =
            DriverClient::new(params, &config).map_err(|e| UiError::KafkaClient(Box::new(e)))?;
        Ok(KafkaLatestOffsets {
            client: Mutex::new(client),
            cache: Mutex::new(None),
        })
    }
}

impl LatestOffsets for KafkaLatestOffsets {
    fn latest_offsets(&self, partitions: &[TopicPartition]) -> BTreeMap<TopicPartition, i64> {
        if let Some((at, cached)) = self.cache.lock().as_ref() {
            if at.elapsed() < CACHE_FOR && partitions.iter().all(|tp| cached.contains_key(tp)) {
                return cached.clone();
            }
        }
        let client = self.client.lock();
        let started = Instant::now();
        let mut out = BTreeMap::new();
        for tp in partitions {
            if started.elapsed() > SCRAPE_BUDGET {
                tracing::debug!("latest offsets: out of time, lag left out for the rest");
                break;
            }
            match client.watermarks(tp) {
                Ok(w) => {
                    out.insert(tp.clone(), w.latest);
                }
                Err(e) => {
                    tracing::debug!(%tp, error = %e, "cannot read the latest offset for lag")
                }
            }
        }
        *self.cache.lock() = Some((Instant::now(), out.clone()));
        out
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
        p.latest_offset = latest
            .get(&p.partition)
            .map(|&l| shown_latest(p.until_offset, l));
    }
}

/// The latest offset to show beside a position of `until`: the job's position and the log end
/// are sampled at different times (the batch when it was planned, the log end when the page or
/// scrape asked, possibly from a cached answer older than the batch), and a log never ends
/// before an offset that was already read, so a latest offset below `until` is a stale sample:
/// show `until` (no lag) instead.
pub fn shown_latest(until: i64, sampled_latest: i64) -> i64 {
    sampled_latest.max(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latest offsets as a fixed answer, standing in for a cluster sampled at another time.
    struct Sampled(BTreeMap<TopicPartition, i64>);

    impl LatestOffsets for Sampled {
        fn latest_offsets(&self, _: &[TopicPartition]) -> BTreeMap<TopicPartition, i64> {
            self.0.clone()
        }
    }

    fn position(partition: i32, until: i64) -> PartitionPosition {
        PartitionPosition {
            input_id: "kafka_direct-0".into(),
            partition: TopicPartition::new("t", partition),
            until_offset: until,
            latest_offset: None,
        }
    }

    #[test]
    fn latest_is_never_shown_below_what_was_read() {
        assert_eq!(shown_latest(100, 90), 100);
        assert_eq!(shown_latest(100, 100), 100);
        assert_eq!(shown_latest(100, 250), 250);

        let mut pos = vec![position(0, 100), position(1, 40), position(2, 7)];
        let source = Sampled(BTreeMap::from([
            (TopicPartition::new("t", 0), 90),
            (TopicPartition::new("t", 1), 55),
        ]));
        fill_latest(&mut pos, &source);
        assert_eq!(
            pos[0].latest_offset,
            Some(100),
            "stale sample clamped to until"
        );
        assert_eq!(pos[0].lag(), Some(0));
        assert_eq!(pos[1].latest_offset, Some(55));
        assert_eq!(pos[1].lag(), Some(15));
        assert_eq!(pos[2].latest_offset, None, "no sample, nothing shown");
    }
}

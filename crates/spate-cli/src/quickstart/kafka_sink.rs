//! `spate quickstart --sink kafka`: the window counts written to a Kafka topic exactly once.
//!
//! Every batch's counts go to the output topic (`--output-topic`, default `campaign-windows`)
//! in one Kafka transaction together with the batch's offsets, committed to the job's consumer
//! group `spate-quickstart` (`save_to_kafka_exactly_once` over a [`KafkaOffsetStore`]). Each
//! record is one batch's views of one campaign window: key `<campaign id>@<window start ms>`,
//! value the number of views as decimal text, so a window's count is the sum of its records.
//!
//! A killed run leaves at most one open transaction; the next run's producer (same
//! `transactional.id`, `spate-quickstart-window-counts`) fences it and the coordinator aborts
//! it, the stream resumes from the group's committed offsets (or re-runs the checkpoint's
//! planned batches, which the group then recognises as already committed), and readers with
//! `isolation.level=read_committed` — like [`read_results`], the summary's check — never see
//! the aborted records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spate_client::config::CliContext;
use spate_kafka::{
    KafkaOffsetStore, KafkaOutput, KafkaParams, OutputRecord, SaveToKafka, TopicPartition,
};
use spate_streaming::DStream;
use spate_ysb::{self as ysb, CampaignMap};

use super::cluster::Cluster;
use super::summary::Results;

/// The name of the output within the job: the `transactional.id` is `<group>-<output>`.
pub const OUTPUT_NAME: &str = "window-counts";

/// How long reading the output topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The key of a campaign window's records.
pub fn window_key(campaign_id: &str, window_start: i64) -> String {
    format!("{campaign_id}@{window_start}")
}

/// `(campaign id, window start)` of a record key written by [`window_key`].
pub fn parse_window_key(key: &str) -> Option<(String, i64)> {
    let (campaign, window) = key.rsplit_once('@')?;
    Some((campaign.to_owned(), window.parse().ok()?))
}

/// Writes `counts` (views per `(campaign index, window start)`) to `topic` exactly once, with
/// `source`'s offsets committed to `store`'s group in the same transaction.
pub fn save_counts(
    counts: &DStream<((u32, i64), u64)>,
    source: &spate_kafka::DirectKafkaStream,
    store: KafkaOffsetStore,
    topic: &str,
    campaigns: Arc<CampaignMap>,
) -> spate_kafka::Result<KafkaOutput> {
    counts.save_to_kafka_exactly_once(
        source,
        store,
        OUTPUT_NAME,
        topic,
        move |((campaign, window), n): &((u32, i64), u64)| {
            let id = campaigns
                .campaign_id(*campaign)
                .map(ysb::events::uuid_string)
                .unwrap_or_default();
            OutputRecord::new(window_key(&id, *window), n.to_string())
        },
    )
}

/// The window counts in `topic` as a `read_committed` consumer sees them, summed per window,
/// and the offsets of `input` committed to `group` (what the counts include).
pub fn read_results(
    cluster: &Cluster,
    params: &KafkaParams,
    topic: &str,
    input: &str,
) -> anyhow::Result<Results> {
    let counts = read_committed_counts(cluster, topic)?;
    let partitions = cluster.partitions(input)?;
    let mut store = KafkaOffsetStore::open(params.clone())?;
    let offsets = store
        .committed_offsets((0..partitions).map(|p| TopicPartition::new(input, p)))?
        .into_iter()
        .map(|(tp, o)| (tp.topic, tp.partition, o))
        .collect();
    Ok(Results::from_counts(
        format!("topic {topic}, read_committed"),
        &counts,
        offsets,
    ))
}

/// Views per `(campaign id, window start)`: the output topic read from the beginning to its end
/// with `isolation.level=read_committed`, every record's count added to its window.
pub fn read_committed_counts(
    cluster: &Cluster,
    topic: &str,
) -> anyhow::Result<BTreeMap<(String, i64), u64>> {
    let consumer: BaseConsumer<CliContext> = cluster.client.create(&[
        ("group.id", "spate-quickstart-check"),
        ("isolation.level", "read_committed"),
        ("enable.partition.eof", "true"),
        ("enable.auto.commit", "false"),
    ])?;
    let partitions = cluster.partitions(topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| anyhow!("assigning {topic}-{p}: {e}"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| anyhow!("assigning {topic}: {e}"))?;
    let mut counts = BTreeMap::new();
    let mut at_end = 0;
    let deadline = Instant::now() + READ_TIMEOUT;
    while at_end < partitions {
        if Instant::now() > deadline {
            bail!("reading {topic} did not reach its end in {READ_TIMEOUT:?}");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = std::str::from_utf8(m.key().unwrap_or_default()).unwrap_or_default();
                let window = parse_window_key(key).with_context(|| {
                    format!("{topic}-{}@{}: key {key:?}", m.partition(), m.offset())
                })?;
                let n: u64 = std::str::from_utf8(m.payload().unwrap_or_default())
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .with_context(|| {
                        format!("{topic}-{}@{}: not a count", m.partition(), m.offset())
                    })?;
                *counts.entry(window).or_insert(0) += n;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_round_trip() {
        let key = window_key("c0ffee-12", 1_700_000_010_000);
        assert_eq!(key, "c0ffee-12@1700000010000");
        assert_eq!(
            parse_window_key(&key),
            Some(("c0ffee-12".to_owned(), 1_700_000_010_000))
        );
        assert_eq!(parse_window_key("no-window"), None);
        assert_eq!(parse_window_key("c@soon"), None);
    }
}

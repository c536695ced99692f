//! The direct stream on a compacted topic: the broker's log cleaner (triggered by the topic's
//! own configs: small segments, `min.cleanable.dirty.ratio=0.01`, `delete.retention.ms=0`, and a
//! short `log.cleaner.backoff.ms`) removes superseded records and tombstones, leaving gaps in the
//! offsets. `create_rdd` (including a range that ends inside a gap) and a DStream from
//! `create_direct_stream` read across the gaps with no setting (Spark needs
//! `allowNonConsecutiveOffsets` for this), and see exactly the live keys' latest values in offset
//! order.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use spate_broker::BrokerConfig;
use spate_kafka::{ConsumerRecord, ConsumerStrategy, KafkaUtils, OffsetRange};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::produce::produce_keyed;
use spate_testkit::{poll_until, TestBroker};

use common::*;

/// `(offset, key, value)`.
type Seen = (i64, String, String);

fn create_compacted_topic(broker: &TestBroker) -> String {
    let topic = spate_testkit::random_topic("compacted");
    let admin: AdminClient<DefaultClientContext> =
        spate_testkit::clients::admin_config(&broker.bootstrap_servers())
            .create()
            .expect("admin client");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "4096")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "0");
    let res = runtime()
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .expect("create topics");
    for r in res {
        r.expect("topic created");
    }
    topic
}

/// 40 keys × 4 updates, tombstones for every 5th key, then 30 fillers with their own keys so
/// that every update and tombstone is out of the active segment (which is never cleaned).
fn workload() -> Vec<(String, Option<String>)> {
    let mut records = Vec::new();
    for u in 0..4 {
        for k in 0..40 {
            records.push((format!("k{k:02}"), Some(format!("v{u}-k{k:02}"))));
        }
    }
    for k in (0..40).step_by(5) {
        records.push((format!("k{k:02}"), None));
    }
    for i in 0..30 {
        records.push((format!("filler{i:02}"), Some("f".repeat(200))));
    }
    records
}

/// The live keys' latest values, in offset order (offsets as produced: the log starts empty).
fn live_latest(records: &[(String, Option<String>)]) -> Vec<Seen> {
    let mut latest: BTreeMap<&str, (i64, Option<&String>)> = BTreeMap::new();
    for (o, (k, v)) in records.iter().enumerate() {
        latest.insert(k, (o as i64, v.as_ref()));
    }
    let mut live: Vec<Seen> = latest
        .into_iter()
        .filter_map(|(k, (o, v))| v.map(|v| (o, k.to_string(), v.clone())))
        .collect();
    live.sort();
    live
}

/// Waits until the cleaner has cleaned everything cleanable and removed the tombstones (their
/// delete horizon, `delete.retention.ms=0`, passes at once; a second cleaning drops them).
fn wait_until_compacted(broker: &TestBroker, topic: &str, expected_records: usize) {
    let partition = broker
        .state()
        .topics
        .partition(topic, 0)
        .expect("partition");
    let mut last = None;
    let compacted = poll_until(Duration::from_secs(30), || {
        let status = broker
            .state()
            .cleaner
            .status(&partition, spate_broker::time::now_ms())
            .expect("status")
            .expect("a disk log");
        let settled = status.dirty_bytes == 0
            && !status.in_progress
            && status
                .last_cleaning
                .as_ref()
                .is_some_and(|l| l.stats.next_delete_horizon_ms.is_none());
        last = Some(status);
        settled && count_records(broker, topic) == expected_records
    });
    assert!(compacted, "the cleaner did not compact {topic}: {last:?}");
}

/// Records left in the log, read with create_rdd over the whole offset range.
fn count_records(broker: &TestBroker, topic: &str) -> usize {
    let end = broker
        .state()
        .topics
        .partition(topic, 0)
        .unwrap()
        .log()
        .log_end_offset();
    KafkaUtils::create_rdd(&params(broker), &[OffsetRange::create(topic, 0, 0, end)])
        .map(|rdd| rdd.count())
        .unwrap_or(0)
}

fn seen(records: &[ConsumerRecord]) -> Vec<Seen> {
    records
        .iter()
        .map(|r| {
            (
                r.offset,
                r.key_str().unwrap_or_default(),
                r.value_str().expect("a live value, not a tombstone"),
            )
        })
        .collect()
}

#[test]
fn create_rdd_and_a_dstream_read_a_compacted_topic_across_the_gaps() {
    spate_testkit::init_logging();
    let mut config = BrokerConfig::default();
    config.set("log.cleaner.backoff.ms", "50").unwrap();
    let broker = TestBroker::start_with(config);
    let topic = create_compacted_topic(&broker);
    let records = workload();
    produce_keyed(&broker.bootstrap_servers(), &topic, &records);
    let end = records.len() as i64;
    let want = live_latest(&records);
    wait_until_compacted(&broker, &topic, want.len());
    let offsets: Vec<i64> = want.iter().map(|(o, _, _)| *o).collect();
    assert!(
        offsets.windows(2).any(|w| w[1] > w[0] + 1),
        "compaction left no gap"
    );

    // One range over everything, and the same split at an offset the cleaner removed.
    let rdd = KafkaUtils::create_rdd(&params(&broker), &[OffsetRange::create(&topic, 0, 0, end)])
        .unwrap();
    assert_eq!(seen(&rdd.partitions()[0]), want, "create_rdd, one range");
    // A removed offset between two kept records.
    let removed = (offsets[0] + 1..end)
        .find(|o| !offsets.contains(o))
        .expect("a removed offset");
    let split = [
        OffsetRange::create(&topic, 0, 0, removed),
        OffsetRange::create(&topic, 0, removed, end),
    ];
    let rdd = KafkaUtils::create_rdd(&params(&broker), &split).unwrap();
    let mut both = seen(&rdd.partitions()[0]);
    assert!(!both.is_empty() && both.iter().all(|(o, _, _)| *o < removed));
    both.extend(seen(&rdd.partitions()[1]));
    assert_eq!(both, want, "create_rdd, split inside a gap at {removed}");

    let streamed = read_with_a_dstream(&broker, &topic, end);
    assert_eq!(streamed, want, "create_direct_stream");
    println!(
        "{} records produced, {} left after compaction (offsets 0..{end} with gaps); \
         create_rdd and the DStream read {} and {}",
        records.len(),
        want.len(),
        both.len(),
        streamed.len()
    );
}

/// Everything a direct stream from the earliest offset delivers until its ranges reach `end`.
fn read_with_a_dstream(broker: &TestBroker, topic: &str, end: i64) -> Vec<Seen> {
    let ctx = StreamingContext::new(
        Config::new("kafka-compacted-test")
            .batch_interval(Duration::from_millis(100))
            .executor_threads(2),
    )
    .unwrap();
    let stream = KafkaUtils::create_direct_stream(
        &ctx,
        ConsumerStrategy::subscribe([topic], params(broker)),
    )
    .unwrap();
    let got: Arc<Mutex<(i64, Vec<Seen>)>> = Arc::default();
    let (sink, handle) = (got.clone(), stream.clone());
    stream.foreach_batch(move |batch, time| {
        let ranges = handle.offset_ranges(time).unwrap_or_default();
        let parts = batch.collect_partitions()?;
        let mut g = sink.lock();
        for (range, records) in ranges.iter().zip(&parts) {
            assert!(records
                .iter()
                .all(|r| r.offset >= range.from_offset && r.offset < range.until_offset));
            g.1.extend(seen(records));
            g.0 = g.0.max(range.until_offset);
        }
        Ok::<_, spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    let caught_up = poll_until(Duration::from_secs(30), || got.lock().0 >= end);
    assert!(caught_up, "the stream stopped at {:?}", got.lock().0);
    ctx.stop(true).unwrap();
    let out = got.lock().1.clone();
    out
}

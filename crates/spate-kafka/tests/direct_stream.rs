//! `KafkaUtils::create_direct_stream` on the engine against the test broker: a short job whose
//! batches are 1:1 with partitions, contiguous from batch to batch, clamped, and committed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_kafka::{
    keys, ConsumerRecord, ConsumerStrategy, DirectStreamConfig, KafkaUtils, OffsetRange,
};
use spate_streaming::{Config, StreamingContext, Time};
use spate_testkit::TestBroker;

use common::*;

type Seen = Arc<Mutex<Vec<(Time, Vec<OffsetRange>, Vec<Vec<ConsumerRecord>>)>>>;

#[test]
fn direct_stream_batches_are_contiguous_one_partition_per_range_and_committed() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "direct", 3);
    for p in 0..3 {
        produce(&broker, &topic, p, 0, 40);
    }
    let params = params(&broker);
    let group = params.group_id().unwrap().to_owned();

    let ctx = StreamingContext::new(
        Config::new("kafka-direct-test")
            .batch_interval(Duration::from_millis(200))
            .executor_threads(2),
    )
    .unwrap();
    // 50 records/s per partition over 0.2 s batches: at most 10 offsets per partition per batch.
    // Given as keys in the Kafka params (as a deployment would), which must take effect and
    // must not reach librdkafka (the clients would refuse to start).
    let params = params
        .set(keys::MAX_RATE_PER_PARTITION, "50")
        .set(keys::BACKPRESSURE_INITIAL_RATE, "none");
    let stream = KafkaUtils::create_direct_stream(
        &ctx,
        ConsumerStrategy::subscribe([topic.as_str()], params),
    )
    .unwrap();

    let seen: Seen = Arc::default();
    let (sink, handle) = (seen.clone(), stream.clone());
    stream.foreach_batch(move |batch, time| {
        let ranges = handle.offset_ranges(time).unwrap_or_default();
        let parts = batch.collect_partitions()?;
        sink.lock().push((time, ranges.clone(), parts));
        // Outputs done: commit this batch's ranges to the group.
        handle
            .commit_async(&ranges, |r| {
                if let Err(e) = r {
                    tracing::error!("commit failed: {e}");
                }
            })
            .map_err(|e| spate_streaming::StreamingError::input("test", e.to_string()))
    });
    ctx.start().unwrap();

    let total = |s: &Seen| -> usize {
        s.lock()
            .iter()
            .map(|(_, _, p)| p.iter().map(Vec::len).sum::<usize>())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut produced_more = false;
    loop {
        let n = total(&seen);
        if !produced_more && n >= 60 {
            produce(&broker, &topic, 1, 40, 10);
            produced_more = true;
        }
        if produced_more && n >= 130 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} records after 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.stop(true).unwrap();

    let seen = seen.lock().clone();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut values = Vec::new();
    for (time, ranges, parts) in &seen {
        assert_eq!(ranges.len(), 3, "batch {time}: one range per partition");
        assert_eq!(
            parts.len(),
            ranges.len(),
            "batch {time}: one engine partition per range"
        );
        for (range, records) in ranges.iter().zip(parts) {
            assert!(
                range.count() <= 10,
                "batch {time}: {range} exceeds the rate limit"
            );
            let expected_from = next.get(&range.partition).copied().unwrap_or(0);
            assert_eq!(
                range.from_offset, expected_from,
                "batch {time}: {range} is not contiguous"
            );
            next.insert(range.partition, range.until_offset);
            assert_eq!(
                offsets(records),
                (range.from_offset..range.until_offset).collect::<Vec<_>>()
            );
            assert!(records
                .iter()
                .all(|r| r.partition == range.partition && *r.topic == *topic));
            values.extend(common::values(records));
        }
    }
    assert_eq!(next, BTreeMap::from([(0, 40), (1, 50), (2, 40)]));
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 130, "every record exactly once");

    // The commits are visible to the group (lag tools).
    let consumer: rdkafka::consumer::BaseConsumer =
        spate_testkit::clients::consumer_config(&broker.bootstrap_servers(), &group)
            .create()
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition(&topic, p);
        }
        let got =
            rdkafka::consumer::Consumer::committed_offsets(&consumer, tpl, Duration::from_secs(10))
                .unwrap();
        let offsets: Vec<_> = (0..3)
            .map(|p| got.find_partition(&topic, p).map(|e| e.offset()))
            .collect();
        let want: Vec<_> = [40, 50, 40]
            .iter()
            .map(|&o| Some(rdkafka::Offset::Offset(o)))
            .collect();
        if offsets == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "committed offsets are {offsets:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn backpressure_bounds_the_first_batch_and_then_follows_the_pid_estimate() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "backpressure", 1);
    produce(&broker, &topic, 0, 0, 3000);
    let ctx = StreamingContext::new(
        Config::new("kafka-bp-test").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    // 500 records/s initially: 50 offsets in the first 0.1 s batch, not the 3000 backlog.
    let config = DirectStreamConfig::default()
        .backpressure(true)
        .initial_rate(Some(500.0));
    let stream = KafkaUtils::create_direct_stream_with(
        &ctx,
        ConsumerStrategy::subscribe([topic.as_str()], params(&broker)),
        config,
    )
    .unwrap();
    assert_eq!(stream.latest_rate(), Some(-1));
    let counts: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (sink, handle) = (counts.clone(), stream.clone());
    stream.foreach_batch(move |batch, time| {
        let n = batch.count()?;
        if n > 0 {
            sink.lock().push(n);
            let planned: u64 = handle
                .offset_ranges(time)
                .unwrap_or_default()
                .iter()
                .map(OffsetRange::count)
                .sum();
            assert_eq!(planned, n);
            std::thread::sleep(Duration::from_millis(5)); // a measurable processing delay
        }
        Ok::<_, spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream.latest_rate().unwrap_or(-1) <= 0 {
        assert!(
            Instant::now() < deadline,
            "no backpressure estimate after 20 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ctx.stop(true).unwrap();
    let counts = counts.lock().clone();
    assert_eq!(
        counts.first(),
        Some(&50),
        "first batch bounded by the initial rate: {counts:?}"
    );
    // The PID's minimum rate is 100 records/s (10 per batch); the floor of the clamp is 1.
    assert!(stream.latest_rate().unwrap() >= 100);
}

//! `reduce_by_key_and_window_by_task` — a sliding window held as state partitioned by task —
//! against the embedded broker with real rdkafka clients:
//!
//! * on a direct stream its windows equal `reduce_by_key_and_window`'s (the in-memory window of
//!   buffered batches) at every slide, while records arrive;
//! * with a changelog in an exactly-once output's transactions, a restarted job restores its
//!   windows: the counts after the restart include what was counted before it, where an
//!   in-memory window would start empty.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils, TopicPartition};
use spate_kafka::{KafkaOffsetStore, OutputRecord, SaveToKafka};
use spate_streaming::{Config, StreamingContext, StreamingError, Time};
use spate_testkit::{clients, wait_until, TestBroker};

const PARTITIONS: i32 = 3;
const WORDS: usize = 12;

fn params(bootstrap: &str, group: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("broker.address.family", "v4")
        .set("auto.offset.reset", "earliest")
}

/// Word `i` is keyed `w<i>` and lives in partition `i % PARTITIONS`: the topic is
/// co-partitioned by word, as state by task needs.
fn produce(bootstrap: &str, topic: &str, lines: std::ops::Range<usize>) {
    let p: BaseProducer = clients::producer_config(bootstrap).create().unwrap();
    for i in lines {
        let w = i % WORDS;
        let key = format!("w{w}");
        let record = BaseRecord::<str, str>::to(topic)
            .key(&key)
            .payload("1")
            .partition((w % PARTITIONS as usize) as i32);
        p.send(record).map_err(|(e, _)| e).unwrap();
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

/// Each word's count among lines `0..lines`.
fn expected(lines: usize) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for i in 0..lines {
        *counts.entry(format!("w{}", i % WORDS)).or_default() += 1;
    }
    counts
}

fn direct_stream(
    ctx: &StreamingContext,
    bootstrap: &str,
    topic: &str,
    group: &str,
) -> spate_kafka::DirectKafkaStream {
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p));
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(200)
        .initial_rate(None);
    KafkaUtils::create_direct_stream_with(
        ctx,
        ConsumerStrategy::assign(partitions, params(bootstrap, group)),
        config,
    )
    .unwrap()
}

type Windows = Arc<Mutex<BTreeMap<Time, BTreeMap<String, u64>>>>;

#[test]
fn windows_by_task_equal_the_in_memory_windows() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = common::create_topic(&broker, "wbt_eq", PARTITIONS);
    let group = spate_testkit::random_group("wbt-eq");
    let ctx = StreamingContext::new(
        Config::new("windows-by-task").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let stream = direct_stream(&ctx, &bootstrap, &topic, &group);
    let pairs = stream.map(|r| (r.key_str().unwrap_or_default(), 1_u64));
    let (length, slide) = (Duration::from_millis(600), Duration::from_millis(200));
    let (in_memory, by_task): (Windows, Windows) = Default::default();
    for (windows, by_task_window) in [(in_memory.clone(), false), (by_task.clone(), true)] {
        let window = if by_task_window {
            pairs.reduce_by_key_and_window_by_task(|a, b| a + b, length, slide)
        } else {
            pairs.reduce_by_key_and_window(|a, b| a + b, length, slide)
        };
        window.unwrap().foreach_batch(move |batch, time| {
            let counts = batch.collect()?.into_iter().collect();
            windows.lock().insert(time, counts);
            Ok::<_, StreamingError>(())
        });
    }
    ctx.start().unwrap();
    // Lines arrive over about two seconds, so windows fill, slide and empty out.
    for chunk in 0..10 {
        produce(&bootstrap, &topic, chunk * 30..(chunk + 1) * 30);
        std::thread::sleep(Duration::from_millis(200));
    }
    let total = |w: &Windows| -> u64 { w.lock().values().flat_map(|c| c.values()).sum() };
    wait_until("the windows to empty out", Duration::from_secs(20), || {
        let last = by_task.lock().values().next_back().cloned();
        total(&in_memory) > 0 && last.is_some_and(|c| c.is_empty())
    });
    ctx.stop(true).unwrap();

    let (a, b) = (in_memory.lock().clone(), by_task.lock().clone());
    let times: Vec<&Time> = a.keys().filter(|t| b.contains_key(t)).collect();
    let mut differ = 0;
    for t in &times {
        if a[t] != b[t] {
            differ += 1;
            eprintln!("at {t}: in memory {:?}, by task {:?}", a[t], b[t]);
        }
    }
    let filled = times.iter().filter(|t| !a[**t].is_empty()).count();
    eprintln!(
        "windows by task vs in memory: {} slides compared ({filled} with counts), {differ} \
         differ; counts summed over every slide {} vs {}",
        times.len(),
        total(&in_memory),
        total(&by_task)
    );
    assert_eq!(differ, 0);
    assert!(filled >= 5, "too few windows with counts: {filled}");
}

/// The job of `windows_restore_after_a_restart`: a 60 s window slid every batch, held by task
/// with a changelog in the output's transactions; each slide's counts go to `output` exactly
/// once.
fn counting_job(bootstrap: &str, topic: &str, output: &str, group: &str) -> StreamingContext {
    let ctx = StreamingContext::new(
        Config::new("windows-restore").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let stream = direct_stream(&ctx, bootstrap, topic, group);
    let windows = stream
        .map(|r| (r.key_str().unwrap_or_default(), 1_u64))
        .reduce_by_key_and_window_by_task(
            |a, b| a + b,
            Duration::from_secs(60),
            Duration::from_millis(100),
        )
        .unwrap()
        .uid("word-windows");
    let store = KafkaOffsetStore::open(params(bootstrap, group)).unwrap();
    let record = |(w, n): &(String, u64)| OutputRecord::new(w.as_bytes(), n.to_string());
    let out = windows
        .save_to_kafka_exactly_once(&stream, store, "windows", output, record)
        .unwrap();
    let changelog = Arc::new(KafkaChangelog::new(params(bootstrap, group)).unwrap());
    changelog.join(&out).unwrap();
    ctx.state_changelog("word-windows", changelog);
    ctx
}

/// Each word's last window count in `output`, read_committed.
fn last_counts(bootstrap: &str, output: &str) -> BTreeMap<String, u64> {
    spate_testkit::consume::read_committed(bootstrap, output, PARTITIONS)
        .into_iter()
        .map(|(k, v)| {
            let v = String::from_utf8(v.unwrap_or_default()).unwrap();
            (String::from_utf8(k).unwrap(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn windows_restore_after_a_restart() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = common::create_topic(&broker, "wbt_in", PARTITIONS);
    let output = common::create_topic(&broker, "wbt_out", PARTITIONS);
    let group = spate_testkit::random_group("wbt-restore");
    let (first, second) = (240, 120);

    let ctx = counting_job(&bootstrap, &topic, &output, &group);
    ctx.start().unwrap();
    produce(&bootstrap, &topic, 0..first);
    wait_until("the first run's counts", Duration::from_secs(30), || {
        last_counts(&bootstrap, &output) == expected(first)
    });
    ctx.stop(true).unwrap();
    drop(ctx);
    // The restarted job starts after these offsets: only the changelog can give its windows
    // the first run's counts.
    let committed = common::committed_sum(&bootstrap, &group, &topic, PARTITIONS);
    assert_eq!(committed, first as i64);

    // The restarted job restores the windows from the changelog and goes on counting in them.
    produce(&bootstrap, &topic, first..first + second);
    let ctx = counting_job(&bootstrap, &topic, &output, &group);
    ctx.start().unwrap();
    let want = expected(first + second);
    wait_until("the second run's counts", Duration::from_secs(30), || {
        last_counts(&bootstrap, &output) == want
    });
    ctx.stop(true).unwrap();
    eprintln!(
        "windows by task across a restart: {first} + {second} lines, last window counts {:?}",
        last_counts(&bootstrap, &output)
    );
}

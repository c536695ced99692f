//! A checkpoint written by an earlier build stays readable: `tests/fixtures/direct-checkpoint-v1`
//! was written by the direct stream before its plan became a typed `DirectPlan` (it is the
//! checkpoint of `write_fixture` below, run once on that build). Restarting the same job on it
//! re-runs the pending batch with its recorded ranges and continues after them.
//!
//! The fixture's job: topic `fixture-events` (2 partitions, 40 records `"{p}-{i}"` each), a
//! direct stream at 50 records/s per partition in 100 ms batches (5 offsets per partition per
//! batch); the output failed on the third batch with data, so that batch is planned but not
//! committed.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use spate_kafka::{
    ConsumerStrategy, DirectBatchInfo, DirectPlan, DirectStreamConfig, KafkaParams, KafkaUtils,
    OffsetRange,
};
use spate_streaming::checkpoint::Checkpoint;
use spate_streaming::listener::{BatchInfo, StreamingListener};
use spate_streaming::{Config, StreamingContext, StreamingError, Time};
use spate_testkit::{clients, TestBroker};

use common::*;

const TOPIC: &str = "fixture-events";
const PARTITIONS: i32 = 2;
const PER_PARTITION: usize = 40;
const APP: &str = "direct-checkpoint-fixture";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/direct-checkpoint-v1")
}

/// The fixture's topic, with the same records at the same offsets as when it was written.
fn fixture_topic(broker: &TestBroker) {
    let admin = clients::admin_config(&broker.bootstrap_servers())
        .create::<rdkafka::admin::AdminClient<_>>()
        .expect("admin client");
    let new = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in runtime()
        .block_on(admin.create_topics([&new], &opts))
        .expect("create topics")
    {
        r.expect("topic created");
    }
    for p in 0..PARTITIONS {
        produce(broker, TOPIC, p, 0, PER_PARTITION);
    }
}

fn job_params(broker: &TestBroker) -> KafkaParams {
    params(broker).set("group.id", "direct-checkpoint-fixture")
}

/// Writes the fixture (run on purpose only: `cargo test -p spate-kafka --test checkpoint_compat
/// -- --ignored write_fixture`); the committed files are the compatibility contract.
#[test]
#[ignore = "writes tests/fixtures; run by hand to regenerate"]
fn write_fixture() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    fixture_topic(&broker);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let params = job_params(&broker);
    let batches_with_data = Arc::new(AtomicUsize::new(0));
    let seen = batches_with_data.clone();
    let ctx = StreamingContext::get_or_create(&ckpt, move || {
        let ctx =
            StreamingContext::new(Config::new(APP).batch_interval(Duration::from_millis(100)))?;
        let config = DirectStreamConfig::default()
            .max_rate_per_partition(50)
            .initial_rate(None);
        let stream = KafkaUtils::create_direct_stream_with(
            &ctx,
            ConsumerStrategy::subscribe([TOPIC], params),
            config,
        )
        .map_err(StreamingError::from)?;
        stream.foreach_batch(move |batch, _time| {
            if batch.count()? > 0 && seen.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                return Err(StreamingError::input(
                    "fixture",
                    "stop here: leave a pending batch",
                ));
            }
            Ok::<_, StreamingError>(())
        });
        Ok(ctx)
    })
    .unwrap();
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while batches_with_data.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "job made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = ctx.await_termination_or_timeout(Duration::from_secs(10));
    let _ = ctx.stop(false);
    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    copy_dir(&ckpt, &out);
    println!("fixture written to {}", out.display());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".tmp") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The ranges of the fixture's one pending batch, read from its offset-log file as plain JSON
/// (not with the code under test).
fn pending_ranges_in_fixture() -> (u64, Vec<(String, i32, i64, i64)>) {
    let offsets = fixture_dir().join("offsets");
    let committed: Vec<String> = std::fs::read_dir(fixture_dir().join("commits"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut pending: Vec<String> = std::fs::read_dir(&offsets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !committed.contains(n))
        .collect();
    assert_eq!(pending.len(), 1, "the fixture has one pending batch");
    let name = pending.pop().unwrap();
    let text = std::fs::read_to_string(offsets.join(&name)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ranges = v["inputs"]["kafka_direct-0"]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().unwrap().to_owned(),
                r["partition"].as_i64().unwrap() as i32,
                r["from_offset"].as_i64().unwrap(),
                r["until_offset"].as_i64().unwrap(),
            )
        })
        .collect();
    (name.parse().unwrap(), ranges)
}

/// Every batch's ranges, as the listeners see them through [`DirectBatchInfo`].
#[derive(Default)]
struct Ranges(Mutex<BTreeMap<Time, DirectBatchInfo>>);

impl StreamingListener for Ranges {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if let Some(direct) = DirectBatchInfo::from_batch(info) {
            self.0.lock().insert(info.batch_time, direct);
        }
    }
}

#[test]
fn the_typed_plan_decodes_the_recorded_plans() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), dir.path());
    let recovery = Checkpoint::open(dir.path()).unwrap().recover().unwrap();
    assert_eq!(recovery.pending.len(), 1);
    let plan: DirectPlan =
        serde_json::from_value(recovery.pending[0].inputs["kafka_direct-0"].clone()).unwrap();
    let (_, expected) = pending_ranges_in_fixture();
    let got: Vec<_> = plan
        .ranges
        .iter()
        .map(|r| (r.topic.clone(), r.partition, r.from_offset, r.until_offset))
        .collect();
    assert_eq!(got, expected);
    assert!(plan.lost.is_empty());
}

#[test]
fn a_checkpoint_written_before_typed_plans_is_recovered() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    fixture_topic(&broker);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    copy_dir(&fixture_dir(), &ckpt);
    let (pending_time, pending_ranges) = pending_ranges_in_fixture();

    let params = job_params(&broker);
    let read: Arc<Mutex<Vec<(Time, i32, i64)>>> = Arc::default();
    let listener = Arc::new(Ranges::default());
    let (sink, seen_by) = (read.clone(), listener.clone());
    let ctx = StreamingContext::get_or_create(&ckpt, move || {
        let ctx =
            StreamingContext::new(Config::new(APP).batch_interval(Duration::from_millis(100)))?;
        let config = DirectStreamConfig::default()
            .max_rate_per_partition(50)
            .initial_rate(None);
        let stream = KafkaUtils::create_direct_stream_with(
            &ctx,
            ConsumerStrategy::subscribe([TOPIC], params),
            config,
        )
        .map_err(StreamingError::from)?;
        stream.foreach_batch(move |batch, time| {
            let mut read = sink.lock();
            for r in batch.collect()? {
                read.push((time, r.partition, r.offset));
            }
            Ok::<_, StreamingError>(())
        });
        Ok(ctx)
    })
    .unwrap();
    ctx.add_streaming_listener(seen_by);
    ctx.start().unwrap();
    let total = PARTITIONS as usize * PER_PARTITION;
    let deadline = Instant::now() + Duration::from_secs(30);
    // The fixture committed offsets [0, 10) of each partition; everything after is read now.
    let expected = total - PARTITIONS as usize * 10;
    while read.lock().len() < expected {
        assert!(
            Instant::now() < deadline,
            "job made no progress: {:?}",
            read.lock().len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ctx.stop(true).unwrap();

    let read = read.lock().clone();
    // The pending batch ran first, at its recorded time, with its recorded ranges.
    let first_time = read.first().map(|(t, _, _)| *t).unwrap();
    assert_eq!(first_time.as_millis(), pending_time);
    let in_pending: Vec<(i32, i64)> = read
        .iter()
        .filter(|(t, _, _)| *t == first_time)
        .map(|(_, p, o)| (*p, *o))
        .collect();
    let planned: Vec<(i32, i64)> = pending_ranges
        .iter()
        .flat_map(|(_, p, from, until)| (*from..*until).map(move |o| (*p, o)))
        .collect();
    let mut sorted = in_pending.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, planned);
    let ranges = listener.0.lock().get(&first_time).cloned().unwrap();
    let as_tuples: Vec<_> = ranges
        .ranges
        .iter()
        .map(|r: &OffsetRange| (r.topic.clone(), r.partition, r.from_offset, r.until_offset))
        .collect();
    assert_eq!(as_tuples, pending_ranges);
    // Then the stream continued right after the recorded ranges: every offset from 10 on,
    // once, and nothing the fixture had committed.
    let mut offsets: Vec<(i32, i64)> = read.iter().map(|(_, p, o)| (*p, *o)).collect();
    offsets.sort_unstable();
    let want: Vec<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (10..PER_PARTITION as i64).map(move |o| (p, o)))
        .collect();
    assert_eq!(offsets, want);
    println!(
        "recovered the pending batch {pending_time} ({} records) and read {} records in all",
        in_pending.len(),
        read.len()
    );
}

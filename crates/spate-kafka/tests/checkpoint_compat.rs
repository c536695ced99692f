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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils};
use spate_streaming::{Config, StreamingContext, StreamingError};
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

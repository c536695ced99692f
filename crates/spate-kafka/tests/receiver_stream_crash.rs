//! SIGKILL crash test of `KafkaUtils::create_stream` with the write-ahead log inside a real
//! `StreamingContext`: the child job writes each batch's records to a file named after the batch
//! time (an idempotent output: a re-run batch rewrites its own file) and is killed at random
//! moments while a producer writes a known sequence. After the last restart catches up, every
//! produced record must be in the outputs; duplicates are counted and printed.
//!
//! The child is this test binary re-invoked with environment variables.

mod receiver_support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use receiver_support::*;
use spate_kafka::receiver::{BLOCK_INTERVAL_MS, WRITE_AHEAD_LOG_ENABLE};
use spate_kafka::KafkaUtils;
use spate_streaming::{Config, StreamingContext, StreamingError};
use spate_testkit::child::{ChildJob, Running};
use spate_testkit::{random_group, random_topic};

const ENV_DIR: &str = "SPATE_KAFKA_STREAM_CRASH_DIR";
const ENV_BOOTSTRAP: &str = "SPATE_KAFKA_STREAM_CRASH_BOOTSTRAP";
const ENV_TOPIC: &str = "SPATE_KAFKA_STREAM_CRASH_TOPIC";
const ENV_GROUP: &str = "SPATE_KAFKA_STREAM_CRASH_GROUP";

fn child(dir: &Path, bootstrap: &str, topic: &str, group: &str) -> anyhow::Result<()> {
    let out = dir.join("out");
    fs::create_dir_all(&out)?;
    let ctx = StreamingContext::get_or_create(dir.join("checkpoint"), || {
        let ctx = StreamingContext::new(
            Config::new("receiver-crash")
                .batch_interval(Duration::from_millis(200))
                .checkpoint_interval_batches(5),
        )?;
        let mut params = receiver_params(bootstrap, group);
        params.push((WRITE_AHEAD_LOG_ENABLE.into(), "true".into()));
        params.push((BLOCK_INTERVAL_MS.into(), "50".into()));
        params.push(("group.instance.id".into(), "stream-crash-job".into()));
        let records =
            KafkaUtils::create_stream(&ctx, params, [(topic, 1)]).map_err(StreamingError::from)?;
        // A stateful operator too: after a restart the engine replays the batches committed
        // since its last state snapshot, reading their blocks back from the receiver log.
        records
            .map(|r| (r.partition, 1u64))
            .update_state_by_key(|new: &[u64], old: Option<u64>| {
                Some(old.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .foreach_batch(|b, _| b.collect().map(|_| ()));
        let out = out.clone();
        records
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.partition,
                    r.offset,
                    r.value_str().unwrap_or_default()
                )
            })
            .foreach_batch(move |batch, time| {
                let lines = batch.collect()?;
                let tmp = out.join(format!(".tmp-{}", time.as_millis()));
                let mut f = fs::File::create(&tmp)?;
                for l in &lines {
                    writeln!(f, "{l}")?;
                }
                f.sync_all()?;
                fs::rename(&tmp, out.join(format!("batch-{}.txt", time.as_millis())))?;
                Ok::<_, anyhow::Error>(())
            });
        Ok(ctx)
    })?;
    ctx.start()?;
    ctx.await_termination()?;
    Ok(())
}

#[test]
fn stream_child_entry() {
    let (Ok(dir), Ok(bootstrap), Ok(topic), Ok(group)) = (
        std::env::var(ENV_DIR),
        std::env::var(ENV_BOOTSTRAP),
        std::env::var(ENV_TOPIC),
        std::env::var(ENV_GROUP),
    ) else {
        return;
    };
    spate_testkit::init_logging();
    if let Err(e) = child(Path::new(&dir), &bootstrap, &topic, &group) {
        eprintln!("stream crash child failed: {e:#}");
        std::process::exit(3);
    }
}

fn spawn(dir: &Path, bootstrap: &str, topic: &str, group: &str) -> Running {
    ChildJob::test_entry("stream_child_entry")
        .env(ENV_DIR, dir)
        .env(ENV_BOOTSTRAP, bootstrap)
        .env(ENV_TOPIC, topic)
        .env(ENV_GROUP, group)
        .spawn()
}

fn outputs(dir: &Path) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir.join("out")) else {
        return seen;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("batch-") {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        for v in text
            .lines()
            .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok())
        {
            *seen.entry(v).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn create_stream_with_write_ahead_log_loses_nothing_when_killed() {
    const PARTITIONS: i32 = 3;
    const N: u64 = 4_000;
    const CHUNK: u64 = 100;
    const KILLS: u32 = 20;
    let started = Instant::now();
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("stream_crash"), random_group("stream_crash"));
    let dir = tempfile::tempdir().expect("temp dir");
    produce_range(&bootstrap, &topic, PARTITIONS, 0, CHUNK);
    let producer = {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        std::thread::spawn(move || {
            let mut from = CHUNK;
            while from < N {
                produce_range(&bootstrap, &topic, PARTITIONS, from, from + CHUNK);
                from += CHUNK;
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let mut progress = Vec::new();
    for _ in 0..KILLS {
        spawn(dir.path(), &bootstrap, &topic, &group).kill_after_random(400..1_500);
        progress.push(outputs(dir.path()).len());
    }
    producer.join().expect("producer");
    eprintln!("distinct records in outputs after each kill: {progress:?}");
    let child = spawn(dir.path(), &bootstrap, &topic, &group);
    let complete = poll_until(Duration::from_secs(60), || {
        outputs(dir.path()).len() as u64 == N
    });
    child.kill();
    let seen = outputs(dir.path());
    let total: u32 = seen.values().sum();
    let lost = N - seen.len() as u64;
    eprintln!(
        "stream crash test (create_stream, write-ahead log ON): {KILLS} kills, {N} produced, \
         {lost} lost, {} duplicates, {:?}",
        u64::from(total) - seen.len() as u64,
        started.elapsed()
    );
    assert!(seen.keys().all(|v| *v < N));
    assert!(complete && lost == 0, "the job lost {lost} records");
}

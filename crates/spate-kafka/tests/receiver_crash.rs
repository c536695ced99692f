//! SIGKILL crash tests of the receiver-based stream at the receiver level: a child process runs
//! a job — a Kafka receiver, the block tracker and a batch loop that allocates blocks to a batch
//! every 200 ms and commits the batch by writing its records to an output file — and is killed
//! at random moments while a producer writes a known sequence. After the last restart has caught
//! up, the outputs are compared with what was produced.
//!
//! - With the write-ahead log: zero loss (every produced record is in some committed batch
//!   output); duplicates are counted and printed (at-least-once).
//! - Without it: the number of lost records is printed — the loss window the docs describe.
//!
//! The child is this test binary re-invoked with environment variables.

mod receiver_support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use receiver_support::*;
use spate_kafka::receiver::{ConsumerRecordCodec, KafkaReceiverConfig, RunningKafkaReceiver};
use spate_kafka::ConsumerRecord;
use spate_streaming::receiver::{
    BlockHandler, BlockStore, InMemoryBlockHandler, ReceivedBlockTracker, ReceiverPlan,
    WalBlockHandler,
};
use spate_streaming::wal::WalConfig;
use spate_testkit::child::{ChildJob, Running};
use spate_testkit::{random_group, random_topic};

const ENV_DIR: &str = "SPATE_KAFKA_RECEIVER_CRASH_DIR";
const ENV_BOOTSTRAP: &str = "SPATE_KAFKA_RECEIVER_CRASH_BOOTSTRAP";
const ENV_TOPIC: &str = "SPATE_KAFKA_RECEIVER_CRASH_TOPIC";
const ENV_GROUP: &str = "SPATE_KAFKA_RECEIVER_CRASH_GROUP";
const ENV_WAL: &str = "SPATE_KAFKA_RECEIVER_CRASH_WAL";

const BATCH_INTERVAL: Duration = Duration::from_millis(200);
const BLOCK_INTERVAL: Duration = Duration::from_millis(50);
/// Receiver log segments roll this often, so that the test sees committed segments deleted.
const WAL_ROLLING_MS: i64 = 500;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn batch_file(out: &Path, time_ms: i64) -> PathBuf {
    out.join(format!("batch-{time_ms}.txt"))
}

/// Commits a batch: its records written to a temporary file, fsynced, renamed into place.
fn write_batch(out: &Path, time_ms: i64, records: &[ConsumerRecord]) -> anyhow::Result<()> {
    let tmp = out.join(format!(".tmp-{time_ms}"));
    let mut f = fs::File::create(&tmp)?;
    for r in records {
        writeln!(
            f,
            "{} {} {}",
            r.partition,
            r.offset,
            r.value_str().unwrap_or_default()
        )?;
    }
    f.sync_all()?;
    fs::rename(&tmp, batch_file(out, time_ms))?;
    fs::File::open(out)?.sync_all()?;
    Ok(())
}

fn run_batch(
    time_ms: i64,
    tracker: &ReceivedBlockTracker,
    store: &BlockStore<ConsumerRecord>,
    checkpoint: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    let plan = ReceiverPlan::new(tracker.get_blocks_of_batch_and_stream(time_ms, 0));
    let blocks = plan.read_blocks_with(store, checkpoint, Some(&ConsumerRecordCodec))?;
    let records: Vec<ConsumerRecord> = blocks.iter().flat_map(|b| b.items.clone()).collect();
    write_batch(out, time_ms, &records)
}

fn child(dir: &Path, bootstrap: &str, topic: &str, group: &str, wal: bool) -> anyhow::Result<()> {
    let checkpoint = dir.join("checkpoint");
    let out = dir.join("out");
    fs::create_dir_all(&checkpoint)?;
    fs::create_dir_all(&out)?;
    let store = Arc::new(BlockStore::new());
    let tracker = Arc::new(if wal {
        ReceivedBlockTracker::open([0], &checkpoint, WalConfig::default())?
    } else {
        ReceivedBlockTracker::new([0])
    });
    // Recovery: batches allocated by an earlier run but never committed run again from the log.
    for t in tracker.allocated_batch_times() {
        if !batch_file(&out, t).exists() {
            run_batch(t, &tracker, &store, Some(&checkpoint), &out)?;
        }
    }
    let handler: Arc<dyn BlockHandler<ConsumerRecord>> = if wal {
        let config = WalConfig {
            rolling_interval_ms: WAL_ROLLING_MS,
            ..WalConfig::default()
        };
        Arc::new(WalBlockHandler::with_codec(
            &checkpoint,
            0,
            Arc::clone(&store),
            config,
            Arc::new(ConsumerRecordCodec),
        )?)
    } else {
        Arc::new(InMemoryBlockHandler::new(Arc::clone(&store)))
    };
    let mut params = receiver_params(bootstrap, group);
    // Static membership: a restarted job takes its partitions back at once instead of waiting
    // for the killed member's session to expire.
    params.push(("group.instance.id".into(), "crash-job".into()));
    params.push(("auto.commit.interval.ms".into(), "100".into()));
    let config = KafkaReceiverConfig::new(params, [(topic, 1)])?
        .write_ahead_log(wal)
        .block_interval(BLOCK_INTERVAL)?
        .restart_delay(Duration::from_millis(100));
    let report_to = Arc::clone(&tracker);
    let _receiver = RunningKafkaReceiver::builder(0, config)
        .checkpoint_dir(&checkpoint)
        .block_store(Arc::clone(&store))
        .block_handler(Arc::clone(&handler))
        .reporter(Box::new(move |info| report_to.add_block(info.clone())))
        .start()?;
    let ckpt = wal.then_some(checkpoint.as_path());
    loop {
        std::thread::sleep(BATCH_INTERVAL);
        let t = now_ms().max(tracker.last_allocated_batch().unwrap_or(0) + 1);
        tracker.allocate_blocks_to_batch(t)?;
        run_batch(t, &tracker, &store, ckpt, &out)?;
        // Batch t is committed, and every earlier one: forget their allocations and delete
        // receiver log segments that only hold their blocks. Blocks not yet allocated (or still
        // queued in the generator) are younger than the oldest waiting block, minus a margin.
        tracker.cleanup_old_batches(t)?;
        let oldest_waiting = tracker
            .unallocated_blocks(0)
            .first()
            .map_or(t, |b| b.block_id.unique_id);
        handler.cleanup_old_blocks(oldest_waiting.min(t) - 2_000)?;
    }
}

#[test]
fn child_entry() {
    let (Ok(dir), Ok(bootstrap), Ok(topic), Ok(group), Ok(wal)) = (
        std::env::var(ENV_DIR),
        std::env::var(ENV_BOOTSTRAP),
        std::env::var(ENV_TOPIC),
        std::env::var(ENV_GROUP),
        std::env::var(ENV_WAL),
    ) else {
        return;
    };
    spate_testkit::init_logging();
    if let Err(e) = child(Path::new(&dir), &bootstrap, &topic, &group, wal == "1") {
        eprintln!("crash child failed: {e:#}");
        std::process::exit(3);
    }
}

struct Job {
    dir: PathBuf,
    bootstrap: String,
    topic: String,
    group: String,
    wal: bool,
}

impl Job {
    fn spawn(&self) -> Running {
        ChildJob::test_entry("child_entry")
            .env(ENV_DIR, &self.dir)
            .env(ENV_BOOTSTRAP, &self.bootstrap)
            .env(ENV_TOPIC, &self.topic)
            .env(ENV_GROUP, &self.group)
            .env(ENV_WAL, if self.wal { "1" } else { "0" })
            .spawn()
    }

    /// Values in committed batch outputs: value → times seen.
    fn outputs(&self) -> BTreeMap<u64, u32> {
        let mut seen = BTreeMap::new();
        let Ok(entries) = fs::read_dir(self.dir.join("out")) else {
            return seen;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("batch-") {
                continue;
            }
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                if let Some(v) = line.split(' ').nth(2).and_then(|v| v.parse::<u64>().ok()) {
                    *seen.entry(v).or_insert(0) += 1;
                }
            }
        }
        seen
    }
}

struct Outcome {
    produced: u64,
    lost: u64,
    duplicates: u64,
    kills: u32,
}

fn crash_run(wal: bool, kills: u32) -> Outcome {
    const PARTITIONS: i32 = 3;
    const N: u64 = 6_000;
    const CHUNK: u64 = 100;
    let broker = broker_with_partitions(PARTITIONS);
    let dir = tempfile::tempdir().expect("temp dir");
    let job = Job {
        dir: dir.path().to_path_buf(),
        bootstrap: broker.bootstrap_servers(),
        topic: random_topic("recv_crash"),
        group: random_group("recv_crash"),
        wal,
    };
    // Create the topic before the first child subscribes.
    produce_range(&job.bootstrap, &job.topic, PARTITIONS, 0, CHUNK);
    let produced_all = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, done) = (
            job.bootstrap.clone(),
            job.topic.clone(),
            Arc::clone(&produced_all),
        );
        std::thread::spawn(move || {
            let mut from = CHUNK;
            while from < N {
                produce_range(&bootstrap, &topic, PARTITIONS, from, from + CHUNK);
                from += CHUNK;
                std::thread::sleep(Duration::from_millis(250));
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut done_kills = 0;
    let mut progress = Vec::new();
    while done_kills < kills {
        job.spawn().kill_after_random(300..1_500);
        done_kills += 1;
        progress.push(job.outputs().len());
    }
    producer.join().expect("producer");
    eprintln!("distinct records in outputs after each kill: {progress:?}");
    assert!(produced_all.load(Ordering::Acquire));

    // Last restart: let it catch up with everything produced.
    let child = job.spawn();
    let complete = poll_until(Duration::from_secs(60), || {
        job.outputs().len() as u64 == N
            || (!wal && {
                // Without the log, lost records never show up: stop once the group's commits
                // reached the end and the job is idle.
                let reader = group_reader(&job.bootstrap, &job.group);
                committed(&reader, &job.topic, PARTITIONS)
                    == high_watermarks(&reader, &job.topic, PARTITIONS)
                    && {
                        let before = job.outputs().len();
                        std::thread::sleep(Duration::from_millis(1_000));
                        job.outputs().len() == before
                    }
            })
    });
    child.kill();
    let outputs = job.outputs();
    let distinct = outputs.len() as u64;
    let total: u64 = outputs.values().map(|n| u64::from(*n)).sum();
    assert!(
        outputs.keys().all(|v| *v < N),
        "output has values never produced"
    );
    if wal {
        assert!(complete, "the last run did not catch up");
        // Committed batches' log segments were deleted along the way.
        let segments = fs::read_dir(dir.path().join("checkpoint/receivedData/0"))
            .map(|d| d.count())
            .unwrap_or(0);
        eprintln!("receiver log segments left: {segments}");
        assert!(
            segments <= 8,
            "log segments of committed batches are deleted ({segments} left)"
        );
    }
    Outcome {
        produced: N,
        lost: N - distinct,
        duplicates: total - distinct,
        kills: done_kills,
    }
}

#[test]
fn reliable_receiver_loses_nothing_when_killed() {
    let started = Instant::now();
    let o = crash_run(true, 20);
    eprintln!(
        "receiver crash test (write-ahead log ON): {} kills, {} produced, {} lost, {} duplicates, {:?}",
        o.kills,
        o.produced,
        o.lost,
        o.duplicates,
        started.elapsed()
    );
    assert_eq!(o.lost, 0, "the reliable receiver lost records");
}

#[test]
fn unreliable_receiver_reports_its_losses_when_killed() {
    let started = Instant::now();
    let o = crash_run(false, 20);
    eprintln!(
        "receiver crash test (write-ahead log OFF): {} kills, {} produced, {} lost, {} duplicates, {:?}",
        o.kills,
        o.produced,
        o.lost,
        o.duplicates,
        started.elapsed()
    );
    assert!(o.lost <= o.produced);
}

//! A newly assigned task restores its state in the background: the group-managed stream keeps
//! planning and running batches of the partitions it already owns, and plans the new partition
//! only once its task's state is back.
//!
//! One instance of a stateful job (totals per key, state partitioned by task, changelog in the
//! exactly-once output's transactions) over a 2-partition input. Task 0's changelog holds
//! totals written beforehand; its restore is held (a changelog wrapper) until batches covering
//! partition 1 have completed — a restore on the planning thread would never see them and time
//! out. The listener's events show no batch covering partition 0 before task 0's restore
//! finished, and the record waiting on partition 0 continues its restored total.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::producer::{BaseProducer, BaseRecord};
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::sink::{KafkaOffsetStore, OutputRecord, SaveToKafka};
use spate_kafka::{ConsumerStrategy, DirectBatchInfo, DirectStreamConfig, KafkaParams, KafkaUtils};
use spate_streaming::error::BoxError;
use spate_streaming::listener::BatchInfo;
use spate_streaming::state::changelog::RestoreFn;
use spate_streaming::{
    Config, StateChangelog, StateChanges, StateRestoreInfo, StreamingContext, StreamingListener,
};
use spate_testkit::{clients, TestBroker};

/// Batches covering partition 1 that must complete while task 0 restores.
const WHILE_RESTORING: u64 = 3;
/// Keys of task 0's changelog: `t0-k<j>` with total `j`.
const TASK0_KEYS: usize = 1_000;

/// What the listener saw, in the bus's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A batch was submitted (planned) covering partition 0 / partition 1.
    Submitted { p0: bool, p1: bool },
    /// A batch covering partition 1 completed.
    CompletedP1,
    /// Task 0's restore finished.
    Task0Restored,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    p1_completed: AtomicU64,
}

fn covers(info: &BatchInfo) -> (bool, bool) {
    let ranges = DirectBatchInfo::from_batch(info).map_or_else(Vec::new, |i| i.ranges);
    let has = |p: i32| ranges.iter().any(|r| r.partition == p && r.count() > 0);
    (has(0), has(1))
}

impl StreamingListener for Recorder {
    fn on_batch_submitted(&self, info: &BatchInfo) {
        let (p0, p1) = covers(info);
        if p0 || p1 {
            self.seen.lock().push(Seen::Submitted { p0, p1 });
        }
    }

    fn on_batch_completed(&self, info: &BatchInfo) {
        if covers(info).1 {
            self.seen.lock().push(Seen::CompletedP1);
            self.p1_completed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn on_state_restore(&self, info: &StateRestoreInfo) {
        if info.done && info.partition == 0 {
            self.seen.lock().push(Seen::Task0Restored);
        }
    }
}

/// The Kafka changelog, with task 0's restore held until batches of partition 1 completed.
struct HeldRestore {
    log: Arc<KafkaChangelog>,
    recorder: Arc<Recorder>,
}

impl StateChangelog for HeldRestore {
    fn open(&self, operator: &str, partitions: usize) -> Result<(), BoxError> {
        self.log.open(operator, partitions)
    }

    fn restore(
        &self,
        operator: &str,
        partition: usize,
        expected: &mut dyn FnMut(u64),
        apply: &mut RestoreFn<'_>,
    ) -> Result<u64, BoxError> {
        if partition == 0 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.recorder.p1_completed.load(Ordering::SeqCst) < WHILE_RESTORING {
                if Instant::now() > deadline {
                    return Err("no batch of partition 1 completed while task 0 restored".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.log.restore(operator, partition, expected, apply)
    }

    fn record(&self, changes: StateChanges) -> Result<(), BoxError> {
        self.log.record(changes)
    }
}

fn running_total(new: &[i64], old: Option<i64>) -> Option<i64> {
    Some(old.unwrap_or(0) + new.iter().sum::<i64>())
}

/// Task 0's changelog as the job encodes it (postcard): key `t0-k<j>`, total `j`.
fn write_task0_changelog(bootstrap: &str, topic: &str) {
    let producer: BaseProducer = clients::producer_config(bootstrap).create().unwrap();
    for j in 0..TASK0_KEYS {
        let key = postcard::to_stdvec(&format!("t0-k{j}")).unwrap();
        let value = postcard::to_stdvec(&(j as i64)).unwrap();
        let record = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        spate_testkit::produce::send(&producer, record);
    }
    spate_testkit::produce::flush(&producer, topic);
}

/// The last total of `key` in `topic`, read_committed.
fn committed_total(bootstrap: &str, topic: &str, key: &str) -> Option<i64> {
    spate_testkit::consume::read_committed(bootstrap, topic, 2)
        .into_iter()
        .rev()
        .filter(|(k, _)| k == key.as_bytes())
        .find_map(|(_, v)| std::str::from_utf8(&v?).ok()?.parse().ok())
}

#[test]
fn owned_partitions_keep_running_while_a_newly_assigned_task_restores() -> anyhow::Result<()> {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let (input, output) = (
        spate_testkit::random_topic("restore-in"),
        spate_testkit::random_topic("restore-out"),
    );
    let group = spate_testkit::random_group("restore");
    broker.create_topic(&input, 2);
    broker.create_topic(&output, 2);
    let changelog_topic = format!("{group}-totals-changelog");
    broker.create_topic_with(&changelog_topic, 2, &[("cleanup.policy", "compact")]);
    write_task0_changelog(&bootstrap, &changelog_topic);
    // Partition 1 has enough for many rate-limited batches; partition 0 one record of a
    // restored key.
    let mut records: Vec<(i32, Option<String>, String)> = (0..400)
        .map(|i| (1, Some(format!("t1-k{}", i % 7)), "x".to_owned()))
        .collect();
    records.push((0, Some("t0-k7".to_owned()), "x".to_owned()));
    spate_testkit::produce::produce(&bootstrap, &input, records);

    let params = KafkaParams::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4");
    let ctx = StreamingContext::new(
        Config::new("task-restore").batch_interval(Duration::from_millis(100)),
    )?;
    let strategy = ConsumerStrategy::subscribe_group_managed([input.as_str()], params.clone())?;
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(100)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let totals = stream
        .map(|r| (r.key_str().unwrap_or_default(), 1_i64))
        .update_state_by_key_by_task(running_total)
        .uid("totals");
    let store = KafkaOffsetStore::open(params.clone())?;
    let record = |(k, n): &(String, i64)| OutputRecord::new(k.as_bytes(), n.to_string());
    let out = totals.save_to_kafka_exactly_once(&stream, store, "totals", &output, record)?;
    let log = Arc::new(KafkaChangelog::new(params)?);
    log.join(&out)?;
    let recorder = Arc::new(Recorder::default());
    ctx.state_changelog(
        "totals",
        Arc::new(HeldRestore {
            log,
            recorder: Arc::clone(&recorder),
        }),
    );
    ctx.add_streaming_listener(recorder.clone());
    ctx.start()?;

    let deadline = Instant::now() + Duration::from_secs(90);
    let total = loop {
        if let Some(n) = committed_total(&bootstrap, &output, "t0-k7") {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no total for t0-k7; seen: {:?}",
            recorder.seen.lock()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    ctx.stop(true)?;
    assert_eq!(total, 8, "the restored total 7, plus one");

    let seen = recorder.seen.lock().clone();
    let restored_at = seen
        .iter()
        .position(|s| *s == Seen::Task0Restored)
        .expect("task 0's restore finished");
    let before = &seen[..restored_at];
    let p1_done = before.iter().filter(|s| **s == Seen::CompletedP1).count();
    let p0_planned = before
        .iter()
        .filter(|s| matches!(s, Seen::Submitted { p0: true, .. }))
        .count();
    let p0_after = seen[restored_at..]
        .iter()
        .filter(|s| matches!(s, Seen::Submitted { p0: true, .. }))
        .count();
    eprintln!(
        "while task 0 restored: {p1_done} batches of partition 1 completed, {p0_planned} \
         batches planned over partition 0; after: {p0_after} over partition 0"
    );
    assert!(p1_done >= WHILE_RESTORING as usize, "{seen:?}");
    assert_eq!(
        p0_planned, 0,
        "partition 0 planned before its state was restored"
    );
    assert!(p0_after >= 1);
    Ok(())
}

//! Shared helpers for the integration tests: topics, producing to a partition, admin calls,
//! Kafka params for the direct stream, all against a `TestBroker` on 127.0.0.1:0.

#![allow(dead_code)]

pub mod instance;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::BaseProducer;
use rdkafka::{Offset, TopicPartitionList};
use spate_kafka::{ConsumerRecord, KafkaParams};
use spate_testkit::{clients, TestBroker};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn admin(broker: &TestBroker) -> AdminClient<DefaultClientContext> {
    clients::admin_config(&broker.bootstrap_servers())
        .create()
        .expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates a topic with `partitions` partitions and returns its (random) name.
pub fn create_topic(broker: &TestBroker, prefix: &str, partitions: i32) -> String {
    let topic = spate_testkit::random_topic(prefix);
    let admin = admin(broker);
    let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
    let res = runtime()
        .block_on(admin.create_topics([&new], &opts()))
        .expect("create topics");
    for r in res {
        r.expect("topic created");
    }
    topic
}

/// Grows `topic` to `total` partitions.
pub fn add_partitions(broker: &TestBroker, topic: &str, total: usize) {
    let admin = admin(broker);
    let np = NewPartitions::new(topic, total);
    let res = runtime()
        .block_on(admin.create_partitions([&np], &opts()))
        .expect("create partitions");
    for r in res {
        r.expect("partitions created");
    }
}

/// Deletes the records of `topic`-`partition` below `before` (retention, as the broker sees it).
pub fn delete_records(broker: &TestBroker, topic: &str, partition: i32, before: i64) {
    let admin = admin(broker);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(before))
        .expect("tpl");
    let res = runtime()
        .block_on(admin.delete_records(&tpl, &opts()))
        .expect("delete records");
    for e in res.elements() {
        e.error().expect("records deleted");
    }
}

/// Produces `n` records `"{partition}-{i}"` (i from `start`) to one partition; offsets are
/// assigned in order.
pub fn produce(broker: &TestBroker, topic: &str, partition: i32, start: usize, n: usize) {
    spate_testkit::produce::produce_to_partition(
        &broker.bootstrap_servers(),
        topic,
        partition,
        (start..start + n).map(|i| (Some(format!("k{i}")), format!("{partition}-{i}"))),
    );
}

/// Direct-stream params for `broker` in a fresh group, starting at the earliest offset.
pub fn params(broker: &TestBroker) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", spate_testkit::random_group("kafka"))
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
}

pub fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(ConsumerRecord::value_str)
        .collect()
}

/// The words of a record's value, each with a count of 1: the word-count jobs' `flat_map`.
pub fn record_words(r: ConsumerRecord) -> Vec<(String, i64)> {
    r.value_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| (w.to_owned(), 1_i64))
        .collect()
}

pub fn offsets(records: &[ConsumerRecord]) -> Vec<i64> {
    records.iter().map(|r| r.offset).collect()
}

/// Deletes `topic`.
pub fn delete_topic(broker: &TestBroker, topic: &str) {
    let admin = admin(broker);
    let res = runtime()
        .block_on(admin.delete_topics(&[topic], &opts()))
        .expect("delete topics");
    for r in res {
        r.expect("topic deleted");
    }
}

/// The words of the word-count crash tests' records.
const WORDS: [&str; 11] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo",
];

/// Record `i`'s value in the word-count crash tests: one to four words, a deterministic
/// function of `i`, so a check can recompute what was produced.
pub fn line(i: usize) -> String {
    (0..=i % 4)
        .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The word counts of records `0..n`: what an exactly-once word count must end with.
pub fn expected_counts(n: usize) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        for w in line(i).split(' ') {
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Produces records `from..until` (value [`line`], key `k<i>`) round-robin over `partitions`
/// and waits for the acknowledgements.
pub fn produce_lines(
    producer: &BaseProducer,
    topic: &str,
    partitions: i32,
    from: usize,
    until: usize,
) {
    let records = (from..until).map(|i| {
        let partition = i32::try_from(i % partitions as usize).unwrap_or(0);
        (partition, Some(format!("k{i}")), line(i))
    });
    spate_testkit::produce::send_all(producer, topic, records);
}

/// What a Kafka-to-Kafka crash test's child job runs against: the broker, its input and output
/// topics and its group. The child is the test binary itself, re-run at its `child_entry` test
/// with these in its environment (each test binary is its own program, so the names are shared).
#[derive(Debug, Clone)]
pub struct CrashJobNames {
    pub bootstrap: String,
    pub input: String,
    pub output: String,
    pub group: String,
}

/// The environment variables [`CrashJobNames`] travels in, in field order.
const CRASH_JOB_ENV: [&str; 4] = [
    "SPATE_CRASH_JOB_BOOTSTRAP",
    "SPATE_CRASH_JOB_INPUT",
    "SPATE_CRASH_JOB_OUTPUT",
    "SPATE_CRASH_JOB_GROUP",
];

impl CrashJobNames {
    /// Fresh input and output topics (`<prefix>_in`, `<prefix>_out`, with random suffixes) of
    /// `partitions` partitions on `broker`, and a random group.
    pub fn create(broker: &TestBroker, prefix: &str, partitions: i32) -> Self {
        CrashJobNames {
            bootstrap: broker.bootstrap_servers(),
            input: create_topic(broker, &format!("{prefix}_in"), partitions),
            output: create_topic(broker, &format!("{prefix}_out"), partitions),
            group: spate_testkit::random_group(&prefix.replace('_', "-")),
        }
    }

    /// In a child: the names its parent passed. `None` in an ordinary test run, where the
    /// `child_entry` test then returns at once.
    pub fn from_env() -> Option<Self> {
        let var = |i: usize| std::env::var(CRASH_JOB_ENV[i]).ok();
        Some(CrashJobNames {
            bootstrap: var(0)?,
            input: var(1)?,
            output: var(2)?,
            group: var(3)?,
        })
    }

    /// A child process that runs the test binary's `child_entry` with these names.
    pub fn child(&self) -> spate_testkit::ChildJob {
        let mut job = spate_testkit::ChildJob::test_entry("child_entry");
        for (key, value) in
            CRASH_JOB_ENV
                .iter()
                .zip([&self.bootstrap, &self.input, &self.output, &self.group])
        {
            job.env(key, value);
        }
        job
    }
}

/// A broker whose groups accept session timeouts down to 1 s (a Kafka broker's
/// `group.min.session.timeout.ms` lowered), so that multi-instance tests move a killed
/// instance's partitions within seconds.
pub fn group_test_broker() -> TestBroker {
    let mut config = spate_broker::BrokerConfig::default();
    config.group.min_session_timeout_ms = 1_000;
    // A killed instance's open transaction hides the output's tail from read_committed readers
    // until it is aborted: look for timed-out transactions every second, not every 10 s.
    config.txn.abort_timed_out_interval_ms = 1_000;
    TestBroker::start_with(config)
}

/// Params of a static group member (`group.instance.id` = `instance`) with a short session.
pub fn static_member_params(
    bootstrap: &str,
    group: &str,
    instance: &str,
    session_timeout_ms: u64,
) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", "300")
        .set("max.poll.interval.ms", "10000")
}

/// The group's committed offsets of `topic`'s first `partitions` partitions, summed (read as
/// an exactly-once output reads them: through the offset store).
pub fn committed_sum(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let params = KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("broker.address.family", "v4");
    let mut store = spate_kafka::KafkaOffsetStore::open(params).expect("offset store");
    let tps = (0..partitions).map(|p| spate_kafka::TopicPartition::new(topic, p));
    store
        .committed_offsets(tps)
        .expect("committed")
        .values()
        .sum()
}

/// (low, high) watermarks of each of `topic`'s first `partitions` partitions.
pub fn watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = clients::consumer_config(bootstrap, "test-watermarks")
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
        })
        .collect()
}

/// A job's running-count output (key: word, value: its count so far, as text) read
/// `read_committed` from `output`, against `expected` final counts: (records read, counts
/// repeated, counts skipped, unexpected words). Exactly once: every word's counts are 1..=n,
/// each once.
pub fn check_running_counts(
    bootstrap: &str,
    output: &str,
    partitions: i32,
    expected: BTreeMap<String, i64>,
) -> (usize, usize, usize, usize) {
    let mut outputs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let got = spate_testkit::consume::read_committed(bootstrap, output, partitions);
    for (k, v) in &got {
        let n: i64 = String::from_utf8_lossy(v.as_deref().unwrap_or_default())
            .parse()
            .expect("a count");
        outputs
            .entry(String::from_utf8_lossy(k).into_owned())
            .or_default()
            .push(n);
    }
    let (mut repeated, mut skipped) = (0, 0);
    for (w, n) in expected {
        let mut counts = outputs.remove(&w).unwrap_or_default();
        counts.sort_unstable();
        let len = counts.len();
        counts.dedup();
        let missing: Vec<i64> = (1..=n)
            .filter(|i| counts.binary_search(i).is_err())
            .collect();
        if !missing.is_empty() || len != counts.len() {
            // The failure report: which counts of which word, so that a skipped range of
            // input (the top counts missing) tells apart from lost outputs (gaps).
            eprintln!(
                "word {w}: expected counts 1..={n}, missing {}, repeated {}",
                ranges_of(&missing),
                len - counts.len()
            );
        }
        repeated += len - counts.len();
        skipped += missing.len();
    }
    (got.len(), repeated, skipped, outputs.len())
}

/// `[1, 2, 3, 7]` as `"1..=3 7"`.
fn ranges_of(sorted: &[i64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}..={}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(" ")
    }
}

//! Kafka→Kafka word count under SIGKILL. The job (this test binary re-invoked with environment
//! variables) reads a topic with the direct stream and writes each batch's word counts to an
//! output topic, and is killed at random moments at least 20 times while a producer writes a
//! known sequence of lines. Every run starts from the offsets committed to the job's group.
//!
//! * Exactly-once (`save_to_kafka_exactly_once`): each batch's counts and offsets are one Kafka
//!   transaction; the output read with `read_committed` must sum to the produced counts
//!   exactly — nothing lost, nothing duplicated — while `read_uncommitted` also shows the
//!   records of the transactions the kills aborted.
//! * At-least-once (`save_to_kafka` then `commit_async`): a kill between the acknowledged
//!   output and the offset commit makes the restart write a batch again, so duplicates are
//!   reported, and nothing may be lost.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseProducer;
use rdkafka::{Offset, TopicPartitionList};
use spate_kafka::{
    DirectStreamConfig, KafkaOffsetStore, KafkaParams, KafkaUtils, OutputRecord, SaveToKafka,
    TopicPartition,
};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::child::Running;
use spate_testkit::{clients, wait_until, TestBroker};

const ENV_EXACTLY_ONCE: &str = "SPATE_K2K_CRASH_EXACTLY_ONCE";

const PARTITIONS: i32 = 3;
const RECORDS: usize = 4_500;
const CHUNK: usize = 150;
const KILLS: u32 = 20;

fn params(bootstrap: &str, group: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("transaction.timeout.ms", "20000")
}

/// The job: lines → per-batch word counts, one output record (word, count) per word.
fn child(bootstrap: &str, input: &str, output: &str, group: &str, eos: bool) -> anyhow::Result<()> {
    let params = params(bootstrap, group);
    let mut store = KafkaOffsetStore::open(params.clone())?;
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(input, p));
    let strategy = store.assign_strategy(partitions, params.clone())?;
    let ctx = StreamingContext::new(
        Config::new("kafka-to-kafka-crash").batch_interval(Duration::from_millis(100)),
    )?;
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(300)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let counts = stream
        .flat_map(common::record_words)
        .reduce_by_key(|a, b| a + b);
    let record = |(w, n): &(String, i64)| OutputRecord::new(w.as_bytes(), n.to_string());
    if eos {
        counts.save_to_kafka_exactly_once(&stream, store, "counts", output, record)?;
    } else {
        counts.save_to_kafka(output, params, record)?;
        let handle = stream.clone();
        counts.foreach_batch(move |_, time| {
            let ranges = handle.offset_ranges(time).unwrap_or_default();
            handle.commit_async(&ranges, |_| {})
        });
    }
    ctx.start()?;
    ctx.await_termination()?;
    Ok(())
}

#[test]
fn child_entry() {
    let Some(common::CrashJobNames {
        bootstrap,
        input,
        output,
        group,
    }) = common::CrashJobNames::from_env()
    else {
        return;
    };
    let eos = std::env::var(ENV_EXACTLY_ONCE).is_ok();
    spate_testkit::init_logging();
    if let Err(e) = child(&bootstrap, &input, &output, &group, eos) {
        eprintln!("kafka-to-kafka crash child failed: {e:#}");
        std::process::exit(3);
    }
}

struct Job {
    names: common::CrashJobNames,
    eos: bool,
    logs: PathBuf,
    runs: u32,
}

impl Job {
    /// Starts the next run of the job, its stderr in its own log file.
    fn spawn(&mut self) -> Running {
        self.runs += 1;
        let mut job = self.names.child();
        job.stderr_to(&self.log(self.runs));
        if self.eos {
            job.env(ENV_EXACTLY_ONCE, "1");
        }
        job.spawn()
    }

    fn log(&self, run: u32) -> PathBuf {
        self.logs.join(format!("run-{run}.log"))
    }

    /// Panics with the run's stderr if the child exited on its own.
    fn check_alive(&self, child: &mut Running) {
        if let Some(status) = child.exited() {
            let log = std::fs::read_to_string(self.log(self.runs)).unwrap_or_default();
            panic!("the job exited on its own: {status}; its stderr:\n{log}");
        }
    }

    /// The sum of the group's committed offsets over the input partitions.
    fn committed(&self) -> i64 {
        let mut store = KafkaOffsetStore::open(params(&self.names.bootstrap, &self.names.group))
            .expect("offset store");
        let tps = (0..PARTITIONS).map(|p| TopicPartition::new(&self.names.input, p));
        store
            .committed_offsets(tps)
            .expect("committed")
            .values()
            .sum()
    }
}

/// The output topic's (word, count) records summed per word, read in `isolation` to the end;
/// also returns the number of records read.
fn read_output(bootstrap: &str, topic: &str, isolation: &str) -> (BTreeMap<String, i64>, usize) {
    let consumer: BaseConsumer = clients::consumer_config(bootstrap, "k2k-crash-reader")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let (mut counts, mut records, mut eof) = (BTreeMap::new(), 0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof < PARTITIONS {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not reach its end"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let word = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let n: i64 = std::str::from_utf8(m.payload().unwrap_or_default())
                    .unwrap()
                    .parse()
                    .unwrap();
                *counts.entry(word).or_insert(0) += n;
                records += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    (counts, records)
}

/// (lost, duplicated) word occurrences of `got` against `expected`.
fn lost_and_duplicated(
    got: &BTreeMap<String, i64>,
    expected: &BTreeMap<String, i64>,
) -> (i64, i64) {
    let mut lost = 0;
    let mut dup = 0;
    for (w, n) in expected {
        let g = got.get(w).copied().unwrap_or(0);
        lost += (n - g).max(0);
        dup += (g - n).max(0);
    }
    dup += got
        .iter()
        .filter(|(w, _)| !expected.contains_key(*w))
        .map(|(_, n)| n)
        .sum::<i64>();
    (lost, dup)
}

/// Produces while killing the job at least `KILLS` times, lets a last run catch up, and reads
/// the output topic; returns (counts read_committed, records, lost, duplicated).
fn crash_run(eos: bool) -> (BTreeMap<String, i64>, i64, i64) {
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = TestBroker::start();
    let names = common::CrashJobNames::create(&broker, "k2k", PARTITIONS);
    let (input, output) = (names.input.clone(), names.output.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job {
        names,
        eos,
        logs: dir.path().to_path_buf(),
        runs: 0,
    };

    let produced_all = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, done) = (
            job.names.bootstrap.clone(),
            input.clone(),
            produced_all.clone(),
        );
        std::thread::spawn(move || {
            let p: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
            for from in (0..RECORDS).step_by(CHUNK) {
                let until = (from + CHUNK).min(RECORDS);
                common::produce_lines(&p, &topic, PARTITIONS, from, until);
                std::thread::sleep(Duration::from_millis(250));
            }
            done.store(true, Ordering::Release);
        })
    };

    let mut rng = rand::rng();
    let mut kills = 0;
    let mut progress = Vec::new();
    while kills < KILLS || !produced_all.load(Ordering::Acquire) {
        let mut child = job.spawn();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1_200)));
        job.check_alive(&mut child);
        drop(child); // SIGKILL
        kills += 1;
        progress.push(job.committed());
    }
    producer.join().unwrap();
    let mode = if eos { "exactly-once" } else { "at-least-once" };
    eprintln!("{mode}: offsets committed after each of the {kills} kills: {progress:?}");

    // Last run: let it catch up with everything produced; with no new input it opens no
    // transaction, so killing it leaves nothing pending.
    let mut child = job.spawn();
    wait_until("the last run to catch up", Duration::from_secs(40), || {
        job.check_alive(&mut child);
        job.committed() >= RECORDS as i64
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(child);

    let expected = common::expected_counts(RECORDS);
    let (got, records) = read_output(&job.names.bootstrap, &output, "read_committed");
    let (all, all_records) = read_output(&job.names.bootstrap, &output, "read_uncommitted");
    let (lost, dup) = lost_and_duplicated(&got, &expected);
    let (_, dup_uncommitted) = lost_and_duplicated(&all, &expected);
    eprintln!(
        "kafka-to-kafka crash test ({mode}): {kills} SIGKILLs, {RECORDS} lines produced \
         ({} words), output read_committed: {records} records, {} words, lost {lost}, \
         duplicated {dup}; read_uncommitted: {all_records} records, {dup_uncommitted} words \
         beyond the expected counts; {:?}",
        expected.values().sum::<i64>(),
        got.values().sum::<i64>(),
        started.elapsed()
    );
    assert!(kills >= KILLS);
    (got, lost, dup)
}

#[test]
fn exactly_once_kafka_output_is_exact_after_20_sigkills() {
    let (got, lost, dup) = crash_run(true);
    assert_eq!((lost, dup), (0, 0), "lost and duplicated word occurrences");
    assert_eq!(got, common::expected_counts(RECORDS));
}

#[test]
fn at_least_once_kafka_output_loses_nothing_after_20_sigkills() {
    let (_, lost, _) = crash_run(false);
    assert_eq!(lost, 0, "lost word occurrences");
}

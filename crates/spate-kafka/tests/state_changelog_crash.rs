//! A stateful word count under SIGKILL whose state lives only in a compacted changelog topic.
//! The job (this test binary re-invoked with environment variables) reads lines with the direct
//! stream, counts words with `map_with_state` (4 state partitions, uid `counts`) and writes each
//! word's running count to an output topic, exactly-once: per batch one Kafka transaction holds
//! the output records, the state's changelog records and the input offsets. It is killed at
//! random moments while a producer writes a known sequence of lines; every run starts from the
//! group's committed offsets and restores its state from the changelog alone (no checkpoint
//! directory, no local snapshot).
//!
//! Exactly-once state means each word's running count goes up by one per occurrence across all
//! runs, so the read_committed output of a word must be exactly 1, 2, …, its count — a lost
//! state change would repeat a value, a change applied twice would skip one — and the
//! changelog's last committed value of each word must be its count.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::producer::BaseProducer;
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::{
    DirectStreamConfig, KafkaOffsetStore, KafkaParams, KafkaUtils, OutputRecord, SaveToKafka,
    TopicPartition,
};
use spate_streaming::{Config, State, StateSpec, StreamingContext};
use spate_testkit::child::Running;
use spate_testkit::{clients, wait_until, TestBroker};

const PARTITIONS: i32 = 3;
const STATE_PARTITIONS: usize = 4;
const RECORDS: usize = 3_000;
const CHUNK: usize = 150;
const KILLS: u32 = 12;
fn params(bootstrap: &str, group: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("transaction.timeout.ms", "20000")
}

/// The job: lines → words → running count per word (`map_with_state`) → output topic.
fn child(bootstrap: &str, input: &str, output: &str, group: &str) -> anyhow::Result<()> {
    let params = params(bootstrap, group);
    let mut store = KafkaOffsetStore::open(params.clone())?;
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(input, p));
    let strategy = store.assign_strategy(partitions, params.clone())?;
    let ctx = StreamingContext::new(
        Config::new("state-changelog-crash").batch_interval(Duration::from_millis(100)),
    )?;
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(300)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let spec = StateSpec::function(|w: &String, one: Option<i64>, st: &mut State<i64>| {
        let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
        st.update(n);
        (w.clone(), n)
    })
    .num_partitions(STATE_PARTITIONS);
    let counts = stream
        .flat_map(|r| {
            r.value_str()
                .unwrap_or_default()
                .split_whitespace()
                .map(|w| (w.to_owned(), 1_i64))
                .collect::<Vec<_>>()
        })
        .map_with_state(spec)
        .uid("counts");
    let record = |(w, n): &(String, i64)| OutputRecord::new(w.as_bytes(), n.to_string());
    let out = counts.save_to_kafka_exactly_once(&stream, store, "counts", output, record)?;
    let changelog = Arc::new(KafkaChangelog::new(params)?);
    changelog.join(&out)?;
    ctx.state_changelog("counts", changelog);
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
    spate_testkit::init_logging();
    if let Err(e) = child(&bootstrap, &input, &output, &group) {
        eprintln!("state changelog crash child failed: {e:#}");
        std::process::exit(3);
    }
}

struct Job {
    names: common::CrashJobNames,
    logs: PathBuf,
    runs: u32,
}

impl Job {
    fn spawn(&mut self) -> Running {
        self.runs += 1;
        self.names.child().stderr_to(&self.log(self.runs)).spawn()
    }

    fn log(&self, run: u32) -> PathBuf {
        self.logs.join(format!("run-{run}.log"))
    }

    fn check_alive(&self, child: &mut Running) {
        if let Some(status) = child.exited() {
            let log = std::fs::read_to_string(self.log(self.runs)).unwrap_or_default();
            panic!("the job exited on its own: {status}; its stderr:\n{log}");
        }
    }

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

fn produce_lines(producer: &BaseProducer, topic: &str, from: usize, until: usize) {
    let records = (from..until).map(|i| {
        let partition = i32::try_from(i % PARTITIONS as usize).unwrap_or(0);
        (partition, Some(format!("k{i}")), common::line(i))
    });
    spate_testkit::produce::send_all(producer, topic, records);
}

/// Every record of `topic` read_committed to its end, as (key, value) in offset order per
/// partition.
fn read_committed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    spate_testkit::consume::read_committed(bootstrap, topic, partitions)
}

#[test]
fn changelog_state_is_exact_after_sigkills() {
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = TestBroker::start();
    let names = common::CrashJobNames::create(&broker, "state", PARTITIONS);
    let (input, output) = (names.input.clone(), names.output.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job {
        names,
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
                produce_lines(&p, &topic, from, (from + CHUNK).min(RECORDS));
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
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1_500)));
        job.check_alive(&mut child);
        drop(child); // SIGKILL
        kills += 1;
        progress.push(job.committed());
    }
    producer.join().unwrap();
    eprintln!("offsets committed after each of the {kills} kills: {progress:?}");

    // The last run catches up; with no new input it opens no transaction.
    let mut child = job.spawn();
    wait_until("the last run to catch up", Duration::from_secs(60), || {
        job.check_alive(&mut child);
        job.committed() >= RECORDS as i64
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(child);

    let expected = common::expected_counts(RECORDS);
    // Output: each word's running counts, read_committed.
    let mut outputs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (k, v) in read_committed(&job.names.bootstrap, &output, PARTITIONS) {
        let n: i64 = String::from_utf8_lossy(&v.unwrap_or_default())
            .parse()
            .unwrap();
        outputs
            .entry(String::from_utf8_lossy(&k).into_owned())
            .or_default()
            .push(n);
    }
    let (mut repeated, mut skipped) = (0, 0);
    for (w, n) in &expected {
        let mut got = outputs.remove(w).unwrap_or_default();
        got.sort_unstable();
        let distinct = {
            let mut d = got.clone();
            d.dedup();
            d
        };
        repeated += got.len() - distinct.len();
        skipped += (1..=*n)
            .filter(|i| distinct.binary_search(i).is_err())
            .count();
    }
    // Changelog: the last committed value of each word.
    let topic = format!("{}-counts-changelog", job.names.group);
    let mut state: BTreeMap<String, i64> = BTreeMap::new();
    let entries = read_committed(&job.names.bootstrap, &topic, STATE_PARTITIONS as i32);
    for (k, v) in &entries {
        let word: String = postcard::from_bytes(k).unwrap();
        match v {
            Some(v) => {
                let (n, _seen): (i64, u64) = postcard::from_bytes(v).unwrap();
                state.insert(word, n);
            }
            None => {
                state.remove(&word);
            }
        }
    }
    eprintln!(
        "state changelog crash test: {kills} SIGKILLs, {} runs, {RECORDS} lines ({} words); \
         output read_committed: {} running counts, {repeated} repeated, {skipped} skipped, \
         {} unexpected words; changelog {topic}: {} committed records; state equal: {}; {:?}",
        job.runs,
        expected.values().sum::<i64>(),
        expected.values().sum::<i64>() as usize + repeated - skipped,
        outputs.len(),
        entries.len(),
        state == expected,
        started.elapsed()
    );
    assert!(kills >= KILLS);
    assert_eq!(
        (repeated, skipped),
        (0, 0),
        "repeated and skipped running counts"
    );
    assert!(outputs.is_empty(), "unexpected words: {outputs:?}");
    assert_eq!(state, expected);
}

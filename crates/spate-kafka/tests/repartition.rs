//! Repartition topics: a word count that re-keys lines into words, writes them through the
//! internal topic `<group>-by-word-repartition` (partitioned by word with Kafka's murmur2) and
//! counts each word with `map_with_state` on the stream read back — exactly-once, with the
//! repartition records, the internal stream's offsets, the state's changelog and the output in
//! one transaction per batch.
//!
//! * `word_count_through_a_repartition_topic`: one run in this process; every word's
//!   read_committed running counts are exactly 1..=n, every word's records were on the
//!   partition Kafka's partitioner gives its key, and the consumed records were purged (the log
//!   start offsets moved up to the committed offsets).
//! * `repartition_is_exact_after_sigkills`: the same job as a child process SIGKILLed ≥ 20
//!   times at random moments while lines are produced; the output is checked the same way.
//! * `keys_land_where_kafka_clients_put_them`: librdkafka's `murmur2_random` partitioner (the
//!   Java client's default) puts each encoded key on the partition `kafka_partition` computes.
//! * `topic_is_created_with_the_source_partitions_and_refused_with_others`.
//! * `standalone_repartition_delivers_every_record`: without an exactly-once output.
//! * `group_managed_instances_share_the_repartition_topic`: two instances of one job share the
//!   repartition topic's partitions through the group.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::repartition::kafka_partition;
use spate_kafka::{
    DirectKafkaStream, DirectStreamConfig, KafkaOffsetStore, KafkaParams, KafkaUtils, OutputRecord,
    Repartition, RepartitionConfig, RepartitionStream, SaveToKafka, SpateKafkaError,
    TopicPartition,
};
use spate_streaming::{Config, State, StateSpec, StreamingContext};
use spate_testkit::child::Running;
use spate_testkit::{clients, wait_until, TestBroker};

/// Input partitions, and so the repartition topic's.
const PARTITIONS: i32 = 3;
const STATE_PARTITIONS: usize = 4;
const NAME: &str = "by-word";

/// (partition, word) of every repartition record the internal stream read.
type Placement = Arc<Mutex<Vec<(i32, String)>>>;

fn params(bootstrap: &str, group: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("transaction.timeout.ms", "20000")
}

/// The running job's handles.
struct WordCount {
    ctx: StreamingContext,
    repartitioned: RepartitionStream<String, i64>,
}

/// lines → words → repartition by word → running count per word (`map_with_state`) → output,
/// exactly-once; `seen` gets (partition, word) of every record the internal stream read.
fn word_count(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    seen: Option<Placement>,
) -> anyhow::Result<WordCount> {
    let params = params(bootstrap, group);
    let mut store = KafkaOffsetStore::open(params.clone())?;
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(input, p));
    let strategy = store.assign_strategy(partitions, params.clone())?;
    let ctx = StreamingContext::new(
        Config::new("repartition").batch_interval(Duration::from_millis(100)),
    )?;
    let rate = DirectStreamConfig::default()
        .max_rate_per_partition(300)
        .initial_rate(None);
    let lines = KafkaUtils::create_direct_stream_with(&ctx, strategy, rate)?;
    let words = lines.flat_map(common::record_words);
    let config = RepartitionConfig::new(NAME).purge_interval(Duration::from_millis(300));
    let repartitioned = words.repartition_through_kafka(&lines, &params, config)?;
    if let Some(seen) = seen {
        record_placement(repartitioned.internal_stream(), seen);
    }
    let spec = StateSpec::function(|w: &String, one: Option<i64>, st: &mut State<i64>| {
        let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
        st.update(n);
        (w.clone(), n)
    })
    .num_partitions(STATE_PARTITIONS);
    let counts = repartitioned.map_with_state(spec).uid("counts");
    let record = |(w, n): &(String, i64)| OutputRecord::new(w.as_bytes(), n.to_string());
    let out = counts.save_to_kafka_exactly_once(&lines, store, "counts", output, record)?;
    repartitioned.join(&out)?;
    let changelog = Arc::new(KafkaChangelog::new(params)?);
    changelog.join(&out)?;
    ctx.state_changelog("counts", changelog);
    Ok(WordCount { ctx, repartitioned })
}

/// Keeps (partition, word) of every record the internal stream reads.
fn record_placement(internal: &DirectKafkaStream, seen: Placement) {
    internal.foreach_batch(move |batch, _| {
        let placed = batch.collect()?.into_iter().map(|r| {
            let word: String =
                postcard::from_bytes(r.key.as_deref().unwrap_or_default()).unwrap_or_default();
            (r.partition, word)
        });
        seen.lock().extend(placed);
        Ok::<_, spate_streaming::StreamingError>(())
    });
}

fn repartition_topic(group: &str) -> String {
    format!("{group}-{NAME}-repartition")
}

/// The group's committed offsets of `topic`'s partitions, summed.
fn committed(bootstrap: &str, group: &str, topic: &str) -> i64 {
    common::committed_sum(bootstrap, group, topic, PARTITIONS)
}

/// (low, high) watermarks of every partition of `topic`.
fn watermarks(bootstrap: &str, topic: &str) -> Vec<(i64, i64)> {
    common::watermarks(bootstrap, topic, PARTITIONS)
}

/// Whether the job consumed all `records` input lines and everything it wrote to the
/// repartition topic (the group's offsets there are at the log end).
fn caught_up(bootstrap: &str, group: &str, input: &str, records: usize) -> bool {
    let topic = repartition_topic(group);
    committed(bootstrap, group, input) >= records as i64
        && committed(bootstrap, group, &topic)
            == watermarks(bootstrap, &topic)
                .iter()
                .map(|w| w.1)
                .sum::<i64>()
}

/// Every record of `topic` read_committed to its end, as (key, value).
fn read_committed(bootstrap: &str, topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    spate_testkit::consume::read_committed(bootstrap, topic, PARTITIONS)
}

/// The output's running counts compared with the expected counts: (records, repeated,
/// skipped, unexpected words). Exactly-once means every word's counts are 1..=n, once each.
fn check_output(bootstrap: &str, output: &str, records: usize) -> (usize, usize, usize, usize) {
    common::check_running_counts(
        bootstrap,
        output,
        PARTITIONS,
        common::expected_counts(records),
    )
}

#[test]
fn word_count_through_a_repartition_topic() {
    spate_testkit::init_logging();
    const RECORDS: usize = 600;
    let started = Instant::now();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let input = common::create_topic(&broker, "rp_in", PARTITIONS);
    let output = common::create_topic(&broker, "rp_out", PARTITIONS);
    let group = spate_testkit::random_group("repartition");
    let producer: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
    common::produce_lines(&producer, &input, PARTITIONS, 0, RECORDS / 2);

    let seen: Placement = Arc::default();
    let job = word_count(&bootstrap, &input, &output, &group, Some(seen.clone())).unwrap();
    job.ctx.start().unwrap();
    // Half the lines before the start, half while it runs.
    common::produce_lines(&producer, &input, PARTITIONS, RECORDS / 2, RECORDS);
    let topic = repartition_topic(&group);
    wait_until(
        "the job to consume everything",
        Duration::from_secs(60),
        || caught_up(&bootstrap, &group, &input, RECORDS),
    );
    // The last commit's purge is due one interval later.
    let committed_at_end = committed(&bootstrap, &group, &topic);
    wait_until(
        "the purge of the consumed records",
        Duration::from_secs(10),
        || {
            watermarks(&bootstrap, &topic)
                .iter()
                .map(|w| w.0)
                .sum::<i64>()
                == committed_at_end
        },
    );
    job.ctx.stop(true).unwrap();

    let marks = watermarks(&bootstrap, &topic);
    let (records, repeated, skipped, unexpected) = check_output(&bootstrap, &output, RECORDS);
    let words: i64 = common::expected_counts(RECORDS).values().sum();
    let placed = seen.lock().clone();
    let misplaced = placed
        .iter()
        .filter(|(p, w)| {
            let key = postcard::to_allocvec(w).unwrap();
            *p != kafka_partition(&key, PARTITIONS)
        })
        .count();
    let used: std::collections::BTreeSet<i32> = placed.iter().map(|(p, _)| *p).collect();
    eprintln!(
        "repartition word count: {RECORDS} lines, {words} words; repartition records written \
         {}, read {}, misplaced {misplaced}, partitions used {used:?}; output read_committed: \
         {records} running counts, {repeated} duplicated, {skipped} lost, {unexpected} \
         unexpected words; purges {}, purged to {:?}, (log start, end) {marks:?}; {:?}",
        job.repartitioned.records_written(),
        placed.len(),
        job.repartitioned.purges(),
        job.repartitioned.purged_offsets(),
        started.elapsed()
    );
    assert_eq!((repeated, skipped, unexpected), (0, 0, 0));
    assert_eq!(records as i64, words);
    assert_eq!(
        placed.len() as i64,
        words,
        "every word went through the topic once"
    );
    assert_eq!(job.repartitioned.records_written() as i64, words);
    assert_eq!(misplaced, 0);
    assert!(used.len() > 1, "11 words all on one partition: {used:?}");
    assert!(job.repartitioned.purges() > 0);
    for (low, high) in marks {
        // Purged up to the committed offset: only the last commit marker may stay.
        assert!(high == 0 || low > 0, "nothing purged: {low}..{high}");
    }
}

#[test]
fn keys_land_where_kafka_clients_put_them() {
    const TOPIC_PARTITIONS: i32 = 7;
    let broker = TestBroker::start();
    let topic = common::create_topic(&broker, "murmur2", TOPIC_PARTITIONS);
    let producer: BaseProducer = clients::producer_config(&broker.bootstrap_servers())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let keys: Vec<Vec<u8>> = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
    ]
    .iter()
    .map(|w| postcard::to_allocvec(&w.to_string()).unwrap())
    .chain((0..40_u64).map(|i| postcard::to_allocvec(&i).unwrap()))
    .collect();
    for k in &keys {
        producer
            .send(BaseRecord::to(&topic).key(k).payload(k))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = clients::consumer_config(&broker.bootstrap_servers(), "m2")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut placed = BTreeMap::new();
    wait_until("every record read back", Duration::from_secs(30), || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            placed.insert(m.key().unwrap_or_default().to_vec(), m.partition());
        }
        placed.len() == keys.len()
    });
    let differ = keys
        .iter()
        .filter(|k| placed[*k] != kafka_partition(k, TOPIC_PARTITIONS))
        .count();
    let used: std::collections::BTreeSet<i32> = placed.values().copied().collect();
    eprintln!(
        "{} keys produced with librdkafka's murmur2_random: {differ} on another partition than \
         kafka_partition's, partitions used {used:?}",
        keys.len()
    );
    assert_eq!(differ, 0);
    assert!(used.len() > 3);
}

#[test]
fn topic_is_created_with_the_source_partitions_and_refused_with_others() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let input = common::create_topic(&broker, "rp_parts", 5);
    let group = spate_testkit::random_group("repartition-parts");
    let params = params(&bootstrap, &group);
    let ctx = StreamingContext::new(Config::new("repartition-parts")).unwrap();
    let lines = KafkaUtils::create_direct_stream(
        &ctx,
        spate_kafka::ConsumerStrategy::subscribe([&input], params.clone()),
    )
    .unwrap();
    let keyed = lines.map(|r| (r.partition, r.offset));
    let created = keyed
        .repartition_through_kafka(&lines, &params, RepartitionConfig::new("auto"))
        .unwrap();
    assert_eq!(created.topic(), format!("{group}-auto-repartition"));
    let consumer: BaseConsumer = clients::consumer_config(&bootstrap, "md").create().unwrap();
    let md = consumer
        .fetch_metadata(Some(created.topic()), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let policy = topic_config(&bootstrap, created.topic(), "cleanup.policy");
    assert_eq!(policy.as_deref(), Some("delete"));

    // Reopened with the same count: accepted; with another: refused, naming both.
    keyed
        .repartition_through_kafka(&lines, &params, RepartitionConfig::new("auto"))
        .unwrap();
    let err = keyed
        .repartition_through_kafka(
            &lines,
            &params,
            RepartitionConfig::new("auto").number_of_partitions(8),
        )
        .unwrap_err();
    eprintln!("refused: {err}");
    assert!(matches!(
        err,
        SpateKafkaError::RepartitionPartitions {
            topic_partitions: 5,
            expected: 8,
            ..
        }
    ));
}

/// Without an exactly-once output the records are written by the repartition's own producer,
/// acknowledged within the batch, and read back by the internal stream.
#[test]
fn standalone_repartition_delivers_every_record() {
    spate_testkit::init_logging();
    const RECORDS: usize = 200;
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let input = common::create_topic(&broker, "rp_alone", PARTITIONS);
    let producer: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
    common::produce_lines(&producer, &input, PARTITIONS, 0, RECORDS);
    let group = spate_testkit::random_group("repartition-alone");
    let params = params(&bootstrap, &group);
    let ctx = StreamingContext::new(
        Config::new("repartition-alone").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let strategy = spate_kafka::ConsumerStrategy::subscribe([&input], params.clone());
    let lines = KafkaUtils::create_direct_stream(&ctx, strategy).unwrap();
    let words = lines.flat_map(common::record_words);
    let config = RepartitionConfig::new("alone").topic_config("retention.ms", "3600000");
    let by_word = words
        .repartition_through_kafka(&lines, &params, config)
        .unwrap();
    let counts: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let sink = counts.clone();
    by_word
        .reduce_by_key(|a, b| a + b)
        .foreach_batch(move |batch, _| {
            let mut counts = sink.lock();
            for (w, n) in batch.collect()? {
                *counts.entry(w).or_insert(0) += n;
            }
            Ok::<_, spate_streaming::StreamingError>(())
        });
    ctx.start().unwrap();
    let expected = common::expected_counts(RECORDS);
    wait_until("every word read back", Duration::from_secs(30), || {
        *counts.lock() == expected
    });
    ctx.stop(true).unwrap();
    let retention = topic_config(&bootstrap, by_word.topic(), "retention.ms");
    eprintln!(
        "standalone repartition: {} records written and acknowledged, counts equal, \
         retention.ms {retention:?}, purges {}",
        by_word.records_written(),
        by_word.purges()
    );
    assert_eq!(
        by_word.records_written() as i64,
        expected.values().sum::<i64>()
    );
    assert_eq!(retention.as_deref(), Some("3600000"));
    assert_eq!(
        by_word.purges(),
        0,
        "nothing is purged without a transaction"
    );
}

/// One of two group-managed instances: per-batch word counts (stateless: the output's sums are
/// the counts) through a group-managed repartition; `seen` gets (partition, word) of every
/// repartition record this instance read.
fn group_instance(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    instance: &str,
    seen: Placement,
) -> anyhow::Result<(StreamingContext, RepartitionStream<String, i64>)> {
    let params = params(bootstrap, group)
        .set("group.instance.id", instance)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("max.poll.interval.ms", "10000");
    let ctx =
        StreamingContext::new(Config::new(instance).batch_interval(Duration::from_millis(100)))?;
    let strategy = spate_kafka::ConsumerStrategy::subscribe_group_managed([input], params.clone())?;
    let lines = KafkaUtils::create_direct_stream(&ctx, strategy)?;
    let words = lines.flat_map(common::record_words);
    let config = RepartitionConfig::new(NAME)
        .group_managed()
        .purge_interval(Duration::from_millis(300));
    let by_word = words.repartition_through_kafka(&lines, &params, config)?;
    record_placement(by_word.internal_stream(), seen);
    let store = KafkaOffsetStore::open(params)?;
    let record = |(w, n): &(String, i64)| OutputRecord::new(w.as_bytes(), n.to_string());
    let out = by_word
        .reduce_by_key(|a, b| a + b)
        .save_to_kafka_exactly_once(&lines, store, "counts", output, record)?;
    by_word.join(&out)?;
    Ok((ctx, by_word))
}

/// Two instances of one job in one group: the repartition topic's partitions are shared
/// between them, every word is read by the instances owning its partition, and the output's
/// per-batch counts, read_committed, add up to the word counts exactly.
#[test]
fn group_managed_instances_share_the_repartition_topic() {
    spate_testkit::init_logging();
    const RECORDS: usize = 800;
    const INPUT_PARTITIONS: i32 = 4;
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let input = common::create_topic(&broker, "rp_group_in", INPUT_PARTITIONS);
    let output = common::create_topic(&broker, "rp_group_out", PARTITIONS);
    let group = spate_testkit::random_group("repartition-group");
    let producer: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
    let seen: [Placement; 2] = Default::default();
    let instances: Vec<_> = ["i1", "i2"]
        .iter()
        .zip(&seen)
        .map(|(id, seen)| {
            group_instance(&bootstrap, &input, &output, &group, id, seen.clone()).unwrap()
        })
        .collect();
    for (ctx, _) in &instances {
        ctx.start().unwrap();
    }
    // The lines go in once both instances own repartition partitions: produced before, the
    // first instance to join could read them all before the group gave the second any.
    wait_until(
        "both instances to own repartition partitions",
        Duration::from_secs(60),
        || {
            instances.iter().all(|(_, r)| {
                r.internal_stream()
                    .owned_partitions()
                    .is_some_and(|owned| !owned.is_empty())
            })
        },
    );
    common::produce_lines(&producer, &input, INPUT_PARTITIONS, 0, RECORDS);
    let topic = repartition_topic(&group);
    let committed_all = |t: &str, n: i32| {
        let mut store = KafkaOffsetStore::open(params(&bootstrap, &group)).unwrap();
        let tps = (0..n).map(|p| TopicPartition::new(t, p));
        store.committed_offsets(tps).unwrap().values().sum::<i64>()
    };
    let high = |t: &str, n: i32| {
        let consumer: BaseConsumer = clients::consumer_config(&bootstrap, "hw").create().unwrap();
        (0..n)
            .map(|p| {
                consumer
                    .fetch_watermarks(t, p, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum::<i64>()
    };
    wait_until(
        "both instances to consume everything",
        Duration::from_secs(90),
        || {
            committed_all(&input, INPUT_PARTITIONS) >= RECORDS as i64
                && committed_all(&topic, INPUT_PARTITIONS) == high(&topic, INPUT_PARTITIONS)
        },
    );
    for (ctx, _) in &instances {
        ctx.stop(true).unwrap();
    }

    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    let got = read_committed(&bootstrap, &output);
    for (k, v) in &got {
        let n: i64 = String::from_utf8_lossy(v.as_deref().unwrap_or_default())
            .parse()
            .unwrap();
        *sums
            .entry(String::from_utf8_lossy(k).into_owned())
            .or_insert(0) += n;
    }
    let expected = common::expected_counts(RECORDS);
    let read: Vec<std::collections::BTreeSet<i32>> = seen
        .iter()
        .map(|s| s.lock().iter().map(|(p, _)| *p).collect())
        .collect();
    let records: Vec<usize> = seen.iter().map(|s| s.lock().len()).collect();
    let rebalances: Vec<_> = instances
        .iter()
        .map(|(_, r)| r.internal_stream().rebalances())
        .collect();
    eprintln!(
        "group-managed repartition: {RECORDS} lines over 2 instances; repartition records read \
         per instance {records:?}, partitions read {read:?}, internal stream rebalances \
         {rebalances:?}; output {} records, word sums equal: {}",
        got.len(),
        sums == expected
    );
    assert_eq!(sums, expected);
    assert_eq!(
        records.iter().sum::<usize>() as i64,
        expected.values().sum::<i64>(),
        "every repartition record read once across the instances"
    );
    assert!(
        read.iter().all(|r| !r.is_empty()),
        "one instance read nothing: {read:?}"
    );
}

/// A topic config's value, through DescribeConfigs.
fn topic_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        clients::admin_config(bootstrap).create().unwrap();
    let res = common::runtime()
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .unwrap();
    let resource = res.into_iter().next()?.ok()?;
    resource.get(key).and_then(|e| e.value.clone())
}

// ---- the crash test ----

const CRASH_RECORDS: usize = 3_000;
const CHUNK: usize = 150;
const KILLS: u32 = 20;

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
    let run = || -> anyhow::Result<()> {
        let job = word_count(&bootstrap, &input, &output, &group, None)?;
        job.ctx.start()?;
        job.ctx.await_termination()?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("repartition crash child failed: {e:#}");
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
        self.names
            .child()
            .stderr_to(&self.logs.join(format!("run-{}.log", self.runs)))
            .spawn()
    }

    fn check_alive(&self, child: &mut Running) {
        if let Some(status) = child.exited() {
            let log = self.logs.join(format!("run-{}.log", self.runs));
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the job exited on its own: {status}; its stderr:\n{log}");
        }
    }
}

#[test]
fn repartition_is_exact_after_sigkills() {
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = TestBroker::start();
    let names = common::CrashJobNames::create(&broker, "rp_crash", PARTITIONS);
    let (input, output) = (names.input.clone(), names.output.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job {
        names,
        logs: dir.path().to_path_buf(),
        runs: 0,
    };

    let produced_all = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let producer = {
        let (bootstrap, topic) = (job.names.bootstrap.clone(), input.clone());
        let (done, count) = (produced_all.clone(), produced.clone());
        std::thread::spawn(move || {
            let p: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
            for from in (0..CRASH_RECORDS).step_by(CHUNK) {
                let until = (from + CHUNK).min(CRASH_RECORDS);
                common::produce_lines(&p, &topic, PARTITIONS, from, until);
                count.store(until as u64, Ordering::Release);
                std::thread::sleep(Duration::from_millis(200));
            }
            done.store(true, Ordering::Release);
        })
    };

    let mut rng = rand::rng();
    let mut kills = 0;
    let topic = repartition_topic(&job.names.group);
    let mut progress = Vec::new();
    while kills < KILLS || !produced_all.load(Ordering::Acquire) {
        let mut child = job.spawn();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1_500)));
        job.check_alive(&mut child);
        drop(child); // SIGKILL
        kills += 1;
        progress.push((
            committed(&job.names.bootstrap, &job.names.group, &input),
            committed(&job.names.bootstrap, &job.names.group, &topic),
        ));
    }
    producer.join().unwrap();
    // Kills that hit a run after it had committed something (the others hit a start-up).
    let mut previous = (0, 0);
    let mid_run = progress
        .iter()
        .filter(|&&p| std::mem::replace(&mut previous, p) != p)
        .count();
    eprintln!(
        "(input, repartition) offsets committed after each of the {kills} kills \
         ({mid_run} after a run had committed): {progress:?}"
    );

    // The last run catches up and purges; then it is killed too.
    let mut child = job.spawn();
    wait_until("the last run to catch up", Duration::from_secs(90), || {
        job.check_alive(&mut child);
        caught_up(
            &job.names.bootstrap,
            &job.names.group,
            &input,
            CRASH_RECORDS,
        )
    });
    // Every partition is purged to its committed offset, including partitions the last run
    // read nothing new from (an earlier run committed them and was killed before its purge).
    wait_until("the last purge", Duration::from_secs(30), || {
        job.check_alive(&mut child);
        watermarks(&job.names.bootstrap, &topic)
            .iter()
            .map(|w| w.0)
            .sum::<i64>()
            == committed(&job.names.bootstrap, &job.names.group, &topic)
    });
    let end = committed(&job.names.bootstrap, &job.names.group, &topic);
    drop(child);

    let (records, duplicated, lost, unexpected) =
        check_output(&job.names.bootstrap, &output, CRASH_RECORDS);
    let words: i64 = common::expected_counts(CRASH_RECORDS).values().sum();
    let marks = watermarks(&job.names.bootstrap, &topic);
    eprintln!(
        "repartition crash test: {kills} SIGKILLs, {} runs, {CRASH_RECORDS} lines, {words} \
         words; output read_committed: {records} running counts, {duplicated} duplicated, \
         {lost} lost, {unexpected} unexpected words; repartition topic (log start, end) \
         {marks:?}, committed {end}; {:?}",
        job.runs,
        started.elapsed()
    );
    assert!(kills >= KILLS);
    assert_eq!((duplicated, lost, unexpected), (0, 0, 0));
    assert_eq!(records as i64, words);
}

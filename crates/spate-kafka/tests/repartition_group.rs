//! Scale-out through a repartition topic: instances of one word-count job are child processes
//! (this test binary re-invoked with environment variables) in one consumer group. Each reads
//! the lines of the input partitions the group assigns it (group-managed direct stream),
//! re-keys them by word through the group-managed repartition topic
//! `<group>-by-word-repartition`, and counts each word with `map_with_state` partitioned by
//! task — the task is the repartition partition, its state restored from the changelog
//! `<group>-counts-changelog` by whichever instance the group gives it to — and writes each
//! word's running count to the output topic exactly once: the repartition records, both
//! streams' offsets, the changelog and the output in one transaction per batch.
//!
//! * `repartitioned_state_is_exact_across_instances_under_20_disruptions`: three instances,
//!   ≥ 20 disruptions at random moments (SIGKILL one for good, add one, SIGKILL one and restart
//!   it under its `group.instance.id`) while lines are produced; then three instances finish.
//!   Read `read_committed`, each word's running counts are exactly 1..=n, once each.
//! * `a_paused_repartition_instance_is_fenced_when_it_comes_back`: SIGSTOP one of two instances
//!   until the group moves its partitions, SIGCONT it: its late batch is fenced and the output
//!   is exact.
//! * `state_by_task_follows_the_repartition_topic`: one instance in this process; each word's
//!   changelog record is on the partition Kafka's partitioner gives the word, and the counts
//!   are exact.
//! * `state_by_task_on_a_repartitioned_source_is_refused`: the source's partitions are no
//!   tasks once a group-managed repartition owns them.
//! * `a_participant_that_lost_its_partitions_fails_the_transaction`: the exactly-once output
//!   checks a participant's ownership in its transaction and commits nothing when it fails.

mod common;

use common::instance::{fencing_reason, Instance};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseProducer;
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::repartition::kafka_partition;
use spate_kafka::sink::{TopicRecords, TransactionParticipant};
use spate_kafka::{
    ConsumerStrategy, DirectKafkaStream, DirectStreamConfig, KafkaOffsetStore, KafkaParams,
    KafkaUtils, OutputRecord, Repartition, RepartitionConfig, RepartitionStream, SaveToKafka,
    SpateKafkaError,
};
use spate_streaming::{
    Config, State, StateRestoreInfo, StateSpec, StreamingContext, StreamingListener,
};
use spate_testkit::child::Running;
use spate_testkit::{clients, wait_until, TestBroker};

/// The instance's `group.instance.id` (the rest comes in [`common::CrashJobNames`]).
const ENV_INSTANCE: &str = "SPATE_RP_GROUP_INSTANCE";
/// Extra milliseconds each batch takes (the zombie test keeps batches in flight).
const ENV_SLOW_MS: &str = "SPATE_RP_GROUP_SLOW_MS";

/// Input partitions, and so repartition partitions and tasks.
const PARTITIONS: i32 = 6;
const NAME: &str = "by-word";
/// Distinct words of the input (enough for every repartition partition to get some).
const VOCABULARY: usize = 48;
const CHUNK: usize = 100;
/// Short, so that a killed instance's partitions move within seconds (the broker's minimum
/// is lowered to allow it, as `group.min.session.timeout.ms` on a Kafka broker).
const SESSION_TIMEOUT_MS: u64 = 2_000;

fn broker() -> TestBroker {
    common::group_test_broker()
}

fn member_params(bootstrap: &str, group: &str, instance: &str) -> KafkaParams {
    common::static_member_params(bootstrap, group, instance, SESSION_TIMEOUT_MS)
        // A killed instance's open transaction holds its partitions' committed offsets (and
        // the restore of their tasks) until it times out.
        .set("transaction.timeout.ms", "10000")
}

/// Line `i` of the input: one to three words of the vocabulary, a function of `i`.
fn line(i: usize) -> String {
    (0..=i % 3)
        .map(|j| format!("w{:02}", (i * 7 + j * 13 + i / VOCABULARY) % VOCABULARY))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each word's count in lines `0..n`.
fn expected_counts(n: usize) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        for w in line(i).split(' ') {
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// The job of one instance (see the module docs), not started: its context, its source
/// stream and the stream read back from the repartition topic.
fn instance_job(
    names: &common::CrashJobNames,
    instance: &str,
    slow: Duration,
) -> anyhow::Result<(
    StreamingContext,
    DirectKafkaStream,
    RepartitionStream<String, i64>,
)> {
    let params = member_params(&names.bootstrap, &names.group, instance);
    let ctx = StreamingContext::new(
        Config::new("repartition-group")
            .batch_interval(Duration::from_millis(100))
            // A batch's transaction can take seconds on a loaded machine.
            .graceful_stop_timeout(Duration::from_secs(10)),
    )?;
    let strategy =
        ConsumerStrategy::subscribe_group_managed([names.input.as_str()], params.clone())?;
    let rate = DirectStreamConfig::default()
        .max_rate_per_partition(400)
        .initial_rate(None);
    let lines = KafkaUtils::create_direct_stream_with(&ctx, strategy, rate)?;
    let words = lines.flat_map(common::record_words);
    let config = RepartitionConfig::new(NAME)
        .group_managed()
        .purge_interval(Duration::from_millis(300));
    let by_word = words.repartition_through_kafka(&lines, &params, config)?;
    let spec = StateSpec::function(|w: &String, one: Option<i64>, st: &mut State<i64>| {
        let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
        st.update(n);
        (w.clone(), n)
    })
    .by_task();
    let counts = by_word.map_with_state(spec).uid("counts");
    if !slow.is_zero() {
        // Widens the window in which a batch is planned and not yet committed.
        counts.foreach_batch(move |_, _| {
            std::thread::sleep(slow);
            Ok::<_, spate_streaming::StreamingError>(())
        });
    }
    let store = KafkaOffsetStore::open(params.clone())?;
    let record = |(w, n): &(String, i64)| OutputRecord::new(w.as_bytes(), n.to_string());
    let out = counts.save_to_kafka_exactly_once(&lines, store, "counts", &names.output, record)?;
    by_word.join(&out)?;
    let changelog = Arc::new(KafkaChangelog::new(params)?);
    changelog.join(&out)?;
    ctx.state_changelog("counts", changelog);
    Ok((ctx, lines, by_word))
}

/// Prints `RESTORED task=… records=…` when a task's restore finishes.
struct RestorePrinter;

impl StreamingListener for RestorePrinter {
    fn on_state_restore(&self, info: &StateRestoreInfo) {
        if info.done {
            eprintln!(
                "RESTORED task={} records={} ms={}",
                info.partition, info.records_restored, info.elapsed_ms
            );
        }
    }
}

/// Prints `REBALANCES <stream> <assigned> <revoked> <lost>` whenever the stream's counts
/// change; the parent sums the last line of each stream of each run.
fn report_rebalances(name: &'static str, stream: &DirectKafkaStream) {
    let handle = stream.clone();
    std::thread::spawn(move || {
        let mut last = None;
        loop {
            let now = handle.rebalances();
            if now != last {
                if let Some(c) = now {
                    eprintln!("REBALANCES {name} {} {} {}", c.assigned, c.revoked, c.lost);
                }
                last = now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn child_entry() {
    let Some(names) = common::CrashJobNames::from_env() else {
        return;
    };
    spate_testkit::init_logging();
    let instance = std::env::var(ENV_INSTANCE).unwrap_or_default();
    let slow = std::env::var(ENV_SLOW_MS)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let run = || -> anyhow::Result<()> {
        let (ctx, lines, by_word) = instance_job(&names, &instance, slow)?;
        ctx.add_streaming_listener(Arc::new(RestorePrinter));
        ctx.start()?;
        report_rebalances("source", &lines);
        report_rebalances("internal", by_word.internal_stream());
        ctx.await_termination()?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("repartition instance {instance} failed: {e:#}");
        std::process::exit(3);
    }
}

/// An instance of the job named `name` (its `group.instance.id`), batches slowed by `slow_ms`.
fn instance(names: &common::CrashJobNames, name: &str, logs: &Path, slow_ms: u64) -> Instance {
    let mut job = names.child();
    job.env(ENV_INSTANCE, name);
    // Where each partition started and when it moved, for the failure report.
    job.env("RUST_LOG", "warn,spate_kafka=info");
    job.env(ENV_SLOW_MS, slow_ms.to_string());
    Instance::new(name, job, logs)
}

/// The failure report of a multi-instance run: every run's info lines (where partitions joined
/// and at which offset, when they moved, when their state was restored) and warnings.
fn print_hand_overs(pool: &[Instance]) {
    const KEPT: [&str; 3] = ["INFO", "WARN", "ERROR"];
    for i in pool {
        for (run, log) in i.run_logs().iter().enumerate() {
            for l in log.lines().filter(|l| KEPT.iter().any(|k| l.contains(k))) {
                eprintln!("{}#{}: {l}", i.name, run + 1);
            }
        }
    }
}

/// (source assignments, internal stream assignments, lost assignments) over every run.
fn rebalances(logs: &[String]) -> (u64, u64, u64) {
    let mut total = (0, 0, 0);
    for log in logs {
        for stream in ["source", "internal"] {
            let prefix = format!("REBALANCES {stream} ");
            let last = log.lines().rev().find_map(|l| {
                let n: Vec<u64> = l
                    .strip_prefix(&prefix)?
                    .split(' ')
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (n.len() == 3).then(|| (n[0], n[2]))
            });
            if let Some((assigned, lost)) = last {
                if stream == "source" {
                    total.0 += assigned;
                } else {
                    total.1 += assigned;
                }
                total.2 += lost;
            }
        }
    }
    total
}

/// Produces `records` lines round-robin over the input partitions, in chunks on a thread; the
/// flag turns true when all are written.
fn start_producer(
    bootstrap: String,
    topic: String,
    records: usize,
    pause: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let thread = std::thread::spawn(move || {
        let p: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
        for from in (0..records).step_by(CHUNK) {
            let until = (from + CHUNK).min(records);
            let lines = (from..until).map(|i| {
                let partition = i32::try_from(i % PARTITIONS as usize).unwrap_or(0);
                (partition, Some(format!("k{i}")), line(i))
            });
            spate_testkit::produce::send_all(&p, &topic, lines);
            std::thread::sleep(pause);
        }
        flag.store(true, Ordering::Release);
    });
    (done, thread)
}

fn repartition_topic(group: &str) -> String {
    format!("{group}-{NAME}-repartition")
}

/// The group's committed offsets of `topic`'s partitions, summed.
fn committed(names: &common::CrashJobNames, topic: &str) -> i64 {
    common::committed_sum(&names.bootstrap, &names.group, topic, PARTITIONS)
}

/// (low, high) watermarks of every partition of `topic`.
fn watermarks(bootstrap: &str, topic: &str) -> Vec<(i64, i64)> {
    common::watermarks(bootstrap, topic, PARTITIONS)
}

/// Whether the instances consumed all `records` input lines and everything written to the
/// repartition topic (the group's offsets there are at the log end).
fn caught_up(names: &common::CrashJobNames, records: usize) -> bool {
    let topic = repartition_topic(&names.group);
    committed(names, &names.input) >= records as i64
        && committed(names, &topic)
            == watermarks(&names.bootstrap, &topic)
                .iter()
                .map(|w| w.1)
                .sum::<i64>()
}

/// Waits until the instances caught up with `records` lines, restarting fenced ones; returns
/// how many were restarted.
fn wait_caught_up(names: &common::CrashJobNames, records: usize, pool: &mut [Instance]) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut fenced = 0;
    while !caught_up(names, records) {
        fenced += pool.iter_mut().map(Instance::supervise).sum::<u32>();
        if Instant::now() > deadline {
            print_hand_overs(pool);
            panic!("the instances did not catch up");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    fenced
}

/// The output's running counts against the expected counts: (records, duplicated, lost,
/// unexpected words). Exactly once: every word's counts are 1..=n, once each.
fn check_output(bootstrap: &str, output: &str, records: usize) -> (usize, usize, usize, usize) {
    common::check_running_counts(bootstrap, output, PARTITIONS, expected_counts(records))
}

/// A random disruption: restart an instance under its id, kill one for good, or add one.
fn disrupt(
    names: &common::CrashJobNames,
    logs: &Path,
    pool: &mut Vec<Instance>,
    rng: &mut impl Rng,
) -> &'static str {
    let running: Vec<usize> = (0..pool.len())
        .filter(|&i| pool[i].running.is_some())
        .collect();
    let choice = rng.random_range(0..3);
    if choice == 1 && running.len() > 1 {
        pool[running[rng.random_range(0..running.len())]].kill();
        "kill"
    } else if choice == 2 && running.len() < 4 {
        match pool.iter().position(|i| i.running.is_none()) {
            Some(idle) => pool[idle].spawn(),
            None => {
                let mut i = instance(names, &format!("i{}", pool.len()), logs, 0);
                i.spawn();
                pool.push(i);
            }
        }
        "add"
    } else {
        let v = running[rng.random_range(0..running.len())];
        pool[v].kill();
        pool[v].spawn();
        "restart"
    }
}

#[test]
fn repartitioned_state_is_exact_across_instances_under_20_disruptions() {
    const RECORDS: usize = 2_400;
    const DISRUPTIONS: u32 = 20;
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = broker();
    let names = common::CrashJobNames::create(&broker, "rp_scale", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let mut pool: Vec<Instance> = (0..3)
        .map(|i| instance(&names, &format!("i{i}"), dir.path(), 0))
        .collect();
    pool.iter_mut().for_each(Instance::spawn);
    let (produced_all, producer) = start_producer(
        names.bootstrap.clone(),
        names.input.clone(),
        RECORDS,
        Duration::from_millis(400),
    );
    let mut rng = rand::rng();
    let mut done: BTreeMap<&str, u32> = BTreeMap::new();
    let (mut total, mut fenced) = (0, 0);
    while total < DISRUPTIONS || !produced_all.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1_200)));
        fenced += pool.iter_mut().map(Instance::supervise).sum::<u32>();
        *done
            .entry(disrupt(&names, dir.path(), &mut pool, &mut rng))
            .or_default() += 1;
        total += 1;
    }
    producer.join().unwrap();
    // Three instances finish the job.
    for i in pool.iter_mut().take(3) {
        if i.running.is_none() {
            i.spawn();
        }
    }
    fenced += wait_caught_up(&names, RECORDS, &mut pool);
    pool.iter_mut().for_each(Instance::kill);
    let logs: Vec<String> = pool.iter().flat_map(Instance::run_logs).collect();
    let (source_assignments, internal_assignments, lost_assignments) = rebalances(&logs);
    let restores = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.starts_with("RESTORED "))
        .count();
    let (records, duplicated, lost, unexpected) =
        check_output(&names.bootstrap, &names.output, RECORDS);
    let words: i64 = expected_counts(RECORDS).values().sum();
    eprintln!(
        "repartition scale-out: {total} disruptions {done:?}, {} instances, rebalances: \
         {source_assignments} source and {internal_assignments} repartition-topic assignments, \
         {lost_assignments} lost; {fenced} fenced batches (instance restarted), {restores} task \
         restores; {RECORDS} lines, {words} words; output read_committed: {records} running \
         counts, lost {lost}, duplicated {duplicated}, unexpected words {unexpected}; {:?}",
        pool.len(),
        started.elapsed()
    );
    if (duplicated, lost, unexpected) != (0, 0, 0) {
        print_hand_overs(&pool);
    }
    assert!(total >= DISRUPTIONS);
    assert_eq!((duplicated, lost, unexpected), (0, 0, 0));
    assert_eq!(records as i64, words);
    assert!(
        internal_assignments > 3,
        "the repartition topic's partitions moved"
    );
}

/// SIGSTOP one of two instances until the group moves its partitions (source and repartition
/// topic), SIGCONT it: the batch it had in flight must not commit — it is fenced and the
/// instance exits, to be restarted by its supervisor — and nothing is counted twice.
#[test]
fn a_paused_repartition_instance_is_fenced_when_it_comes_back() {
    const RECORDS: usize = 1_600;
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = broker();
    let names = common::CrashJobNames::create(&broker, "rp_zombie", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    // Batches slower than the batch interval: the instance always has a batch planned and not
    // yet committed when it is stopped.
    let mut pool: Vec<Instance> = (0..2)
        .map(|i| instance(&names, &format!("i{i}"), dir.path(), 150))
        .collect();
    pool.iter_mut().for_each(Instance::spawn);
    let (produced_all, producer) = start_producer(
        names.bootstrap.clone(),
        names.input.clone(),
        RECORDS,
        Duration::from_millis(250),
    );
    std::thread::sleep(Duration::from_millis(
        rand::rng().random_range(2_000..3_000),
    ));
    assert_eq!(pool[0].supervise(), 0, "i0 ran until stopped");
    pool[0].signal("-STOP");
    // Past the session timeout the group removes i0's members and gives their partitions to
    // i1.
    std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS * 3));
    pool[0].signal("-CONT");
    let fenced = pool[0].wait_fenced(Duration::from_secs(20));
    let reason = fencing_reason(fenced, &pool[0].all_logs());
    while !produced_all.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
    }
    producer.join().unwrap();
    // Its supervisor restarts it; the two instances finish the job.
    if pool[0].running.as_mut().and_then(Running::exited).is_some() {
        pool[0].kill();
        pool[0].spawn();
    }
    wait_caught_up(&names, RECORDS, &mut pool);
    pool.iter_mut().for_each(Instance::kill);
    let (records, duplicated, lost, unexpected) =
        check_output(&names.bootstrap, &names.output, RECORDS);
    let words: i64 = expected_counts(RECORDS).values().sum();
    eprintln!(
        "repartition zombie: fenced with {reason:?}; {RECORDS} lines, {words} words; output \
         read_committed: {records} running counts, lost {lost}, duplicated {duplicated}, \
         unexpected words {unexpected}; {:?}",
        started.elapsed()
    );
    assert_eq!((duplicated, lost, unexpected), (0, 0, 0));
    assert_eq!(records as i64, words);
}

/// One instance, in this process: the state of each word is kept by the task of the word's
/// repartition partition — the changelog record of every word is on the partition Kafka's
/// partitioner gives the word's key — and the running counts are exact.
#[test]
fn state_by_task_follows_the_repartition_topic() {
    const RECORDS: usize = 600;
    spate_testkit::init_logging();
    let broker = broker();
    let names = common::CrashJobNames::create(&broker, "rp_task", PARTITIONS);
    let (_, producer) = start_producer(
        names.bootstrap.clone(),
        names.input.clone(),
        RECORDS,
        Duration::ZERO,
    );
    producer.join().unwrap();
    let (ctx, lines, by_word) = instance_job(&names, "solo", Duration::ZERO).unwrap();
    ctx.start().unwrap();
    wait_until(
        "the job to consume everything",
        Duration::from_secs(60),
        || caught_up(&names, RECORDS),
    );
    let owned = by_word
        .internal_stream()
        .owned_partitions()
        .unwrap_or_default();
    ctx.stop(true).unwrap();
    let (records, duplicated, lost, unexpected) =
        check_output(&names.bootstrap, &names.output, RECORDS);
    let changelog = format!("{}-counts-changelog", names.group);
    let placed = read_partitions(&names.bootstrap, &changelog);
    let misplaced = placed
        .iter()
        .filter(|(p, key)| *p != kafka_partition(key, PARTITIONS))
        .count();
    let used: std::collections::BTreeSet<i32> = placed.iter().map(|(p, _)| *p).collect();
    eprintln!(
        "state by repartition task: {records} running counts, lost {lost}, duplicated \
         {duplicated}, unexpected {unexpected}; changelog records {}, misplaced {misplaced}, \
         tasks used {used:?}; repartition partitions owned {}, source partitions owned {:?}",
        placed.len(),
        owned.len(),
        lines.owned_partitions().map(|o| o.len())
    );
    assert_eq!((duplicated, lost, unexpected), (0, 0, 0));
    assert_eq!(
        records as i64,
        expected_counts(RECORDS).values().sum::<i64>()
    );
    assert_eq!(owned.len(), PARTITIONS as usize);
    assert!(!placed.is_empty());
    assert_eq!(
        misplaced, 0,
        "a word's state is kept by its repartition task"
    );
    assert!(
        used.len() > 1,
        "{VOCABULARY} words all in one task: {used:?}"
    );
}

/// (partition, key) of every record of `topic`, read_committed to its end.
fn read_partitions(bootstrap: &str, topic: &str) -> Vec<(i32, Vec<u8>)> {
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = clients::consumer_config(bootstrap, "rp-group-partitions")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let (mut out, mut eof) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof < PARTITIONS {
        assert!(Instant::now() < deadline, "reading {topic} did not end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((m.partition(), m.key().unwrap_or_default().to_vec())),
            Some(Err(KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// A one-instance job (member `instance`) over `names.input`, after 60 lines were produced:
/// its context, its member params and its group-managed source.
fn one_member_job(
    names: &common::CrashJobNames,
    instance: &str,
) -> (StreamingContext, KafkaParams, DirectKafkaStream) {
    let (_, producer) = start_producer(
        names.bootstrap.clone(),
        names.input.clone(),
        60,
        Duration::ZERO,
    );
    producer.join().unwrap();
    let params = member_params(&names.bootstrap, &names.group, instance);
    let ctx = StreamingContext::new(
        Config::new(format!("repartition-{instance}")).batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let strategy =
        ConsumerStrategy::subscribe_group_managed([names.input.as_str()], params.clone()).unwrap();
    let lines = KafkaUtils::create_direct_stream(&ctx, strategy).unwrap();
    (ctx, params, lines)
}

/// Once a group-managed repartition owns the tasks, the source's partitions are none: state
/// partitioned by task read straight from the source (whose partitions this instance's state
/// does not follow) fails the job at its first batch instead of keeping keys in tasks another
/// instance owns.
#[test]
fn state_by_task_on_a_repartitioned_source_is_refused() {
    spate_testkit::init_logging();
    let broker = broker();
    let names = common::CrashJobNames::create(&broker, "rp_refused", PARTITIONS);
    let (ctx, params, lines) = one_member_job(&names, "refused");
    let by_word = lines
        .map(|r| (r.value_str().unwrap_or_default(), 1_i64))
        .repartition_through_kafka(
            &lines,
            &params,
            RepartitionConfig::new(NAME).group_managed(),
        )
        .unwrap();
    by_word.foreach_batch(|_, _| Ok::<_, spate_streaming::StreamingError>(()));
    lines
        .map(|r| (r.key_str().unwrap_or_default(), 1_i64))
        .update_state_by_key_by_task(|new: &[i64], old: Option<i64>| {
            Some(old.unwrap_or(0) + new.iter().sum::<i64>())
        })
        .foreach_batch(|_, _| Ok::<_, spate_streaming::StreamingError>(()));
    ctx.start().unwrap();
    let stopped = ctx.await_termination_or_timeout(Duration::from_secs(30));
    let _ = ctx.stop(false);
    let err = stopped
        .expect_err("the job stops with an error")
        .to_string();
    eprintln!("state by task on a repartitioned source: {err}");
    assert!(err.contains("have no task"), "{err}");
}

/// A participant whose input lost what the batch read (as a repartition topic's internal
/// stream whose partitions moved): it says so only from its ownership check, which the output
/// consults in every attempt at the transaction — so the batch fails and commits nothing, not
/// even the source's offsets.
struct MovedAway;

impl TransactionParticipant for MovedAway {
    fn take_records(&self, _time: spate_streaming::Time) -> spate_kafka::Result<Vec<TopicRecords>> {
        Ok(Vec::new())
    }

    fn check_owned(&self, time: spate_streaming::Time) -> spate_kafka::Result<()> {
        Err(SpateKafkaError::InvalidPlan(format!(
            "participant's partitions of batch {time} moved away"
        )))
    }
}

#[test]
fn a_participant_that_lost_its_partitions_fails_the_transaction() {
    spate_testkit::init_logging();
    let broker = broker();
    let names = common::CrashJobNames::create(&broker, "rp_moved", PARTITIONS);
    let (ctx, params, lines) = one_member_job(&names, "moved");
    let store = KafkaOffsetStore::open(params).unwrap();
    let out = lines
        .map(|r| r.value_str().unwrap_or_default())
        .save_to_kafka_exactly_once(&lines, store, "lines", &names.output, |l: &String| {
            OutputRecord::value(l.as_bytes())
        })
        .unwrap();
    out.add_participant(Arc::new(MovedAway)).unwrap();
    ctx.start().unwrap();
    let stopped = ctx.await_termination_or_timeout(Duration::from_secs(30));
    let _ = ctx.stop(false);
    let err = stopped.expect_err("the batch fails").to_string();
    let written =
        spate_testkit::consume::read_committed(&names.bootstrap, &names.output, PARTITIONS);
    let committed = committed(&names, &names.input);
    eprintln!(
        "participant moved away: {err}; output records {}, input offsets committed {committed}",
        written.len()
    );
    assert!(err.contains("moved away"), "{err}");
    assert!(written.is_empty());
    assert_eq!(committed, 0);
}

//! Keyed state backed by a compacted changelog topic ([`KafkaChangelog`]) against the embedded
//! broker with real rdkafka clients:
//!
//! * a counting job writes its changes; a second context restores exactly the final state from
//!   the changelog (tombstones remove keys), the topic is compacted with one partition per state
//!   partition, and restore progress reaches the metrics;
//! * an existing topic with another partition count is refused, naming both counts;
//! * records of an aborted transaction on the changelog are not restored (read_committed);
//! * a large restore (200,000 keys here; `SPATE_RESTORE_KEYS` for more) runs in a child process,
//!   which prints its restore time, rate and peak RSS.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::KafkaParams;
use spate_streaming::exec::shuffle::partition_of;
use spate_streaming::{Config, StreamingContext};
use spate_testkit::{clients, wait_for, ChildJob, TestBroker};

const ENV_BOOTSTRAP: &str = "SPATE_RESTORE_BOOTSTRAP";
const ENV_APP: &str = "SPATE_RESTORE_APP";
const ENV_KEYS: &str = "SPATE_RESTORE_KEYS";
const BIG_PARTITIONS: usize = 4;

fn params(bootstrap: &str, app: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", app)
        .set("broker.address.family", "v4")
}

type Latest = Arc<Mutex<Option<BTreeMap<String, i64>>>>;
/// The job, the queue that feeds it, and its latest output.
type CountingJob = (
    StreamingContext,
    spate_streaming::input::queue::QueueHandle<(String, i64)>,
    Latest,
);

/// A counting job over a queue of (word, n) batches: n = 0 removes the word. Its output keeps
/// the latest batch (every key's state).
fn counting_job(bootstrap: &str, app: &str, partitions: usize) -> anyhow::Result<CountingJob> {
    let ctx = StreamingContext::new(
        Config::new("state-changelog").batch_interval(Duration::from_millis(50)),
    )?;
    let (queue, pairs) = ctx.queue_stream::<(String, i64)>(true);
    let latest: Latest = Arc::default();
    let out = latest.clone();
    pairs
        .update_state_by_key_with(
            |new: &[i64], old: Option<i64>| {
                if new.contains(&0) {
                    None
                } else {
                    Some(old.unwrap_or(0) + new.iter().sum::<i64>())
                }
            },
            partitions,
            Vec::new(),
        )
        .uid("counts")
        .foreach_batch(move |batch, _| {
            *out.lock() = Some(batch.collect()?.into_iter().collect());
            Ok::<_, spate_streaming::StreamingError>(())
        });
    let changelog = Arc::new(KafkaChangelog::new(params(bootstrap, app))?);
    ctx.state_changelog("counts", changelog);
    Ok((ctx, queue, latest))
}

fn words(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect()
}

fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    words(pairs).into_iter().collect()
}

fn wait_state(latest: &Latest, want: &BTreeMap<String, i64>) {
    wait_for("the job's state", Duration::from_secs(20), || {
        (latest.lock().as_ref() == Some(want)).then_some(())
    });
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    clients::admin_config(bootstrap).create().expect("admin")
}

/// The topic's `cleanup.policy` and partition count.
fn describe(bootstrap: &str, topic: &str) -> (String, usize) {
    let admin = admin(bootstrap);
    let res = common::runtime()
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .expect("describe configs");
    let resource = res.into_iter().next().unwrap().expect("topic configs");
    let policy = resource
        .get("cleanup.policy")
        .and_then(|e| e.value.clone())
        .unwrap_or_default();
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    (policy, md.topics()[0].partitions().len())
}

/// Every record of `topic` (read_uncommitted), as (partition, key, value).
type Raw = (i32, Vec<u8>, Option<Vec<u8>>);
fn read_all(bootstrap: &str, topic: &str, partitions: usize) -> Vec<Raw> {
    let consumer: BaseConsumer = clients::consumer_config(bootstrap, "changelog-reader")
        .set("isolation.level", "read_uncommitted")
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut out, mut eof) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while eof < partitions {
        assert!(Instant::now() < deadline, "reading {topic} did not end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

#[test]
fn restart_restores_the_final_state_from_a_compacted_changelog() -> anyhow::Result<()> {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let app = spate_testkit::random_group("wordcount");

    let (ctx, queue, latest) = counting_job(&bootstrap, &app, 4)?;
    ctx.start()?;
    queue.push(words(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]));
    wait_state(&latest, &map(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]));
    queue.push(words(&[("a", 5), ("b", 0), ("d", 0), ("e", 1)]));
    let want = map(&[("a", 6), ("c", 3), ("e", 1)]);
    wait_state(&latest, &want);
    ctx.stop(true)?;

    let topic = format!("{app}-counts-changelog");
    let (policy, partitions) = describe(&bootstrap, &topic);
    let records = read_all(&bootstrap, &topic, partitions);
    let tombstones = records.iter().filter(|r| r.2.is_none()).count();
    for (p, key, _) in &records {
        let word: String = postcard::from_bytes(key)?;
        assert_eq!(
            partition_of(&word, 4) as i32,
            *p,
            "{word} in changelog partition {p}"
        );
    }
    eprintln!(
        "changelog {topic}: cleanup.policy={policy}, {partitions} partitions, {} records, \
         {tombstones} tombstones",
        records.len()
    );
    assert_eq!((policy.as_str(), partitions), ("compact", 4));
    // Batch 1: four upserts; batch 2: a and e upserts, b and d tombstones; c is unchanged.
    assert_eq!((records.len(), tombstones), (8, 2));

    // A second run restores from the changelog alone (no checkpoint directory).
    let (ctx, _queue, latest) = counting_job(&bootstrap, &app, 4)?;
    ctx.start()?;
    wait_state(&latest, &want);
    let restores = ctx.metrics().state_restores();
    let restored: u64 = restores.iter().map(|r| r.records_restored).sum();
    eprintln!(
        "restored {restored} records into {} partitions: {want:?}",
        restores.len()
    );
    assert_eq!(restores.len(), 4);
    assert!(restores.iter().all(|r| r.done && r.operator == "counts"));
    assert_eq!(restored, 8);
    ctx.stop(true)?;
    Ok(())
}

#[test]
fn a_changelog_topic_with_another_partition_count_is_refused() -> anyhow::Result<()> {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let app = spate_testkit::random_group("mismatch");
    broker.create_topic(&format!("{app}-counts-changelog"), 3);
    let (ctx, _queue, _latest) = counting_job(&bootstrap, &app, 4)?;
    let err = ctx
        .start()
        .expect_err("a 3-partition changelog for 4 state partitions");
    let msg = format!("{err:#}");
    let chain = std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .map(|e| e.to_string())
    .collect::<Vec<_>>()
    .join(": ");
    eprintln!("start refused: {chain}");
    assert!(
        chain.contains("has 3 partitions") && chain.contains("4 state partitions"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn aborted_changelog_records_are_not_restored() -> anyhow::Result<()> {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let app = spate_testkit::random_group("aborted");
    let topic = format!("{app}-counts-changelog");
    broker.create_topic(&topic, 1);
    let producer: BaseProducer = clients::producer_config(&bootstrap)
        .set("transactional.id", format!("{app}-writer"))
        .create()?;
    let timeout = Duration::from_secs(20);
    producer.init_transactions(timeout)?;
    let send = |key: &str, value: Option<i64>| -> anyhow::Result<()> {
        let k = postcard::to_stdvec(&key.to_owned())?;
        let v = value.map(|v| postcard::to_stdvec(&v)).transpose()?;
        let mut r = BaseRecord::<[u8], [u8]>::to(&topic).partition(0).key(&k);
        r.payload = v.as_deref();
        producer.send(r).map_err(|(e, _)| e)?;
        Ok(())
    };
    producer.begin_transaction()?;
    send("a", Some(1))?;
    send("b", Some(2))?;
    producer.commit_transaction(timeout)?;
    producer.begin_transaction()?;
    send("a", Some(100))?;
    send("c", Some(7))?;
    send("b", None)?;
    producer.flush(timeout)?;
    producer.abort_transaction(timeout)?;
    producer.begin_transaction()?;
    send("d", Some(4))?;
    producer.commit_transaction(timeout)?;

    let (ctx, _queue, latest) = counting_job(&bootstrap, &app, 1)?;
    ctx.start()?;
    let want = map(&[("a", 1), ("b", 2), ("d", 4)]);
    wait_state(&latest, &want);
    let restored: u64 = ctx
        .metrics()
        .state_restores()
        .iter()
        .map(|r| r.records_restored)
        .sum();
    let raw = read_all(&bootstrap, &topic, 1).len();
    eprintln!(
        "changelog holds {raw} records (read_uncommitted), {restored} restored \
         (read_committed): {want:?}"
    );
    assert_eq!((raw, restored), (6, 3));
    ctx.stop(true)?;
    Ok(())
}

/// Peak and current resident set size of this process in KiB (`VmHWM`, `VmRSS`).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The child of the large restore: restores `keys` u64 → u64 entries, checks them in the first
/// batch and prints its numbers.
fn restore_child(bootstrap: &str, app: &str, keys: u64) -> anyhow::Result<()> {
    let ctx = StreamingContext::new(
        Config::new("state-restore").batch_interval(Duration::from_millis(500)),
    )?;
    let (_queue, pairs) = ctx.queue_stream::<(u64, u64)>(true);
    let first = Arc::new(Mutex::new(None));
    let out = first.clone();
    pairs
        .update_state_by_key_with(
            |new: &[u64], old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()),
            BIG_PARTITIONS,
            Vec::new(),
        )
        .uid("big")
        .foreach_batch(move |batch, _| {
            let state = batch.collect()?;
            let sum: u64 = state.iter().map(|(_, v)| v).sum();
            out.lock().get_or_insert((state.len() as u64, sum));
            Ok::<_, spate_streaming::StreamingError>(())
        });
    ctx.state_changelog(
        "big",
        Arc::new(KafkaChangelog::new(params(bootstrap, app))?),
    );
    let (_, rss_before) = rss_kib();
    let started = Instant::now();
    ctx.start()?;
    let took = started.elapsed();
    let (hwm_restored, _) = rss_kib();
    let restored: u64 = ctx
        .metrics()
        .state_restores()
        .iter()
        .map(|r| r.records_restored)
        .sum();
    let (n, sum) = wait_for("the first batch", Duration::from_secs(120), || {
        *first.lock()
    });
    let (hwm, _) = rss_kib();
    println!(
        "RESTORE keys={n} records={restored} ms={} rate={:.0} rss_before_kib={rss_before} \
         peak_after_restore_kib={hwm_restored} peak_kib={hwm} sum_ok={}",
        took.as_millis(),
        restored as f64 / took.as_secs_f64(),
        sum == keys * (keys - 1) / 2 + keys
    );
    ctx.stop(false)?;
    Ok(())
}

#[test]
fn restore_child_entry() {
    let (Ok(bootstrap), Ok(app), Ok(keys)) = (
        std::env::var(ENV_BOOTSTRAP),
        std::env::var(ENV_APP),
        std::env::var(ENV_KEYS),
    ) else {
        return;
    };
    spate_testkit::init_logging();
    let keys = keys.parse().expect("key count");
    if let Err(e) = restore_child(&bootstrap, &app, keys) {
        eprintln!("restore child failed: {e:#}");
        std::process::exit(3);
    }
}

/// Writes a changelog of `keys` keys (value = key + 1, each key twice: first a stale value) the
/// way the engine partitions it.
fn write_big_changelog(bootstrap: &str, topic: &str, keys: u64) {
    let producer: BaseProducer = clients::producer_config(bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for round in 0..2u64 {
        for k in 0..keys {
            let key = postcard::to_stdvec(&k).unwrap();
            let value = postcard::to_stdvec(&if round == 0 { 0 } else { k + 1 }).unwrap();
            let p = partition_of(&k, BIG_PARTITIONS) as i32;
            let mut r = BaseRecord::<[u8], [u8]>::to(topic)
                .partition(p)
                .key(&key)
                .payload(&value);
            while let Err((_, back)) = producer.send(r) {
                producer.poll(Duration::from_millis(5));
                r = back;
            }
            if k % 10_000 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

#[test]
fn large_restore_has_bounded_memory() {
    let keys: u64 = std::env::var(ENV_KEYS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let app = spate_testkit::random_group("big");
    let topic = format!("{app}-big-changelog");
    broker.create_topic(&topic, BIG_PARTITIONS as i32);
    let started = Instant::now();
    write_big_changelog(&bootstrap, &topic, keys);
    eprintln!(
        "wrote {} changelog records in {:?}",
        2 * keys,
        started.elapsed()
    );

    let mut child = ChildJob::test_entry("restore_child_entry");
    child
        .env(ENV_BOOTSTRAP, &bootstrap)
        .env(ENV_APP, &app)
        .env(ENV_KEYS, keys.to_string())
        .capture_stdout();
    let (status, lines) = child.spawn().wait_with_lines(Duration::from_secs(300));
    // libtest may have printed `test restore_child_entry ... ` on the same line first.
    let line = lines
        .iter()
        .find_map(|l| l.find("RESTORE ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("the restore child printed no result ({status}): {lines:?}"));
    eprintln!("large restore: {line}");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(line.contains("sum_ok=true"), "{line}");
    assert_eq!(field("keys"), keys);
    assert_eq!(field("records"), 2 * keys);
    // Memory follows the state, not the log: the log is twice the state here, and the state
    // (keys × a few dozen bytes) plus the consumer's bounded fetch queue stays far below what
    // buffering the log would take.
    let grown = field("peak_after_restore_kib").saturating_sub(field("rss_before_kib"));
    assert!(
        grown < 64 * 1024 + keys / 4,
        "restore grew the RSS by {grown} KiB for {keys} keys"
    );
}

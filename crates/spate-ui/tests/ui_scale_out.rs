//! What the UI's REST API and `/metrics` show of a job run as several instances
//! (docs/scale-out.md), against the embedded broker with real rdkafka clients:
//!
//! * a group-managed direct stream (static member `a`) first owns every partition; a second
//!   member (`b`, an rdkafka consumer with the same cooperative-sticky assignor) joins, and the
//!   job's `/ownership` document and metrics then show the partitions `a` kept (exactly those
//!   `b` was not given), the revocation with its wait, and the assignment with its
//!   assignment-to-first-batch time;
//! * a job whose keyed state is backed by a changelog shows, after a restart, each state
//!   partition's restore (records restored, done) in `/state/restores` and the metrics.

mod ui_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use spate_broker::BrokerConfig;
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::{clients, TestBroker};
use spate_ui::{UiConfig, UiServer};

use ui_support::*;

const PARTITIONS: i32 = 4;

/// The samples of an exposition text whose series start with `prefix`, by series.
fn series(text: &str, prefix: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            Some((s.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn owned_of(doc: &Value) -> BTreeSet<i32> {
    doc["ownedPartitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_i64().unwrap() as i32)
        .collect()
}

fn member_params(broker: &TestBroker, group: &str, instance: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("max.poll.interval.ms", "10000")
}

/// A second member of `group`, polled on its own thread until `stop`.
fn second_member(
    broker: &TestBroker,
    group: &str,
    topic: &str,
    stop: Arc<AtomicBool>,
) -> (Arc<BaseConsumer>, std::thread::JoinHandle<()>) {
    let consumer: BaseConsumer = clients::consumer_config(&broker.bootstrap_servers(), group)
        .set("group.instance.id", "b")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .create()
        .expect("second member");
    consumer.subscribe(&[topic]).expect("subscribe");
    let consumer = Arc::new(consumer);
    let polled = consumer.clone();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let _ = polled.poll(Duration::from_millis(50));
        }
    });
    (consumer, thread)
}

#[test]
fn group_managed_job_shows_its_partitions_and_rebalances() {
    spate_testkit::init_logging();
    let mut config = BrokerConfig::default();
    config.group.min_session_timeout_ms = 1_000;
    let broker = TestBroker::start_with(config);
    let topic = spate_testkit::random_topic("ui-scale");
    let group = spate_testkit::random_group("ui-scale");
    broker.create_topic(&topic, PARTITIONS);
    for p in 0..PARTITIONS {
        produce(&broker, &topic, p, 50);
    }
    let ctx = StreamingContext::new(
        Config::new("ui-scale-out")
            .batch_interval(Duration::from_millis(100))
            .executor_threads(2),
    )
    .unwrap();
    let strategy = ConsumerStrategy::subscribe_group_managed(
        [topic.as_str()],
        member_params(&broker, &group, "a"),
    )
    .unwrap();
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(1_000)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config).unwrap();
    stream.foreach_batch(|batch, _| batch.count().map(|_| ()));
    let ui = UiServer::start(&ctx, UiConfig::default().port(0)).unwrap();
    let addr = ui.local_addr();
    ctx.start().unwrap();

    // Alone in the group: every partition, and the assignment's first batch measured.
    let doc = wait_for("every partition owned", Duration::from_secs(30), || {
        let all = get(addr, "/api/v1/streaming/ownership").json();
        let doc = all.as_array()?.first()?.clone();
        let first = doc["recentRebalances"].as_array()?.last()?.clone();
        (owned_of(&doc).len() == PARTITIONS as usize && first["firstBatchMs"].is_u64())
            .then_some(doc)
    });
    println!("alone: {doc}");
    assert_eq!(doc["group"], group.as_str());
    assert_eq!(doc["instanceId"], "a");
    assert_eq!(doc["groupInstanceId"], "a");
    assert!(
        doc["memberId"].as_str().is_some_and(|m| !m.is_empty()),
        "{doc}"
    );
    assert!(doc["clientId"].as_str().unwrap().starts_with("spate-"));
    assert_eq!(doc["inputId"], "kafka_direct-0");
    assert_eq!(doc["rebalances"]["assigned"], 1);
    assert_eq!(doc["rebalances"]["revoked"], 0);

    // A second member joins: cooperative-sticky moves half of the partitions to it.
    let stop = Arc::new(AtomicBool::new(false));
    let (b, poller) = second_member(&broker, &group, &topic, stop.clone());
    let (doc, b_owned) = wait_for("the second member's share", Duration::from_secs(60), || {
        let doc = get(addr, "/api/v1/streaming/ownership").json()[0].clone();
        let b_owned: BTreeSet<i32> = b
            .assignment()
            .ok()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let a_owned = owned_of(&doc);
        (doc["rebalances"]["revoked"].as_u64()? >= 1
            && !b_owned.is_empty()
            && a_owned.len() + b_owned.len() == PARTITIONS as usize)
            .then_some((doc, b_owned))
    });
    println!("after b joined: {doc}\nb owns {b_owned:?}");
    let a_owned = owned_of(&doc);
    assert!(
        a_owned.is_disjoint(&b_owned),
        "a {a_owned:?}, b {b_owned:?}"
    );
    let revoked = doc["recentRebalances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "revoked")
        .cloned()
        .expect("a revocation in the recent rebalances");
    assert!(revoked["revocationWaitMs"].is_u64(), "{revoked}");
    assert_eq!(revoked["revocationFinished"], true);
    let moved: BTreeSet<i32> = revoked["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(moved, b_owned, "the revoked partitions are those b got");

    let text = get(addr, "/metrics").body;
    let labels =
        format!("app=\"ui-scale-out\",input=\"kafka_direct-0\",group=\"{group}\",instance=\"a\"");
    let owned = series(&text, "spate_input_owned_partitions{");
    assert_eq!(
        owned.get(&format!("spate_input_owned_partitions{{{labels}}}")),
        Some(&(a_owned.len() as f64)),
        "{text}"
    );
    let per_partition = series(&text, "spate_input_owned_partition{");
    for p in &a_owned {
        let key =
            format!("spate_input_owned_partition{{{labels},topic=\"{topic}\",partition=\"{p}\"}}");
        assert_eq!(per_partition.get(&key), Some(&1.0), "{key} in {text}");
    }
    assert_eq!(per_partition.len(), a_owned.len());
    let counts = series(&text, "spate_input_rebalances_total{");
    let count =
        |kind: &str| counts[&format!("spate_input_rebalances_total{{{labels},kind=\"{kind}\"}}")];
    assert!(count("assigned") >= 1.0 && count("revoked") >= 1.0 && count("lost") == 0.0);
    assert_eq!(
        series(&text, "spate_input_last_revocation_wait_ms{").len(),
        1,
        "{text}"
    );
    assert_eq!(
        series(&text, "spate_input_last_assignment_first_batch_ms{").len(),
        1
    );
    println!(
        "metrics: owned {} of {PARTITIONS}, rebalances assigned {} revoked {} lost {}",
        a_owned.len(),
        count("assigned"),
        count("revoked"),
        count("lost")
    );
    // The page has the sections the script fills.
    let page = get(addr, "/").body;
    assert!(page.contains("id=\"ownership-rows\"") && page.contains("id=\"restore-rows\""));

    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    ctx.stop(false).unwrap();
}

/// A word-state job over a queue whose state is backed by a changelog topic.
fn state_job(
    broker: &TestBroker,
    app: &str,
) -> (
    StreamingContext,
    spate_streaming::input::queue::QueueHandle<(String, i64)>,
) {
    let ctx =
        StreamingContext::new(Config::new("ui-restore").batch_interval(Duration::from_millis(50)))
            .unwrap();
    let (queue, pairs) = ctx.queue_stream::<(String, i64)>(true);
    pairs
        .update_state_by_key_with(
            |new: &[i64], old: Option<i64>| Some(old.unwrap_or(0) + new.iter().sum::<i64>()),
            2,
            Vec::new(),
        )
        .uid("counts")
        .foreach_batch(|batch, _| batch.count().map(|_| ()));
    let params = KafkaParams::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", app)
        .set("broker.address.family", "v4");
    ctx.state_changelog("counts", Arc::new(KafkaChangelog::new(params).unwrap()));
    (ctx, queue)
}

#[test]
fn restored_state_shows_per_partition_progress() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let app = spate_testkit::random_group("ui-restore");
    const KEYS: usize = 300;
    {
        let (ctx, queue) = state_job(&broker, &app);
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        ctx.add_streaming_listener(Arc::new(Completed(flag)));
        queue.push((0..KEYS).map(|k| (format!("k{k}"), 1)).collect());
        ctx.start().unwrap();
        wait_for("the first batch", Duration::from_secs(30), || {
            done.load(Ordering::SeqCst).then_some(())
        });
        ctx.stop(true).unwrap();
    }
    let (ctx, _queue) = state_job(&broker, &app);
    let ui = UiServer::start(&ctx, UiConfig::default().port(0)).unwrap();
    let addr = ui.local_addr();
    ctx.start().unwrap();
    let restores = get(addr, "/api/v1/streaming/state/restores").json();
    let rows = restores.as_array().unwrap();
    println!("restores: {restores}");
    assert_eq!(rows.len(), 2, "one row per state partition");
    let total: u64 = rows
        .iter()
        .map(|r| r["recordsRestored"].as_u64().unwrap())
        .sum();
    assert_eq!(total, KEYS as u64, "every key restored once");
    for r in rows {
        assert_eq!(r["operator"], "counts");
        assert_eq!(r["done"], true);
    }
    let text = get(addr, "/metrics").body;
    let done = series(&text, "spate_state_restore_done{");
    assert_eq!(done.len(), 2, "{text}");
    assert!(done.values().all(|v| *v == 1.0));
    let records = series(&text, "spate_state_restore_records{");
    assert_eq!(records.values().sum::<f64>(), KEYS as f64);
    println!("restored {total} records over {} partitions", rows.len());
    ctx.stop(false).unwrap();
}

/// Sets its flag when a batch with records completes without failure.
struct Completed(Arc<AtomicBool>);

impl spate_streaming::StreamingListener for Completed {
    fn on_batch_completed(&self, info: &spate_streaming::BatchInfo) {
        if info.num_records() > 0 && info.failure_reason().is_none() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

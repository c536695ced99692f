//! Transactions across restarts: a commit decided before a crash is completed on start, a
//! transaction left open is aborted once its timeout passes, aborted ranges survive a restart
//! (and the loss of their index files) and retention, and producer state comes back from its
//! snapshot.

mod raw_client;
mod txn_raw;
mod txn_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raw_client::RawClient;
use spate_broker::topics::NewTopic;
use spate_broker::txn::log::TxnLog;
use spate_broker::txn::TxnState;
use spate_broker::BrokerConfig;
use spate_testkit::{random_topic, TestBroker};
use txn_raw::Txn;
use txn_support::{read_all, send, txn_producer, values, T};

#[test]
fn a_commit_decided_before_a_crash_is_completed_on_start() {
    let mut broker = TestBroker::start();
    let topic = random_topic("txn-prepared");
    broker.create_topic(&topic, 2);
    let tid = random_topic("tid");
    {
        let mut c = RawClient::connect(broker.local_addr());
        let mut t = Txn::init(&mut c, &tid);
        let epoch = t.epoch;
        assert_eq!(t.add_partition(&topic, 0), 0);
        assert_eq!(t.add_partition(&topic, 1), 0);
        assert_eq!(t.produce(&topic, 0, &["p0-a", "p0-b"], epoch, 0).0, 0);
        assert_eq!(t.produce(&topic, 1, &["p1-a"], epoch, 0).0, 0);
    }
    broker.stop();
    // What a crash right after the commit decision leaves: PrepareCommit in the log, no markers.
    let dir = broker.data_dir().join("meta/transactions");
    let (mut log, live) = TxnLog::open(&dir).unwrap();
    let mut m = live[&tid].clone();
    assert_eq!(m.state, TxnState::Ongoing);
    m.state = TxnState::PrepareCommit;
    log.append(&m, true).unwrap();
    drop(log);

    broker.start_again();
    let bootstrap = broker.bootstrap_servers();
    assert_eq!(
        values(&read_all(&bootstrap, &topic, 0, "read_committed")),
        ["p0-a", "p0-b"]
    );
    assert_eq!(
        values(&read_all(&bootstrap, &topic, 1, "read_committed")),
        ["p1-a"]
    );
    assert_eq!(
        broker.state().txn.describe(&tid).unwrap().state,
        TxnState::CompleteCommit
    );
}

#[test]
fn a_transaction_left_open_is_aborted_after_its_timeout_on_restart() {
    let mut config = BrokerConfig::default();
    config
        .set(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "100",
        )
        .unwrap();
    let mut broker = TestBroker::start_with(config);
    let topic = random_topic("txn-open");
    broker.create_topic(&topic, 1);
    {
        let mut c = RawClient::connect(broker.local_addr());
        let mut t = Txn::init_with_timeout(&mut c, &random_topic("tid"), 1_500);
        let epoch = t.epoch;
        assert_eq!(t.add_partition(&topic, 0), 0);
        assert_eq!(t.produce(&topic, 0, &["open"], epoch, 0).0, 0);
    }
    broker.restart();
    let p = broker.state().topics.partition(&topic, 0).unwrap();
    // Still open after the restart: the producer state came back with it.
    assert_eq!((p.last_stable_offset(), p.high_watermark()), (0, 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.last_stable_offset() < 2 {
        assert!(
            Instant::now() < deadline,
            "the open transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bootstrap = broker.bootstrap_servers();
    assert!(read_all(&bootstrap, &topic, 0, "read_committed").is_empty());
}

/// Small segments, so that transactions spread over several.
fn create_small_segment_topic(broker: &TestBroker, topic: &str) {
    let mut configs = BTreeMap::new();
    configs.insert("segment.bytes".to_string(), "1024".to_string());
    broker
        .state()
        .topics
        .create(
            NewTopic {
                name: topic.to_string(),
                partitions: 1,
                configs,
            },
            false,
        )
        .unwrap();
}

#[test]
fn aborted_ranges_survive_restart_index_loss_and_retention() {
    let mut broker = TestBroker::start();
    let topic = random_topic("txn-ranges");
    create_small_segment_topic(&broker, &topic);
    let bootstrap = broker.bootstrap_servers();
    let p = txn_producer(&bootstrap, &random_topic("tid"), 60_000);
    let pad = "x".repeat(200);
    let mut expected = Vec::new();
    for txn in 0..6 {
        let vals: Vec<String> = (0..4).map(|i| format!("t{txn}-{i}-{pad}")).collect();
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        rdkafka::producer::Producer::begin_transaction(&p).unwrap();
        send(&p, &topic, 0, &refs);
        if txn % 2 == 0 {
            rdkafka::producer::Producer::flush(&p, T).unwrap();
            rdkafka::producer::Producer::abort_transaction(&p, T).unwrap();
        } else {
            rdkafka::producer::Producer::commit_transaction(&p, T).unwrap();
            expected.extend(vals);
        }
    }
    drop(p);
    let committed = |broker: &TestBroker| {
        let bootstrap = broker.bootstrap_servers();
        read_all(&bootstrap, &topic, 0, "read_committed")
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
    };
    assert_eq!(committed(&broker), expected);
    let partition_dir = broker.data_dir().join(format!("{topic}-0"));
    let count = |ext: &str| {
        std::fs::read_dir(&partition_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    };
    assert!(count("log") > 3, "expected several segments");
    assert!(
        count("txnindex") >= 2,
        "aborted ranges are indexed per segment"
    );

    broker.restart();
    assert_eq!(committed(&broker), expected);

    // Losing the index files (and the snapshot) loses nothing: the log is replayed.
    broker.stop();
    for e in std::fs::read_dir(&partition_dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "txnindex")
            || path.ends_with("producer-state.json")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    broker.start_again();
    assert_eq!(committed(&broker), expected);

    // Retention drops the first transactions' segments, and their ranges with them.
    let part = broker.state().topics.partition(&topic, 0).unwrap();
    let all = part.aborted_txns(0, i64::MAX);
    assert_eq!(all.len(), 3);
    let start = part
        .log()
        .delete_records_before(all[1].first_offset)
        .unwrap();
    let left = part.aborted_txns(start, i64::MAX);
    assert!(left.len() < 3 && !left.is_empty(), "{left:?}");
    let tail: Vec<String> = expected
        .iter()
        .filter(|v| !v.starts_with("t1-"))
        .cloned()
        .collect();
    let seen = committed(&broker);
    assert!(
        seen.ends_with(&tail[tail.len() - 8..]),
        "{} records after retention",
        seen.len()
    );
    assert!(seen
        .iter()
        .all(|v| !v.starts_with("t2-") && !v.starts_with("t4-")));
}

#[test]
fn producer_state_comes_back_from_its_snapshot() {
    let mut broker = TestBroker::start();
    let topic = random_topic("txn-snapshot");
    broker.create_topic(&topic, 1);
    let tid = random_topic("tid");
    let (pid, epoch) = {
        let mut c = RawClient::connect(broker.local_addr());
        let mut t = Txn::init(&mut c, &tid);
        let epoch = t.epoch;
        assert_eq!(t.add_partition(&topic, 0), 0);
        assert_eq!(t.produce(&topic, 0, &["a", "b"], epoch, 0), (0, 0));
        assert_eq!(t.end(true), 0);
        (t.pid, epoch)
    };
    broker.stop();
    let snapshot = broker
        .data_dir()
        .join(format!("{topic}-0/producer-state.json"));
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&snapshot).expect("snapshot written on shutdown"))
            .unwrap();
    assert_eq!(doc["offset"], 3, "the snapshot covers the whole log");
    // A producer only the snapshot knows: it can only come back if the snapshot is read.
    let producers = doc["producers"]["producers"].as_object_mut().unwrap();
    let mut ghost = producers[&pid.to_string()].clone();
    ghost["epoch"] = serde_json::json!(7);
    producers.insert("424242".into(), ghost);
    std::fs::write(&snapshot, serde_json::to_vec(&doc).unwrap()).unwrap();

    broker.start_again();
    let part = broker.state().topics.partition(&topic, 0).unwrap();
    let ids: Vec<(i64, i16)> = part
        .producers()
        .iter()
        .map(|p| (p.producer_id, p.epoch))
        .collect();
    assert!(ids.contains(&(pid, epoch)), "{ids:?}");
    assert!(ids.contains(&(424_242, 7)), "{ids:?}");
}

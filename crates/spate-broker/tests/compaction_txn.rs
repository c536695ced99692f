//! Compaction with transactions: a compacted topic gets a committed transaction, an aborted one
//! over the same keys and a second committed one over half of them, then non-transactional
//! records that push all of it out of the active segment. After cleaning, neither a
//! read_committed nor a read_uncommitted consumer ever sees an aborted record (the cleaner
//! dropped them), and committed records are compacted like any others: each key keeps its
//! latest committed value. A second cleaning past the markers' delete horizon removes the ABORT
//! marker and with it the aborted transaction's entry in the transaction index: an entry left
//! without its marker would make a read_committed consumer skip the same producer's later,
//! committed transaction (it skips a producer's batches until it reads the ABORT marker).

mod txn_support;

use rdkafka::producer::{BaseProducer, Producer};
use spate_broker::BrokerConfig;
use spate_testkit::clients::producer_config;
use spate_testkit::produce::{send_keyed, Keyed};
use spate_testkit::{random_topic, TestBroker};
use txn_support::{read_all, txn_producer, T};

fn updates(prefix: &str, keys: std::ops::Range<usize>) -> Vec<Keyed> {
    keys.map(|k| (format!("k{k:02}"), Some(format!("{prefix}-k{k:02}"))))
        .collect()
}

#[test]
fn aborted_records_never_come_back_and_committed_ones_compact() {
    let mut config = BrokerConfig::default();
    // Cleaned on demand below, so the test controls when.
    config.set("log.cleaner.enable", "false").unwrap();
    let broker = TestBroker::start_with(config);
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("compact-txn");
    broker.create_topic_with(
        &topic,
        1,
        &[("cleanup.policy", "compact"), ("segment.bytes", "4096")],
    );

    let p = txn_producer(&bootstrap, &random_topic("txn-id"), 30_000);
    p.begin_transaction().unwrap();
    send_keyed(&p, &topic, &updates("c1", 0..50));
    p.commit_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send_keyed(&p, &topic, &updates("aborted", 0..50));
    p.flush(T).unwrap(); // the aborted records are in the log before the abort
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send_keyed(&p, &topic, &updates("c2", 0..25));
    p.commit_transaction(T).unwrap();

    let plain: BaseProducer = producer_config(&bootstrap)
        .set("batch.size", "900")
        .create()
        .unwrap();
    let fillers: Vec<_> = (0..60)
        .map(|i| (format!("filler{i}"), Some("f".repeat(150))))
        .collect();
    send_keyed(&plain, &topic, &fillers);
    plain.flush(T).unwrap();

    let partition = broker.state().topics.partition(&topic, 0).unwrap();
    let before_uncommitted = read_all(&bootstrap, &topic, 0, "read_uncommitted");
    assert!(before_uncommitted
        .iter()
        .any(|(_, v)| v.starts_with("aborted")));
    let passes = broker
        .state()
        .cleaner
        .clean_now(&partition, spate_broker::time::now_ms())
        .unwrap();
    assert!(
        !passes.is_empty() && passes[0].segments_replaced > 0,
        "{passes:?}"
    );

    let aborted_listed = partition.aborted_txns(0, i64::MAX).len();
    assert_eq!(aborted_listed, 1, "the kept ABORT marker's index entry");
    check_compacted(
        &bootstrap,
        &topic,
        before_uncommitted.len(),
        "first cleaning",
    );

    // Past delete.retention.ms (1 day by default) the markers go, and so does the entry.
    let day_after = spate_broker::time::now_ms() + 2 * 86_400_000;
    let passes = broker
        .state()
        .cleaner
        .clean_now(&partition, day_after)
        .unwrap();
    assert!(!passes.is_empty(), "{passes:?}");
    assert_eq!(
        partition.aborted_txns(0, i64::MAX),
        vec![],
        "an aborted transaction listed without its marker"
    );
    check_compacted(
        &bootstrap,
        &topic,
        before_uncommitted.len(),
        "markers removed",
    );
}

/// Both isolation levels see each key's latest committed value and nothing aborted.
fn check_compacted(bootstrap: &str, topic: &str, before: usize, when: &str) {
    for isolation in ["read_committed", "read_uncommitted"] {
        let got = read_all(bootstrap, topic, 0, isolation);
        let values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert!(
            !values.iter().any(|v| v.starts_with("aborted")),
            "{isolation}: aborted records came back: {values:?}"
        );
        for k in 0..50 {
            let latest = if k < 25 { "c2" } else { "c1" };
            assert!(
                values.contains(&format!("{latest}-k{k:02}").as_str()),
                "{isolation}: k{k:02}"
            );
        }
        for k in 0..25 {
            assert!(
                !values.contains(&format!("c1-k{k:02}").as_str()),
                "{isolation}: c1-k{k:02} was not compacted away"
            );
        }
        println!(
            "{when}, {isolation}: {before} records before cleaning, {} after",
            got.len()
        );
    }
}

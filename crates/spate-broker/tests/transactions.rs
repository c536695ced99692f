//! Kafka transactions with a real transactional producer (librdkafka): commit and abort as
//! read_committed and read_uncommitted consumers see them, offsets across markers, the last
//! stable offset holding back an open transaction, zombie fencing, coordinator-side timeouts,
//! and `send_offsets_to_transaction` becoming visible only on commit.

mod txn_support;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use spate_broker::BrokerConfig;
use spate_testkit::clients::{consumer_config, produce_to_partition};
use spate_testkit::{random_group, random_topic, TestBroker};
use txn_support::{read_all, send, txn_producer, values, T};

#[test]
fn commit_and_abort_as_each_isolation_level_sees_them() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("txn-basic");
    broker.create_topic(&topic, 1);
    let p = txn_producer(&bootstrap, &random_topic("tid"), 60_000);

    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &["c1", "c2", "c3"]);
    p.commit_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &["a1", "a2"]);
    p.flush(T).unwrap();
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &["c4"]);
    p.commit_transaction(T).unwrap();

    let committed = read_all(&bootstrap, &topic, 0, "read_committed");
    let all = read_all(&bootstrap, &topic, 0, "read_uncommitted");
    println!("read_committed: {committed:?}\nread_uncommitted: {all:?}");
    assert_eq!(values(&committed), ["c1", "c2", "c3", "c4"]);
    assert_eq!(values(&all), ["c1", "c2", "c3", "a1", "a2", "c4"]);
    // Each marker takes one offset: c1..c3, COMMIT, a1 a2, ABORT, c4, COMMIT.
    let offsets: Vec<i64> = all.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [0, 1, 2, 4, 5, 7]);
    // Offsets continue after the last marker for a plain producer too.
    produce_to_partition(&bootstrap, &topic, 0, [(None, "plain".to_string())]);
    let after = read_all(&bootstrap, &topic, 0, "read_committed");
    assert_eq!(after.last().unwrap(), &(9, "plain".to_string()));
}

#[test]
fn an_open_transaction_holds_back_read_committed_consumers() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("txn-lso");
    broker.create_topic(&topic, 1);
    produce_to_partition(&bootstrap, &topic, 0, [(None, "before".to_string())]);
    let p = txn_producer(&bootstrap, &random_topic("tid"), 60_000);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &["open1", "open2"]);
    p.flush(T).unwrap();
    // A plain record after the open transaction's data is held back with it.
    produce_to_partition(&bootstrap, &topic, 0, [(None, "after".to_string())]);

    assert_eq!(
        values(&read_all(&bootstrap, &topic, 0, "read_committed")),
        ["before"]
    );
    assert_eq!(
        values(&read_all(&bootstrap, &topic, 0, "read_uncommitted")),
        ["before", "open1", "open2", "after"]
    );
    let partition = broker.state().topics.partition(&topic, 0).unwrap();
    assert_eq!(partition.last_stable_offset(), 1);
    assert_eq!(partition.high_watermark(), 4);

    p.commit_transaction(T).unwrap();
    assert_eq!(
        values(&read_all(&bootstrap, &topic, 0, "read_committed")),
        ["before", "open1", "open2", "after"]
    );
    assert_eq!(partition.last_stable_offset(), partition.high_watermark());
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("txn-zombie");
    broker.create_topic(&topic, 1);
    let tid = random_topic("tid");
    let zombie = txn_producer(&bootstrap, &tid, 60_000);
    zombie.begin_transaction().unwrap();
    send(&zombie, &topic, 0, &["zombie"]);
    zombie.flush(T).unwrap();

    // The new instance aborts the zombie's open transaction and bumps the epoch.
    let fresh = txn_producer(&bootstrap, &tid, 60_000);
    fresh.begin_transaction().unwrap();
    send(&fresh, &topic, 0, &["fresh"]);
    fresh.commit_transaction(T).unwrap();

    let err = zombie
        .commit_transaction(T)
        .expect_err("the zombie must be fenced");
    println!("zombie commit: {err}");
    assert!(
        err.rdkafka_error_code().is_some_and(|c| matches!(
            c,
            rdkafka::types::RDKafkaErrorCode::ProducerFenced
                | rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch
        )) || err.to_string().to_lowercase().contains("fenced"),
        "unexpected error: {err}"
    );
    assert_eq!(
        values(&read_all(&bootstrap, &topic, 0, "read_committed")),
        ["fresh"]
    );
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let mut config = BrokerConfig::default();
    config
        .set(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "100",
        )
        .unwrap();
    let broker = TestBroker::start_with(config);
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("txn-timeout");
    broker.create_topic(&topic, 1);
    let p = txn_producer(&bootstrap, &random_topic("tid"), 1_000);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &["late"]);
    p.flush(T).unwrap();
    let partition = broker.state().topics.partition(&topic, 0).unwrap();
    assert_eq!(partition.last_stable_offset(), 0);

    // The coordinator aborts it: the LSO moves past the abort marker without the producer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition.last_stable_offset() < 2 {
        assert!(
            Instant::now() < deadline,
            "the timed-out transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = p
        .commit_transaction(T)
        .expect_err("the late producer must be fenced");
    println!("late commit: {err}");
    assert!(values(&read_all(&bootstrap, &topic, 0, "read_committed")).is_empty());
    assert_eq!(
        values(&read_all(&bootstrap, &topic, 0, "read_uncommitted")),
        ["late"]
    );
}

#[test]
fn an_invalid_transaction_timeout_is_refused() {
    let broker = TestBroker::start();
    let p: rdkafka::producer::BaseProducer =
        spate_testkit::clients::producer_config(&broker.bootstrap_servers())
            .set("transactional.id", random_topic("tid"))
            .set("transaction.timeout.ms", "900001")
            .create()
            .unwrap();
    let err = p
        .init_transactions(T)
        .expect_err("above transaction.max.timeout.ms");
    println!("init: {err}");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::InvalidTransactionTimeout)
    );
}

fn committed_offset(bootstrap: &str, group: &str, topic: &str) -> Offset {
    // read_uncommitted: librdkafka asks for stable offsets only under read_committed.
    let c: BaseConsumer = consumer_config(bootstrap, group)
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, T).unwrap();
    got.find_partition(topic, 0).unwrap().offset()
}

#[test]
fn offsets_sent_to_a_transaction_are_visible_only_after_commit() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let input = random_topic("txn-in");
    let output = random_topic("txn-out");
    broker.create_topic(&input, 1);
    broker.create_topic(&output, 1);
    let group = random_group("txn-group");
    let metadata_source: BaseConsumer = consumer_config(&bootstrap, &group).create().unwrap();
    let group_metadata = metadata_source.group_metadata().unwrap();
    let p = txn_producer(&bootstrap, &random_topic("tid"), 60_000);

    let offsets = |o: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&input, 0, Offset::Offset(o))
            .unwrap();
        tpl
    };
    p.begin_transaction().unwrap();
    send(&p, &output, 0, &["x"]);
    p.send_offsets_to_transaction(&offsets(5), &group_metadata, T)
        .unwrap();
    assert_eq!(
        committed_offset(&bootstrap, &group, &input),
        Offset::Invalid
    );
    p.commit_transaction(T).unwrap();
    assert_eq!(
        committed_offset(&bootstrap, &group, &input),
        Offset::Offset(5)
    );

    p.begin_transaction().unwrap();
    send(&p, &output, 0, &["y"]);
    p.send_offsets_to_transaction(&offsets(9), &group_metadata, T)
        .unwrap();
    p.flush(T).unwrap();
    p.abort_transaction(T).unwrap();
    assert_eq!(
        committed_offset(&bootstrap, &group, &input),
        Offset::Offset(5)
    );
    assert_eq!(
        values(&read_all(&bootstrap, &output, 0, "read_committed")),
        ["x"]
    );
}

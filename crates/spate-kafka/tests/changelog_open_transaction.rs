//! A changelog restore that starts while a transaction is still open on the partition — a task's
//! previous owner whose last batch is committing — waits for it to end: the restored state holds
//! that batch's changes when the transaction commits, and not when it aborts. (Reading only to
//! the last stable offset at the start lost the batch: its input offsets, committed in the same
//! transaction, said it was done.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_kafka::changelog::KafkaChangelog;
use spate_kafka::KafkaParams;
use spate_streaming::state::changelog::StateChangelog;
use spate_testkit::{clients, random_group, TestBroker};

/// How long the transaction stays open after the restore started.
const OPEN_FOR: Duration = Duration::from_millis(400);

fn transactional_producer(bootstrap: &str, id: &str) -> BaseProducer {
    let producer: BaseProducer = clients::producer_config(bootstrap)
        .set("transactional.id", id)
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(10))
        .expect("init_transactions");
    producer
}

fn send(producer: &BaseProducer, topic: &str, key: &str, value: &str) {
    producer
        .send(BaseRecord::to(topic).partition(0).key(key).payload(value))
        .expect("send");
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// Restores partition 0 of `changelog`'s "totals" while a transaction that wrote `b` is open,
/// ending it (commit or abort) `OPEN_FOR` later; returns the restored entries and how long the
/// restore took.
fn restore_across_open_transaction(commit: bool) -> (BTreeMap<String, String>, Duration) {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let app = random_group("open-txn");
    let changelog = KafkaChangelog::new(
        KafkaParams::new()
            .set("bootstrap.servers", bootstrap.as_str())
            .set("group.id", app.as_str()),
    )
    .expect("changelog");
    changelog.open("totals", 1).expect("open");
    let topic = changelog.topic("totals").expect("topic");

    let producer = transactional_producer(&bootstrap, &format!("{app}-owner"));
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, "a", "1");
    producer
        .commit_transaction(Duration::from_secs(10))
        .expect("commit");
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, "b", "2");

    let ender = std::thread::spawn(move || {
        std::thread::sleep(OPEN_FOR);
        if commit {
            producer.commit_transaction(Duration::from_secs(10))
        } else {
            producer.abort_transaction(Duration::from_secs(10))
        }
        .expect("end the transaction");
    });
    let started = Instant::now();
    let mut restored = BTreeMap::new();
    changelog
        .restore("totals", 0, &mut |_| {}, &mut |key, value| {
            restored.insert(
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(value.unwrap_or_default()).into_owned(),
            );
            Ok(())
        })
        .expect("restore");
    let took = started.elapsed();
    ender.join().unwrap();
    broker.shutdown();
    (restored, took)
}

#[test]
fn a_transaction_committing_during_the_restore_is_restored() {
    let (restored, took) = restore_across_open_transaction(true);
    println!("restored {restored:?} in {took:?}");
    assert_eq!(
        restored,
        BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
    );
    assert!(took >= OPEN_FOR / 2, "the restore waited for the commit");
}

#[test]
fn a_transaction_aborting_during_the_restore_is_left_out() {
    let (restored, took) = restore_across_open_transaction(false);
    println!("restored {restored:?} in {took:?}");
    assert_eq!(restored, BTreeMap::from([("a".into(), "1".into())]));
    assert!(took >= OPEN_FOR / 2, "the restore waited for the abort");
}

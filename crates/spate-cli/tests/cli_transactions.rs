//! `spate transactions list|describe|describe-producers` against the embedded broker while a
//! real librdkafka transactional producer holds a transaction open, then after it commits.

mod common;

use std::time::Duration;

use common::spate;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use spate_testkit::{random_topic, TestBroker};

/// The data row of a two-line table whose first column is `key`.
fn row_of(table: &str, key: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no row for {key:?} in:\n{table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn transactions_are_listed_and_described() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_txn");
    spate(&[
        "topics",
        "create",
        &topic,
        "--partitions",
        "2",
        "--bootstrap-server",
        &bs,
    ])
    .success("create topic");
    let txn_id = random_topic("cli_txn_id");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("transactional.id", &txn_id)
        .set("transaction.timeout.ms", "30000")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(20);
    producer.init_transactions(timeout).expect("init");
    producer.begin_transaction().expect("begin");
    producer
        .send(BaseRecord::<(), str>::to(&topic).partition(1).payload("x"))
        .expect("send");
    producer.flush(timeout).expect("flush");

    let list = spate(&["transactions", "--bootstrap-server", &bs, "list"]).success("list");
    assert!(
        list.stdout.starts_with("TransactionalId"),
        "{}",
        list.stdout
    );
    let row = row_of(&list.stdout, &txn_id);
    assert_eq!(row[2], "Ongoing", "{}", list.stdout);
    let producer_id = row[1].clone();

    let args = [
        "transactions",
        "--bootstrap-server",
        &bs,
        "describe",
        "--transactional-id",
        &txn_id,
    ];
    let described = spate(&args).success("describe");
    let row = row_of(&described.stdout, &txn_id);
    assert_eq!(row[1], producer_id);
    assert_eq!(row[3], "Ongoing");
    assert_eq!(row[4], "30000");
    assert_eq!(row.last().unwrap(), &format!("{topic}-1"));

    let args = [
        "transactions",
        "--bootstrap-server",
        &bs,
        "describe-producers",
        "--topic",
        &topic,
        "--partition",
        "1",
    ];
    let producers = spate(&args).success("describe-producers");
    let row = row_of(&producers.stdout, &producer_id);
    assert_eq!(
        row.last().unwrap(),
        "0",
        "open transaction starts at offset 0:\n{}",
        producers.stdout
    );

    producer.commit_transaction(timeout).expect("commit");
    let list = spate(&["transactions", "--bootstrap-server", &bs, "list"]).success("list");
    assert_eq!(
        row_of(&list.stdout, &txn_id)[2],
        "CompleteCommit",
        "{}",
        list.stdout
    );
    let producers = spate(&args).success("describe-producers");
    assert_eq!(
        row_of(&producers.stdout, &producer_id).last().unwrap(),
        "None"
    );

    spate(&[
        "transactions",
        "--bootstrap-server",
        &bs,
        "describe",
        "--transactional-id",
        "nope",
    ])
    .failure("describe unknown id", "TransactionalIdNotFound");
}

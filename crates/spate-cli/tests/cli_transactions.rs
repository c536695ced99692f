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

/// Every value a consumer at `isolation` reads from partition 0 of `topic`, to its end.
fn read_values(bs: &str, topic: &str, isolation: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer =
        spate_testkit::clients::consumer_config(bs, &spate_testkit::random_group("abort"))
            .set("isolation.level", isolation)
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} not read to its end"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return values,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
}

#[test]
fn a_hanging_transaction_is_aborted_from_the_command_line() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_abort");
    broker.create_topic(&topic, 1);
    // A transactional producer writes and then hangs (never commits, aborts or writes again);
    // its transaction would stall read_committed readers for the whole 10-minute timeout.
    let hanging: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("transactional.id", random_topic("cli_abort_id"))
        .set("transaction.timeout.ms", "600000")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(20);
    hanging.init_transactions(timeout).expect("init");
    hanging.begin_transaction().expect("begin");
    for v in ["h1", "h2", "h3"] {
        hanging
            .send(BaseRecord::<(), str>::to(&topic).partition(0).payload(v))
            .expect("send");
    }
    hanging.flush(timeout).expect("flush");
    spate_testkit::produce::produce(
        &bs,
        &topic,
        ["after1", "after2"].map(|v| (0, None, v.to_owned())),
    );
    assert_eq!(
        read_values(&bs, &topic, "read_committed"),
        Vec::<String>::new()
    );

    let abort = |extra: &[&str]| {
        let mut args = vec![
            "transactions",
            "--bootstrap-server",
            &bs,
            "abort",
            "--topic",
            &topic,
            "--partition",
            "0",
        ];
        args.extend_from_slice(extra);
        spate(&args)
    };
    abort(&["--start-offset", "1"]).failure(
        "abort at a wrong offset",
        "could not find any open transactions starting at offset 1",
    );
    abort(&["--producer-id", "7"]).failure("abort without epochs", "--producer-epoch");
    let done = abort(&["--start-offset", "0"]).success("abort");
    assert!(
        done.stdout.contains("aborted the transaction of producer"),
        "{}",
        done.stdout
    );

    assert_eq!(
        read_values(&bs, &topic, "read_committed"),
        vec!["after1", "after2"],
        "the aborted records are skipped and the LSO moved past them"
    );
    assert_eq!(read_values(&bs, &topic, "read_uncommitted").len(), 5);
    let producers = spate(&[
        "transactions",
        "--bootstrap-server",
        &bs,
        "describe-producers",
        "--topic",
        &topic,
        "--partition",
        "0",
    ])
    .success("describe-producers");
    assert!(
        !producers
            .stdout
            .lines()
            .skip(1)
            .any(|l| !l.ends_with("None")),
        "no open transaction left:\n{}",
        producers.stdout
    );
    drop(hanging);
}

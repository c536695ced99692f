//! A broker restart (clean shutdown, same data directory) keeps every acknowledged record, the
//! topics with their ids and configs, and the idempotent producer state; producer ids are not
//! reused.

mod raw_client;

use std::time::{Duration, Instant};

use kafka_protocol::messages::InitProducerIdRequest;
use raw_client::RawClient;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_testkit::clients::{admin_config, consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

/// Sends `r{i}` for each `i` in `range` to partition `i % 2` and waits for the acknowledgements.
fn produce(producer: &BaseProducer, topic: &str, range: std::ops::Range<u32>) {
    let records = range.map(|i| ((i % 2) as i32, None, format!("r{i}")));
    spate_testkit::produce::send_all(producer, topic, records);
}
fn consume(bootstrap: &str, topic: &str, expected: usize) -> Vec<(i32, i64, String)> {
    let consumer: BaseConsumer = consumer_config(bootstrap, &random_group("restart"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset(topic, 1, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < expected {
        assert!(
            Instant::now() < deadline,
            "read {} of {expected}",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            got.push((m.partition(), m.offset(), v));
        }
    }
    assert!(
        consumer.poll(Duration::from_millis(300)).is_none(),
        "more records than produced"
    );
    got.sort();
    got
}

fn expected(n: u32) -> Vec<(i32, i64, String)> {
    let mut v: Vec<_> = (0..n)
        .map(|i| ((i % 2) as i32, (i / 2) as i64, format!("r{i}")))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_topics_records_and_producer_state() {
    spate_testkit::init_logging();
    let mut broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("restart");
    let admin: AdminClient<DefaultClientContext> = admin_config(&bootstrap).create().unwrap();
    admin
        .create_topics(
            &[
                NewTopic::new(&topic, 2, TopicReplication::Fixed(1))
                    .set("retention.ms", "86400000"),
            ],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let id = broker.state().topics.get(&topic).unwrap().id;

    // An idempotent producer that lives across the restart.
    let producer: BaseProducer = producer_config(&bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    produce(&producer, &topic, 0..1000);
    let mut raw = RawClient::connect(broker.local_addr());
    let pid_before = raw
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(1000),
            4,
        )
        .producer_id
        .0;
    drop(raw);

    tokio::task::block_in_place(|| broker.restart());
    assert_eq!(
        broker.bootstrap_servers(),
        bootstrap,
        "restart reuses the port"
    );

    // The same producer keeps going: its sequence state survived, so nothing is rejected or
    // duplicated.
    tokio::task::block_in_place(|| produce(&producer, &topic, 1000..1500));
    let got = tokio::task::block_in_place(|| consume(&bootstrap, &topic, 1500));
    assert_eq!(got, expected(1500));

    let topic_state = broker.state().topics.get(&topic).unwrap();
    assert_eq!(topic_state.id, id, "topic id survives");
    assert_eq!(topic_state.partition_count(), 2);
    let admin: AdminClient<DefaultClientContext> = admin_config(&bootstrap).create().unwrap();
    let cfg = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        cfg.get("retention.ms").unwrap().value.as_deref(),
        Some("86400000")
    );

    let mut raw = RawClient::connect(broker.local_addr());
    let pid_after = raw
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(1000),
            4,
        )
        .producer_id
        .0;
    assert!(
        pid_after > pid_before,
        "producer ids are not reused ({pid_before} then {pid_after})"
    );
}

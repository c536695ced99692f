//! The test kit's broker: starts on a free port, creates topics, survives restarts with its
//! data directory, and serves rdkafka clients built from the kit's configs.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_testkit::clients::consumer_config;
use spate_testkit::{random_group, random_topic, TestBroker};

fn produce_one(bootstrap: &str, topic: &str, value: &str) {
    spate_testkit::produce::produce(bootstrap, topic, [(0, None, value.to_owned())]);
}

fn read_all(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    let c: BaseConsumer = consumer_config(bootstrap, &random_group("kit"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    for _ in 0..200 {
        if out.len() == n {
            break;
        }
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            out.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn restart_keeps_data_and_port() {
    let mut broker = TestBroker::start();
    let topic = random_topic("kit");
    broker.create_topic(&topic, 1);
    let bootstrap = broker.bootstrap_servers();
    produce_one(&bootstrap, &topic, "before");
    broker.restart();
    assert_eq!(broker.bootstrap_servers(), bootstrap);
    produce_one(&bootstrap, &topic, "after");
    assert_eq!(read_all(&bootstrap, &topic, 2), ["before", "after"]);
    assert!(broker.data_dir().join("meta/topics.json").exists());
}

#[test]
fn in_memory_broker_starts_empty_after_restart() {
    let mut broker = TestBroker::in_memory();
    let topic = random_topic("mem");
    broker.create_topic(&topic, 2);
    assert_eq!(
        broker.state().topics.get(&topic).unwrap().partition_count(),
        2
    );
    let bootstrap = broker.bootstrap_servers();
    produce_one(&bootstrap, &topic, "x");
    broker.restart();
    // The topic list is kept in the data dir, but in-memory logs are not.
    let p = broker.state().topics.partition(&topic, 0).unwrap();
    assert_eq!(p.log().log_end_offset(), 0);
}

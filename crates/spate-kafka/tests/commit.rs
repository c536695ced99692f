//! `commit_async` against the broker's group coordinator: offsets become visible to any client
//! reading the group's committed offsets (lag tools), callbacks report the outcome.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use spate_kafka::{
    CanCommitOffsets, DirectStreamConfig, KafkaParams, OffsetCommitter, OffsetRange,
};
use spate_testkit::{clients, TestBroker};

use common::*;

fn committed(broker: &TestBroker, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let c: BaseConsumer = clients::consumer_config(&broker.bootstrap_servers(), group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

#[test]
fn committed_ranges_are_visible_to_the_group_and_merged_by_max_until() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "commit", 3);
    for p in 0..3 {
        produce(&broker, &topic, p, 0, 30);
    }
    let params = params(&broker);
    let group = params.group_id().unwrap().to_owned();
    let committer = OffsetCommitter::new(&params, &DirectStreamConfig::default()).unwrap();
    assert_eq!(
        committed(&broker, &group, &topic, 3),
        vec![None, None, None]
    );

    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    committer.commit_async_with(
        &[
            OffsetRange::create(&topic, 0, 0, 10),
            OffsetRange::create(&topic, 1, 0, 4),
        ],
        move |r| {
            tx.send(r.as_ref().map(|m| m.len()).map_err(|e| e.to_string()))
                .unwrap();
        },
    );
    CanCommitOffsets::commit_async(
        &committer,
        &[
            OffsetRange::create(&topic, 0, 10, 25),
            OffsetRange::create(&topic, 0, 5, 12),
        ],
        Some(Box::new(move |r| {
            tx2.send(r.as_ref().map(|m| m.len()).map_err(|e| e.to_string()))
                .unwrap();
        })),
    );
    for _ in 0..2 {
        assert!(rx.recv_timeout(Duration::from_secs(20)).unwrap().is_ok());
    }
    assert_eq!(
        committed(&broker, &group, &topic, 3),
        vec![Some(25), Some(4), None]
    );
}

#[test]
fn commit_without_a_group_is_a_configuration_error() {
    let broker = TestBroker::start();
    let params = KafkaParams::new().set("bootstrap.servers", broker.bootstrap_servers());
    let err = OffsetCommitter::new(&params, &DirectStreamConfig::default()).unwrap_err();
    assert!(err.to_string().contains("group.id"), "{err}");
}

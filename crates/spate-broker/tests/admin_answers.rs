//! The admin answers Kafka gives, checked with rdkafka and with kafka-python (a client not
//! built on librdkafka), plus the raw protocol where neither client exposes the request:
//! ListOffsets MAX_TIMESTAMP, dynamic broker configs, group configs and authorized operations.

mod python_support;
mod raw_client;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use raw_client::{record_batch, RawClient};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;
use spate_testkit::{random_group, random_topic, TestBroker};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn produce_one_batch(c: &mut RawClient, topic: &str, records: Bytes) -> i64 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = c.call(&req, 9);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

/// Three records in one batch, the middle one newest: MAX_TIMESTAMP names the middle record
/// (Kafka's `offsetOfMaxTimestamp`), not the batch's last offset — over the raw protocol, with
/// rdkafka and with kafka-python.
#[test]
fn list_offsets_max_timestamp_names_the_newest_record() {
    let broker = TestBroker::start();
    let topic = random_topic("maxts");
    let mut c = RawClient::connect(broker.local_addr());
    // An older batch first, so the answer is not offset 0 or the log end by accident.
    produce_one_batch(
        &mut c,
        &topic,
        record_batch(&[(None, Some("old"), 500)], -1, -1, -1),
    );
    let base = produce_one_batch(
        &mut c,
        &topic,
        record_batch(
            &[
                (None, Some("a"), 1000),
                (None, Some("b"), 3000),
                (None, Some("c"), 2000),
            ],
            -1,
            -1,
            -1,
        ),
    );
    produce_one_batch(
        &mut c,
        &topic,
        record_batch(&[(None, Some("new"), 2500)], -1, -1, -1),
    );
    let expected = (base + 1, 3000);

    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(&topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-3)])]);
    let raw = c.call(&req, 7);
    let p = &raw.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.offset, p.timestamp),
        (0, expected.0, expected.1)
    );

    let consumer: BaseConsumer = spate_testkit::clients::consumer_config(
        &broker.bootstrap_servers(),
        &random_group("maxts"),
    )
    .create()
    .unwrap();
    // The Rust wrapper refuses negative offsets, so the MAX_TIMESTAMP spec (-3) is written
    // straight into librdkafka's list; librdkafka sends it as ListOffsets' timestamp.
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    // SAFETY: the list holds exactly the one element just added.
    #[allow(unsafe_code)]
    unsafe {
        (*(*tpl.ptr()).elems).offset = -3
    };
    let got = consumer
        .offsets_for_times(tpl, Duration::from_secs(20))
        .unwrap();
    let rdkafka_offset = got.elements()[0].offset();
    assert_eq!(rdkafka_offset, Offset::Offset(expected.0), "rdkafka");

    let py = python_support::admin(&["max-timestamp", &broker.bootstrap_servers(), &topic]);
    assert_eq!(py[0]["offset"], expected.0, "kafka-python: {py:?}");
    assert_eq!(py[0]["timestamp"], expected.1, "kafka-python: {py:?}");
    println!(
        "MAX_TIMESTAMP of a batch with timestamps [1000, 3000, 2000] at base {base}: raw, rdkafka \
         and kafka-python all answer offset {} (timestamp {})",
        expected.0, expected.1
    );
}

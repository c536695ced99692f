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

type Admin = rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>;

fn admin_client(broker: &TestBroker) -> Admin {
    spate_testkit::clients::admin_config(&broker.bootstrap_servers())
        .create()
        .unwrap()
}

fn opts() -> rdkafka::admin::AdminOptions {
    rdkafka::admin::AdminOptions::new().request_timeout(Some(Duration::from_secs(20)))
}

/// DescribeConfigs v4 with synonyms over the raw protocol: `(error, entries)`.
fn raw_describe(
    c: &mut RawClient,
    resource_type: i8,
    name: &str,
) -> (
    i16,
    Vec<kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult>,
) {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let mut resp = c.call(&req, 4);
    let r = resp.results.remove(0);
    (r.error_code, r.configs)
}

/// `(value, source, synonyms as (value, source))` of `key` in described entries.
fn entry_of(
    entries: &[kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult],
    key: &str,
) -> (String, i8, Vec<(String, i8)>) {
    let e = entries
        .iter()
        .find(|e| e.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (
        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.config_source,
        e.synonyms
            .iter()
            .map(|s| {
                (
                    s.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    s.source,
                )
            })
            .collect(),
    )
}

/// IncrementalAlterConfigs over the raw protocol: the resource's error code.
fn raw_incremental(c: &mut RawClient, resource_type: i8, name: &str, set: &[(&str, &str)]) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                set.iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(0)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    c.call(&req, 1).responses[0].error_code
}

const BROKER: i8 = 4;
const GROUP: i8 = 32;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT_BROKER: i8 = 3;
const STATIC_BROKER: i8 = 4;
const DEFAULT: i8 = 5;
const GROUP_CONFIG: i8 = 8;
const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;

/// Produces one record of `size` bytes; the broker's answer.
async fn produce_sized(broker: &TestBroker, topic: &str, size: usize) -> Result<(), String> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p: FutureProducer = spate_testkit::clients::producer_config(&broker.bootstrap_servers())
        .create()
        .unwrap();
    let value = vec![b'x'; size];
    p.send(
        FutureRecord::<(), _>::to(topic).payload(&value),
        Duration::from_secs(20),
    )
    .await
    .map(|_| ())
    .map_err(|(e, _)| e.to_string())
}

/// Dynamic broker configs: rdkafka's AlterConfigs on broker 0 applies at once (a larger record
/// is refused, a topic shows the new retention as DYNAMIC_BROKER_CONFIG); a read-only key is
/// INVALID_REQUEST; a cluster default (`""`) sits between per-broker and static values with
/// the synonyms in Kafka's order; kafka-python's IncrementalAlterConfigs SET/DELETE works and
/// its DescribeConfigs shows the same sources; and everything survives a restart.
#[tokio::test(flavor = "multi_thread")]
async fn dynamic_broker_configs_apply_persist_and_describe() {
    use rdkafka::admin::{AlterConfig, ConfigSource, ResourceSpecifier};
    let mut config = spate_broker::BrokerConfig::default();
    config.set("log.segment.bytes", "1048576").unwrap();
    let mut broker = TestBroker::start_with(config);
    let topic = random_topic("dyncfg");
    broker.create_topic(&topic, 1);
    let admin = admin_client(&broker);

    // rdkafka: legacy AlterConfigs on broker 0.
    let altered = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Broker(0))
                .set("message.max.bytes", "2000")
                .set("log.retention.ms", "3600000")],
            &opts(),
        )
        .await
        .unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    let refused = produce_sized(&broker, &topic, 5000).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("too large")),
        "a 5000-byte record over message.max.bytes=2000: {refused:?}"
    );
    let described = admin
        .describe_configs(&[ResourceSpecifier::Broker(0)], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let max = described.get("message.max.bytes").unwrap();
    assert_eq!(max.value.as_deref(), Some("2000"));
    assert_eq!(max.source, ConfigSource::DynamicBroker);
    assert!(!max.is_read_only);
    let segment = described.get("log.segment.bytes").unwrap();
    assert_eq!(segment.source, ConfigSource::StaticBroker);
    assert!(described.get("num.partitions").unwrap().is_read_only);
    let topic_cfg = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let retention = topic_cfg.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicBroker);

    // rdkafka: a read-only key is refused. (rust-rdkafka reports every AlterConfigs resource
    // as Ok, so the refusal shows in its effect: legacy AlterConfigs replaces the whole layer,
    // and message.max.bytes is still set afterwards; the error code is checked below with
    // kafka-python and the raw protocol.)
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Broker(0)).set("num.partitions", "7")],
            &opts(),
        )
        .await
        .unwrap();
    let after = admin
        .describe_configs(&[ResourceSpecifier::Broker(0)], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        after.get("message.max.bytes").unwrap().value.as_deref(),
        Some("2000")
    );
    assert_eq!(
        after.get("num.partitions").unwrap().value.as_deref(),
        Some("1")
    );

    // Raw protocol: the cluster default (empty name), which neither client can address.
    let mut c = RawClient::connect(broker.local_addr());
    assert_eq!(
        raw_incremental(&mut c, BROKER, "", &[("log.segment.bytes", "2097152")]),
        0
    );
    assert_eq!(
        raw_incremental(&mut c, BROKER, "7", &[("log.segment.bytes", "2097152")]),
        INVALID_REQUEST
    );
    let (err, defaults) = raw_describe(&mut c, BROKER, "");
    assert_eq!(err, 0);
    let names: Vec<&str> = defaults.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["log.segment.bytes"],
        "the default resource shows only what is set"
    );
    let (_, all) = raw_describe(&mut c, BROKER, "0");
    assert_eq!(
        entry_of(&all, "log.segment.bytes"),
        (
            "2097152".to_string(),
            DYNAMIC_DEFAULT_BROKER,
            vec![
                ("2097152".to_string(), DYNAMIC_DEFAULT_BROKER),
                ("1048576".to_string(), STATIC_BROKER),
                ("1073741824".to_string(), DEFAULT),
            ]
        )
    );

    // kafka-python: IncrementalAlterConfigs SET and DELETE, a read-only key, DescribeConfigs.
    let py = python_support::admin(&["broker-configs", &broker.bootstrap_servers()]);
    assert_eq!(py[0]["result"], "OK", "{py:?}");
    let ro = py[1]["result"].as_str().unwrap();
    assert!(
        ro.contains("InvalidRequest") && ro.contains("num.partitions"),
        "{py:?}"
    );
    let described = |key: &str| py.iter().find(|l| l["describe"] == key).unwrap().clone();
    let bytes = described("log.retention.bytes");
    assert_eq!(bytes["value"], "123456");
    assert_eq!(bytes["source"], "DYNAMIC_BROKER_CONFIG");
    assert_eq!(
        bytes["synonyms"],
        serde_json::json!([
            ["log.retention.bytes", "123456", "DYNAMIC_BROKER_CONFIG"],
            ["log.retention.bytes", "-1", "DEFAULT_CONFIG"]
        ])
    );
    assert_eq!(described("message.max.bytes")["source"], "DEFAULT_CONFIG");
    assert_eq!(described("message.max.bytes")["value"], "1048588");
    assert_eq!(
        described("log.segment.bytes")["source"],
        "DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    assert_eq!(described("num.partitions")["read_only"], true);
    // message.max.bytes is back to Kafka's default: the large record goes in now.
    produce_sized(&broker, &topic, 5000).await.unwrap();

    // Persisted: a restarted broker has the same dynamic layers.
    assert!(broker.data_dir().join("meta/broker_configs.json").exists());
    broker.restart();
    let mut c = RawClient::connect(broker.local_addr());
    let (_, all) = raw_describe(&mut c, BROKER, "0");
    assert_eq!(entry_of(&all, "log.retention.bytes").0, "123456");
    assert_eq!(entry_of(&all, "log.retention.bytes").1, DYNAMIC_BROKER);
    assert_eq!(entry_of(&all, "log.retention.ms").0, "3600000");
    assert_eq!(
        entry_of(&all, "log.segment.bytes").1,
        DYNAMIC_DEFAULT_BROKER
    );
    println!(
        "dynamic broker configs: rdkafka AlterConfigs applied at once (5000-byte record refused \
         under message.max.bytes=2000), read-only num.partitions refused (rdkafka: layer unchanged; raw and \
         kafka-python: INVALID_REQUEST), cluster default between per-broker and static with \
         3 synonyms, kafka-python SET/DELETE and sources agree, layers survive a restart"
    );
}

/// GROUP configs (Kafka 4.0): kafka-python sets a valid session timeout and heartbeat and is
/// refused an out-of-range one with INVALID_CONFIG; DescribeConfigs shows GROUP_CONFIG values
/// over Kafka's defaults; the raw protocol sees the same and the values survive a restart.
#[test]
fn group_configs_validate_persist_and_describe() {
    let mut broker = TestBroker::start();
    let group = random_group("gcfg");
    let py = python_support::admin(&["group-configs", &broker.bootstrap_servers(), &group]);
    assert_eq!(py[0]["result"], "OK", "{py:?}");
    let refused = py[1]["result"].as_str().unwrap();
    assert!(refused.contains("InvalidConfiguration"), "{py:?}");
    let described = |key: &str| py.iter().find(|l| l["describe"] == key).unwrap().clone();
    let session = described("consumer.session.timeout.ms");
    assert_eq!(session["value"], "50000");
    assert_eq!(session["source"], "DYNAMIC_GROUP_CONFIG");
    assert_eq!(
        session["synonyms"],
        serde_json::json!([
            [
                "consumer.session.timeout.ms",
                "50000",
                "DYNAMIC_GROUP_CONFIG"
            ],
            ["consumer.session.timeout.ms", "45000", "DEFAULT_CONFIG"]
        ])
    );
    assert_eq!(described("consumer.heartbeat.interval.ms")["value"], "6000");
    assert_eq!(
        described("share.record.lock.duration.ms")["source"],
        "DEFAULT_CONFIG"
    );

    let mut c = RawClient::connect(broker.local_addr());
    assert_eq!(
        raw_incremental(
            &mut c,
            GROUP,
            &group,
            &[("consumer.heartbeat.interval.ms", "20000")]
        ),
        INVALID_CONFIG
    );
    assert_eq!(
        raw_incremental(&mut c, GROUP, &group, &[("no.such.config", "1")]),
        INVALID_CONFIG
    );
    assert_eq!(
        raw_incremental(
            &mut c,
            GROUP,
            "",
            &[("consumer.session.timeout.ms", "50000")]
        ),
        INVALID_REQUEST
    );
    broker.restart();
    let mut c = RawClient::connect(broker.local_addr());
    let (err, entries) = raw_describe(&mut c, GROUP, &group);
    assert_eq!(err, 0);
    assert_eq!(entry_of(&entries, "consumer.session.timeout.ms").0, "50000");
    assert_eq!(
        entry_of(&entries, "consumer.session.timeout.ms").1,
        GROUP_CONFIG
    );
    assert_eq!(
        entry_of(&entries, "consumer.heartbeat.interval.ms").0,
        "6000"
    );
    println!(
        "group configs: kafka-python set 2 keys and was refused 1 (INVALID_CONFIG); raw refused \
         2 more (INVALID_CONFIG) and an empty group name (INVALID_REQUEST); {} keys described, \
         values kept across a restart",
        entries.len()
    );
}

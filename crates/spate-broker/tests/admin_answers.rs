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
/// over Kafka's defaults; rdkafka alters and describes the same resource; the raw protocol
/// sees the same and the values survive a restart.
#[tokio::test(flavor = "multi_thread")]
async fn group_configs_validate_persist_and_describe() {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
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

    // rdkafka (librdkafka maps its GROUP resource to config resource 32): legacy AlterConfigs
    // replaces the group's set; an out-of-range value leaves it as it was.
    let admin = admin_client(&broker);
    let group_resource = || AlterConfig::new(ResourceSpecifier::Group(&group));
    admin
        .alter_configs(
            &[group_resource()
                .set("consumer.session.timeout.ms", "50000")
                .set("consumer.heartbeat.interval.ms", "7000")],
            &opts(),
        )
        .await
        .unwrap();
    admin
        .alter_configs(
            &[group_resource().set("consumer.heartbeat.interval.ms", "99999")],
            &opts(),
        )
        .await
        .unwrap();
    // rust-rdkafka 0.39 cannot parse the GROUP_CONFIG source (8) Kafka 4.0 returns for a set
    // value ("bogus config source type"), so rdkafka describes a group with no configs set,
    // and the values rdkafka set are checked over the raw protocol.
    let fresh = random_group("gcfg-fresh");
    let described = admin
        .describe_configs(&[ResourceSpecifier::Group(&fresh)], &opts())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let heartbeat = described.get("consumer.heartbeat.interval.ms").unwrap();
    assert_eq!(heartbeat.value.as_deref(), Some("5000"));
    assert_eq!(heartbeat.source, rdkafka::admin::ConfigSource::Default);
    assert!(!heartbeat.is_read_only);
    let mut c = RawClient::connect(broker.local_addr());
    let (_, entries) = raw_describe(&mut c, GROUP, &group);
    assert_eq!(
        entry_of(&entries, "consumer.heartbeat.interval.ms").0,
        "7000"
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
        "7000"
    );
    println!(
        "group configs: kafka-python set 2 keys and was refused 1 (INVALID_CONFIG); rdkafka set them \
         (an out-of-range value left them unchanged) and described defaults; raw refused 2 more \
         (INVALID_CONFIG) and an empty group name (INVALID_REQUEST); {} keys described, values \
         kept across a restart",
        entries.len()
    );
}

/// librdkafka's DescribeCluster / DescribeTopics / DescribeConsumerGroups with
/// `include_authorized_operations`, which the Rust wrapper does not expose, called through the
/// C API: the sorted AclOperation codes each reports.
#[allow(unsafe_code)]
mod librdkafka_describe {
    use std::ffi::CString;
    use std::ptr;

    use rdkafka::bindings as rd;

    pub enum What<'a> {
        Cluster,
        Topic(&'a str),
        Group(&'a str),
    }

    fn codes(ops: *const rd::rd_kafka_AclOperation_t, n: usize) -> Vec<i32> {
        // SAFETY: librdkafka returns an array of `n` operations (or null when none).
        let mut v: Vec<i32> = (0..n).map(|i| unsafe { *ops.add(i) } as i32).collect();
        v.sort_unstable();
        v
    }

    /// The authorized operations librdkafka reports for `what`.
    pub fn authorized_operations(admin: &super::Admin, what: What<'_>) -> Vec<i32> {
        let rk = admin.inner().native_ptr();
        // SAFETY: every handle below is created here, used once and destroyed before return;
        // the result pointers are read while their event is alive.
        unsafe {
            let queue = rd::rd_kafka_queue_new(rk);
            let op = match what {
                What::Cluster => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
                What::Topic(_) => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
                What::Group(_) => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            };
            let options = rd::rd_kafka_AdminOptions_new(rk, op);
            let err = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
            assert!(err.is_null(), "include_authorized_operations refused");
            let name = CString::new(match what {
                What::Cluster => "",
                What::Topic(n) | What::Group(n) => n,
            })
            .unwrap();
            let mut names = [name.as_ptr()];
            let mut collection = ptr::null_mut();
            match what {
                What::Cluster => rd::rd_kafka_DescribeCluster(rk, options, queue),
                What::Topic(_) => {
                    collection = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
                    rd::rd_kafka_DescribeTopics(rk, collection, options, queue)
                }
                What::Group(_) => {
                    rd::rd_kafka_DescribeConsumerGroups(rk, names.as_mut_ptr(), 1, options, queue)
                }
            }
            let event = rd::rd_kafka_queue_poll(queue, 20_000);
            assert!(!event.is_null(), "no answer from librdkafka within 20 s");
            let err = rd::rd_kafka_event_error(event);
            assert_eq!(err as i32, 0, "librdkafka admin request failed");
            let mut n = 0usize;
            let ops = match what {
                What::Cluster => {
                    let r = rd::rd_kafka_event_DescribeCluster_result(event);
                    codes(
                        rd::rd_kafka_DescribeCluster_result_authorized_operations(r, &mut n),
                        n,
                    )
                }
                What::Topic(_) => {
                    let r = rd::rd_kafka_event_DescribeTopics_result(event);
                    let mut count = 0usize;
                    let topics = rd::rd_kafka_DescribeTopics_result_topics(r, &mut count);
                    assert_eq!(count, 1);
                    let t = *topics;
                    assert!(
                        rd::rd_kafka_TopicDescription_error(t).is_null(),
                        "topic error"
                    );
                    codes(
                        rd::rd_kafka_TopicDescription_authorized_operations(t, &mut n),
                        n,
                    )
                }
                What::Group(_) => {
                    let r = rd::rd_kafka_event_DescribeConsumerGroups_result(event);
                    let mut count = 0usize;
                    let groups = rd::rd_kafka_DescribeConsumerGroups_result_groups(r, &mut count);
                    assert_eq!(count, 1);
                    let g = *groups;
                    assert!(
                        rd::rd_kafka_ConsumerGroupDescription_error(g).is_null(),
                        "group error"
                    );
                    codes(
                        rd::rd_kafka_ConsumerGroupDescription_authorized_operations(g, &mut n),
                        n,
                    )
                }
            };
            rd::rd_kafka_event_destroy(event);
            if !collection.is_null() {
                rd::rd_kafka_TopicCollection_destroy(collection);
            }
            rd::rd_kafka_AdminOptions_destroy(options);
            rd::rd_kafka_queue_destroy(queue);
            ops
        }
    }
}

/// Authorized operations without an authorizer: every operation Kafka supports on the
/// resource type, from Metadata (topic), DescribeCluster and DescribeGroups — the same sets
/// through librdkafka, kafka-python and the raw protocol, never empty.
#[test]
fn authorized_operations_are_all_supported_ones() {
    use librdkafka_describe::{authorized_operations, What};
    const TOPIC_OPS: [i32; 8] = [3, 4, 5, 6, 7, 8, 10, 11];
    const CLUSTER_OPS: [i32; 7] = [5, 7, 8, 9, 10, 11, 12];
    const GROUP_OPS: [i32; 5] = [3, 6, 8, 10, 11];
    let broker = TestBroker::start();
    let topic = random_topic("authops");
    broker.create_topic(&topic, 1);
    let group = random_group("authops");
    // A group that exists: one member joined (JoinGroup v3 completes at once).
    let mut c = RawClient::connect(broker.local_addr());
    let joined = c.call(
        &JoinGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(""))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::new()),
            ]),
        3,
    );
    assert_eq!(joined.error_code, 0);

    let admin = admin_client(&broker);
    assert_eq!(
        authorized_operations(&admin, What::Cluster),
        CLUSTER_OPS,
        "librdkafka cluster"
    );
    assert_eq!(
        authorized_operations(&admin, What::Topic(&topic)),
        TOPIC_OPS,
        "librdkafka topic"
    );
    assert_eq!(
        authorized_operations(&admin, What::Group(&group)),
        GROUP_OPS,
        "librdkafka group"
    );

    let py = python_support::admin(&[
        "authorized-ops",
        &broker.bootstrap_servers(),
        &topic,
        &group,
    ]);
    let ops = |r: &str| -> Vec<i32> {
        let line = py.iter().find(|l| l["resource"] == r).unwrap();
        serde_json::from_value(line["ops"].clone()).unwrap_or_else(|_| panic!("{py:?}"))
    };
    assert_eq!(ops("topic"), TOPIC_OPS, "kafka-python topic");
    assert_eq!(ops("cluster"), CLUSTER_OPS, "kafka-python cluster");
    assert_eq!(ops("group"), GROUP_OPS, "kafka-python group");

    // Raw: Metadata v10 carries the cluster's too; not asking leaves Kafka's "omitted" value.
    let asked = c.call(
        &MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(s(&topic)))),
            ]))
            .with_include_cluster_authorized_operations(true)
            .with_include_topic_authorized_operations(true),
        10,
    );
    let bits = |codes: &[i32]| codes.iter().fold(0, |b, c| b | (1 << c));
    assert_eq!(asked.cluster_authorized_operations, bits(&CLUSTER_OPS));
    assert_eq!(
        asked.topics[0].topic_authorized_operations,
        bits(&TOPIC_OPS)
    );
    let not_asked = c.call(
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s(&topic)))),
        ])),
        10,
    );
    assert_eq!(not_asked.topics[0].topic_authorized_operations, i32::MIN);
    println!(
        "authorized operations: topic {TOPIC_OPS:?}, cluster {CLUSTER_OPS:?}, group {GROUP_OPS:?} \
         from librdkafka, kafka-python and raw Metadata v10"
    );
}

/// DescribeTopicPartitions (API 75), as Kafka pages it: topics sorted by name, at most
/// `response_partition_limit` partitions per response, `next_cursor` where to resume (inside a
/// topic, or the next topic at 0 when a page ends at a topic's end), unknown topics named with
/// UNKNOWN_TOPIC_OR_PARTITION, a cursor outside the requested topics INVALID_REQUEST; and
/// kafka-python's pager reads every partition exactly once.
#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    const TOPIC_OPS: [i32; 8] = [3, 4, 5, 6, 7, 8, 10, 11];
    let broker = TestBroker::start();
    let prefix = random_topic("dtp");
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    broker.create_topic(&a, 5);
    broker.create_topic(&b, 3);
    let missing = format!("{prefix}-missing");
    let mut c = RawClient::connect(broker.local_addr());
    let ask = |c: &mut RawClient, limit: i32, cursor: Option<(&str, i32)>| {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(
                [&b, &missing, &a]
                    .iter()
                    .map(|t| TopicRequest::default().with_name(TopicName(s(t))))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(TopicName(s(t)))
                    .with_partition_index(p)
            }));
        c.call(&req, 0)
    };
    let view = |r: &DescribeTopicPartitionsResponse| -> Vec<(String, i16, Vec<i32>)> {
        r.topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let parts = t.partitions.iter().map(|p| p.partition_index).collect();
                (name, t.error_code, parts)
            })
            .collect()
    };
    let cursor_of = |r: &DescribeTopicPartitionsResponse| {
        r.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index))
    };
    // Page 1: four partitions of `a` (sorted first), stopping inside it.
    let first = ask(&mut c, 4, None);
    assert_eq!(view(&first), vec![(a.clone(), 0, vec![0, 1, 2, 3])]);
    assert_eq!(cursor_of(&first), Some((a.clone(), 4)));
    assert_eq!(first.topics[0].topic_authorized_operations, {
        TOPIC_OPS.iter().fold(0, |bits, op| bits | (1 << op))
    });
    // Page 2 from the cursor: the last of `a`, then `b` whole, which uses up the limit: the
    // cursor points at the next topic (Kafka does not look at it yet, existing or not).
    let second = ask(&mut c, 4, Some((&a, 4)));
    assert_eq!(
        view(&second),
        vec![(a.clone(), 0, vec![4]), (b.clone(), 0, vec![0, 1, 2])]
    );
    assert_eq!(cursor_of(&second), Some((missing.clone(), 0)));
    // Page 3: the topic that does not exist, named with its error; no further page.
    let third = ask(&mut c, 4, Some((&missing, 0)));
    assert_eq!(view(&third), vec![(missing.clone(), 3, vec![])]);
    assert_eq!(cursor_of(&third), None);
    // A page that ends exactly at a topic's end points at the next topic's start.
    let exact = ask(&mut c, 5, None);
    assert_eq!(view(&exact), vec![(a.clone(), 0, vec![0, 1, 2, 3, 4])]);
    assert_eq!(cursor_of(&exact), Some((b.clone(), 0)));
    // A cursor naming a topic that was not asked for is an invalid request.
    let bad = ask(&mut c, 4, Some(("not-asked", 0)));
    assert!(bad.topics.iter().all(|t| t.error_code == 42), "{bad:?}");

    let pages = python_support::admin(&[
        "describe-topic-partitions",
        &broker.bootstrap_servers(),
        "3",
        &a,
        &b,
    ]);
    let mut seen = Vec::new();
    for page in &pages {
        for t in page["topics"].as_array().unwrap() {
            assert_eq!(t["error"], 0, "{pages:?}");
            let ops: Vec<i32> = serde_json::from_value(t["ops"].clone()).unwrap();
            assert_eq!(ops, TOPIC_OPS, "{pages:?}");
            for p in t["partitions"].as_array().unwrap() {
                seen.push((t["name"].as_str().unwrap().to_string(), p.as_i64().unwrap()));
            }
        }
    }
    let expected: Vec<(String, i64)> = (0..5)
        .map(|p| (a.clone(), p))
        .chain((0..3).map(|p| (b.clone(), p)))
        .collect();
    assert_eq!(seen, expected, "kafka-python pages: {pages:?}");
    println!(
        "DescribeTopicPartitions: raw pages of 4 and 5 partitions with cursors; kafka-python read \
         {} partitions in {} pages of 3",
        seen.len(),
        pages.len()
    );
}

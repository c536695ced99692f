//! Topic administration with rdkafka's AdminClient (and a raw client where rdkafka has no API,
//! e.g. IncrementalAlterConfigs): create, describe configs, alter, add partitions, delete, and
//! Kafka's error codes for invalid requests.

mod raw_client;

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, IncrementalAlterConfigsRequest, MetadataRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use raw_client::RawClient;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use spate_testkit::clients::admin_config;
use spate_testkit::{random_topic, TestBroker};

type Admin = AdminClient<DefaultClientContext>;

fn admin(broker: &TestBroker) -> Admin {
    admin_config(&broker.bootstrap_servers()).create().unwrap()
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

async fn describe(admin: &Admin, topic: &str) -> rdkafka::admin::ConfigResource {
    let mut r = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts())
        .await
        .unwrap();
    r.remove(0).unwrap()
}

#[tokio::test]
async fn create_describe_alter_delete() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let admin = admin(&broker);
    let topic = random_topic("admin");

    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "12345")],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(created, vec![Ok(topic.clone())]);
    assert_eq!(
        broker.state().topics.get(&topic).unwrap().partition_count(),
        3
    );

    let again = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
    );

    // Configs: the override is dynamic, the rest are Kafka's defaults.
    let cfg = describe(&admin, &topic).await;
    let retention = cfg.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("12345"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);
    let segment = cfg.get("segment.bytes").unwrap();
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert!(segment.is_default);
    assert_eq!(
        cfg.get("cleanup.policy").unwrap().value.as_deref(),
        Some("delete")
    );
    assert_eq!(
        cfg.get("retention.bytes").unwrap().value.as_deref(),
        Some("-1")
    );

    // Legacy AlterConfigs replaces the whole set of overrides.
    let altered = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("segment.bytes", "2048")],
            &opts(),
        )
        .await
        .unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    let cfg = describe(&admin, &topic).await;
    assert_eq!(
        cfg.get("segment.bytes").unwrap().value.as_deref(),
        Some("2048")
    );
    assert!(cfg.get("retention.ms").unwrap().is_default);

    // rdkafka's alter_configs does not surface per-resource errors; the config is unchanged.
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "soon")],
            &opts(),
        )
        .await
        .unwrap();
    let cfg = describe(&admin, &topic).await;
    assert_eq!(
        cfg.get("segment.bytes").unwrap().value.as_deref(),
        Some("2048")
    );
    assert!(cfg.get("retention.ms").unwrap().is_default);

    // Partitions can only grow.
    let grown = admin
        .create_partitions(&[NewPartitions::new(&topic, 5)], &opts())
        .await
        .unwrap();
    assert_eq!(grown, vec![Ok(topic.clone())]);
    assert_eq!(
        broker.state().topics.get(&topic).unwrap().partition_count(),
        5
    );
    let shrunk = admin
        .create_partitions(&[NewPartitions::new(&topic, 2)], &opts())
        .await
        .unwrap();
    assert_eq!(
        shrunk,
        vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]
    );

    let deleted = admin.delete_topics(&[&topic], &opts()).await.unwrap();
    assert_eq!(deleted, vec![Ok(topic.clone())]);
    assert!(broker.state().topics.get(&topic).is_none());
    let deleted = admin.delete_topics(&[&topic], &opts()).await.unwrap();
    assert_eq!(
        deleted,
        vec![Err((
            topic.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
}

#[tokio::test]
async fn invalid_topics_get_kafka_error_codes() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let admin = admin(&broker);
    let good = random_topic("ok");
    let (rf, bad_value, bad_key) = (random_topic("rf"), random_topic("val"), random_topic("key"));
    let results = admin
        .create_topics(
            &[
                NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
                NewTopic::new("..", 1, TopicReplication::Fixed(1)),
                NewTopic::new(&rf, 1, TopicReplication::Fixed(3)),
                NewTopic::new(&bad_value, 1, TopicReplication::Fixed(1)).set("retention.ms", "x"),
                NewTopic::new(&bad_key, 1, TopicReplication::Fixed(1)).set("no.such.config", "1"),
            ],
            &opts(),
        )
        .await
        .unwrap();
    let codes: Vec<_> = results
        .into_iter()
        .map(|r| r.err().map(|(_, c)| c))
        .collect();
    assert_eq!(
        codes,
        vec![
            Some(RDKafkaErrorCode::InvalidTopic),
            Some(RDKafkaErrorCode::InvalidTopic),
            Some(RDKafkaErrorCode::InvalidReplicationFactor),
            Some(RDKafkaErrorCode::InvalidConfig),
            Some(RDKafkaErrorCode::InvalidConfig),
        ]
    );
    assert!(broker.state().topics.list().is_empty());

    // validate_only checks without creating.
    let r = admin
        .create_topics(
            &[NewTopic::new(&good, 2, TopicReplication::Fixed(1))],
            &opts().validate_only(true),
        )
        .await
        .unwrap();
    assert_eq!(r, vec![Ok(good.clone())]);
    assert!(broker.state().topics.get(&good).is_none());

    // Partition counts below 1 (librdkafka refuses to send these, so use a raw client).
    let mut raw = RawClient::connect(broker.local_addr());
    let mut t = CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(good.clone()));
    t.num_partitions = 0;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    let resp = raw.call(&req, 7);
    assert_eq!(resp.topics[0].error_code, 37, "INVALID_PARTITIONS");
    assert!(resp.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .contains("at least 1"));
}

fn incremental(
    raw: &mut RawClient,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    let mut res = AlterConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = StrBytes::from_string(topic.to_string());
    res.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut c = AlterableConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.config_operation = *op;
            c.value = v.map(|v| StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![res];
    let resp = raw.call(&req, 1);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test]
async fn incremental_alter_configs() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let admin = admin(&broker);
    let topic = random_topic("incr");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
                .set("retention.bytes", "100000")],
            &opts(),
        )
        .await
        .unwrap();
    let mut raw = RawClient::connect(broker.local_addr());
    let ok = incremental(
        &mut raw,
        &topic,
        &[
            ("retention.ms", 0, Some("60000")),
            ("segment.bytes", 0, Some("4096")),
            ("segment.ms", 0, Some("1000")),
            ("max.message.bytes", 0, Some("5000")),
            ("flush.messages", 0, Some("10")),
            ("flush.ms", 0, Some("100")),
            ("index.interval.bytes", 0, Some("128")),
            ("cleanup.policy", 2, Some("compact")),
            ("retention.bytes", 1, None),
        ],
    );
    assert_eq!(ok, (0, None));
    let cfg = describe(&admin, &topic).await;
    let v = |k: &str| cfg.get(k).unwrap().value.clone().unwrap();
    assert_eq!(v("retention.ms"), "60000");
    assert_eq!(v("segment.bytes"), "4096");
    assert_eq!(v("cleanup.policy"), "delete,compact");
    assert_eq!(v("retention.bytes"), "-1");
    assert!(cfg.get("retention.bytes").unwrap().is_default);
    assert_eq!(v("flush.messages"), "10");

    let (code, msg) = incremental(&mut raw, &topic, &[("cleanup.policy", 3, Some("delete"))]);
    assert_eq!(code, 0);
    assert_eq!(
        describe(&admin, &topic)
            .await
            .get("cleanup.policy")
            .unwrap()
            .value
            .as_deref(),
        Some("compact")
    );
    assert_eq!(msg, None);

    // Invalid values and unknown keys are INVALID_CONFIG, naming the key; nothing changes.
    for (key, value) in [
        ("retention.ms", "-7"),
        ("segment.bytes", "1"),
        ("bogus.key", "1"),
    ] {
        let (code, msg) = incremental(&mut raw, &topic, &[(key, 0, Some(value))]);
        assert_eq!(code, 40, "{key}={value}");
        assert!(msg.unwrap().contains(key));
    }
    let (code, _) = incremental(&mut raw, &topic, &[("retention.ms", 2, Some("1"))]);
    assert_eq!(code, 40, "APPEND to a non-list config");
    assert_eq!(
        describe(&admin, &topic)
            .await
            .get("retention.ms")
            .unwrap()
            .value
            .as_deref(),
        Some("60000")
    );
    let (code, _) = incremental(&mut raw, "no-such-topic", &[("retention.ms", 0, Some("1"))]);
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[test]
fn delete_topic_by_id_and_metadata_topic_ids() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = random_topic("byid");
    let mut raw = RawClient::connect(broker.local_addr());
    // Metadata auto-creates the topic and reports its id.
    let mut meta = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.clone())));
    meta.topics = Some(vec![t]);
    meta.allow_auto_topic_creation = true;
    let resp = raw.call(&meta, 12);
    assert_eq!(resp.topics[0].error_code, 0);
    let id = resp.topics[0].topic_id;
    assert!(!id.is_nil());
    assert_eq!(resp.topics[0].partitions.len(), 1);
    assert_eq!(broker.state().topics.get(&topic).unwrap().id, id);

    let mut del = DeleteTopicsRequest::default();
    let mut s = DeleteTopicState::default();
    s.name = None;
    s.topic_id = id;
    del.topics = vec![s];
    let resp = raw.call(&del, 6);
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].name.as_ref().unwrap().0.as_str(), topic);
    assert!(broker.state().topics.get(&topic).is_none());
    let resp = raw.call(&del, 6);
    assert_eq!(resp.responses[0].error_code, 100, "UNKNOWN_TOPIC_ID");

    // Without auto-creation permission the topic is unknown.
    meta.allow_auto_topic_creation = false;
    let resp = raw.call(&meta, 12);
    assert_eq!(resp.topics[0].error_code, 3);
}

#[tokio::test]
async fn broker_configs_are_described() {
    spate_testkit::init_logging();
    let mut config = spate_broker::BrokerConfig::default().num_partitions(3);
    config.set("log.retention.ms", "3600000").unwrap();
    let broker = TestBroker::start_with(config);
    let admin = admin(&broker);
    let mut r = admin
        .describe_configs(&[ResourceSpecifier::Broker(0)], &opts())
        .await
        .unwrap();
    let cfg = r.remove(0).unwrap();
    assert_eq!(
        cfg.get("num.partitions").unwrap().value.as_deref(),
        Some("3")
    );
    assert_eq!(
        cfg.get("log.retention.ms").unwrap().value.as_deref(),
        Some("3600000")
    );
    // log.* defaults change at runtime (dynamic broker configs); num.partitions does not.
    assert!(!cfg.get("log.retention.ms").unwrap().is_read_only);
    assert_eq!(
        cfg.get("log.retention.ms").unwrap().source,
        ConfigSource::StaticBroker
    );
    assert!(cfg.get("num.partitions").unwrap().is_read_only);

    // Topics inherit the broker's log.* settings as STATIC_BROKER_CONFIG.
    let topic = random_topic("inherit");
    admin
        .create_topics(
            &[NewTopic::new(&topic, -1, TopicReplication::Fixed(-1))],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(
        broker.state().topics.get(&topic).unwrap().partition_count(),
        3
    );
    let cfg = describe(&admin, &topic).await;
    let retention = cfg.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
}

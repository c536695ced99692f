//! The log cleaner's `log.cleaner.*` settings changed at runtime with IncrementalAlterConfigs on
//! the BROKER resource, as Kafka allows: a broker whose cleaner sleeps for ten minutes cleans as
//! soon as `log.cleaner.backoff.ms` is lowered; `log.cleaner.threads` starts and stops threads
//! within Kafka's half/double bounds; `log.cleaner.io.max.bytes.per.second` holds a cleaning
//! back until it is raised; `log.cleaner.enable` stays read-only. DescribeConfigs (rdkafka)
//! shows the dynamic values with their source.

mod raw_client;

use std::time::Duration;

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::protocol::StrBytes;
use raw_client::RawClient;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use spate_broker::partition::Partition;
use spate_broker::BrokerConfig;
use spate_testkit::produce::produce_keyed;
use spate_testkit::{random_topic, timed_wait_until, wait_until, TestBroker};

/// Sets broker configs with IncrementalAlterConfigs (SET) on BROKER 0.
fn set_broker(raw: &mut RawClient, configs: &[(&str, &str)]) -> (i16, Option<String>) {
    let res = AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("0"))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let resp = raw.call(
        &IncrementalAlterConfigsRequest::default().with_resources(vec![res]),
        1,
    );
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// A compacted single-partition topic that any dirty data makes cleanable.
fn compacted_topic(broker: &TestBroker) -> (String, std::sync::Arc<Partition>) {
    let topic = random_topic("dyncleaner");
    broker.create_topic_with(
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let p = broker.state().topics.partition(&topic, 0).unwrap();
    (topic, p)
}

/// 400 records over 20 keys, 200-byte values: about 90 KB, most of it dirty and cleanable.
fn produce_updates(bootstrap: &str, topic: &str) {
    let value = "u".repeat(200);
    let records: Vec<_> = (0..400)
        .map(|i| (format!("k{}", i % 20), Some(value.clone())))
        .collect();
    produce_keyed(bootstrap, topic, &records);
}

fn cleanings(broker: &TestBroker, p: &Partition) -> Option<i64> {
    broker
        .state()
        .cleaner
        .status(p, spate_broker::time::now_ms())
        .unwrap()
        .and_then(|s| s.last_cleaning.map(|l| l.finished_ms))
}

#[test]
fn backoff_and_io_rate_change_without_a_restart() {
    spate_testkit::init_logging();
    let mut config = BrokerConfig::default();
    config.set("log.cleaner.backoff.ms", "600000").unwrap();
    let broker = TestBroker::start_with(config);
    let bootstrap = broker.bootstrap_servers();
    let mut raw = RawClient::connect(broker.local_addr());

    // The cleaner thread looked once at start-up and now sleeps for ten minutes.
    std::thread::sleep(Duration::from_millis(300));
    let (topic, p) = compacted_topic(&broker);
    produce_updates(&bootstrap, &topic);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cleanings(&broker, &p), None, "the sleeping cleaner cleaned");
    assert_eq!(
        set_broker(&mut raw, &[("log.cleaner.backoff.ms", "20")]).0,
        0
    );
    let took = timed_wait_until(
        "cleaning after the backoff change",
        Duration::from_secs(10),
        || cleanings(&broker, &p).is_some(),
    );
    println!("cleaned {took:?} after log.cleaner.backoff.ms went from 600000 to 20");

    // 1000 bytes/s: the next cleaning (about 90 KB to read) is held back...
    assert_eq!(
        set_broker(
            &mut raw,
            &[
                ("log.cleaner.backoff.ms", "20"),
                ("log.cleaner.io.max.bytes.per.second", "1000")
            ]
        )
        .0,
        0
    );
    let first = cleanings(&broker, &p);
    produce_updates(&bootstrap, &topic);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        cleanings(&broker, &p),
        first,
        "a throttled cleaning finished"
    );
    // ...until the rate is raised.
    assert_eq!(
        set_broker(&mut raw, &[("log.cleaner.io.max.bytes.per.second", "1e12")]).0,
        0
    );
    let took = timed_wait_until(
        "cleaning after the rate change",
        Duration::from_secs(10),
        || cleanings(&broker, &p) != first,
    );
    println!("throttled at 1000 B/s for 1.5 s without finishing; cleaned {took:?} after the rate went to 1e12");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_follow_kafkas_bounds_and_describe_shows_the_change() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let mut raw = RawClient::connect(broker.local_addr());
    let cleaner = &broker.state().cleaner;
    assert_eq!(cleaner.running_threads(), 1);

    // More than double, zero, and the read-only switch are refused (INVALID_REQUEST, 42).
    let (code, msg) = set_broker(&mut raw, &[("log.cleaner.threads", "3")]);
    assert_eq!(code, 42, "{msg:?}");
    assert!(msg.unwrap().contains("more than double"));
    assert_eq!(set_broker(&mut raw, &[("log.cleaner.threads", "0")]).0, 42);
    let (code, msg) = set_broker(&mut raw, &[("log.cleaner.enable", "false")]);
    assert_eq!(code, 42);
    assert!(msg
        .unwrap()
        .contains("Cannot update these configs dynamically"));

    assert_eq!(set_broker(&mut raw, &[("log.cleaner.threads", "2")]).0, 0);
    wait_until("two cleaner threads", Duration::from_secs(5), || {
        cleaner.running_threads() == 2
    });
    assert_eq!(
        set_broker(
            &mut raw,
            &[
                ("log.cleaner.threads", "1"),
                ("log.cleaner.dedupe.buffer.size", "1048576")
            ]
        )
        .0,
        0
    );
    wait_until("one cleaner thread", Duration::from_secs(5), || {
        cleaner.running_threads() == 1
    });
    assert_eq!(cleaner.config().dedupe_buffer_bytes, 1 << 20);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    let mut r = admin
        .describe_configs(&[ResourceSpecifier::Broker(0)], &AdminOptions::new())
        .await
        .unwrap();
    let cfg = r.remove(0).unwrap();
    let entry = |k: &str| cfg.get(k).unwrap_or_else(|| panic!("{k} not described"));
    let dedupe = entry("log.cleaner.dedupe.buffer.size");
    assert_eq!(dedupe.value.as_deref(), Some("1048576"));
    assert_eq!(dedupe.source, rdkafka::admin::ConfigSource::DynamicBroker);
    assert!(!dedupe.is_read_only);
    assert!(entry("log.cleaner.enable").is_read_only);
    assert_eq!(
        entry("log.cleaner.io.max.bytes.per.second")
            .value
            .as_deref(),
        Some("1.7976931348623157E308")
    );
    println!(
        "threads 1 -> 2 -> 1, dedupe buffer 1 MiB, described as {:?}",
        dedupe.source
    );
}

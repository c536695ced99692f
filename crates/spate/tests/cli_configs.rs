//! `spate configs` against the embedded broker, as a user of `kafka-configs.sh` types it:
//! topic, broker (per-broker and cluster default) and group configs, described and altered.

mod common;

use common::spate;
use spate_testkit::{random_group, random_topic, TestBroker};

#[test]
fn describe_and_alter_topics_brokers_and_groups() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let b = ["--bootstrap-server", bs.as_str()];
    let topic = random_topic("cli_configs");
    broker.create_topic(&topic, 1);
    let group = random_group("cli_configs");
    let configs = |args: &[&str]| spate(&[&["configs"][..], args, &b].concat());

    // Topic: set two (one a bracketed list), delete one, describe.
    let altered = configs(&[
        "--entity-type",
        "topics",
        "--entity-name",
        &topic,
        "--alter",
        "--add-config",
        "retention.ms=60000,cleanup.policy=[compact,delete]",
    ])
    .success("alter topic");
    assert!(altered
        .stdout
        .contains(&format!("Completed updating config for topic {topic}.")));
    let described = configs(&[
        "--entity-type",
        "topics",
        "--entity-name",
        &topic,
        "--describe",
    ])
    .success("describe topic");
    assert!(
        described.stdout.contains(&format!("Dynamic configs for topic {topic} are:"))
            && described.stdout.contains(
                "  retention.ms=60000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=60000, DEFAULT_CONFIG:log.retention.ms=604800000}"
            )
            && described.stdout.contains("cleanup.policy=compact,delete"),
        "{}",
        described.stdout
    );

    // Brokers: the cluster default and broker 0, then --all shows static and default values.
    configs(&[
        "--entity-type",
        "brokers",
        "--entity-default",
        "--alter",
        "--add-config",
        "log.retention.bytes=1000000",
    ])
    .success("alter default broker");
    configs(&[
        "--entity-type",
        "brokers",
        "--entity-name",
        "0",
        "--alter",
        "--add-config",
        "log.retention.bytes=2000000",
    ])
    .success("alter broker 0");
    let default = configs(&["--entity-type", "brokers", "--entity-default", "--describe"])
        .success("describe default broker");
    assert!(
        default
            .stdout
            .contains("Default configs for brokers in the cluster are:")
            && default.stdout.contains("log.retention.bytes=1000000"),
        "{}",
        default.stdout
    );
    let all = configs(&[
        "--entity-type",
        "brokers",
        "--entity-name",
        "0",
        "--describe",
        "--all",
    ])
    .success("describe broker 0");
    assert!(
        all.stdout.contains(
            "  log.retention.bytes=2000000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.bytes=2000000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.bytes=1000000, DEFAULT_CONFIG:log.retention.bytes=-1}"
        ) && all.stdout.contains("  num.partitions=1 "),
        "{}",
        all.stdout
    );
    let read_only = configs(&[
        "--entity-type",
        "brokers",
        "--entity-name",
        "0",
        "--alter",
        "--add-config",
        "num.partitions=3",
    ]);
    assert!(!read_only.status.success());
    assert!(
        read_only
            .stderr
            .contains("Cannot update these configs dynamically"),
        "{}",
        read_only.stderr
    );

    // Groups: set, an out-of-range value refused, delete back to the default.
    configs(&[
        "--entity-type",
        "groups",
        "--entity-name",
        &group,
        "--alter",
        "--add-config",
        "consumer.session.timeout.ms=50000",
    ])
    .success("alter group");
    let refused = configs(&[
        "--entity-type",
        "groups",
        "--entity-name",
        &group,
        "--alter",
        "--add-config",
        "consumer.heartbeat.interval.ms=1",
    ]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    let described = configs(&[
        "--entity-type",
        "groups",
        "--entity-name",
        &group,
        "--describe",
    ])
    .success("describe group");
    assert!(
        described.stdout.contains(
            "consumer.session.timeout.ms=50000 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:"
        ),
        "{}",
        described.stdout
    );
    configs(&[
        "--entity-type",
        "groups",
        "--entity-name",
        &group,
        "--alter",
        "--delete-config",
        "consumer.session.timeout.ms",
    ])
    .success("delete group config");
    let described = configs(&[
        "--entity-type",
        "groups",
        "--entity-name",
        &group,
        "--describe",
    ])
    .success("describe group");
    assert!(
        !described.stdout.contains("consumer.session.timeout.ms"),
        "{}",
        described.stdout
    );
    println!("spate configs: topic, default broker, broker 0 and group altered and described");
}

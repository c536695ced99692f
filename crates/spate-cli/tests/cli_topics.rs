//! `spate topics` against the embedded broker: the whole life of a topic, as a user types it.

mod common;

use common::spate;
use spate_testkit::{random_topic, TestBroker};

/// The lines of `spate topics describe` that belong to partitions.
fn partition_lines(describe: &str) -> Vec<&str> {
    describe
        .lines()
        .filter(|l| l.trim_start().starts_with("Topic:") && l.contains("Partition:"))
        .collect()
}

/// The `Config: k=v...` line for `key`, if describe printed one.
fn config_line<'a>(describe: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("Config: {key}=");
    describe
        .lines()
        .find(|l| l.trim_start().starts_with(&prefix))
}

#[test]
fn create_describe_alter_list_delete() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_topics");
    let b = ["--bootstrap-server", bs.as_str()];

    let created = spate(
        &[
            &["topics", "create", &topic, "--partitions", "3"][..],
            &["--config", "retention.ms=60000"],
            &b,
        ]
        .concat(),
    )
    .success("create");
    assert!(created.stdout.contains(&format!("Created topic {topic}")));

    spate(&[&["topics", "create", "--topic", &topic][..], &b].concat())
        .failure("creating it again", "already exists");
    spate(&[&["topics", "create", &topic, "--if-not-exists"][..], &b].concat())
        .success("create --if-not-exists");

    let listed = spate(&[&["topics", "list"][..], &b].concat()).success("list");
    assert!(
        listed.stdout.lines().any(|l| l == topic),
        "list should show {topic}:\n{}",
        listed.stdout
    );

    let described = spate(&[&["topics", "describe", &topic][..], &b].concat()).success("describe");
    let out = &described.stdout;
    assert!(
        out.contains(&format!(
            "Topic: {topic}\tPartitionCount: 3\tReplicationFactor: 1"
        )),
        "{out}"
    );
    let partitions = partition_lines(out);
    assert_eq!(partitions.len(), 3, "{out}");
    for (i, line) in partitions.iter().enumerate() {
        assert!(line.contains(&format!("Partition: {i}\t")), "{line}");
        assert!(line.contains("Leader: "), "{line}");
        assert!(
            !line.contains("Leader: -1"),
            "every partition has a leader: {line}"
        );
    }
    let retention =
        config_line(out, "retention.ms").unwrap_or_else(|| panic!("no retention.ms:\n{out}"));
    assert!(
        retention.contains("retention.ms=60000") && retention.contains("(non-default)"),
        "{retention}"
    );

    spate(&[&["topics", "alter", &topic, "--partitions", "5"][..], &b].concat())
        .success("alter --partitions");
    spate(&[&["topics", "alter", &topic, "--partitions", "2"][..], &b].concat())
        .failure("shrinking", "can only increase");
    spate(
        &[
            &[
                "topics",
                "alter",
                &topic,
                "--add-config",
                "cleanup.policy=compact",
            ][..],
            &["--delete-config", "retention.ms"],
            &b,
        ]
        .concat(),
    )
    .success("alter configs");

    let described =
        spate(&[&["topics", "describe", "--topic", &topic][..], &b].concat()).success("describe");
    let out = &described.stdout;
    assert!(out.contains("PartitionCount: 5"), "{out}");
    assert_eq!(partition_lines(out).len(), 5, "{out}");
    let cleanup =
        config_line(out, "cleanup.policy").unwrap_or_else(|| panic!("no cleanup.policy:\n{out}"));
    assert!(
        cleanup.contains("=compact") && cleanup.contains("(non-default)"),
        "{cleanup}"
    );
    if let Some(retention) = config_line(out, "retention.ms") {
        assert!(
            !retention.contains("(non-default)"),
            "retention.ms override was deleted: {retention}"
        );
    }

    spate(&[&["topics", "delete", &topic][..], &b].concat()).success("delete");
    let listed = spate(&[&["topics", "list"][..], &b].concat()).success("list");
    assert!(
        !listed.stdout.lines().any(|l| l == topic),
        "{}",
        listed.stdout
    );
    spate(&[&["topics", "delete", &topic][..], &b].concat())
        .failure("deleting it again", "does not exist");
    spate(&[&["topics", "delete", &topic, "--if-exists"][..], &b].concat())
        .success("delete --if-exists");
    spate(&[&["topics", "describe", &topic][..], &b].concat())
        .failure("describing a deleted topic", "does not exist");
}

#[test]
fn alter_without_changes_is_an_error() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    spate(&["topics", "alter", "whatever", "--bootstrap-server", &bs])
        .failure("alter with nothing", "nothing to alter");
}

#[test]
fn describe_verbose_shows_the_cleaner_state_of_each_partition() {
    let mut config = spate_broker::BrokerConfig::default();
    config.set("metrics.listen", "127.0.0.1:0").unwrap();
    let broker = TestBroker::start_with(config);
    let bs = broker.bootstrap_servers();
    let metrics = broker
        .state()
        .metrics_addr
        .get()
        .expect("metrics")
        .to_string();
    let topic = random_topic("cli_cleaner");
    let b = ["--bootstrap-server", bs.as_str()];
    spate(
        &[
            &["topics", "create", &topic][..],
            &[
                "--config",
                "cleanup.policy=compact",
                "--config",
                "segment.bytes=1024",
            ],
            &b,
        ]
        .concat(),
    )
    .success("create");
    // One batch per call (each flushes), so that the 1 KiB segments roll.
    for round in 0..12 {
        spate_testkit::produce::produce_to_partition(
            &bs,
            &topic,
            0,
            (0..8).map(|k| {
                (
                    Some(format!("key{k}")),
                    format!("value-{round}-{k}-{}", "x".repeat(40)),
                )
            }),
        );
    }
    let verbose = [
        &[
            "topics",
            "describe",
            &topic,
            "--verbose",
            "--metrics-address",
        ][..],
        &[metrics.as_str()],
        &b,
    ]
    .concat();
    let cleaner_line = |out: &str| -> String {
        out.lines()
            .find(|l| l.contains("Compacted:"))
            .unwrap_or_else(|| panic!("no cleaner line in:\n{out}"))
            .to_string()
    };
    let before = spate(&verbose).success("describe --verbose before cleaning");
    let line = cleaner_line(&before.stdout);
    assert!(
        line.contains(&format!("Topic: {topic}\tPartition: 0\tCompacted: true")),
        "{line}"
    );
    assert!(line.contains("LastCleaning: never"), "{line}");
    assert!(
        !line.contains("DirtyBytes: 0\t"),
        "dirty before cleaning: {line}"
    );

    let partition = broker.state().topics.partition(&topic, 0).unwrap();
    let passes = broker
        .state()
        .cleaner
        .clean_now(&partition, spate_broker::time::now_ms())
        .unwrap();
    assert!(!passes.is_empty());
    let after = spate(&verbose).success("describe --verbose after cleaning");
    let line = cleaner_line(&after.stdout);
    assert!(line.contains("DirtyRatio: 0.000\t"), "{line}");
    assert!(line.contains("DirtyBytes: 0\t"), "{line}");
    assert!(line.contains("LastCleaning: 20"), "a date: {line}");
    assert!(
        line.contains(&format!("read {} records", passes[0].records_read)),
        "{line}"
    );
    println!("before: {}\nafter: {line}", cleaner_line(&before.stdout));

    // Without the address there is nowhere to read it from; without --verbose it is not shown.
    let no_address = spate(&[&["topics", "describe", &topic, "--verbose"][..], &b].concat())
        .success("--verbose without --metrics-address");
    assert!(
        no_address
            .stdout
            .contains("Cleaner state unavailable: give --metrics-address"),
        "{}",
        no_address.stdout
    );
    let plain = spate(&[&["topics", "describe", &topic][..], &b].concat()).success("describe");
    assert!(!plain.stdout.contains("Compacted:"), "{}", plain.stdout);
}

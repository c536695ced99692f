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

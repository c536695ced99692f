//! A consumer group driven by a Kafka client that is NOT built on librdkafka: kafka-python joins a
//! group on the embedded broker, consumes, commits, and a second run resumes from the commit
//! (`tests/clients/python_group.py`). Needs the venv from `.ci/setup.d/python-clients.sh`.

mod common;

use std::process::Command;
use std::time::Duration;

use spate_testkit::{random_group, random_topic, TestBroker};

#[test]
fn kafka_python_group_commits_and_resumes() {
    let python = common::kafka_python();
    let script = common::workspace_root().join("tests/clients/python_group.py");
    let broker = TestBroker::start();
    let topic = random_topic("pygroup");
    let group = random_group("pygroup");
    let run = common::run(
        Command::new(&python)
            .arg(&script)
            .arg(broker.bootstrap_servers())
            .arg(&topic)
            .arg(&group)
            .args(["--records", "40"])
            .env("PYTHONUNBUFFERED", "1"),
        None,
        Duration::from_secs(120),
    );
    assert!(
        run.status.success(),
        "kafka-python group test failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("resumed at offset 20 of 40"),
        "{}",
        run.stdout
    );
    // librdkafka sees the same commits through `spate groups describe`.
    let describe = common::spate(&[
        "groups",
        "describe",
        &group,
        "--bootstrap-server",
        &broker.bootstrap_servers(),
    ])
    .success("spate groups describe");
    let rows: Vec<&str> = describe
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(topic.as_str()))
        .collect();
    assert_eq!(rows.len(), 2, "{}", describe.stdout);
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
        assert_eq!(&cols[3..6], &["40", "40", "0"], "{row}");
    }
}

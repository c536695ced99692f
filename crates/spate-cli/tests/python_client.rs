//! A Kafka client that is NOT built on librdkafka talks to the embedded broker: kafka-python (pure
//! Python) creates a topic, produces keyed records plain and gzip-compressed, and reads them back
//! (`tests/clients/python_roundtrip.py`); then `spate consume` (librdkafka) reads what it wrote.
//! Needs the venv from `.ci/setup.d/python-clients.sh`.

mod common;

use std::process::Command;
use std::time::Duration;

use spate_testkit::{random_topic, TestBroker};

#[test]
fn kafka_python_round_trip() {
    let python = common::kafka_python();
    let script = common::workspace_root().join("tests/clients/python_roundtrip.py");
    let broker = TestBroker::start();
    let topic = random_topic("pyclient");
    let run = common::run(
        Command::new(&python)
            .arg(&script)
            .arg(broker.bootstrap_servers())
            .arg(&topic)
            .args(["--records", "300"])
            .env("PYTHONUNBUFFERED", "1"),
        None,
        Duration::from_secs(120),
    );
    assert!(
        run.status.success(),
        "kafka-python round trip failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("OK, 600 records round-tripped"),
        "{}",
        run.stdout
    );
}

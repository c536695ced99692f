//! A Kafka client that is NOT built on librdkafka talks to the embedded broker: kafka-python (pure
//! Python) creates a topic, produces keyed records plain and gzip-compressed, and reads them back
//! (`tests/clients/python_roundtrip.py`); then `spate consume` (librdkafka) reads what it wrote.
//! Needs the venv from `.ci/setup.d/python-clients.sh`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use spate_testkit::{random_topic, TestBroker};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python: `SPATE_PYCLIENTS_PYTHON`, else `<workspace>/target/pyclients/bin/python`.
fn python() -> PathBuf {
    let python = std::env::var_os("SPATE_PYCLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pyclients/bin/python"));
    assert!(
        python.exists(),
        "the kafka-python venv is missing ({} does not exist): run `bash .ci/setup.d/python-clients.sh` \
         from the workspace root, or point SPATE_PYCLIENTS_PYTHON at a python with kafka-python installed",
        python.display()
    );
    python
}

#[test]
fn kafka_python_round_trip() {
    let python = python();
    let script = workspace_root().join("tests/clients/python_roundtrip.py");
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

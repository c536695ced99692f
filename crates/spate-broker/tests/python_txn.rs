//! Transactions through kafka-python, a client not built on librdkafka
//! (`tests/clients/python_txn.py`): commit, abort, commit with offsets sent to a group; the
//! script's read_committed consumer sees only committed records, its read_uncommitted one
//! sees all, and the group's committed offset is the one the committed transaction sent.

mod python_support;

use std::process::Command;

use python_support::{kafka_python, workspace_root};
use spate_testkit::{random_group, random_topic, TestBroker};

#[test]
fn kafka_python_transactions_commit_abort_and_send_offsets() {
    let broker = TestBroker::start();
    let topic = random_topic("py-txn");
    broker.create_topic(&topic, 1);
    let group = random_group("py-txn");
    let out = Command::new(kafka_python())
        .arg(workspace_root().join("tests/clients/python_txn.py"))
        .args([
            &broker.bootstrap_servers(),
            &topic,
            &random_topic("py-tid"),
            &group,
        ])
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("running kafka-python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python_txn.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let values = |i: usize| -> Vec<(i64, String)> {
        serde_json::from_value(docs[i]["records"].clone()).expect("records")
    };
    // kp-c1 kp-c2 COMMIT kp-a1 kp-a2 ABORT kp-c3 COMMIT: offsets 0 1 3 4 6, end 8.
    assert_eq!(docs[0]["isolation"], "read_committed");
    assert_eq!(
        values(0),
        [
            (0, "kp-c1".into()),
            (1, "kp-c2".into()),
            (6, "kp-c3".into())
        ]
    );
    assert_eq!(docs[0]["end"], 8);
    assert_eq!(
        values(1).into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        ["kp-c1", "kp-c2", "kp-a1", "kp-a2", "kp-c3"]
    );
    let committed = &docs[2]["committed"];
    assert_eq!(
        committed.as_i64().or_else(|| committed[0].as_i64()),
        Some(3),
        "{committed}"
    );
}

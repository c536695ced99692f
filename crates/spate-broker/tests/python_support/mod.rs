//! Running `tests/clients/python_admin.py` with kafka-python, a Kafka client not built on
//! librdkafka, from the venv `.ci/setup.d/python-clients.sh` makes.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The python with kafka-python installed: `SPATE_PYCLIENTS_PYTHON`, else the venv at
/// `<workspace>/target/pyclients`.
pub fn kafka_python() -> PathBuf {
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

/// Runs `python_admin.py <args>` and returns its stdout, one JSON document per line; panics
/// with the script's output if it fails.
pub fn admin(args: &[&str]) -> Vec<serde_json::Value> {
    run_script("python_admin.py", args)
}

/// Runs `python_sasl.py <args>` (a SASL login, produce and consume with kafka-python) and
/// returns its JSON lines; a refused login is a line with `error`, not a failure.
pub fn sasl_round_trip(args: &[&str]) -> Vec<serde_json::Value> {
    run_script("python_sasl.py", args)
}

/// Runs `tests/clients/<script> <args>` with kafka-python and returns the JSON lines it printed;
/// panics with its output if it exits with an error.
fn run_script(script: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let path = workspace_root().join("tests/clients").join(script);
    let out = Command::new(kafka_python())
        .arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("running kafka-python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

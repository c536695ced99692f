//! Shared by the CLI tests: run the built `spate` binary (or any program) with a deadline, feed it
//! stdin, and collect its output. A hung child is killed and the test fails saying so, instead of
//! hanging the test run.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished child printed, and how it exited.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Panics with the child's output unless it exited 0.
    pub fn success(self, what: &str) -> Run {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the child failed with `needle` in its stderr.
    pub fn failure(self, what: &str, needle: &str) -> Run {
        assert!(
            !self.status.success(),
            "{what} should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "{what}: stderr should mention {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// The `spate` binary built for this test run.
pub fn spate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_spate")
}

/// Runs `spate args...` with no stdin.
pub fn spate(args: &[&str]) -> Run {
    run(
        Command::new(spate_bin()).args(args),
        None,
        Duration::from_secs(60),
    )
}

/// Runs `spate args...` with `input` on stdin.
pub fn spate_stdin(args: &[&str], input: &str) -> Run {
    run(
        Command::new(spate_bin()).args(args),
        Some(input.as_bytes().to_vec()),
        Duration::from_secs(60),
    )
}

/// Runs `cmd` to completion or kills it after `timeout`.
pub fn run(cmd: &mut Command, input: Option<Vec<u8>>, timeout: Duration) -> Run {
    // Plain logs: no colour codes and no backtraces in the stderr the tests read.
    cmd.env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let writer = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        thread::spawn(move || {
            // The child may exit early (e.g. on a bad flag); a broken pipe is its business.
            let _ = stdin.write_all(&bytes);
        })
    });
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let status = wait_with_deadline(&mut child, timeout, cmd);
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_with_deadline(child: &mut Child, timeout: Duration, cmd: &Command) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {timeout:?} and was killed");
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    }
}

/// The workspace root (scripts for the non-librdkafka client tests live in `tests/clients/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The python with kafka-python installed: `SPATE_PYCLIENTS_PYTHON`, else the venv that
/// `.ci/setup.d/python-clients.sh` makes at `<workspace>/target/pyclients`.
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

/// A broker config with two listeners: SASL_PLAINTEXT on a port of its own choosing for the
/// clients under test, and PLAINTEXT on the returned free port for the admin that sets them up.
pub fn sasl_and_admin_listeners() -> (spate_broker::BrokerConfig, u16) {
    let admin_port = spate_testkit::free_port();
    let mut config = spate_broker::BrokerConfig::default();
    config
        .set(
            "listeners",
            &format!("SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:{admin_port}"),
        )
        .unwrap();
    (config, admin_port)
}

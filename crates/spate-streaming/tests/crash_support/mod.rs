//! The child-process half of the engine's crash tests: re-run this test binary's `child_entry`
//! test as a separate process, read the numbers it prints on stdout (what it has made durable),
//! and `SIGKILL` it at a random moment once it has demonstrably made progress.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rand::Rng;

/// A running child job and the numbers it has printed so far.
pub struct ChildJob {
    child: Child,
    progress: mpsc::Receiver<i64>,
    reader: JoinHandle<()>,
}

impl ChildJob {
    /// Starts `child_entry` of the current test binary with `envs`.
    pub fn spawn(envs: &[(&str, String)]) -> ChildJob {
        let exe = std::env::current_exe().expect("test binary path");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child job");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, progress) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(n) = line.trim().parse::<i64>() {
                    let _ = tx.send(n);
                }
            }
        });
        ChildJob {
            child,
            progress,
            reader,
        }
    }

    /// Waits for the child's first progress report (a loaded machine may take a while just to
    /// start it), sleeps a random time below `max_delay`, then SIGKILLs it. Returns every
    /// number the child printed, in order.
    pub fn kill_after_progress(mut self, max_delay: Duration) -> Vec<i64> {
        let first = self
            .progress
            .recv_timeout(Duration::from_secs(30))
            .expect("child made no progress");
        let max_ms = max_delay.as_millis().max(1) as u64;
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..max_ms)));
        self.child.kill().expect("SIGKILL"); // SIGKILL on Unix
        self.child.wait().expect("reap child");
        self.reader.join().expect("stdout reader");
        std::iter::once(first)
            .chain(self.progress.try_iter())
            .collect()
    }
}

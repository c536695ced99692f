//! One instance of a multi-instance crash test (a `group.instance.id`) and its runs: a child
//! process started again and again, each run logging to its own file, supervised the way
//! systemd's `Restart=always` would — a run that ended because its batch was fenced (the
//! instance had lost its partitions) is restarted, any other exit fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use spate_testkit::child::{ChildJob, Running};

pub struct Instance {
    pub name: String,
    job: ChildJob,
    logs: PathBuf,
    pub runs: u32,
    /// The current run; dropping it SIGKILLs the child.
    pub running: Option<Running>,
}

impl Instance {
    /// An instance named `name` that runs `job`, logging to files in `logs`.
    pub fn new(name: &str, job: ChildJob, logs: &Path) -> Self {
        Instance {
            name: name.to_owned(),
            job,
            logs: logs.to_path_buf(),
            runs: 0,
            running: None,
        }
    }

    pub fn log(&self, run: u32) -> PathBuf {
        self.logs.join(format!("{}-run-{run}.log", self.name))
    }

    pub fn spawn(&mut self) {
        self.runs += 1;
        let log = self.log(self.runs);
        self.running = Some(self.job.stderr_to(&log).spawn());
    }

    /// Restarts a run that was fenced and returns 1; 0 while the run goes on. Any other exit
    /// fails the test with the run's stderr.
    pub fn supervise(&mut self) -> u32 {
        let Some(status) = self.running.as_mut().and_then(Running::exited) else {
            return 0;
        };
        let log = std::fs::read_to_string(self.log(self.runs)).unwrap_or_default();
        assert!(
            is_fenced(&log),
            "instance {} exited on its own: {status}; its stderr:\n{log}",
            self.name
        );
        self.running = None;
        self.spawn();
        1
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(child) = self.running.take() {
            child.kill();
        }
    }

    /// Sends `signal` (e.g. `-STOP`) to the current run.
    pub fn signal(&self, signal: &str) {
        let pid = self.running.as_ref().map(Running::id).expect("running");
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid} failed");
    }

    /// Each run's log.
    pub fn run_logs(&self) -> Vec<String> {
        (1..=self.runs)
            .map(|r| std::fs::read_to_string(self.log(r)).unwrap_or_default())
            .collect()
    }

    /// Every line of every run's log.
    pub fn all_logs(&self) -> String {
        self.run_logs().join("\n")
    }

    /// Waits until this instance logged a fenced batch and exited; false after `timeout`.
    pub fn wait_fenced(&mut self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let fenced = is_fenced(&self.all_logs());
            let exited = self.running.as_mut().and_then(Running::exited).is_some();
            if fenced && exited {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// What a resumed zombie's log says about its fencing: the failed batch's line, or why there
/// is none (printing its log, since exactly-once — not the fencing — is what tests assert).
pub fn fencing_reason(fenced: bool, log: &str) -> String {
    if fenced {
        return log
            .lines()
            .find(|l| l.contains("failed:"))
            .unwrap_or("")
            .to_owned();
    }
    eprintln!("zombie: not fenced within 20 s (no late commit seen); its log:\n{log}");
    "not fenced: no late commit".to_owned()
}

/// Whether a run's log ends in a fenced batch (the instance had lost its partitions).
pub fn is_fenced(log: &str) -> bool {
    log.contains("failed:")
        && (log.contains("no longer owns")
            || log.contains("fenced")
            || log.contains("send_offsets_to_transaction"))
}

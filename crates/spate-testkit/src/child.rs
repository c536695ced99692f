//! Crash tests' child jobs: run one test of the current test binary (or a named binary) as a
//! separate process with its own arguments and environment, SIGKILL it at a random point, reap
//! it and collect what it printed. A killed process, unlike a dropped thread, loses everything
//! it had not made durable, which is what a crash test must exercise.
//!
//! A [`Running`] child is SIGKILLed when dropped, so a failing assertion leaves no job behind.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;

/// What a broker child prints before its bound address ([`announce_listening`]).
pub const LISTENING: &str = "LISTENING ";

/// Prints a child broker's bound address for the parent's [`Running::listening_addr`]: the
/// child listens on port 0, so only it knows the port the OS chose.
pub fn announce_listening(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{LISTENING}{addr}");
    let _ = out.flush();
}

/// How a child job is started; [`ChildJob::spawn`] can be called again to restart it after a
/// kill with the same arguments and environment.
#[derive(Debug)]
pub struct ChildJob {
    cmd: Command,
    capture_stdout: bool,
}

impl ChildJob {
    /// The test named `test` in the current test binary, run alone (`--exact`, one thread) and
    /// with its output shown (`--nocapture`), so that it can print progress.
    pub fn test_entry(test: &str) -> ChildJob {
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| panic!("cannot find the current test binary: {e}"));
        let mut job = ChildJob::binary(exe);
        job.args(["--exact", test, "--nocapture", "--test-threads=1"]);
        job
    }

    /// The program at `path`. Its stdout is discarded and its stderr shown unless changed.
    pub fn binary(path: impl AsRef<OsStr>) -> ChildJob {
        let mut cmd = Command::new(path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        ChildJob {
            cmd,
            capture_stdout: false,
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut ChildJob
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut ChildJob {
        self.cmd.env(key, value);
        self
    }

    /// Collects the child's stdout lines, returned by [`Running::kill`] and
    /// [`Running::progress`].
    pub fn capture_stdout(&mut self) -> &mut ChildJob {
        self.capture_stdout = true;
        self
    }

    /// Writes the child's stderr to the file at `path` (created or truncated) from the next
    /// spawn on, e.g. one log per run.
    pub fn stderr_to(&mut self, path: &Path) -> &mut ChildJob {
        let file = std::fs::File::create(path)
            .unwrap_or_else(|e| panic!("cannot create child log {}: {e}", path.display()));
        self.cmd.stderr(file);
        self
    }

    /// Discards the child's stderr (for children that log a lot and report on stdout).
    pub fn discard_stderr(&mut self) -> &mut ChildJob {
        self.cmd.stderr(Stdio::null());
        self
    }

    /// Starts the child.
    pub fn spawn(&mut self) -> Running {
        if self.capture_stdout {
            self.cmd.stdout(Stdio::piped());
        }
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn child job {:?}: {e}", self.cmd));
        let (tx, lines) = mpsc::channel();
        let reader = child.stdout.take().map(|stdout| {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            })
        });
        Running {
            child,
            lines,
            reader,
        }
    }
}

/// A running child job; SIGKILLed and reaped when dropped.
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl Running {
    /// The child's process id (to signal it, e.g. SIGSTOP/SIGCONT).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics if the child exited on its own: a crash test's child must be killed, never finish
    /// early (that would mean it failed, and every later check would be meaningless).
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.exited() {
            panic!("the child job exited on its own: {status}");
        }
    }

    /// Waits for the child's next numeric stdout line (needs [`ChildJob::capture_stdout`]);
    /// panics after `timeout` (a loaded machine may take a while just to start a child).
    pub fn progress(&mut self, timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(n) = line.trim().parse() {
                        return n;
                    }
                }
                Err(_) => panic!("the child job reported no progress within {timeout:?}"),
            }
        }
    }

    /// The child's next stdout line (needs [`ChildJob::capture_stdout`]), or `None` when it
    /// printed nothing more within `timeout` or closed its stdout. For children that report
    /// more than a number per line; [`Running::progress`] is the numeric case.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits for the address a broker child prints with [`announce_listening`] (needs
    /// [`ChildJob::capture_stdout`]; the test harness may print `test name ... ` before it on the
    /// same line). Panics if none comes within `timeout`. Later lines keep being drained, so
    /// the child never blocks on a full pipe.
    pub fn listening_addr(&mut self, timeout: Duration) -> SocketAddr {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.next_line(left) else {
                panic!("the child broker printed no address within {timeout:?}");
            };
            if let Some(at) = line.find(LISTENING) {
                let addr = line[at + LISTENING.len()..].trim();
                return addr
                    .parse()
                    .unwrap_or_else(|e| panic!("bad listening address {addr:?}: {e}"));
            }
        }
    }

    /// Sleeps a random time in `millis`, checks the child is still running, then SIGKILLs it.
    /// Returns the stdout lines it printed (empty unless captured).
    pub fn kill_after_random(mut self, millis: Range<u64>) -> Vec<String> {
        let ms = rand::rng().random_range(millis);
        std::thread::sleep(Duration::from_millis(ms));
        self.assert_alive();
        self.kill()
    }

    /// Waits for the first progress report, sleeps a random time below `max_delay`, then
    /// SIGKILLs the child. Returns every number it printed, in order.
    pub fn kill_after_progress(mut self, max_delay: Duration) -> Vec<i64> {
        let first = self.progress(Duration::from_secs(30));
        let max_ms = u64::try_from(max_delay.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..max_ms)));
        let rest = self.kill();
        std::iter::once(first)
            .chain(rest.iter().filter_map(|l| l.trim().parse().ok()))
            .collect()
    }

    /// Sends SIGTERM (a polite stop request, unlike [`Running::kill`]); pair with
    /// [`Running::wait`] to check the child stops cleanly and promptly.
    pub fn terminate(&mut self) {
        // `kill(1)` rather than a signal crate: the test kit needs nothing else from one.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(
            sent.as_ref().is_ok_and(|s| s.success()),
            "could not send SIGTERM to the child job: {sent:?}"
        );
    }

    /// The stdout lines printed so far (needs [`ChildJob::capture_stdout`]), without waiting.
    pub fn lines_so_far(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// SIGKILLs the child (if still running), reaps it and returns the stdout lines it printed
    /// (empty unless captured).
    pub fn kill(mut self) -> Vec<String> {
        self.stop();
        self.lines.try_iter().collect()
    }

    /// Waits up to `timeout` for the child to exit on its own; SIGKILLs it and panics if it
    /// does not.
    pub fn wait(self, timeout: Duration) -> ExitStatus {
        self.wait_with_lines(timeout).0
    }

    /// Like [`Running::wait`], and also returns every stdout line the child printed (needs
    /// [`ChildJob::capture_stdout`]) that was not read before.
    pub fn wait_with_lines(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.stop();
                return (status, self.lines.try_iter().collect());
            }
            assert!(
                Instant::now() < deadline,
                "the child job did not finish within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

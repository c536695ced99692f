//! The quickstart's web UI in a real browser. Headless Chromium loads the UI of a short
//! `spate quickstart` run (the real binary, as a user starts it); the DOM after the page's
//! JavaScript ran must show real batches in the charts and the batch table, and the batch page
//! must show that batch's offset ranges and output operation. Screenshots go to
//! `target/ui-screenshots/`. The in-process job's counterpart is `crates/spate-ui/tests/ui_browser.rs`,
//! whose helpers this test shares.
//!
//! Skips (with a message) when no Chromium is installed; CI installs Debian's `chromium`
//! through `.ci/setup.d/chromium.sh`.

#[path = "../../spate-ui/tests/ui_support/mod.rs"]
mod ui_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use ui_support::browser::*;
use ui_support::*;

/// The quickstart's topic.
const TOPIC: &str = "ad-events";

/// A `spate quickstart` child process whose stdout lines arrive through a channel, so a silent
/// quickstart fails the test instead of blocking it; killed on drop when the test fails.
struct Quickstart {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Quickstart {
    fn start(dir: &Path) -> Self {
        let stderr = dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            // `--duration` is only a backstop: the test interrupts the quickstart once the
            // browser is done, which on a loaded machine may take a while.
            .args(["quickstart", "--duration", "120s", "--ui-port", "0"])
            .args(["--rate", "2000", "--batch-interval", "500ms", "--dir"])
            .arg(dir.join("qs"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start spate quickstart");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Quickstart {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// What the quickstart printed so far, for failure messages.
    fn output(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{}\n--- stderr ---\n{stderr}", self.seen.join("\n"))
    }

    /// The next stdout line; `None` once stdout closed.
    fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("no output for 60 s:\n{}", self.output()),
        }
    }

    /// The address in the `web UI: http://127.0.0.1:PORT/` line.
    fn ui_addr(&mut self) -> SocketAddr {
        loop {
            let line = self
                .next_line()
                .unwrap_or_else(|| panic!("quickstart ended early:\n{}", self.output()));
            if let Some(url) = line.strip_prefix("web UI: ") {
                let addr = url.trim_start_matches("http://").trim_end_matches('/');
                return addr
                    .parse()
                    .unwrap_or_else(|e| panic!("bad UI address in {line:?}: {e}"));
            }
        }
    }

    /// Presses Ctrl-C and returns the exit status with everything printed until then.
    fn interrupt(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
        while self.next_line().is_some() {}
        let exit = self.child.wait().expect("wait for the quickstart");
        (exit, self.output())
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number in a formatted cell (`12,345`).
fn number(cell: &str) -> u64 {
    let digits: String = cell.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number in {cell:?}"))
}

#[test]
fn quickstart_ui_shows_real_batches_in_the_browser() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED ui_browser: no chromium binary on PATH (install Debian's `chromium`)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut qs = Quickstart::start(dir.path());
    let addr = qs.ui_addr();
    let base = format!("http://{addr}/");

    // A few batches with data, as the REST API sees them, before the browser looks.
    let completed = wait_for(
        "4 completed batches with data",
        Duration::from_secs(60),
        || {
            let rows = get(addr, "/api/v1/streaming/batches?status=completed").json();
            let with_data: Vec<_> = rows
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["inputSize"].as_u64().unwrap_or(0) > 0)
                .cloned()
                .collect();
            (with_data.len() >= 4).then_some(with_data)
        },
    );
    let batch = &completed[completed.len() / 2];
    let id = batch["batchId"].as_u64().unwrap();
    let records = batch["inputSize"].as_u64().unwrap();

    let dom = run_chromium(&bin, &base, "--dump-dom", "1400,1900");
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page's script ran: {dom}"
    );
    assert!(dom.contains("spate-quickstart"), "app name shown");
    assert_charts(&dom, 3);
    let partitions = rows_of(&dom, "partition-rows");
    assert_eq!(
        partitions.iter().filter(|r| cells(r)[1] == TOPIC).count(),
        4,
        "Kafka partitions table lists the 4 partitions of {TOPIC}: {partitions:?}"
    );
    let rows = rows_of(&dom, "completed-rows");
    let with_records = rows.iter().filter(|r| number(&cells(r)[1]) > 0).count();
    assert!(
        with_records >= 4,
        "completed batches with records: {rows:#?}"
    );
    // The batch picked from the REST API is a linked row with the same record count.
    let row = rows
        .iter()
        .find(|r| r.contains(&format!("data-batch-id=\"{id}\"")))
        .unwrap_or_else(|| panic!("batch {id} is a row of the completed table: {rows:#?}"));
    assert!(row.contains(&format!("/batch?id={id}")), "{row}");
    assert_eq!(number(&cells(row)[1]), records, "{row}");
    let shot = screenshot(&bin, &base, "quickstart-streaming.png", "1400,1900");

    let batch_url = format!("{base}batch?id={id}");
    let dom = run_chromium(&bin, &batch_url, "--dump-dom", "1400,900");
    assert!(
        dom.contains("data-loaded=\"true\""),
        "batch page script ran: {dom}"
    );
    assert!(dom.contains("data-input-id=\"kafka_direct-0\""), "{dom}");
    let ranges: Vec<Vec<String>> = dom
        .split("<table class=\"ranges\">")
        .nth(1)
        .unwrap_or_else(|| panic!("an offset-range table: {dom}"))
        .split("</table>")
        .next()
        .unwrap()
        .split("<tr")
        .skip(1)
        .map(cells)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        ranges.len(),
        4,
        "one offset range per partition: {ranges:?}"
    );
    assert!(ranges.iter().all(|r| r[0] == TOPIC), "{ranges:?}");
    let counted: u64 = ranges.iter().map(|r| number(&r[4])).sum();
    assert_eq!(
        counted, records,
        "the ranges hold the batch's records: {ranges:?}"
    );
    let ops = rows_of(&dom, "output-rows");
    assert!(!ops.is_empty(), "output operations listed: {dom}");
    for op in &ops {
        let op = cells(op);
        assert!(!op[1].is_empty(), "output operation named: {op:?}");
        assert_eq!(op[2], "SUCCEEDED", "{op:?}");
    }
    assert!(
        dom.contains(">COMPLETED<"),
        "batch shown as completed: {dom}"
    );
    let batch_shot = screenshot(&bin, &batch_url, "quickstart-batch.png", "1400,900");
    println!("screenshots: {} {}", shot.display(), batch_shot.display());

    let (exit, out) = qs.interrupt();
    assert!(exit.success(), "{exit}:\n{out}");
    assert!(out.contains("stopping (interrupted)"), "{out}");
    assert!(out.contains("(0 failed)"), "{out}");
}

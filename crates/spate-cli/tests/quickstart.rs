//! `spate quickstart` through the binary: a timed run exits 0 and reports its batches, a
//! second run over the same directory resumes — the stored offsets continue from where the
//! first run stopped, each run processed exactly the records between its start and end
//! offsets, and the SQLite counts equal the counts recomputed from the topic itself; and with
//! `--bootstrap-server` the same pipeline runs against an existing cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rusqlite::Connection;
use spate_broker::BrokerConfig;
use spate_cli::quickstart::job::{JOB_ID, RESULTS_TABLE, SEED};
use spate_kafka::{KafkaParams, KafkaUtils, OffsetRange};
use spate_testkit::TestBroker;
use spate_ysb::{self as ysb, Encoding, YsbSetup};

const TOPIC: &str = "ad-events";

/// Runs the quickstart for `duration` over `dir` with `extra` flags and returns its stdout.
fn quickstart(dir: &Path, duration: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args([
            "quickstart",
            "--duration",
            duration,
            "--rate",
            "2000",
            "--dir",
        ])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run spate quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// `(batches, records)` from the summary line `this run: 10.2 s, 11 batches (0 failed), 19,998
/// records (…)`.
fn run_totals(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("this run:"))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    let number_before = |word: &str| -> u64 {
        let end = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        let digits: String = line[..end]
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    assert!(line.contains("(0 failed)"), "{line}");
    (number_before(" batches"), number_before(" records"))
}

fn stored_offsets(db: &Path, topic: &str) -> BTreeMap<i32, i64> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT partition, until_offset FROM spate_offsets WHERE job = ?1 AND topic = ?2")
        .unwrap();
    stmt.query_map([JOB_ID, topic], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn stored_counts(db: &Path) -> BTreeMap<(String, i64), u64> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT campaign_id, window_start, seen_count FROM {RESULTS_TABLE}"
        ))
        .unwrap();
    stmt.query_map([], |r| {
        Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as u64))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// Views per (campaign, window) of the topic's records in `[0, until)` per partition, read
/// back through a broker over the quickstart's data directory.
fn recount_from_topic(
    broker_dir: &Path,
    until: &BTreeMap<i32, i64>,
) -> BTreeMap<(String, i64), u64> {
    let broker = TestBroker::start_with(BrokerConfig::default().data_dir(broker_dir));
    let params = KafkaParams::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", spate_testkit::random_group("quickstart-check"));
    let ranges: Vec<OffsetRange> = until
        .iter()
        .map(|(&p, &o)| OffsetRange::create(TOPIC, p, 0, o))
        .collect();
    let rdd = KafkaUtils::create_rdd(&params, &ranges).unwrap();
    let values = rdd
        .partitions()
        .iter()
        .flatten()
        .map(|r| r.value.as_deref().unwrap());
    let campaigns = YsbSetup::new(SEED).campaign_map();
    let (counts, input) = ysb::checker::expected_counts(Encoding::Json, values, &campaigns);
    assert_eq!(input.malformed, 0);
    assert_eq!(input.records, until.values().sum::<i64>() as u64);
    counts
        .into_iter()
        .map(|((campaign, window), n)| ((ysb::events::uuid_string(campaign), window), n))
        .collect()
}

#[test]
fn quickstart_runs_for_a_duration_and_a_second_run_resumes_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("qs");
    let db = root.join("results.db");

    let first = quickstart(&root, "10s", &["--ui-port", "0"]);
    assert!(
        first.contains("http://127.0.0.1:"),
        "UI address printed:\n{first}"
    );
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("batch ") && l.contains("ad-events[0..3]")),
        "progress lines with offset ranges:\n{first}"
    );
    let (batches, records) = run_totals(&first);
    assert!(batches >= 5, "{batches} batches in 10 s:\n{first}");
    assert!(records > 0, "no records:\n{first}");
    let after_first = stored_offsets(&db, TOPIC);
    assert_eq!(after_first.len(), 4, "4 partitions: {after_first:?}");
    // Everything the first run processed is in the stored offsets, once.
    assert_eq!(records, after_first.values().sum::<i64>() as u64);

    let second = quickstart(&root, "5s", &["--ui-port", "0"]);
    assert!(second.contains("resuming from the checkpoint"), "{second}");
    let (_, records) = run_totals(&second);
    let after_second = stored_offsets(&db, TOPIC);
    for (p, o) in &after_first {
        assert!(
            after_second[p] > *o,
            "partition {p} did not advance: {after_first:?} -> {after_second:?}"
        );
    }
    // The second run read exactly the offsets after the first run's: no record twice.
    let advanced: i64 = after_second.iter().map(|(p, o)| o - after_first[p]).sum();
    assert_eq!(records, advanced as u64, "{second}");

    let stored = stored_counts(&db);
    let recounted = recount_from_topic(&root.join("broker"), &after_second);
    assert!(!stored.is_empty());
    assert_eq!(stored, recounted, "SQLite counts differ from the topic's");
}

#[test]
fn quickstart_runs_against_an_existing_cluster_without_its_own_broker() {
    let broker = TestBroker::start();
    let topic = spate_testkit::random_topic("quickstart");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("qs");
    let bootstrap = broker.bootstrap_servers();

    let out = quickstart(
        &root,
        "4s",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--no-ui",
        ],
    );
    assert!(
        out.contains(&format!("Kafka cluster at {bootstrap}")),
        "{out}"
    );
    assert!(!out.contains("web UI"), "--no-ui serves no UI:\n{out}");
    assert!(!root.join("broker").exists(), "no embedded broker data");
    let (_, records) = run_totals(&out);
    let offsets = stored_offsets(&root.join("results.db"), &topic);
    assert_eq!(offsets.len(), 4, "{offsets:?}");
    assert!(records > 0);
    assert_eq!(records, offsets.values().sum::<i64>() as u64);

    // The directory now belongs to that cluster's topic: the embedded broker may not resume it.
    let refused = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["quickstart", "--duration", "1s", "--no-ui", "--dir"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("use another --dir"), "{stderr}");
}

/// Kills the child if the test fails while it runs (it would otherwise run until Ctrl-C).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ctrl_c_stops_the_quickstart_gracefully_with_a_summary() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["quickstart", "--rate", "1000", "--ui-port", "0", "--dir"])
        .arg(dir.path().join("qs"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // Lines arrive through a channel so that a quickstart that hangs fails the test (and is
    // killed on drop) instead of blocking it.
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |seen: &[String]| -> Option<String> {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no output for 60 s:\n{}", seen.join("\n"))
            }
        }
    };
    let mut seen: Vec<String> = Vec::new();
    // Runs until interrupted: wait for two completed batches, then press Ctrl-C.
    while seen.iter().filter(|l| l.starts_with("batch ")).count() < 2 {
        let line = next_line(&seen)
            .unwrap_or_else(|| panic!("quickstart ended early:\n{}", seen.join("\n")));
        seen.push(line);
    }
    assert!(seen.iter().any(|l| l == "press Ctrl-C to stop"), "{seen:?}");
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while let Some(line) = next_line(&seen) {
        seen.push(line);
    }
    let exit = child.0.wait().unwrap();
    let out = seen.join("\n");
    assert!(exit.success(), "{exit}:\n{out}");
    assert!(out.contains("stopping (interrupted)"), "{out}");
    let (batches, records) = run_totals(&out);
    assert!(batches >= 2 && records > 0, "{out}");
}

/// How long a SIGTERMed quickstart may take to exit: the broker's own shutdown bound (5 s) plus
/// the job finishing its planned batches, with room for a loaded machine.
const STOP_BOUND: Duration = Duration::from_secs(15);

/// SIGTERM at random points — while the broker recovers, while the job starts, while batches
/// run — 20 times over one directory, as a user stopping and re-running it would: every stop
/// exits 0 within [`STOP_BOUND`], the runs that got going print their summary with no failed
/// batch, and afterwards the SQLite counts equal the counts recomputed from the topic (nothing
/// counted twice or lost across the stops).
#[test]
fn sigterm_at_random_points_stops_the_quickstart_cleanly_twenty_times() {
    use rand::Rng;
    use spate_testkit::child::ChildJob;
    use std::time::Instant;

    const STOPS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("qs");
    let mut job = ChildJob::binary(env!("CARGO_BIN_EXE_spate"));
    job.args(["quickstart", "--rate", "3000", "--batch-interval", "200ms"])
        .args(["--no-ui", "--dir", root.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .capture_stdout()
        .stderr_to(&dir.path().join("stderr.log"));
    let (mut before_start, mut with_summary) = (0, 0);
    let mut slowest = Duration::ZERO;
    for stop in 0..STOPS {
        let mut running = job.spawn();
        let delay = rand::rng().random_range(100..2500);
        std::thread::sleep(Duration::from_millis(delay));
        running.terminate();
        let asked = Instant::now();
        let (status, lines) = running.wait_with_lines(STOP_BOUND);
        let took = asked.elapsed();
        slowest = slowest.max(took);
        let out = lines.join("\n");
        assert!(
            status.success(),
            "stop {stop} after {delay} ms: {status}\n{out}"
        );
        if out.contains("before the job started") {
            before_start += 1;
        } else if out.contains("this run:") {
            with_summary += 1;
            run_totals(&out); // asserts "(0 failed)"
        }
    }
    println!(
        "{STOPS} SIGTERMs: {before_start} during start-up, {with_summary} with a summary, \
         slowest stop {slowest:?}"
    );
    assert!(with_summary > 0, "no run got as far as processing batches");
    let offsets = stored_offsets(&root.join("results.db"), TOPIC);
    let stored = stored_counts(&root.join("results.db"));
    let recounted = recount_from_topic(&root.join("broker"), &offsets);
    println!(
        "after the stops: {} records in the stored offsets, {} (campaign, window) counts",
        offsets.values().sum::<i64>(),
        stored.len()
    );
    assert_eq!(stored, recounted, "SQLite counts differ from the topic's");
}

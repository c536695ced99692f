//! `spate quickstart` through the binary: a timed run exits 0 and reports its batches, a
//! second run over the same directory resumes — the stored offsets continue from where the
//! first run stopped, each run processed exactly the records between its start and end
//! offsets, and the SQLite counts equal the counts recomputed from the topic itself; and with
//! `--bootstrap-server` the same pipeline runs against an existing cluster. With `--sink kafka`
//! the counts go to a topic exactly once: runs SIGKILLed at random points and a final run with
//! the same arguments leave, read with `read_committed`, exactly the counts of the input up to
//! the group's committed offsets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rusqlite::Connection;
use spate_broker::BrokerConfig;
use spate_cli::quickstart::job::{JOB_ID, RESULTS_TABLE, SEED};
use spate_cli::quickstart::kafka_sink::parse_window_key;
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
    recount(&broker.bootstrap_servers(), until)
}

/// Views per (campaign, window) of the records of `TOPIC` in `[0, until)` per partition.
fn recount(bootstrap: &str, until: &BTreeMap<i32, i64>) -> BTreeMap<(String, i64), u64> {
    let params = KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
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
        .map(|r| r.value().unwrap());
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

#[test]
fn quickstart_runs_against_a_sasl_ssl_cluster_with_a_command_config_and_a_guarded_ui() {
    let pki = spate_testkit::tls::Pki::new();
    let mut config = BrokerConfig::default();
    config.set("listeners", "SASL_SSL://127.0.0.1:0").unwrap();
    config.set("sasl.enabled.mechanisms", "PLAIN").unwrap();
    config
        .set(
            "listener.name.sasl_ssl.plain.sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             user_qs=\"qs-secret\";",
        )
        .unwrap();
    config.set("ssl.keystore.type", "PEM").unwrap();
    config
        .set("ssl.keystore.location", &pki.location("server.pem"))
        .unwrap();
    let broker = TestBroker::start_with(config);
    let topic = spate_testkit::random_topic("quickstart_sasl");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("qs");
    let props = dir.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=qs\n\
             sasl.password=qs-secret\nssl.ca.location={}\n",
            pki.location("ca.pem")
        ),
    )
    .unwrap();
    let token = dir.path().join("ui.token");
    std::fs::write(&token, "qs-ui-token\n").unwrap();
    let bootstrap = broker.bootstrap_servers();
    let common = [
        "--bootstrap-server",
        bootstrap.as_str(),
        "--topic",
        topic.as_str(),
        "--command-config",
        props.to_str().unwrap(),
        "--ui-bind",
        "0.0.0.0",
        "--ui-port",
        "0",
    ];

    // Beyond loopback without credentials: refused before anything starts.
    let refused = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["quickstart", "--duration", "1s", "--dir"])
        .arg(&root)
        .args(common)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--ui-token-file"), "{stderr}");
    assert!(!root.exists(), "nothing started");

    let out = quickstart(
        &root,
        "4s",
        &[&common[..], &["--ui-token-file", token.to_str().unwrap()]].concat(),
    );
    assert!(out.contains("web UI: http://0.0.0.0:"), "{out}");
    let (_, records) = run_totals(&out);
    let offsets = stored_offsets(&root.join("results.db"), &topic);
    assert!(records > 0, "{out}");
    assert_eq!(records, offsets.values().sum::<i64>() as u64);
    assert!(
        !out.contains("qs-secret") && !out.contains("qs-ui-token"),
        "{out}"
    );
    println!(
        "quickstart over SASL_SSL with --command-config: {records} records, UI behind a token"
    );
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

/// The window counts in `topic` summed per key, read to the end at `isolation`; also the number
/// of records read.
fn output_counts(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
) -> (BTreeMap<(String, i64), u64>, usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use std::time::{Duration, Instant};
    let consumer: BaseConsumer = spate_testkit::clients::consumer_config(bootstrap, "qs-check")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut counts, mut records, mut eof) = (BTreeMap::new(), 0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof < 4 {
        assert!(Instant::now() < deadline, "{topic} not read to its end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = std::str::from_utf8(m.key().unwrap()).unwrap();
                let window = parse_window_key(key).unwrap_or_else(|| panic!("key {key:?}"));
                let n: u64 = std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                *counts.entry(window).or_insert(0) += n;
                records += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    (counts, records)
}

#[test]
fn kafka_sink_survives_kills_and_writes_each_count_exactly_once() {
    use spate_testkit::child::ChildJob;
    const OUTPUT: &str = "campaign-windows";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("qs");
    // The same arguments for every run, the killed ones and the last one.
    let extra = ["--sink", "kafka", "--batch-interval", "300ms", "--no-ui"];
    let mut job = ChildJob::binary(env!("CARGO_BIN_EXE_spate"));
    job.args(["quickstart", "--duration", "5s", "--rate", "2000", "--dir"])
        .args([&root])
        .args(extra)
        .env("RUST_LOG", "warn")
        .capture_stdout()
        .discard_stderr();
    let kills = 2;
    let mut batches_before_kills = 0;
    for _ in 0..kills {
        let lines = job.spawn().kill_after_random(1_500..5_000);
        batches_before_kills += lines.iter().filter(|l| l.starts_with("batch ")).count();
    }
    let out = quickstart(&root, "5s", &extra);
    assert!(out.contains("resuming from the checkpoint"), "{out}");
    assert!(
        out.contains(&format!("results (topic {OUTPUT}, read_committed): ")),
        "{out}"
    );

    let broker = TestBroker::start_with(BrokerConfig::default().data_dir(root.join("broker")));
    let bootstrap = broker.bootstrap_servers();
    let committed: BTreeMap<i32, i64> = {
        let mut store = spate_kafka::KafkaOffsetStore::open(
            KafkaParams::new()
                .set("bootstrap.servers", bootstrap.as_str())
                .set("group.id", JOB_ID),
        )
        .unwrap();
        store
            .committed_offsets((0..4).map(|p| spate_kafka::TopicPartition::new(TOPIC, p)))
            .unwrap()
            .into_iter()
            .map(|(tp, o)| (tp.partition, o))
            .collect()
    };
    assert_eq!(committed.len(), 4, "{committed:?}");
    let (counts, records) = output_counts(&bootstrap, OUTPUT, "read_committed");
    let (_, all_records) = output_counts(&bootstrap, OUTPUT, "read_uncommitted");
    let expected = recount(&bootstrap, &committed);
    let views = |c: &BTreeMap<(String, i64), u64>| c.values().sum::<u64>();
    println!(
        "kills: {kills} ({batches_before_kills} batches before them), input counted: {} \
         records, views expected {} / committed {}, output records committed {records} / \
         written {all_records}",
        committed.values().sum::<i64>(),
        views(&expected),
        views(&counts)
    );
    assert!(!expected.is_empty());
    assert_eq!(
        counts, expected,
        "read_committed counts differ from the input's"
    );
    let summary_views = format!(
        "{} views in",
        spate_client::measure::fmt_count(views(&counts) as f64)
    );
    assert!(out.contains(&summary_views), "{summary_views} in:\n{out}");
}

//! `spate produce` and `spate consume` against the embedded broker: lines in, the same records
//! out, in every output format.

mod common;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use common::{spate, spate_stdin};
use spate_testkit::{random_topic, TestBroker};

fn create_topic(bs: &str, topic: &str, partitions: &str) {
    spate(&[
        "topics",
        "create",
        topic,
        "--partitions",
        partitions,
        "--bootstrap-server",
        bs,
    ])
    .success("create topic");
}

/// `key{i % 5}:value-{i}` for i in 0..n, one per line.
fn keyed_lines(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("key{}", i % 5), format!("value-{i}")))
        .collect()
}

#[test]
fn keyed_lines_round_trip() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_roundtrip");
    create_topic(&bs, &topic, "3");

    let records = keyed_lines(300);
    let input: String = records.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let produced = spate_stdin(
        &[
            "produce",
            &topic,
            "--key-separator",
            ":",
            "--acks",
            "all",
            "--compression",
            "lz4",
            "--bootstrap-server",
            &bs,
        ],
        &input,
    )
    .success("produce");
    assert!(
        produced.stderr.contains("300 records delivered"),
        "{}",
        produced.stderr
    );

    let consumed = spate(&[
        "consume",
        &topic,
        "--from-beginning",
        "--max-messages",
        "300",
        "--print-key",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &bs,
    ])
    .success("consume");
    let lines: Vec<(String, String)> = consumed
        .stdout
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("no tab in {l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(lines.len(), 300, "{}", consumed.stderr);
    assert!(consumed
        .stderr
        .contains("Processed a total of 300 messages"));
    // Every record came back, and records of one key (one partition) kept their order.
    let by_key = |rs: &[(String, String)]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in rs {
            m.entry(k.clone()).or_default().push(v.clone());
        }
        m
    };
    assert_eq!(by_key(&lines), by_key(&records));
}

#[test]
fn partitions_offsets_headers_and_json() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_formats");
    create_topic(&bs, &topic, "2");

    let input = "first\nsecond\n\nfourth with spaces\n";
    spate_stdin(
        &[
            "produce",
            &topic,
            "--partition",
            "1",
            "--header",
            "origin=test",
            "--header",
            "n=1",
            "--bootstrap-server",
            &bs,
        ],
        input,
    )
    .success("produce to partition 1");

    // Text, with every metadata column, starting at offset 1 of partition 1.
    let text = spate(&[
        "consume",
        &topic,
        "--partition",
        "1",
        "--offset",
        "1",
        "--max-messages",
        "3",
        "--print-partition",
        "--print-offset",
        "--print-headers",
        "--print-timestamp",
        "--print-key",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &bs,
    ])
    .success("consume text");
    let rows: Vec<Vec<&str>> = text
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", text.stdout);
    let values = ["second", "", "fourth with spaces"];
    for (i, row) in rows.iter().enumerate() {
        assert!(row[0].starts_with("CreateTime:"), "{row:?}");
        assert_eq!(row[1], "Partition:1");
        assert_eq!(row[2], format!("Offset:{}", i + 1));
        assert_eq!(row[3], "origin:test,n:1");
        assert_eq!(row[4], "null", "no key was sent");
        assert_eq!(row[5], values[i]);
    }

    // JSON: one object per record, bytes in base64.
    let json = spate(&[
        "consume",
        &topic,
        "--from-beginning",
        "--max-messages",
        "4",
        "--format",
        "json",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &bs,
    ])
    .success("consume json");
    let objects: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect();
    assert_eq!(objects.len(), 4);
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(o["topic"], topic.as_str());
        assert_eq!(o["partition"], 1);
        assert_eq!(o["offset"], i as u64);
        assert!(o["key"].is_null());
        let value = BASE64
            .decode(o["value"].as_str().expect("value is a string"))
            .expect("base64");
        assert_eq!(value, input.lines().nth(i).unwrap().as_bytes());
        assert_eq!(o["headers"][0]["key"], "origin");
        assert_eq!(o["headers"][0]["value"], BASE64.encode("test"));
        assert_eq!(o["timestamp_type"], "CreateTime");
    }

    // Partition 0 got nothing, so asking it for a record times out, non-zero.
    spate(&[
        "consume",
        &topic,
        "--partition",
        "0",
        "--from-beginning",
        "--max-messages",
        "1",
        "--timeout-ms",
        "1500",
        "--bootstrap-server",
        &bs,
    ])
    .failure("consume of an empty partition", "got 0 of the 1 messages");
    spate(&[
        "consume",
        &topic,
        "--partition",
        "7",
        "--bootstrap-server",
        &bs,
    ])
    .failure(
        "consume of a missing partition",
        "--partition 7 does not exist",
    );
}

#[test]
fn produce_reports_lines_it_could_not_send() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_badlines");
    create_topic(&bs, &topic, "1");

    let run = spate_stdin(
        &[
            "produce",
            &topic,
            "--key-separator",
            "=",
            "--bootstrap-server",
            &bs,
        ],
        "a=1\nno separator here\nb=2\n",
    )
    .failure("produce with a bad line", "line 2: no key separator found");
    assert!(run.stderr.contains("2 records delivered"), "{}", run.stderr);

    let consumed = spate(&[
        "consume",
        &topic,
        "--from-beginning",
        "--max-messages",
        "2",
        "--print-key",
        "--separator",
        "=",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &bs,
    ])
    .success("consume");
    assert_eq!(consumed.stdout, "a=1\nb=2\n");

    spate_stdin(
        &[
            "produce",
            &topic,
            "--partition",
            "3",
            "--bootstrap-server",
            &bs,
        ],
        "x\n",
    )
    .failure(
        "produce to a missing partition",
        "--partition 3 does not exist",
    );
}

#[test]
fn consume_stops_cleanly_on_sigint() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_sigint");
    create_topic(&bs, &topic, "1");
    spate_stdin(
        &["produce", &topic, "--bootstrap-server", &bs],
        "one\ntwo\n",
    )
    .success("produce");

    // No --max-messages and no --timeout-ms: only a signal ends it.
    let mut child = Command::new(common::spate_bin())
        .args([
            "consume",
            &topic,
            "--from-beginning",
            "--bootstrap-server",
            &bs,
        ])
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start spate consume");
    let (lines_tx, lines_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // Interrupt once both records are out, i.e. while it waits for more.
    let mut lines = Vec::new();
    while lines.len() < 2 {
        match lines_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("spate consume printed only {lines:?} within 20 s");
            }
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("spate consume did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    let stderr = stderr_reader.join().unwrap_or_default();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert_eq!(lines, ["one", "two"]);
    assert!(
        stderr.contains("Processed a total of 2 messages"),
        "{stderr}"
    );
}

#[test]
fn every_compression_codec_round_trips() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_codecs");
    create_topic(&bs, &topic, "1");
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let input: String = (0..200).map(|i| format!("{codec} record {i}\n")).collect();
        spate_stdin(
            &[
                "produce",
                &topic,
                "--compression",
                codec,
                "--bootstrap-server",
                &bs,
            ],
            &input,
        )
        .success(codec);
    }
    let consumed = spate(&[
        "consume",
        &topic,
        "--from-beginning",
        "--max-messages",
        "1000",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &bs,
    ])
    .success("consume");
    let expected: String = codecs
        .iter()
        .flat_map(|c| (0..200).map(move |i| format!("{c} record {i}\n")))
        .collect();
    assert_eq!(
        consumed.stdout, expected,
        "one partition: everything in produce order"
    );
}

/// One committed and one aborted transaction: `--isolation-level read_committed` prints only the
/// committed records, the default (`read_uncommitted`, as Kafka's console consumer) prints all.
#[test]
fn isolation_level_hides_aborted_transactions() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;
    use std::time::Duration;

    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_isolation");
    create_topic(&bs, &topic, "1");

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("transactional.id", random_topic("cli_isolation_txn"))
        .set("transaction.timeout.ms", "10000")
        .set("message.timeout.ms", "10000")
        .set("socket.timeout.ms", "10000")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(20);
    producer.init_transactions(timeout).expect("init");
    for (outcome, values) in [("commit", ["c1", "c2"]), ("abort", ["a1", "a2"])] {
        producer.begin_transaction().expect("begin");
        for v in values {
            producer
                .send(BaseRecord::<(), str>::to(&topic).payload(v))
                .expect("send");
        }
        producer.flush(timeout).expect("flush");
        match outcome {
            "commit" => producer.commit_transaction(timeout).expect("commit"),
            _ => producer.abort_transaction(timeout).expect("abort"),
        }
    }

    // No --max-messages: each run prints everything it may see, until 2 s pass idle.
    let read = |level: Option<&str>| {
        let mut args = vec![
            "consume",
            &topic,
            "--from-beginning",
            "--timeout-ms",
            "2000",
            "--bootstrap-server",
            &bs,
        ];
        if let Some(level) = level {
            args.extend(["--isolation-level", level]);
        }
        let out = spate(&args).success("consume");
        out.stdout.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(read(Some("read_committed")), ["c1", "c2"]);
    assert_eq!(read(None), ["c1", "c2", "a1", "a2"]);
    assert_eq!(read(Some("read_uncommitted")), ["c1", "c2", "a1", "a2"]);
}

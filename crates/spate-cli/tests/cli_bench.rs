//! `spate bench broker` end to end at a tiny size: it starts its own broker, moves every record
//! both ways, and writes a JSON report whose numbers agree with what it was asked to do.

mod common;

use common::spate;

#[test]
fn bench_broker_writes_a_consistent_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    for storage in [&["--in-memory"][..], &[][..]] {
        let json = dir.path().join("report.json");
        let json_arg = json.to_str().expect("utf-8 temp path");
        let run = spate(
            &[
                &[
                    "bench",
                    "broker",
                    "--records",
                    "3000",
                    "--record-size",
                    "10,200",
                ][..],
                &["--partitions", "3", "--json", json_arg],
                &[
                    "--many-partitions",
                    "20",
                    "--many-partitions-records",
                    "2000",
                ],
                storage,
            ]
            .concat(),
        )
        .success("bench broker");
        assert!(
            run.stdout.contains("record size"),
            "table header:\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("peak RSS"), "{}", run.stdout);

        let text = std::fs::read_to_string(&json).expect("report written");
        let report: serde_json::Value = serde_json::from_str(&text).expect("report is JSON");
        assert_eq!(report["benchmark"], "broker");
        let results = report["results"].as_array().expect("results");
        assert_eq!(results.len(), 2);
        for (row, size) in results.iter().zip([10u64, 200]) {
            assert_eq!(row["record_size"], size);
            assert_eq!(row["records"], 3000);
            assert_eq!(row["produce"]["records"], 3000);
            assert_eq!(row["consume"]["records"], 3000);
            assert_eq!(row["consume"]["bytes"], 3000 * size);
            assert!(row["produce_records_per_sec"].as_f64().unwrap() > 0.0);
            assert!(row["consume_mb_per_sec"].as_f64().unwrap() > 0.0);
        }
        let ceiling = report["ceiling"].as_array().expect("ceiling");
        assert_eq!(ceiling.len(), 2);
        assert_eq!(
            ceiling[0]["records_per_sec"],
            results[0]["consume_records_per_sec"]
        );
        assert!(report["resources"]["peak_rss_bytes"].as_u64().unwrap() > 0);
        assert!(report["resources"]["cpu_seconds"].as_f64().unwrap() > 0.0);
        let expect_memory = storage.contains(&"--in-memory");
        let broker = report["config"]["broker"].as_str().unwrap();
        assert_eq!(broker.contains("in-memory"), expect_memory, "{broker}");
        many_partitions_rows_agree(&report["many_partitions"]);
    }
}

/// The many-partitions rows: a session consumer on a broker that grants sessions, the same on
/// one that declines them, and rdkafka; each read all 2,000 records of the 20 partitions, and
/// an idle fetch in a session is far smaller than a full one.
fn many_partitions_rows_agree(rows: &serde_json::Value) {
    let rows = rows.as_array().expect("many_partitions rows");
    let shape: Vec<(&str, u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["consumer"].as_str().unwrap(),
                r["session_slots"].as_u64().unwrap(),
                r["in_session"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("sessions", 1000, true),
            ("rdkafka", 1000, false),
            ("sessions", 0, false)
        ]
    );
    for r in rows {
        assert_eq!(r["records"], 2000, "{r}");
        assert_eq!(r["partitions"], 20, "{r}");
        assert!(r["idle_fetches"].as_u64().unwrap() > 0, "{r}");
    }
    let idle = |i: usize| {
        rows[i]["idle_request_bytes"].as_f64().unwrap()
            + rows[i]["idle_response_bytes"].as_f64().unwrap()
    };
    println!(
        "idle fetch bytes, 20 partitions: session {:.0}, rdkafka {:.0}, declined {:.0}",
        idle(0),
        idle(1),
        idle(2)
    );
    assert!(idle(0) * 4.0 < idle(2), "{rows:?}");
    assert!(idle(0) * 4.0 < idle(1), "{rows:?}");
}

#[test]
fn bench_broker_rejects_a_zero_record_size() {
    spate(&["bench", "broker", "--record-size", "0", "--in-memory"])
        .failure("zero-byte records", "--record-size");
}

#[test]
fn bench_broker_against_an_external_broker_cleans_up() {
    let broker = spate_testkit::TestBroker::start();
    let bs = broker.bootstrap_servers();
    let run = spate(&[
        "bench",
        "broker",
        "--bootstrap-server",
        &bs,
        "--records",
        "2000",
        "--record-size",
        "50",
        "--partitions",
        "2",
    ])
    .success("bench broker --bootstrap-server");
    assert!(run.stdout.contains("external broker"), "{}", run.stdout);
    assert!(run.stdout.contains("50 B"), "{}", run.stdout);
    // The benchmark topic is deleted afterwards, so an external broker is left as it was.
    let listed = spate(&["topics", "list", "--bootstrap-server", &bs]).success("list");
    assert!(
        !listed.stdout.contains("spate-bench-broker"),
        "benchmark topic left behind:\n{}",
        listed.stdout
    );
}

/// Reads a `--json` report and checks the rows every streaming benchmark writes.
fn stream_report(path: &std::path::Path, benchmark: &str, jobs: &[&str]) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("report written");
    let report: serde_json::Value = serde_json::from_str(&text).expect("report is JSON");
    assert_eq!(report["benchmark"], benchmark);
    let rows = report["results"].as_array().expect("results");
    let names: Vec<&str> = rows.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(names, jobs, "{text}");
    let ceiling = report["ceiling"][0]["records_per_sec"].as_f64().unwrap();
    assert!(ceiling > 0.0);
    for row in rows {
        assert_eq!(row["records"], 3000, "{row}");
        assert!(row["bytes"].as_u64().unwrap() >= 3000 * 60, "{row}");
        for field in ["records_per_sec", "mb_per_sec", "seconds", "cpu_seconds"] {
            assert!(row[field].as_f64().unwrap() > 0.0, "{field}: {row}");
        }
        let ratio = row["ratio_to_ceiling"].as_f64().unwrap();
        let expected = row["records_per_sec"].as_f64().unwrap() / ceiling;
        assert!((ratio - expected).abs() < 1e-9, "{row}");
        assert!(row["peak_rss_bytes"].as_u64().unwrap() > 0, "{row}");
        if row["job"] != "rdkafka consumer (ceiling)" {
            assert!(row["batches"].as_u64().unwrap() >= 1, "{row}");
            assert!(row["batch_ms"]["p99"].as_f64().unwrap() >= 0.0, "{row}");
        }
    }
    report
}

#[test]
fn bench_direct_reads_every_record_and_compares_with_the_ceiling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("direct.json");
    let run = spate(&[
        "bench",
        "direct",
        "--in-memory",
        "--records",
        "3000",
        "--record-size",
        "60",
        "--json",
        json.to_str().expect("utf-8 temp path"),
    ])
    .success("bench direct");
    assert!(run.stdout.contains("of ceiling"), "{}", run.stdout);
    let report = stream_report(
        &json,
        "direct",
        &[
            "rdkafka consumer (ceiling)",
            "direct stream, pass-through",
            "direct stream, word count",
        ],
    );
    assert_eq!(report["config"]["partitions"], 4);
    assert_eq!(report["config"]["words_per_record"], 10);
    // Pass-through counts the bytes it saw: every record, exactly once.
    assert_eq!(report["results"][1]["bytes"], 3000 * 60);
}

#[test]
fn bench_receiver_reports_both_modes_and_the_log_amplification() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("receiver.json");
    let run = spate(&[
        "bench",
        "receiver",
        "--in-memory",
        "--records",
        "3000",
        "--record-size",
        "60",
        "--block-interval-ms",
        "50",
        "--json",
        json.to_str().expect("utf-8 temp path"),
    ])
    .success("bench receiver");
    assert!(run.stdout.contains("write amplification"), "{}", run.stdout);
    let report = stream_report(
        &json,
        "receiver",
        &[
            "rdkafka consumer (ceiling)",
            "direct stream, pass-through",
            "receiver stream, log off",
            "receiver stream, log on",
        ],
    );
    let wal = &report["write_ahead_log"];
    // Every received byte is in the log, with framing and record metadata on top.
    assert!(
        wal["received_bytes"].as_u64().unwrap() >= 3000 * 60,
        "{wal}"
    );
    assert!(wal["block_log_bytes"].as_u64().unwrap() > wal["received_bytes"].as_u64().unwrap());
    let amp = wal["write_amplification"].as_f64().unwrap();
    assert!(amp > 1.0 && amp < 10.0, "{wal}");
}

#[test]
fn bench_direct_rejects_an_unknown_job() {
    spate(&["bench", "direct", "--in-memory", "--jobs", "sort"]).failure("unknown job", "--jobs");
}

#[test]
fn bench_compaction_cleans_to_one_record_per_key_and_reports_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("compaction.json");
    let json_arg = json.to_str().expect("utf-8 temp path");
    // 20,000 records over 500 keys in 256 KiB segments (16 KiB batches), with an 8 KiB offset map
    // (at most 307 keys a pass): the cleaner needs several passes and must still keep one
    // record per key.
    let run = spate(&[
        "bench",
        "compaction",
        "--records",
        "20000",
        "--keys",
        "500",
        "--segment-bytes",
        "262144",
        "-X",
        "batch.size=16384",
        "--dedupe-buffer-size",
        "8192",
        "--json",
        json_arg,
    ])
    .success("bench compaction");
    assert!(run.stdout.contains("clean MB/s"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("log.cleaner.dedupe.buffer.size = 8192 B"),
        "{}",
        run.stdout
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    assert_eq!(report["benchmark"], "compaction");
    let r = &report["results"][0];
    assert_eq!(r["produce"]["records"], 20000);
    assert!(r["passes"].as_u64().unwrap() > 1, "{r}");
    assert!(r["map_memory_bytes"].as_u64().unwrap() <= 8192, "{r}");
    assert!(r["clean_mb_per_sec"].as_f64().unwrap() > 0.0);
    // Below the active segment one record per key remains; the consumer read what is left.
    let consumed = r["consume"]["records"].as_u64().unwrap();
    assert!((500..20000).contains(&consumed), "{r}");
    assert_eq!(
        report["ceiling"][0]["records_per_sec"],
        r["consume_records_per_sec"]
    );
    println!("{} passes, {consumed} records left of 20000", r["passes"]);
}

//! SIGKILL a process that appends to a compacted log and cleans it, at random points, again and
//! again; after each kill, reopen the log and check that no key lost its latest value, that
//! offsets still increase and that every offset can be fetched.
//!
//! The child is this test binary re-run with `cleaner_crash_child` selected and an environment
//! variable naming the data directory; without the variable that test does nothing.

mod cleaner_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use cleaner_support::*;
use kafka_protocol::records::Compression;
use spate_broker::storage::{
    CleanupPolicy, DiskOptions, DiskStorage, LogConfig, PartitionLog, TopicPartition,
};
use spate_testkit::ChildJob;

const CHILD_ENV: &str = "SPATE_CLEANER_CRASH_CHILD_DIR";
const KEYS: u64 = 300;

fn tp() -> TopicPartition {
    TopicPartition::new("cleaner-crash", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 1024,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 0,
        ..LogConfig::default()
    }
}

/// Batch `i`: ten updates (value names the batch) and, every fifth batch, a tombstone.
fn records_for(i: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut recs: Vec<_> = (0..10)
        .map(|j| {
            let k = (i * 7 + j * 31) % KEYS;
            (
                format!("k{k}").into_bytes(),
                Some(format!("b{i}:{j}").into_bytes()),
            )
        })
        .collect();
    if i % 5 == 0 {
        recs.push((format!("k{}", (i * 11) % KEYS).into_bytes(), None));
    }
    recs
}

fn codec_for(i: u64) -> Compression {
    [Compression::None, Compression::Lz4, Compression::Zstd][(i % 3) as usize]
}

/// The batch index a value names.
fn batch_of(value: &[u8]) -> u64 {
    let s = std::str::from_utf8(value).unwrap();
    s[1..s.find(':').unwrap()].parse().unwrap()
}

/// The live map after batches `0..n`.
fn model(n: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        for (k, v) in records_for(i) {
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
    }
    m
}

/// Child mode: append batches forever, cleaning after every 15, printing progress.
#[test]
fn cleaner_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let storage = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let log = storage.open_log(&tp(), config()).unwrap();
    let mut next = read_records(&*log)
        .iter()
        .filter_map(|r| r.value.as_deref().map(batch_of))
        .max()
        .map_or(0, |m| m + 1);
    let cleaner = cleaner_config(24 * 200);
    let mut out = std::io::stdout().lock();
    loop {
        append(
            &*log,
            &keyed_batch(codec_for(next), next as i64, &records_for(next)),
        );
        writeln!(out, "ACK {next}").unwrap();
        next += 1;
        if next % 15 == 0 {
            writeln!(out, "CLEANING").unwrap();
            out.flush().unwrap();
            clean(&log, &cleaner, now_ms());
            writeln!(out, "CLEANED").unwrap();
        }
        out.flush().unwrap();
    }
}

/// Reopens the log and checks it against the model; returns (batches in the log, records).
fn verify(dir: &std::path::Path, acked: u64) -> (u64, usize) {
    let storage = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let log = storage.open_log(&tp(), config()).unwrap();
    let records = read_records(&*log);
    assert_offsets_increase(&records);
    let n = records
        .iter()
        .filter_map(|r| r.value.as_deref().map(batch_of))
        .max()
        .map_or(0, |m| m + 1);
    assert!(
        n >= acked,
        "acknowledged batch {} is missing (log has {n})",
        acked.saturating_sub(1)
    );
    assert_eq!(live_map(&records), model(n), "live keys after {n} batches");
    // Every offset can be fetched: a consumer starting anywhere finds the next kept record.
    let start = log.log_start_offset();
    for offset in (start..log.log_end_offset()).step_by(7) {
        let want = records
            .iter()
            .find(|r| r.offset >= offset)
            .map(|r| r.offset);
        assert_eq!(first_record_from(&*log, offset), want, "fetch at {offset}");
    }
    (n, records.len())
}

/// What a killed child's progress lines say: the last acknowledged batch, whether it was killed
/// mid-cleaning, and how many cleanings it started.
fn replay_progress(lines: &[String]) -> (Option<u64>, bool, u32) {
    let mut last_ack = None;
    let mut cleaning = false;
    let mut cleanings = 0;
    for line in lines {
        if let Some(i) = line.strip_prefix("ACK ") {
            last_ack = i.trim().parse::<u64>().ok();
        } else if line == "CLEANING" {
            cleaning = true;
            cleanings += 1;
        } else if line == "CLEANED" {
            cleaning = false;
        }
    }
    (last_ack, cleaning, cleanings)
}

#[test]
fn sigkill_during_cleaning_loses_no_latest_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    let mut during_cleaning = 0;
    let rounds = 12;
    for round in 0..rounds {
        let started = Instant::now();
        let lines = ChildJob::test_entry("cleaner_crash_child")
            .env(CHILD_ENV, dir.path())
            .capture_stdout()
            .discard_stderr()
            .spawn()
            .kill_after_random(150..600);
        let (last_ack, cleaning, cleanings) = replay_progress(&lines);
        if let Some(i) = last_ack {
            acked = acked.max(i + 1);
        }
        if cleaning {
            during_cleaning += 1;
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(tp().to_string()))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".swap-end")
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (n, records) = verify(dir.path(), acked);
        println!(
            "round {round}: killed after {:?} ({} cleanings, {}), {acked} batches acknowledged, \
             {n} in the log, {records} records kept, swap leftovers {leftovers:?}",
            started.elapsed(),
            cleanings,
            if cleaning {
                "during a cleaning"
            } else {
                "while appending"
            },
        );
    }
    println!("{rounds} SIGKILLs, {during_cleaning} during a cleaning; every latest value survived");
    assert!(during_cleaning >= 1, "no kill landed during a cleaning");
}

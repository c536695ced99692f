//! SIGKILL the process that appends, reopen, and check that every acknowledged batch survived
//! (it was in the page cache) and that the log is a clean prefix of what was appended.
//!
//! The appender is this same test binary re-run as a child with `crash_child` selected and an
//! environment variable naming the data directory; without the variable that test does nothing.

mod storage_support;

use std::io::Write;
use std::time::Duration;

use spate_broker::storage::{DiskOptions, DiskStorage, LogConfig, LogStorage, TopicPartition};
use spate_testkit::ChildJob;
use storage_support::{append, assert_bytes, batch, split};

const CHILD_ENV: &str = "SPATE_STORAGE_CRASH_CHILD_DIR";

fn tp() -> TopicPartition {
    TopicPartition::new("crash-test", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// The `i`-th batch the child appends: deterministic, so the parent can rebuild it.
fn batch_for(i: u64) -> Vec<u8> {
    batch(
        1 + (i % 7) as i32,
        i as i64,
        100 + ((i * 37) % 3000) as usize,
    )
}

/// Child mode: append forever, printing `ACK <index> <base offset>` after each append returns.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let storage = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let log = storage.open(&tp(), config()).unwrap();
    let mut next = 0u64;
    log.scan_headers(0, &mut |_| next += 1).unwrap();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let (info, _) = append(&*log, &batch_for(next));
        writeln!(out, "ACK {next} {}", info.base_offset).unwrap();
        out.flush().unwrap();
        next += 1;
    }
}

#[test]
fn sigkill_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = ChildJob::test_entry("crash_child");
    job.env(CHILD_ENV, dir.path())
        .capture_stdout()
        .discard_stderr();
    let mut acked_total = 0u64;
    for round in 0..4u64 {
        let mut child = job.spawn();
        let mut acks = Vec::new();
        // A loaded machine may take a while to start the child; it then acknowledges steadily.
        while let Some(line) = child.next_line(Duration::from_secs(60)) {
            // The harness prints `test crash_child ... ` without a newline before the test runs.
            let Some(at) = line.find("ACK ") else {
                continue;
            };
            let rest = &line[at + 4..];
            let mut parts = rest.split(' ').map(|p| p.parse::<i64>().unwrap());
            acks.push((parts.next().unwrap() as u64, parts.next().unwrap()));
            if acks.len() as u64 >= 150 + round * 70 {
                break;
            }
        }
        child.kill(); // SIGKILL, reaped
        assert!(!acks.is_empty(), "child acknowledged nothing");
        assert_eq!(
            acks[0].0, acked_total,
            "the child resumed after the last batch"
        );
        acked_total = acks.last().unwrap().0 + 1;

        let storage = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        let log = storage.open(&tp(), config()).unwrap();
        // The log is exactly batch_for(0), batch_for(1), ... with contiguous offsets.
        let all = split(&log.read(0, usize::MAX).unwrap());
        assert!(all.len() as u64 >= acked_total, "lost acknowledged batches");
        let mut next_offset = 0;
        for (i, (h, bytes)) in all.iter().enumerate() {
            assert_eq!(h.base_offset, next_offset);
            let mut want = batch_for(i as u64);
            spate_broker::record_batch::set_base_offset(&mut want, h.base_offset);
            assert_bytes(bytes, &want, &format!("batch {i} after round {round}"));
            next_offset = h.last_offset() + 1;
        }
        assert_eq!(log.log_end_offset(), next_offset);
        for (i, base) in &acks {
            assert_eq!(all[*i as usize].0.base_offset, *base);
        }
        acked_total = all.len() as u64;
    }
}

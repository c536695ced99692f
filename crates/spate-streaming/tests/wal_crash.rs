//! SIGKILL test: a child process appends to the write-ahead log (fsync every append) and reports
//! each acknowledged record to the parent over a pipe; the parent kills it at a random moment.
//! Every acknowledged record must be readable after reopening, in order, many times over.
//!
//! The child is this test binary re-invoked with an environment variable.

use spate_testkit::ChildJob;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use spate_streaming::wal::{WalConfig, WriteAheadLog};

const ENV_DIR: &str = "SPATE_WAL_CRASH_CHILD_DIR";
const ENV_START: &str = "SPATE_WAL_CRASH_CHILD_START";

fn payload(n: u64) -> Vec<u8> {
    let mut p = n.to_le_bytes().to_vec();
    // Variable sizes (up to ~3 KB) so kills land inside records of different shapes.
    p.extend(std::iter::repeat_n(
        (n % 251) as u8,
        (n as usize * 131) % 3000,
    ));
    p
}

#[test]
fn child_entry() {
    let (Ok(dir), Ok(start)) = (std::env::var(ENV_DIR), std::env::var(ENV_START)) else {
        return;
    };
    let start: u64 = start.parse().expect("start");
    let config = WalConfig {
        rolling_interval_ms: 50, // roll often so kills also land around segment creation
        ..WalConfig::default()
    };
    let wal = WriteAheadLog::open(&dir, config).expect("open");
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = start;
    while Instant::now() < deadline {
        wal.append(n as i64, &payload(n)).expect("append");
        // Acknowledge only after append returned (= after fsync).
        writeln!(out, "{n}").expect("ack");
        out.flush().expect("ack flush");
        n += 1;
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = BTreeSet::new();
    for round in 0..12u64 {
        let printed = ChildJob::test_entry("child_entry")
            .env(ENV_DIR, dir.path())
            .env(ENV_START, (round * 1_000_000).to_string())
            .capture_stdout()
            .discard_stderr()
            .spawn()
            .kill_after_progress(Duration::from_millis(60));
        acknowledged.extend(printed.into_iter().map(|n| n as u64));

        let wal = WriteAheadLog::open(dir.path(), WalConfig::default())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let records = wal.read_all().unwrap();
        let seen: Vec<u64> = records
            .iter()
            .map(|r| {
                let n = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
                assert_eq!(r.payload, payload(n), "round {round}: record {n} damaged");
                assert_eq!(r.time_ms, n as i64);
                n
            })
            .collect();
        // In order, no duplicates.
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "round {round}: out of order"
        );
        let seen: BTreeSet<u64> = seen.into_iter().collect();
        let missing: Vec<&u64> = acknowledged.difference(&seen).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
    }
    assert!(acknowledged.len() > 12, "the child barely wrote anything");
    eprintln!("{} acknowledged records all recovered", acknowledged.len());
}

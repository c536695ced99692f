//! SIGKILL test: a child process appends to the write-ahead log (fsync every append) and reports
//! each acknowledged record to the parent over a pipe; the parent kills it at a random moment.
//! Every acknowledged record must be readable after reopening, in order, many times over.
//!
//! The child is this test binary re-invoked with an environment variable.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng;
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
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acknowledged = BTreeSet::new();
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ENV_DIR, dir.path())
            .env(ENV_START, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(n) = line.trim().parse::<u64>() {
                    let _ = tx.send(n);
                }
            }
        });
        // Kill at a random moment once the child is demonstrably appending.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child made no progress");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.insert(first);
        acknowledged.extend(rx.try_iter());

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

//! State snapshots kept in the batch log: a small snapshot is a record of the log (sharing the
//! batch's one fsync), a large one is a file; recovery, purge and the log's roll treat both alike,
//! and a snapshot whose commit is not durable yet is never what older history is deleted for.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use spate_streaming::checkpoint::{BatchPlan, Checkpoint, CommitInfo, StateSnapshot};

fn plan(t: i64) -> BatchPlan {
    BatchPlan::new(t).with_input(
        "kafka-0",
        json!({"ranges": [{"topic": "events", "partition": 0, "from": t, "until": t + 10}]}),
    )
}

fn commit() -> CommitInfo {
    CommitInfo {
        commit_time_ms: 1_700_000_000_000,
        num_records: 10,
        processing_delay_ms: Some(1),
    }
}

fn snapshot(t: i64, state_bytes: usize) -> StateSnapshot {
    let mut snap = StateSnapshot::new(t);
    snap.operators
        .insert("counts".into(), vec![(t % 251) as u8; state_bytes]);
    snap
}

/// One batch as the scheduler writes it: plan, sync, snapshot, commit (durable at the next
/// sync).
fn batch(cp: &Checkpoint, t: i64, state_bytes: Option<usize>) {
    cp.append_plan(&plan(t)).unwrap();
    cp.sync().unwrap();
    if let Some(n) = state_bytes {
        cp.append_state_snapshot(t, &snapshot(t, n)).unwrap();
    }
    cp.append_commit(t, &commit()).unwrap();
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn a_small_snapshot_is_a_log_record_and_recovers_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cp = Checkpoint::open(dir.path()).unwrap();
        batch(&cp, 1000, Some(100));
        batch(&cp, 2000, None);
        cp.sync().unwrap();
    }
    assert!(
        files(&dir.path().join("state")).is_empty(),
        "no snapshot file"
    );
    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.committed, vec![1000, 2000]);
    let latest = r.latest_snapshot.unwrap();
    assert_eq!(latest.batch_time_ms, 1000);
    assert!(latest.path.ends_with("batches"), "{:?}", latest.path);
    assert_eq!(cp.read_state_snapshot(1000).unwrap(), snapshot(1000, 100));
    assert!(cp.read_state_snapshot(2000).is_err());
}

#[test]
fn a_large_snapshot_is_a_file_and_the_newest_of_both_kinds_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    batch(&cp, 1000, Some(200_000));
    batch(&cp, 2000, Some(10));
    batch(&cp, 3000, Some(200_000));
    cp.sync().unwrap();
    let state = files(&dir.path().join("state"));
    assert_eq!(state.len(), 2, "{state:?}");
    assert!(state[0].ends_with("1000.snapshot"));
    drop(cp);

    let cp = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(
        cp.recover().unwrap().latest_snapshot.unwrap().batch_time_ms,
        3000
    );
    assert_eq!(cp.read_state_snapshot(2000).unwrap(), snapshot(2000, 10));
    assert_eq!(
        cp.read_state_snapshot(3000).unwrap(),
        snapshot(3000, 200_000)
    );
    // Purge keeps the newest committed snapshot (a file) and drops the older ones of both kinds.
    let stats = cp.purge(1).unwrap();
    assert_eq!(stats.snapshots_removed, 2);
    assert!(cp.read_state_snapshot(1000).is_err());
    assert!(cp.read_state_snapshot(2000).is_err());
    assert_eq!(files(&dir.path().join("state")).len(), 1);
}

#[test]
fn purge_waits_for_the_snapshots_commit_to_be_durable() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    batch(&cp, 1000, Some(10));
    batch(&cp, 2000, Some(10));
    // The commit of 2000 is appended but not synced: a crash now would lose it, and recovery
    // would need snapshot 1000 and the plans after it.
    let stats = cp.purge(1).unwrap();
    assert_eq!(stats.snapshots_removed, 0, "{stats:?}");
    assert_eq!(cp.read_state_snapshot(1000).unwrap(), snapshot(1000, 10));
    cp.sync().unwrap();
    let stats = cp.purge(1).unwrap();
    assert_eq!(stats.snapshots_removed, 1, "{stats:?}");
    assert!(cp.read_state_snapshot(1000).is_err());
    assert_eq!(
        cp.recover().unwrap().latest_snapshot.unwrap().batch_time_ms,
        2000
    );
}

#[test]
fn a_torn_snapshot_record_falls_back_to_the_previous_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cp = Checkpoint::open(dir.path()).unwrap();
        batch(&cp, 1000, Some(10));
        cp.sync().unwrap();
        batch(&cp, 2000, Some(5_000));
        cp.sync().unwrap();
    }
    let segments = files(&dir.path().join("batches"));
    assert_eq!(segments.len(), 1);
    let bytes = fs::read(&segments[0]).unwrap();
    // Cut inside the 5,000-byte snapshot of 2000: it and the commit after it never reached disk.
    fs::write(&segments[0], &bytes[..bytes.len() - 3_000]).unwrap();

    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(1000));
    assert_eq!(r.pending, vec![plan(2000)]);
    assert_eq!(r.latest_snapshot.unwrap().batch_time_ms, 1000);
    assert_eq!(cp.read_state_snapshot(1000).unwrap(), snapshot(1000, 10));
}

#[test]
fn the_log_roll_keeps_the_latest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cp = Checkpoint::open(dir.path()).unwrap();
        // 3 records per snapshot batch, 2 otherwise: past the roll threshold (256 records).
        for i in 1..=150i64 {
            let t = i * 1000;
            let due = i % 10 == 0;
            batch(&cp, t, due.then_some(1_000));
            cp.sync().unwrap();
            if due {
                cp.purge(10).unwrap();
            }
        }
        let segments = files(&dir.path().join("batches"));
        assert_eq!(segments.len(), 1, "rolled");
        assert!(!segments[0].ends_with("00000000000000000000.log"), "rolled");
    }
    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(150_000));
    assert_eq!(r.latest_snapshot.unwrap().batch_time_ms, 150_000);
    assert_eq!(
        cp.read_state_snapshot(150_000).unwrap(),
        snapshot(150_000, 1_000)
    );
    assert!(r.pending.is_empty());
    // Records older than the last roll are gone from disk; those since stay until the next
    // roll, and a purge drops them from the index again.
    assert!(cp.read_state_snapshot(10_000).is_err(), "rolled away");
    cp.purge(10).unwrap();
    assert!(cp.read_state_snapshot(100_000).is_err(), "purged");
}

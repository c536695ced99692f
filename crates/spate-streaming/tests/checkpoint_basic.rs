//! Checkpoint directory: round trips, pending detection, torn/corrupt files, metadata checks, purge.

use std::fs;

use serde_json::json;
use spate_streaming::checkpoint::{
    BatchPlan, Checkpoint, CommitInfo, JobMetadata, StateSnapshot, DEFAULT_RETAINED_BATCHES,
};
use spate_streaming::StreamingError;

fn plan(t: i64) -> BatchPlan {
    BatchPlan::new(t)
        .with_input(
            "kafka-0",
            json!({"ranges": [{"topic": "events", "partition": 0, "from": t, "until": t + 10}]}),
        )
        .with_input("receiver-1", json!({"blocks": [format!("input-1-{t}")]}))
}

fn commit(n: u64) -> CommitInfo {
    CommitInfo {
        commit_time_ms: 1_700_000_000_000,
        num_records: n,
        processing_delay_ms: Some(42),
    }
}

#[test]
fn open_creates_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ckpt");
    let cp = Checkpoint::open(&root).unwrap();
    for sub in ["offsets", "commits", "state"] {
        assert!(root.join(sub).is_dir(), "{sub} missing");
    }
    assert!(cp.metadata().is_none());
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, None);
    assert!(r.pending.is_empty());
    assert!(r.latest_snapshot.is_none());
}

#[test]
fn plan_and_commit_round_trip_and_pending() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    for t in [1000, 2000, 3000, 4000] {
        cp.write_plan(&plan(t)).unwrap();
    }
    cp.write_commit(1000, &commit(10)).unwrap();
    cp.write_commit(2000, &commit(20)).unwrap();

    assert_eq!(cp.read_plan(3000).unwrap(), Some(plan(3000)));
    assert_eq!(cp.read_commit(2000).unwrap(), Some(commit(20)));
    assert_eq!(cp.read_commit(3000).unwrap(), None);

    // A fresh handle (a restarted process) sees the same thing.
    drop(cp);
    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(2000));
    assert_eq!(r.committed, vec![1000, 2000]);
    assert_eq!(r.pending, vec![plan(3000), plan(4000)]);

    // The file on disk is versioned, human-readable JSON.
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("offsets/3000")).unwrap()).unwrap();
    assert_eq!(raw["version"], 1);
    assert_eq!(raw["batch_time_ms"], 3000);
    assert_eq!(raw["inputs"]["kafka-0"]["ranges"][0]["until"], 3010);
}

#[test]
fn replanning_a_batch_must_be_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    cp.write_plan(&plan(1000)).unwrap();
    cp.write_plan(&plan(1000)).unwrap(); // replay of a pending batch: fine
    let other = BatchPlan::new(1000).with_input("kafka-0", json!({"ranges": []}));
    let err = cp.write_plan(&other).unwrap_err();
    assert!(
        matches!(err, StreamingError::CheckpointConflict { ref path, .. } if path.ends_with("offsets/1000")),
        "{err}"
    );
}

#[test]
fn torn_temp_files_are_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    cp.write_plan(&plan(1000)).unwrap();
    cp.write_commit(1000, &commit(1)).unwrap();
    // A crash mid-write leaves a partial temp file for the next batch's plan and commit.
    fs::write(
        dir.path().join("offsets/.2000.tmp"),
        b"{\"version\":1,\"batch_ti",
    )
    .unwrap();
    fs::write(dir.path().join("commits/.2000.tmp"), b"").unwrap();
    fs::write(dir.path().join("state/.2000.snapshot.tmp"), b"SPATE").unwrap();

    // A reader that has not re-opened ignores them.
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(1000));
    assert!(r.pending.is_empty());

    // Opening deletes them.
    let cp = Checkpoint::open(dir.path()).unwrap();
    assert!(!dir.path().join("offsets/.2000.tmp").exists());
    assert!(!dir.path().join("commits/.2000.tmp").exists());
    assert!(!dir.path().join("state/.2000.snapshot.tmp").exists());
    assert_eq!(cp.recover().unwrap().last_committed, Some(1000));
}

#[test]
fn stray_files_do_not_break_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    cp.write_plan(&plan(1000)).unwrap();
    fs::write(dir.path().join("offsets/README"), b"notes").unwrap();
    assert_eq!(cp.recover().unwrap().pending, vec![plan(1000)]);
}

#[test]
fn corrupt_plan_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    cp.write_plan(&plan(1000)).unwrap();
    fs::write(dir.path().join("offsets/2000"), b"{\"version\":1,\"batch_").unwrap();
    let err = cp.recover().unwrap_err();
    match &err {
        StreamingError::CheckpointCorrupt { path, .. } => assert!(path.ends_with("offsets/2000")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("offsets/2000"), "{err}");
}

#[test]
fn misnamed_commit_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    cp.write_commit(1000, &commit(1)).unwrap();
    fs::copy(
        dir.path().join("commits/1000"),
        dir.path().join("commits/5000"),
    )
    .unwrap();
    let err = cp.recover().unwrap_err();
    assert!(
        matches!(&err, StreamingError::CheckpointCorrupt { path, reason } if path.ends_with("commits/5000") && reason.contains("1000")),
        "{err}"
    );
}

#[test]
fn newer_format_version_is_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    fs::write(
        dir.path().join("offsets/1000"),
        br#"{"version":7,"batch_time_ms":1000,"inputs":{}}"#,
    )
    .unwrap();
    let err = cp.recover().unwrap_err();
    assert!(
        matches!(&err, StreamingError::CheckpointIncompatible { path, mismatches } if path.ends_with("offsets/1000") && mismatches[0].contains("version 7")),
        "{err}"
    );
}

#[test]
fn unknown_fields_from_a_newer_minor_writer_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    fs::write(
        dir.path().join("commits/1000"),
        br#"{"version":1,"batch_time_ms":1000,"num_records":5,"future_field":true}"#,
    )
    .unwrap();
    let info = cp.read_commit(1000).unwrap().unwrap();
    assert_eq!(info.num_records, 5);
    assert_eq!(info.processing_delay_ms, None);
}

fn job() -> JobMetadata {
    JobMetadata::new("wordcount", 500)
        .with_input("kafka-0", "kafka-direct/v1")
        .with_stateful_operator("counts", "update_state_by_key<String,u64>/v1")
}

#[test]
fn metadata_round_trip_and_compatible_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open_for_job(dir.path(), &job()).unwrap();
    assert_eq!(cp.metadata(), Some(&job()));
    drop(cp);
    // Adding an input and an operator is an allowed upgrade, and becomes the stored metadata.
    let upgraded = job()
        .with_input("kafka-1", "kafka-direct/v1")
        .with_stateful_operator("sessions", "map_with_state/v1");
    let cp = Checkpoint::open_for_job(dir.path(), &upgraded).unwrap();
    drop(cp);
    let cp = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(cp.metadata(), Some(&upgraded));
}

#[test]
fn incompatible_metadata_names_each_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    Checkpoint::open_for_job(dir.path(), &job()).unwrap();
    let changed = JobMetadata::new("wordcount", 1000)
        .with_input("kafka-0", "kafka-receiver/v1")
        .with_stateful_operator("other", "x");
    let err = Checkpoint::open_for_job(dir.path(), &changed).unwrap_err();
    let StreamingError::CheckpointIncompatible { path, mismatches } = &err else {
        panic!("unexpected {err:?}");
    };
    assert!(path.ends_with("metadata"));
    assert_eq!(mismatches.len(), 3, "{mismatches:?}");
    assert!(mismatches[0].contains("batch interval") && mismatches[0].contains("500"));
    assert!(mismatches[1].contains("kafka-0") && mismatches[1].contains("kafka-receiver/v1"));
    assert!(mismatches[2].contains("counts") && mismatches[2].contains("not in the job"));
    // The stored metadata was not overwritten by the failed open.
    assert_eq!(
        Checkpoint::open(dir.path()).unwrap().metadata(),
        Some(&job())
    );

    let renamed = JobMetadata {
        app_name: "other-app".into(),
        ..job()
    };
    let err = Checkpoint::open(dir.path())
        .unwrap()
        .check_compatible(&renamed)
        .unwrap_err();
    assert!(err.to_string().contains("app name"), "{err}");
}

#[test]
fn corrupt_metadata_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("metadata"), b"not json").unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StreamingError::CheckpointCorrupt { path, .. } if path.ends_with("metadata")),
        "{err}"
    );
}

#[test]
fn state_snapshot_round_trip_and_recovery_choice() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..1000u64 {
        counts.insert(format!("word-{i}"), i * 3);
    }
    for t in [1000, 2000, 3000] {
        cp.write_plan(&plan(t)).unwrap();
        let mut snap = StateSnapshot::new(t);
        snap.put("counts", &counts).unwrap();
        snap.operators.insert("raw".into(), vec![t as u8; 3]);
        cp.write_state_snapshot(t, &snap).unwrap();
        if t != 3000 {
            cp.write_commit(t, &commit(1)).unwrap();
        }
    }
    // Snapshot 3000 exists, but batch 3000 did not commit: recovery resumes from 2000's state.
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(2000));
    assert_eq!(r.pending, vec![plan(3000)]);
    let snap_ref = r.latest_snapshot.unwrap();
    assert_eq!(snap_ref.batch_time_ms, 2000);
    let snap = cp.read_state_snapshot(2000).unwrap();
    assert_eq!(snap.batch_time_ms, 2000);
    let back: std::collections::BTreeMap<String, u64> = snap.get("counts").unwrap().unwrap();
    assert_eq!(back, counts);
    assert_eq!(snap.operators["raw"], vec![2000i64 as u8; 3]);
    assert_eq!(snap.get::<u64>("missing").unwrap(), None);

    // Mismatched batch time is refused.
    assert!(cp
        .write_state_snapshot(5000, &StateSnapshot::new(4000))
        .is_err());
}

#[test]
fn corrupt_snapshot_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    let mut snap = StateSnapshot::new(1000);
    snap.put("counts", &vec![1u64, 2, 3]).unwrap();
    let r = cp.write_state_snapshot(1000, &snap).unwrap();
    let good = fs::read(&r.path).unwrap();

    // Flip one body bit: CRC catches it.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    fs::write(&r.path, &bad).unwrap();
    let err = cp.read_state_snapshot(1000).unwrap_err();
    assert!(
        matches!(&err, StreamingError::CheckpointCorrupt { path, reason } if path.ends_with("state/1000.snapshot") && reason.contains("CRC")),
        "{err}"
    );
    // Truncate at every length: never read as valid.
    for len in 0..good.len() {
        fs::write(&r.path, &good[..len]).unwrap();
        assert!(
            matches!(
                cp.read_state_snapshot(1000),
                Err(StreamingError::CheckpointCorrupt { .. })
            ),
            "truncated to {len} bytes was accepted"
        );
    }
    fs::write(&r.path, &good).unwrap();
    assert_eq!(cp.read_state_snapshot(1000).unwrap(), snap);
}

#[test]
fn purge_keeps_newest_and_never_pending() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    for i in 1..=15i64 {
        let t = i * 1000;
        cp.write_plan(&plan(t)).unwrap();
        if i != 3 && i != 15 {
            cp.write_commit(t, &commit(1)).unwrap();
        }
    }
    let stats = cp.purge(DEFAULT_RETAINED_BATCHES).unwrap();
    // 13 commits, keep 10: commits 1000, 2000, 4000 go (3000 was never committed).
    assert_eq!(stats.commits_removed, 3);
    assert_eq!(stats.offsets_removed, 3);
    let r = cp.recover().unwrap();
    assert_eq!(r.committed.len(), 10);
    assert_eq!(r.committed[0], 5000);
    assert_eq!(
        r.pending
            .iter()
            .map(|p| p.batch_time_ms)
            .collect::<Vec<_>>(),
        vec![3000, 15000]
    );
    // Idempotent.
    assert_eq!(
        cp.purge(DEFAULT_RETAINED_BATCHES).unwrap().commits_removed,
        0
    );
}

#[test]
fn purge_keeps_history_since_latest_snapshot_and_drops_older_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    for i in 1..=20i64 {
        let t = i * 1000;
        cp.write_plan(&plan(t)).unwrap();
        if i % 4 == 0 {
            cp.write_state_snapshot(t, &StateSnapshot::new(t)).unwrap();
        }
        if i <= 19 {
            cp.write_commit(t, &commit(1)).unwrap();
        }
    }
    // Snapshots at 4,8,12,16,20 (×1000); 20 is uncommitted so 16000 is the one to resume from.
    let stats = cp.purge(2).unwrap();
    assert_eq!(stats.snapshots_removed, 3);
    // Keep-2 would cut at 18000, but batches after snapshot 16000 must stay replayable.
    assert_eq!(stats.commits_removed, 15);
    let r = cp.recover().unwrap();
    assert_eq!(r.latest_snapshot.unwrap().batch_time_ms, 16000);
    assert_eq!(r.committed, vec![16000, 17000, 18000, 19000]);
    assert!(cp.read_state_snapshot(20000).is_ok());
    assert!(cp.read_state_snapshot(12000).is_err());
}

#[test]
fn batch_log_group_commit_round_trips_and_merges_with_old_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        // An old checkpoint: plan and commit of batch 1000 as files, plan of 2000 as a file.
        let cp = Checkpoint::open(dir.path()).unwrap();
        cp.write_plan(&plan(1000)).unwrap();
        cp.write_commit(1000, &commit(10)).unwrap();
        cp.write_plan(&plan(2000)).unwrap();
    }
    let cp = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(cp.recover().unwrap().pending, vec![plan(2000)]);
    // The new build re-runs 2000 and goes on through the batch log.
    cp.append_plan(&plan(2000)).unwrap(); // identical to the recorded plan: fine
    cp.append_commit(2000, &commit(20)).unwrap();
    cp.append_plan(&plan(3000)).unwrap();
    cp.sync().unwrap();
    let mut other = plan(3000);
    other.inputs.clear();
    assert!(matches!(
        cp.append_plan(&other).unwrap_err(),
        StreamingError::CheckpointConflict { .. }
    ));
    drop(cp);
    let segments: Vec<_> = fs::read_dir(dir.path().join("batches")).unwrap().collect();
    assert_eq!(segments.len(), 1, "one segment per writer run");

    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.committed, vec![1000, 2000]);
    assert_eq!(r.pending, vec![plan(3000)]);
    assert_eq!(cp.read_commit(2000).unwrap(), Some(commit(20)));
    assert_eq!(cp.read_plan(1000).unwrap(), Some(plan(1000)));
}

#[test]
fn batch_log_torn_tail_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cp = Checkpoint::open(dir.path()).unwrap();
        cp.append_plan(&plan(1000)).unwrap();
        cp.append_commit(1000, &commit(1)).unwrap();
        cp.append_plan(&plan(2000)).unwrap();
        cp.sync().unwrap();
    }
    let segment = fs::read_dir(dir.path().join("batches"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // A crash cut the last record short.
    let bytes = fs::read(&segment).unwrap();
    fs::write(&segment, &bytes[..bytes.len() - 5]).unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.committed, vec![1000]);
    assert!(r.pending.is_empty(), "{:?}", r.pending);
    // The next run writes a new segment after the torn one and both read back.
    cp.append_plan(&plan(2000)).unwrap();
    cp.sync().unwrap();
    drop(cp);
    let cp = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(cp.recover().unwrap().pending, vec![plan(2000)]);
}

#[test]
fn batch_log_purge_rolls_segments_and_keeps_recent_history() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    for i in 1..=300 {
        let t = i * 1000;
        cp.append_plan(&plan(t)).unwrap();
        cp.sync().unwrap();
        cp.append_commit(t, &commit(1)).unwrap();
        cp.purge(DEFAULT_RETAINED_BATCHES).unwrap();
    }
    cp.append_plan(&plan(301_000)).unwrap();
    cp.sync().unwrap();
    drop(cp);
    let cp = Checkpoint::open(dir.path()).unwrap();
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(300_000));
    assert_eq!(r.pending, vec![plan(301_000)]);
    assert!(r.committed.len() < 150, "purged: {}", r.committed.len());
    let segments = fs::read_dir(dir.path().join("batches")).unwrap().count();
    assert!(segments <= 2, "old segments deleted: {segments}");
}

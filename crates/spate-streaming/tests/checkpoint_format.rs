//! The on-disk formats are a contract (checkpoints must survive upgrades), so these tests build
//! version-1 files by hand from the documented layouts — not with the code under test — and check
//! that they are read, and that what the code writes is byte-for-byte the documented encoding.

use std::collections::BTreeMap;
use std::fs;

use serde_json::json;
use spate_streaming::checkpoint::{BatchPlan, Checkpoint, CommitInfo, StateSnapshot};
use spate_streaming::receiver::{ReceivedBlockInfo, ReceivedBlockTracker, StreamBlockId};
use spate_streaming::wal::{WalConfig, WriteAheadLog};

#[test]
fn version_1_json_files_written_by_hand_are_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("offsets")).unwrap();
    fs::create_dir_all(dir.path().join("commits")).unwrap();
    fs::write(
        dir.path().join("metadata"),
        r#"{"version":1,"app_name":"wordcount","batch_interval_ms":500,
            "inputs":[{"id":"kafka-0","kind":"kafka-direct/v1"}],
            "stateful_operators":[{"id":"counts","state_type":"u64"}]}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("offsets/1000"),
        r#"{"version":1,"batch_time_ms":1000,"inputs":{"kafka-0":{"ranges":[["t",0,5,9]]}}}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("offsets/1500"),
        r#"{"version":1,"batch_time_ms":1500,"inputs":{}}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("commits/1000"),
        r#"{"version":1,"batch_time_ms":1000,"commit_time_ms":1700000000000,"num_records":4,"processing_delay_ms":12}"#,
    )
    .unwrap();

    let cp = Checkpoint::open(dir.path()).unwrap();
    let meta = cp.metadata().unwrap();
    assert_eq!(meta.app_name, "wordcount");
    assert_eq!(meta.inputs[0].kind, "kafka-direct/v1");
    let r = cp.recover().unwrap();
    assert_eq!(r.last_committed, Some(1000));
    assert_eq!(r.pending, vec![BatchPlan::new(1500)]);
    assert_eq!(
        cp.read_plan(1000).unwrap().unwrap().inputs["kafka-0"],
        json!({"ranges": [["t", 0, 5, 9]]})
    );
    assert_eq!(
        cp.read_commit(1000).unwrap().unwrap(),
        CommitInfo {
            commit_time_ms: 1_700_000_000_000,
            num_records: 4,
            processing_delay_ms: Some(12),
        }
    );
}

/// The documented snapshot layout, built by hand: header + postcard body.
fn hand_built_snapshot() -> Vec<u8> {
    // postcard: i64 1000 → zigzag 2000 → varint [0xD0, 0x0F]; map of 1 entry → [0x01];
    // "counts" → [6, b"counts"]; bytes [1, 2, 3] → [3, 1, 2, 3].
    let mut body = vec![0xD0, 0x0F, 0x01, 0x06];
    body.extend_from_slice(b"counts");
    body.extend_from_slice(&[0x03, 1, 2, 3]);
    let mut file = b"SPATESNP".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    file.extend_from_slice(&body);
    file
}

#[test]
fn snapshot_encoding_matches_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Checkpoint::open(dir.path()).unwrap();
    let snapshot = StateSnapshot {
        batch_time_ms: 1000,
        operators: BTreeMap::from([("counts".to_string(), vec![1u8, 2, 3])]),
    };
    let written = cp.write_state_snapshot(1000, &snapshot).unwrap();
    assert!(written.path.ends_with("state/1000.snapshot"));
    assert_eq!(fs::read(&written.path).unwrap(), hand_built_snapshot());

    fs::write(dir.path().join("state/2000.snapshot"), {
        // Same body but named 2000: the batch time inside must match the name.
        hand_built_snapshot()
    })
    .unwrap();
    assert!(cp.read_state_snapshot(2000).is_err());
    assert_eq!(cp.read_state_snapshot(1000).unwrap(), snapshot);
}

#[test]
fn wal_segment_written_by_hand_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = b"SPATEWAL".to_vec();
    seg.extend_from_slice(&1u32.to_le_bytes());
    seg.extend_from_slice(&0u32.to_le_bytes());
    for (time, payload) in [(7i64, &b"hello"[..]), (9, b"")] {
        let mut crc_input = time.to_le_bytes().to_vec();
        crc_input.extend_from_slice(payload);
        seg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        seg.extend_from_slice(&crc32c::crc32c(&crc_input).to_le_bytes());
        seg.extend_from_slice(&time.to_le_bytes());
        seg.extend_from_slice(payload);
    }
    fs::write(dir.path().join("log-00000000000000000000.wal"), &seg).unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    let all = wal.read_all().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].time_ms, all[0].payload.as_slice()),
        (7, &b"hello"[..])
    );
    assert_eq!(all[0].handle.offset, 16);
    assert_eq!((all[1].time_ms, all[1].payload.len()), (9, 0));
    // New appends go to the next segment, named by sequence.
    let h = wal.append(10, b"x").unwrap();
    assert_eq!(h.segment, 1);
    assert!(dir.path().join("log-00000000000000000001.wal").exists());
}

#[test]
fn tracker_events_written_by_hand_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = WriteAheadLog::open(
            dir.path().join("receivedBlockMetadata"),
            WalConfig::default(),
        )
        .unwrap();
        for event in [
            r#"{"version":1,"event":{"BlockAddition":{"block":{"block_id":{"stream_id":0,"unique_id":100},"num_records":3,"wal_handle":{"segment":0,"offset":16,"length":40}}}}}"#,
            r#"{"version":1,"event":{"BatchAllocation":{"batch_time_ms":1000,"blocks":{"0":[{"block_id":{"stream_id":0,"unique_id":100},"num_records":3,"wal_handle":{"segment":0,"offset":16,"length":40}}]}}}}"#,
            r#"{"version":1,"event":{"BlockAddition":{"block":{"block_id":{"stream_id":0,"unique_id":1100},"num_records":1}}}}"#,
        ] {
            wal.append(0, event.as_bytes()).unwrap();
        }
    }
    let tracker = ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap();
    let allocated = tracker.get_blocks_of_batch_and_stream(1000, 0);
    assert_eq!(allocated.len(), 1);
    assert_eq!(allocated[0].num_records, 3);
    assert_eq!(allocated[0].wal_handle.map(|h| h.length), Some(40));
    assert_eq!(
        tracker.unallocated_blocks(0),
        vec![ReceivedBlockInfo {
            block_id: StreamBlockId {
                stream_id: 0,
                unique_id: 1100
            },
            num_records: 1,
            wal_handle: None,
        }]
    );
}

//! ReceivedBlockTracker: allocation, and recovery of allocations and unallocated blocks across a
//! simulated driver restart.

use std::fs;

use spate_streaming::receiver::{ReceivedBlockInfo, ReceivedBlockTracker, StreamBlockId};
use spate_streaming::wal::WalConfig;

fn block(stream_id: u32, t: i64, n: u64) -> ReceivedBlockInfo {
    ReceivedBlockInfo {
        block_id: StreamBlockId {
            stream_id,
            unique_id: t,
        },
        num_records: n,
        wal_handle: None,
    }
}

#[test]
fn allocation_moves_all_unallocated_blocks() {
    let tracker = ReceivedBlockTracker::new([0, 1]);
    tracker.add_block(block(0, 100, 5)).unwrap();
    tracker.add_block(block(1, 100, 6)).unwrap();
    tracker.add_block(block(0, 300, 7)).unwrap();
    assert!(tracker.has_unallocated_blocks());
    tracker.allocate_blocks_to_batch(1000).unwrap();
    assert!(!tracker.has_unallocated_blocks());
    let batch = tracker.get_blocks_of_batch(1000);
    assert_eq!(batch[&0], vec![block(0, 100, 5), block(0, 300, 7)]);
    assert_eq!(batch[&1], vec![block(1, 100, 6)]);
    assert_eq!(
        tracker.get_blocks_of_batch_and_stream(1000, 1),
        vec![block(1, 100, 6)]
    );

    // An empty batch still gets an (empty) allocation.
    tracker.allocate_blocks_to_batch(2000).unwrap();
    assert!(tracker
        .get_blocks_of_batch(2000)
        .values()
        .all(Vec::is_empty));
    // Re-allocating an old batch time is ignored and keeps the original blocks.
    tracker.add_block(block(0, 2500, 1)).unwrap();
    tracker.allocate_blocks_to_batch(1000).unwrap();
    assert_eq!(tracker.get_blocks_of_batch(1000)[&0].len(), 2);
    assert_eq!(tracker.unallocated_blocks(0), vec![block(0, 2500, 1)]);

    tracker.cleanup_old_batches(2000).unwrap();
    assert_eq!(tracker.allocated_batch_times(), vec![2000]);
    assert!(tracker.get_blocks_of_batch(1000).is_empty());
}

#[test]
fn recovery_keeps_allocations_and_requeues_unallocated_blocks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let tracker = ReceivedBlockTracker::open([0, 1], dir.path(), WalConfig::default()).unwrap();
        tracker.add_block(block(0, 100, 1)).unwrap();
        tracker.add_block(block(1, 150, 2)).unwrap();
        tracker.allocate_blocks_to_batch(1000).unwrap();
        tracker.add_block(block(0, 1100, 3)).unwrap();
        tracker.allocate_blocks_to_batch(2000).unwrap();
        tracker.add_block(block(0, 2100, 4)).unwrap();
        tracker.add_block(block(1, 2200, 5)).unwrap();
        // "Crash": drop without any shutdown step.
    }
    assert!(dir.path().join("receivedBlockMetadata").is_dir());

    let tracker = ReceivedBlockTracker::open([0, 1], dir.path(), WalConfig::default()).unwrap();
    assert_eq!(tracker.allocated_batch_times(), vec![1000, 2000]);
    assert_eq!(tracker.last_allocated_batch(), Some(2000));
    let b1 = tracker.get_blocks_of_batch(1000);
    assert_eq!(b1[&0], vec![block(0, 100, 1)]);
    assert_eq!(b1[&1], vec![block(1, 150, 2)]);
    assert_eq!(
        tracker.get_blocks_of_batch(2000)[&0],
        vec![block(0, 1100, 3)]
    );
    // Re-running pending batch 2000 must see the same blocks.
    tracker.allocate_blocks_to_batch(2000).unwrap();
    assert_eq!(
        tracker.get_blocks_of_batch(2000)[&0],
        vec![block(0, 1100, 3)]
    );
    // Leftover blocks go to the next batch.
    assert_eq!(tracker.unallocated_blocks(0), vec![block(0, 2100, 4)]);
    tracker.allocate_blocks_to_batch(3000).unwrap();
    let b3 = tracker.get_blocks_of_batch(3000);
    assert_eq!(b3[&0], vec![block(0, 2100, 4)]);
    assert_eq!(b3[&1], vec![block(1, 2200, 5)]);

    // Cleanup is logged too.
    tracker.cleanup_old_batches(2000).unwrap();
    drop(tracker);
    let tracker = ReceivedBlockTracker::open([0, 1], dir.path(), WalConfig::default()).unwrap();
    assert_eq!(tracker.allocated_batch_times(), vec![2000, 3000]);
    assert!(!tracker.has_unallocated_blocks());
}

#[test]
fn torn_tracker_log_tail_loses_only_the_unacknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    {
        let tracker = ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap();
        tracker.add_block(block(0, 100, 1)).unwrap();
        tracker.allocate_blocks_to_batch(1000).unwrap();
        tracker.add_block(block(0, 1100, 2)).unwrap();
    }
    // Tear the last event (a crash in the middle of its write).
    let log_dir = dir.path().join("receivedBlockMetadata");
    let seg = fs::read_dir(&log_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = fs::read(&seg).unwrap();
    fs::write(&seg, &bytes[..bytes.len() - 3]).unwrap();

    let tracker = ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap();
    assert_eq!(
        tracker.get_blocks_of_batch(1000)[&0],
        vec![block(0, 100, 1)]
    );
    assert!(!tracker.has_unallocated_blocks());
}

#[test]
fn garbage_in_the_tracker_log_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = spate_streaming::wal::WriteAheadLog::open(
            dir.path().join("receivedBlockMetadata"),
            WalConfig::default(),
        )
        .unwrap();
        wal.append(1, b"not json").unwrap();
    }
    let err = ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap_err();
    assert!(err.to_string().contains("receivedBlockMetadata"), "{err}");
    assert!(
        err.to_string().contains("not a block tracker event"),
        "{err}"
    );
}

#[test]
fn log_cleaning_never_resurrects_or_loses_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        rolling_interval_ms: 1000, // many small segments, so cleaning really deletes some
        ..WalConfig::default()
    };
    let mut expected_batches = Vec::new();
    {
        let tracker = ReceivedBlockTracker::open([0], dir.path(), config.clone()).unwrap();
        for i in 1..=30i64 {
            let t = i * 1000;
            tracker.add_block(block(0, t - 700, 1)).unwrap();
            tracker.add_block(block(0, t - 300, 2)).unwrap();
            tracker.allocate_blocks_to_batch(t).unwrap();
            if i % 3 == 0 {
                tracker.cleanup_old_batches(t - 4000).unwrap();
            }
        }
        // A late report of an old block, then a cleanup far ahead: the block is unallocated, so
        // its addition must survive log cleaning.
        tracker.add_block(block(0, 50, 9)).unwrap();
        tracker.cleanup_old_batches(28_000).unwrap();
        expected_batches.extend(tracker.allocated_batch_times());
    }
    assert_eq!(expected_batches, vec![28_000, 29_000, 30_000]);
    let segments = fs::read_dir(dir.path().join("receivedBlockMetadata"))
        .unwrap()
        .count();
    assert!(
        segments < 20,
        "cleaning deleted nothing: {segments} segments"
    );

    for _ in 0..2 {
        let tracker = ReceivedBlockTracker::open([0], dir.path(), config.clone()).unwrap();
        assert_eq!(tracker.allocated_batch_times(), expected_batches);
        assert_eq!(
            tracker.get_blocks_of_batch_and_stream(29_000, 0),
            vec![block(0, 28_300, 1), block(0, 28_700, 2)]
        );
        assert_eq!(tracker.unallocated_blocks(0), vec![block(0, 50, 9)]);
        tracker.cleanup_old_batches(28_000).unwrap();
    }
}

#[test]
fn a_cleaned_batch_stays_cleaned_across_restarts_and_log_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let open = || ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap();
    {
        let t = open();
        t.add_block(block(0, 900, 1)).unwrap();
        t.allocate_blocks_to_batch(1000).unwrap();
        t.add_block(block(0, 2900, 1)).unwrap();
        t.allocate_blocks_to_batch(3000).unwrap();
    }
    // Each open starts a new log segment: the cleanup event lands in a segment of its own.
    open().cleanup_old_batches(2000).unwrap();
    // Cleaning the log at 2500 must not delete that cleanup event while the older segment (which
    // also holds batch 3000, so it is kept) still holds batch 1000's allocation.
    open().cleanup_old_batches(2500).unwrap();
    assert_eq!(open().allocated_batch_times(), vec![3000]);
}

#[test]
fn log_cleaning_keeps_additions_of_unallocated_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let open = || ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap();
    {
        let t = open();
        t.add_block(block(0, 100, 4)).unwrap();
        // Nothing allocated yet, but the scheduler cleans far ahead.
        t.cleanup_old_batches(5000).unwrap();
    }
    assert_eq!(open().unallocated_blocks(0), vec![block(0, 100, 4)]);
}

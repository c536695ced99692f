//! The storage conformance suite: one set of checks of the [`LogStorage`] / [`PartitionLog`]
//! contract, instantiated for every backend at the bottom of this file, so that the in-memory
//! and the disk log cannot drift apart.
//!
//! Retention checks configure `segment.bytes = 1`, so that the disk log rolls a segment per
//! batch and the memory log's "a batch is a segment" model describes both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{LogConfig, LogStorage, PartitionLog, TopicPartition};
use crate::error::BrokerError;
use crate::record_batch::{self, layout, BatchHeader, BatchIter};

/// A valid RecordBatch v2 of `records` records with the given max timestamp and an opaque body
/// of `body_len` bytes (records are never decoded by storage). Base offset 0.
pub(crate) fn test_batch(records: i32, max_ts: i64, body_len: usize) -> Vec<u8> {
    let mut b = vec![0u8; layout::HEADER_LEN];
    b.extend((0..body_len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(records as u8)));
    let len = (b.len() - layout::LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_ts.saturating_sub(5).to_be_bytes());
    b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Appends a copy of `batch`; returns the AppendInfo and the bytes as the log stores them.
pub(crate) fn append(log: &dyn PartitionLog, batch: &[u8]) -> (super::AppendInfo, Vec<u8>) {
    let mut v = batch.to_vec();
    let h = BatchHeader::parse(&v).unwrap();
    let info = log.append(&mut v, &h).unwrap();
    (info, v)
}

/// Splits a read result into batches, checking each is whole and CRC-valid.
pub(crate) fn batches(bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    BatchIter::new(bytes)
        .map(|r| {
            let (_, h, b) = r.unwrap();
            record_batch::validate_crc(b, &h).unwrap();
            (h, b.to_vec())
        })
        .collect()
}

/// A partition name no other test uses.
pub(crate) fn unique_tp() -> TopicPartition {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    TopicPartition::new(format!("conf-{}-{n}", std::process::id()), (n % 3) as i32)
}

fn open(storage: &dyn LogStorage, config: LogConfig) -> Arc<dyn PartitionLog> {
    storage.open(&unique_tp(), config).unwrap()
}

fn assert_out_of_range(r: crate::error::Result<impl std::fmt::Debug>) {
    match r {
        Err(BrokerError::OffsetOutOfRange { .. }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

/// `(records, max timestamp, body length)` of a small mixed log.
const SHAPES: [(i32, i64, usize); 5] = [
    (3, 100, 40),
    (1, 300, 10),
    (5, 200, 90),
    (2, 400, 0),
    (4, 400, 25),
];

fn fill(log: &dyn PartitionLog) -> Vec<(super::AppendInfo, Vec<u8>)> {
    SHAPES
        .iter()
        .map(|&(n, ts, body)| append(log, &test_batch(n, ts, body)))
        .collect()
}

pub(crate) fn round_trip(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.read(0, 1 << 20).unwrap().len(), 0);
    let appended = fill(&*log);
    let mut next = 0;
    for (info, stored) in &appended {
        assert_eq!(info.base_offset, next);
        let h = BatchHeader::parse(stored).unwrap();
        assert_eq!(h.base_offset, next);
        next = info.last_offset + 1;
        assert_eq!(info.log_start_offset, 0);
    }
    assert_eq!(next, 15);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.log_start_offset(), 0);
    let all: Vec<u8> = appended.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(&log.read(0, 1 << 20).unwrap()[..], &all[..]);
    assert_eq!(log.size_bytes(), all.len() as u64);
}

pub(crate) fn read_from_middle_of_batch(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    let appended = fill(&*log);
    for offset in 0..log.log_end_offset() {
        let got = batches(&log.read(offset, 1).unwrap());
        assert_eq!(got.len(), 1, "offset {offset}");
        let (h, bytes) = &got[0];
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "offset {offset}"
        );
        let expected = appended
            .iter()
            .find(|(i, _)| i.base_offset == h.base_offset)
            .unwrap();
        assert_eq!(bytes, &expected.1);
    }
}

pub(crate) fn max_bytes_returns_whole_batches(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    let appended = fill(&*log);
    let sizes: Vec<usize> = appended.iter().map(|(_, b)| b.len()).collect();
    // Exactly two batches fit.
    let two = sizes[0] + sizes[1];
    assert_eq!(batches(&log.read(0, two).unwrap()).len(), 2);
    // One byte short of two: one batch.
    assert_eq!(batches(&log.read(0, two - 1).unwrap()).len(), 1);
    // Less than the first batch: still the first batch, whole.
    let got = log.read(0, 10).unwrap();
    assert_eq!(&got[..], &appended[0].1[..]);
    assert_eq!(log.read(0, 0).unwrap().len(), sizes[0]);
    // From the third batch, with room for the rest.
    let got = batches(&log.read(4, 1 << 20).unwrap());
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0.base_offset, 4);
}

pub(crate) fn out_of_range(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    assert_out_of_range(log.read(1, 100));
    assert_out_of_range(log.read(-1, 100));
    fill(&*log);
    let end = log.log_end_offset();
    assert_eq!(log.read(end, 100).unwrap().len(), 0);
    assert_out_of_range(log.read(end + 1, 100));
    log.delete_records_before(5).unwrap();
    assert_out_of_range(log.read(4, 100));
    assert_eq!(batches(&log.read(5, 100).unwrap())[0].0.base_offset, 4);
}

pub(crate) fn timestamp_lookups(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp(), None);
    // Batches: [0..=2] ts 100, [3] ts 300, [4..=8] ts 200, [9..=10] ts 400, [11..=14] ts 400.
    fill(&*log);
    assert_eq!(log.offset_for_timestamp(-1).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(100).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((3, 300)));
    // The batch with ts 200 comes after one with 300: the first batch reaching 150 is [3].
    assert_eq!(log.offset_for_timestamp(150).unwrap(), Some((3, 300)));
    assert_eq!(log.offset_for_timestamp(301).unwrap(), Some((9, 400)));
    assert_eq!(log.offset_for_timestamp(401).unwrap(), None);
    // Ties go to the last batch.
    assert_eq!(log.max_timestamp(), Some((400, 14)));
    log.delete_records_before(4).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((4, 200)));
    assert_eq!(log.offset_for_timestamp(250).unwrap(), Some((9, 400)));
}

pub(crate) fn delete_records(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    fill(&*log);
    assert_eq!(log.delete_records_before(2).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 2);
    // Never backwards.
    assert_eq!(log.delete_records_before(1).unwrap(), 2);
    // A read at the start offset returns the batch containing it.
    let got = batches(&log.read(2, 1).unwrap());
    assert_eq!(got[0].0.base_offset, 0);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, 100)));
    // Clamped to the log end.
    assert_eq!(log.delete_records_before(1000).unwrap(), 15);
    assert_eq!(log.log_start_offset(), 15);
    assert_eq!(log.read(15, 100).unwrap().len(), 0);
    assert_out_of_range(log.read(14, 100));
    let (info, _) = append(&*log, &test_batch(2, 500, 5));
    assert_eq!((info.base_offset, info.log_start_offset), (15, 15));
    assert_eq!(batches(&log.read(15, 100).unwrap()).len(), 1);
}

pub(crate) fn retention_by_bytes(storage: &dyn LogStorage) {
    let config = LogConfig {
        segment_bytes: 1,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = open(storage, config.clone());
    let b = test_batch(2, 1000, 100);
    for _ in 0..5 {
        append(&*log, &b);
    }
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0);
    log.update_config(LogConfig {
        retention_bytes: (b.len() * 5 / 2) as i64,
        ..config
    });
    // 5 batches, room for 2.5: the two oldest go; the rest stays even though it is over.
    assert_eq!(log.enforce_retention(0).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.size_bytes(), 3 * b.len() as u64);
    assert_out_of_range(log.read(3, 100));
    assert_eq!(batches(&log.read(4, 1 << 20).unwrap()).len(), 3);
    assert_eq!(log.enforce_retention(0).unwrap(), 0);
}

pub(crate) fn retention_by_time(storage: &dyn LogStorage) {
    let config = LogConfig {
        segment_bytes: 1,
        retention_ms: 1500,
        ..LogConfig::default()
    };
    let log = open(storage, config);
    for ts in [1000, 2000, 3000, 4000] {
        append(&*log, &test_batch(1, ts, 10));
    }
    assert_eq!(log.enforce_retention(2500).unwrap(), 0);
    assert_eq!(log.enforce_retention(3200).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 1);
    // Everything is old, but the active segment (last batch) stays.
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(batches(&log.read(3, 100).unwrap())[0].0.max_timestamp, 4000);
    assert_eq!(log.max_timestamp(), Some((4000, 3)));
}

pub(crate) fn retention_time_pass_then_size_pass(storage: &dyn LogStorage) {
    // Kafka applies retention.ms to the oldest segments, stops at the first young one, and only
    // then applies retention.bytes; an old segment behind a young one survives the time pass.
    let b = |ts| test_batch(1, ts, 50);
    let len = b(0).len() as i64;
    let log = open(
        storage,
        LogConfig {
            segment_bytes: 1,
            retention_ms: 5000,
            retention_bytes: len * 5 / 2,
            ..LogConfig::default()
        },
    );
    for ts in [1000, 9000, 1000, 9000, 9000] {
        append(&*log, &b(ts));
    }
    // Time pass: [0] is old, [1] is young: stop. Size pass: 4 left, room for 2.5: drop [1].
    // [2] is old too, but neither pass reaches it.
    assert_eq!(log.enforce_retention(10_000).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 2);
}

pub(crate) fn scan_headers(storage: &dyn LogStorage) {
    let log = open(storage, LogConfig::default());
    let appended = fill(&*log);
    let mut seen = Vec::new();
    log.scan_headers(4, &mut |h| seen.push((h.base_offset, h.last_offset())))
        .unwrap();
    assert_eq!(seen, vec![(4, 8), (9, 10), (11, 14)]);
    seen.clear();
    log.scan_headers(0, &mut |h| seen.push((h.base_offset, h.last_offset())))
        .unwrap();
    let expected: Vec<_> = appended
        .iter()
        .map(|(i, _)| (i.base_offset, i.last_offset))
        .collect();
    assert_eq!(seen, expected);
    seen.clear();
    log.scan_headers(15, &mut |h| seen.push((h.base_offset, h.last_offset())))
        .unwrap();
    assert!(seen.is_empty());
}

pub(crate) fn rejects_bad_appends(storage: &dyn LogStorage) {
    let log = open(
        storage,
        LogConfig {
            max_message_bytes: 200,
            ..LogConfig::default()
        },
    );
    let mut big = test_batch(1, 1, 300);
    let h = BatchHeader::parse(&big).unwrap();
    assert!(matches!(
        log.append(&mut big, &h),
        Err(BrokerError::RecordBatchTooLarge { .. })
    ));
    let mut two = test_batch(1, 1, 10);
    two.extend(test_batch(1, 1, 10));
    let h = BatchHeader::parse(&two).unwrap();
    assert!(log.append(&mut two, &h).is_err());
    assert_eq!(log.log_end_offset(), 0);
    append(&*log, &test_batch(1, 1, 10));
    assert_eq!(log.log_end_offset(), 1);
}

pub(crate) fn open_list_remove(storage: &dyn LogStorage) {
    let tp = unique_tp();
    let log = storage.open(&tp, LogConfig::default()).unwrap();
    append(&*log, &test_batch(3, 1, 10));
    let again = storage.open(&tp, LogConfig::default()).unwrap();
    assert_eq!(again.log_end_offset(), 3);
    assert!(storage.partitions().unwrap().contains(&tp));
    storage.remove(&tp).unwrap();
    assert!(!storage.partitions().unwrap().contains(&tp));
    let fresh = storage.open(&tp, LogConfig::default()).unwrap();
    assert_eq!(fresh.log_end_offset(), 0);
    assert_eq!(fresh.read(0, 100).unwrap().len(), 0);
}

pub(crate) fn concurrent_reads_during_appends(storage: &dyn LogStorage) {
    let log = open(
        storage,
        LogConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        },
    );
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..400 {
                append(
                    &*log,
                    &test_batch(1 + i % 7, i as i64, (i as usize * 13) % 300),
                );
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reads = 0;
                while reads < 2000 {
                    let end = log.log_end_offset();
                    if end == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let offset = (reads * 7919) % end;
                    let got = batches(&log.read(offset, 1000).unwrap());
                    assert!(!got.is_empty());
                    let first = &got[0].0;
                    assert!(first.base_offset <= offset && offset <= first.last_offset());
                    for w in got.windows(2) {
                        assert_eq!(w[0].0.last_offset() + 1, w[1].0.base_offset);
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    let total: usize = batches(&log.read(0, usize::MAX).unwrap()).len();
    assert_eq!(total, 400);
}

/// Instantiates every check for one backend; `$make` evaluates to `(storage, guard)` where the
/// guard keeps backing resources (a temp dir) alive.
macro_rules! conformance_tests {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            conformance_tests!(@each $make;
                round_trip, read_from_middle_of_batch, max_bytes_returns_whole_batches,
                out_of_range, timestamp_lookups, delete_records, retention_by_bytes,
                retention_by_time, retention_time_pass_then_size_pass, scan_headers, rejects_bad_appends, open_list_remove,
                concurrent_reads_during_appends);
        }
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let (storage, _guard) = $make;
                super::super::$check(&storage);
            }
        )*
    };
}

mod backends {
    use crate::storage::{DiskOptions, DiskStorage, MemoryStorage};

    conformance_tests!(memory, (MemoryStorage::new(), ()));
    conformance_tests!(disk, {
        let dir = tempfile::tempdir().unwrap();
        let storage = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        (storage, dir)
    });
    conformance_tests!(disk_fsync_every_append, {
        let dir = tempfile::tempdir().unwrap();
        let options = DiskOptions {
            fsync_every_append: true,
        };
        let storage = DiskStorage::open(dir.path(), options).unwrap();
        (storage, dir)
    });
}

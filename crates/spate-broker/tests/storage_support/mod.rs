//! Helpers shared by the storage integration tests: valid RecordBatch v2 bytes and a few
//! shortcuts over the `PartitionLog` trait.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use spate_broker::record_batch::{layout, validate_crc, BatchHeader, BatchIter};
use spate_broker::storage::{AppendInfo, PartitionLog, TopicPartition};

/// A valid RecordBatch v2 with `records` records, max timestamp `max_ts` and an opaque body of
/// `body_len` bytes (storage never decodes records). Base offset 0.
pub fn batch(records: i32, max_ts: i64, body_len: usize) -> Vec<u8> {
    let mut b = vec![0u8; layout::HEADER_LEN];
    b.extend((0..body_len).map(|i| (i as u8).wrapping_mul(17).wrapping_add(max_ts as u8)));
    let len = (b.len() - layout::LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_ts.to_be_bytes());
    b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Appends a copy of `b`; returns the append result and the bytes as stored.
pub fn append(log: &dyn PartitionLog, b: &[u8]) -> (AppendInfo, Vec<u8>) {
    let mut v = b.to_vec();
    let h = BatchHeader::parse(&v).unwrap();
    let info = log.append(&mut v, &h).unwrap();
    (info, v)
}

/// Splits bytes into whole, CRC-valid batches.
pub fn split(bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    BatchIter::new(bytes)
        .map(|r| {
            let (_, h, b) = r.unwrap();
            validate_crc(b, &h).unwrap();
            (h, b.to_vec())
        })
        .collect()
}

/// Everything in the log from its start offset.
pub fn read_all(log: &dyn PartitionLog) -> Vec<u8> {
    log.read(log.log_start_offset(), usize::MAX)
        .unwrap()
        .to_vec()
}

/// A topic-partition with a name no other test uses (topic names contain dashes on purpose).
pub fn unique_tp() -> TopicPartition {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    TopicPartition::new(
        format!("disk-test-{}-{n}", std::process::id()),
        (n % 4) as i32,
    )
}

/// The segment `.log` files of a partition directory, sorted by name (= base offset).
pub fn segment_files(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Asserts two byte strings are equal, reporting lengths and the first difference instead of
/// dumping them.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {} bytes, first difference at {first_diff:?}",
            got.len(),
            want.len()
        );
    }
}

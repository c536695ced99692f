//! Helpers shared by the log cleaner tests: keyed record batches, decoding a log back into
//! records, the live key → value view of a log, and cleaning a disk log to completion.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use spate_broker::cleaner::{CleanStats, Cleaner, CleanerConfig, NoTransactions, PassOutcome};
use spate_broker::record_batch::BatchHeader;
use spate_broker::storage::{DiskLog, PartitionLog};

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A batch of `(key, value)` records (value `None` = tombstone), timestamps `ts, ts+1, ...`.
pub fn keyed_batch(codec: Compression, ts: i64, recs: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let recs: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: ts + i as i64,
            key: Some(Bytes::copy_from_slice(k)),
            value: v.as_ref().map(|v| Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .expect("encode batch");
    buf.to_vec()
}

/// Appends a batch; returns its base offset.
pub fn append(log: &dyn PartitionLog, batch: &[u8]) -> i64 {
    let mut v = batch.to_vec();
    let h = BatchHeader::parse(&v).expect("header");
    log.append(&mut v, &h).expect("append").base_offset
}

/// Decodes every record of `bytes` (concatenated batches).
pub fn decode(bytes: &[u8]) -> Vec<Rec> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode batch");
        for r in set.records {
            if r.control {
                continue;
            }
            out.push(Rec {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
            });
        }
    }
    out
}

/// Every record of the log, read from its start offset as a consumer would (fetch by fetch,
/// continuing after each batch's last offset).
pub fn read_records(log: &dyn PartitionLog) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 64 * 1024).expect("read");
        assert!(!bytes.is_empty(), "read at {next} returned nothing");
        let mut last = next - 1;
        for item in spate_broker::record_batch::BatchIter::new(&bytes) {
            let (_, h, b) = item.expect("batch");
            spate_broker::record_batch::validate_crc(b, &h).expect("crc");
            last = last.max(h.last_offset());
            out.extend(decode(b).into_iter().filter(|r| r.offset >= next));
        }
        next = last + 1;
    }
    out
}

/// The offset of the first record at or after `offset`, read as a consumer does (batch by batch,
/// moving past a batch's last offset when none of its records qualifies).
pub fn first_record_from(log: &dyn PartitionLog, offset: i64) -> Option<i64> {
    let mut next = offset;
    while next < log.log_end_offset() {
        let bytes = log.read(next, 1).expect("read");
        let (_, h, b) = spate_broker::record_batch::BatchIter::new(&bytes)
            .next()
            .expect("a batch")
            .expect("batch parses");
        if let Some(r) = decode(b).into_iter().find(|r| r.offset >= offset) {
            return Some(r.offset);
        }
        next = h.last_offset() + 1;
    }
    None
}

/// The key → value state a consumer reading `records` from the start ends up with.
pub fn live_map(records: &[Rec]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for r in records {
        let Some(k) = &r.key else { continue };
        match &r.value {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
    m
}

/// Asserts offsets strictly increase.
#[track_caller]
pub fn assert_offsets_increase(records: &[Rec]) {
    for w in records.windows(2) {
        assert!(
            w[0].offset < w[1].offset,
            "offsets out of order: {} then {}",
            w[0].offset,
            w[1].offset
        );
    }
}

/// A cleaner config for tests (small buffers unless given).
pub fn cleaner_config(dedupe_bytes: usize) -> CleanerConfig {
    CleanerConfig {
        dedupe_buffer_bytes: dedupe_bytes,
        io_buffer_bytes: 64 * 1024,
        ..CleanerConfig::default()
    }
}

/// Cleans `log` until its cleanable section is all clean; returns each pass's stats.
pub fn clean(log: &DiskLog, config: &CleanerConfig, now_ms: i64) -> Vec<CleanStats> {
    let mut cleaner = Cleaner::new(config.clone());
    let stop = AtomicBool::new(false);
    let mut passes = Vec::new();
    loop {
        let view = NoTransactions {
            log_end_offset: log.log_end_offset(),
        };
        match cleaner.clean(log, &view, now_ms, &stop).expect("clean") {
            PassOutcome::Cleaned(s) => {
                let more = s.map_full;
                passes.push(s);
                if !more {
                    return passes;
                }
            }
            PassOutcome::Aborted => panic!("cleaning aborted"),
        }
    }
}

/// Wall-clock now in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

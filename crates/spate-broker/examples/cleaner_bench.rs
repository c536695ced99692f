//! Benchmark of the log cleaner: append N records over K keys (default 10M over 100K, 100-byte
//! values, batches of 160 records) to a compacted disk log, then clean it once. Prints the
//! append rate, the cleaning throughput (bytes and records read per second) and the cleaner's
//! memory: the offset map's allocation (bounded by `log.cleaner.dedupe.buffer.size`) and the
//! process's resident memory before and after cleaning. Asserts only that the cleaning kept
//! one record per key.
//!
//! ```text
//! cargo run --release -p spate-broker --example cleaner_bench [records] [keys] [codec: none|lz4|zstd]
//! ```

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use spate_broker::cleaner::{Cleaner, CleanerConfig, NoTransactions, PassOutcome};
use spate_broker::record_batch::BatchHeader;
use spate_broker::storage::{
    CleanupPolicy, DiskOptions, DiskStorage, LogConfig, PartitionLog, TopicPartition,
};

const PER_BATCH: usize = 160;
const VALUE_BYTES: usize = 100;

fn encode(first_key: usize, keys: usize, codec: Compression) -> anyhow::Result<Vec<u8>> {
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let recs: Vec<Record> = (0..PER_BATCH)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_000 + i as i64,
            key: Some(Bytes::from(format!("key-{:07}", (first_key + i) % keys))),
            value: Some(value.clone()),
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
    )?;
    Ok(buf.to_vec())
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = args.get(1).map_or(Ok(10_000_000), |s| s.parse())?;
    let keys: usize = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let codec = match args.get(3).map(String::as_str) {
        Some("lz4") => Compression::Lz4,
        Some("zstd") => Compression::Zstd,
        _ => Compression::None,
    };
    let dir = tempfile::tempdir()?;
    let storage = DiskStorage::open(dir.path(), DiskOptions::default())?;
    let config = LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    let log = storage.open_log(&TopicPartition::new("cleaner-bench", 0), config)?;

    // The distinct batches (the key sequence repeats every `keys` records).
    let cycle = (keys / PER_BATCH).max(1);
    let batches: Vec<Vec<u8>> = (0..cycle)
        .map(|b| encode(b * PER_BATCH, keys, codec))
        .collect::<anyhow::Result<_>>()?;
    let n_batches = records / PER_BATCH;
    let started = Instant::now();
    let mut appended_bytes = 0u64;
    for i in 0..n_batches {
        let mut b = batches[i % cycle].clone();
        let h = BatchHeader::parse(&b)?;
        appended_bytes += b.len() as u64;
        log.append(&mut b, &h)?;
    }
    let append_secs = started.elapsed().as_secs_f64();
    let total_records = (n_batches * PER_BATCH) as f64;
    println!(
        "append: {} records ({:.0} MiB, {codec:?}) in {append_secs:.2} s = {:.0} records/s, {:.0} MiB/s; {} segments",
        total_records,
        appended_bytes as f64 / 1048576.0,
        total_records / append_secs,
        appended_bytes as f64 / 1048576.0 / append_secs,
        log.segment_count()
    );

    let cleaner_config = CleanerConfig::default();
    let mut cleaner = Cleaner::new(cleaner_config.clone());
    let (rss_before, _) = rss_mib();
    let stop = AtomicBool::new(false);
    let view = NoTransactions {
        log_end_offset: log.log_end_offset(),
    };
    let started = Instant::now();
    let PassOutcome::Cleaned(stats) = cleaner.clean(&log, &view, 10_000, &stop)? else {
        anyhow::bail!("cleaning aborted");
    };
    let clean_secs = started.elapsed().as_secs_f64();
    let (rss_after, hwm) = rss_mib();
    let mib = stats.bytes_read as f64 / 1048576.0;
    println!(
        "clean: read {mib:.0} MiB / {} records, wrote {:.1} MiB / {} records in {clean_secs:.2} s \
         = {:.0} MiB/s, {:.0} records/s (offset map phase read {:.0} MiB)",
        stats.records_read,
        stats.bytes_written as f64 / 1048576.0,
        stats.records_kept,
        mib / clean_secs,
        stats.records_read as f64 / clean_secs,
        stats.map_bytes_read as f64 / 1048576.0,
    );
    println!(
        "memory: offset map {:.1} MiB for {} keys (bound: log.cleaner.dedupe.buffer.size = {} MiB); \
         RSS {rss_before:.0} MiB before cleaning, {rss_after:.0} MiB after, peak {hwm:.0} MiB",
        stats.map_memory_bytes as f64 / 1048576.0,
        stats.map_entries,
        cleaner_config.dedupe_buffer_bytes / 1048576,
    );
    // The active segment is never cleaned; below it, one record per key remains.
    let active = *log.segment_base_offsets().last().unwrap_or(&0);
    anyhow::ensure!(
        stats.records_kept <= keys as u64 + (log.log_end_offset() - active) as u64,
        "kept {} records for {keys} keys",
        stats.records_kept
    );
    Ok(())
}

//! Micro-benchmark of the disk log: append throughput of 16 KiB batches of 100-byte records (the
//! shape of a librdkafka producer at `batch.size` 16 KiB), then sequential read throughput with
//! 1 MiB fetches. Prints numbers; asserts nothing.
//!
//! ```text
//! cargo run --release -p spate-broker --example storage_bench [seconds per phase, default 1]
//! ```

use std::time::{Duration, Instant};

use spate_broker::record_batch::{layout, BatchHeader};
use spate_broker::storage::{DiskOptions, DiskStorage, LogConfig, LogStorage, TopicPartition};

const BATCH_BYTES: usize = 16 * 1024;
const RECORD_BYTES: usize = 100;

/// A valid v2 batch of about `BATCH_BYTES` holding `BATCH_BYTES / RECORD_BYTES` records (the
/// record bytes are opaque to storage).
fn batch(ts: i64) -> (Vec<u8>, i32) {
    let records = (BATCH_BYTES / RECORD_BYTES) as i32;
    let mut b = vec![0u8; BATCH_BYTES];
    for (i, x) in b.iter_mut().enumerate().skip(layout::HEADER_LEN) {
        *x = (i % 251) as u8;
    }
    let len = (b.len() - layout::LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    (b, records)
}

fn run(label: &str, options: DiskOptions, phase: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = DiskStorage::open(dir.path(), options)?;
    let log = storage.open(&TopicPartition::new("bench", 0), LogConfig::default())?;
    let (mut bytes, records) = batch(1_700_000_000_000);
    let header = BatchHeader::parse(&bytes)?;

    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < phase && batches < 64 * 1024 {
        // The broker appends straight from the request buffer, so no copy here either.
        log.append(&mut bytes, &header)?;
        batches += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (batches as usize * BATCH_BYTES) as f64 / 1e6;
    println!(
        "{label:<22} append: {:>10.0} records/s  {:>8.1} MB/s  {:>8.0} batches/s  ({batches} batches in {secs:.2} s)",
        batches as f64 * records as f64 / secs,
        mb / secs,
        batches as f64 / secs,
    );

    let start = Instant::now();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut read = 0usize;
    while offset < end && start.elapsed() < phase {
        let chunk = log.read(offset, 1024 * 1024)?;
        read += chunk.len();
        // Next offset: after the last batch returned (walk headers only).
        let mut pos = 0;
        while pos < chunk.len() {
            let h = BatchHeader::parse(&chunk[pos..])?;
            offset = h.last_offset() + 1;
            pos += h.total_len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<22} read:   {:>10.0} records/s  {:>8.1} MB/s  (1 MiB fetches)",
        (read / BATCH_BYTES) as f64 * records as f64 / secs,
        read as f64 / 1e6 / secs,
    );

    // Restart costs: after a crash the active segment is re-validated (CRC of every batch);
    // after a clean close it is not.
    let size_mb = log.size_bytes() as f64 / 1e6;
    drop(log);
    drop(storage);
    let tp = TopicPartition::new("bench", 0);
    let start = Instant::now();
    let storage = DiskStorage::open(dir.path(), DiskOptions::default())?;
    let log = storage.open(&tp, LogConfig::default())?;
    let unclean = start.elapsed();
    assert_eq!(log.log_end_offset(), batches as i64 * records as i64);
    storage.close()?;
    drop(log);
    drop(storage);
    let start = Instant::now();
    let storage = DiskStorage::open(dir.path(), DiskOptions::default())?;
    let log = storage.open(&tp, LogConfig::default())?;
    let clean = start.elapsed();
    assert_eq!(log.log_end_offset(), batches as i64 * records as i64);
    println!(
        "{label:<22} reopen: {size_mb:.0} MB active segment: {:.1} ms after a crash, {:.2} ms after a clean close",
        unclean.as_secs_f64() * 1e3,
        clean.as_secs_f64() * 1e3,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1.0);
    let phase = Duration::from_secs_f64(secs);
    run("default (no fsync)", DiskOptions::default(), phase)?;
    run(
        "fsync_every_append",
        DiskOptions {
            fsync_every_append: true,
        },
        phase / 2,
    )?;
    Ok(())
}

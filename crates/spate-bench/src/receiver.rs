//! `spate bench receiver`: the receiver stream (`KafkaUtils::create_stream`) with the
//! write-ahead log off and on, next to the direct stream and the raw consumer ceiling on the
//! same preloaded topic in the same run, and the log's write amplification.
//!
//! Each receiver job is a pass-through (count records and bytes per block) that starts a new
//! consumer group at the earliest offset, so it reads the whole topic; it is timed from
//! `start()` — the group join is part of what a receiver costs — until every record was counted.
//! With the log on, the job has a checkpoint directory in a temp dir and every block is
//! serialized, appended and fsynced before its offsets are committed.
//!
//! The receiver jobs keep the receiver's own pre-fetch budget (`queued.max.messages.kbytes`
//! 16 MiB and `queued.min.messages` 100000 for the whole receiver, split over its consumer
//! threads) instead of the ceiling's, and its default memory budget (48 MiB of records).
//!
//! Write amplification is the bytes the receiver's logs grew by ÷ the key + value bytes received.
//! The logs are sampled while the job runs (every 50 ms, the largest size seen per file), because
//! old segments are deleted once no batch can replay them; it is reported for the block log
//! (`receivedData`) alone and with the block tracker's metadata log.

use crate::error::{BenchError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use spate_kafka::receiver::{BLOCK_INTERVAL_MS, WRITE_AHEAD_LOG_ENABLE};
use spate_kafka::KafkaUtils;

use crate::direct::run_direct_passthrough;
use crate::job_result::JobResult;
use crate::report::Report;
use crate::resources::ResourceUsage;
use crate::stream_job::{count_records, engine_config, print_rows, run_timed, TimedJob};
use crate::stream_topic::{Preloaded, StreamBenchArgs};

/// Options of `spate bench receiver`.
#[derive(Args, Debug)]
pub struct ReceiverBenchArgs {
    /// The topic, broker and engine settings shared with `bench direct`.
    #[command(flatten)]
    pub common: StreamBenchArgs,
    /// Consumer threads of the receiver (group members; Kafka splits the partitions).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub receiver_threads: u64,
    /// Block interval of the receiver, ms (Spark's spark.streaming.blockInterval).
    #[arg(long, value_name = "MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub block_interval_ms: u64,
}

/// The write-ahead log's growth during the log-on job.
#[derive(Debug, Clone, Serialize)]
pub struct WalUsage {
    /// Bytes appended to the receiver's block log (`receivedData`).
    pub block_log_bytes: u64,
    /// Bytes appended to the block tracker's metadata log.
    pub metadata_log_bytes: u64,
    /// Key + value bytes the receiver received.
    pub received_bytes: u64,
    /// `block_log_bytes ÷ received_bytes`.
    pub write_amplification: f64,
    /// `(block_log_bytes + metadata_log_bytes) ÷ received_bytes`.
    pub write_amplification_with_metadata: f64,
}

/// The receiver report: the rows, plus the log's write amplification.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiverReport {
    /// The common report, one row per job.
    #[serde(flatten)]
    pub report: Report<JobResult>,
    /// How much the log-on job wrote to the write-ahead log.
    pub write_ahead_log: WalUsage,
}

/// Tracks, per file under a directory, the largest size seen, on a thread polling every 50 ms.
struct LogSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<BTreeMap<PathBuf, u64>>>,
    dir: PathBuf,
}

impl LogSampler {
    fn start(dir: PathBuf) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, root) = (stop.clone(), dir.clone());
        let thread = std::thread::Builder::new()
            .name("bench-wal-sampler".into())
            .spawn(move || {
                let mut sizes = BTreeMap::new();
                while !flag.load(Ordering::Relaxed) {
                    scan(&root, &mut sizes);
                    std::thread::sleep(Duration::from_millis(50));
                }
                scan(&root, &mut sizes);
                sizes
            })
            .map_err(BenchError::io("could not start the log sampler"))?;
        Ok(LogSampler {
            stop,
            thread: Some(thread),
            dir,
        })
    }

    /// The largest size seen per file, relative to the sampled directory.
    fn finish(mut self) -> BTreeMap<PathBuf, u64> {
        self.stop.store(true, Ordering::Relaxed);
        let sizes = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        sizes
            .into_iter()
            .map(|(p, n)| {
                (
                    p.strip_prefix(&self.dir)
                        .map_or(p.clone(), Path::to_path_buf),
                    n,
                )
            })
            .collect()
    }
}

/// Records the size of every file under `dir` (recursively) in `sizes`, keeping the maximum.
fn scan(dir: &Path, sizes: &mut BTreeMap<PathBuf, u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let path = entry.path();
        if meta.is_dir() {
            scan(&path, sizes);
        } else {
            let size = sizes.entry(path).or_insert(0);
            *size = (*size).max(meta.len());
        }
    }
}

/// A receiver pass-through job over the whole topic, with the log on or off.
fn receiver_job<'a>(
    topic: &'a Preloaded,
    args: &ReceiverBenchArgs,
    wal: bool,
    checkpoint: Option<PathBuf>,
) -> TimedJob<'a> {
    let name = if wal {
        "receiver stream, log on"
    } else {
        "receiver stream, log off"
    };
    let threads = usize::try_from(args.receiver_threads).unwrap_or(1);
    let consumers = u32::try_from(threads).unwrap_or(1);
    let mut params = topic.kafka_params(
        consumers,
        &[
            (WRITE_AHEAD_LOG_ENABLE.to_owned(), wal.to_string()),
            (
                BLOCK_INTERVAL_MS.to_owned(),
                args.block_interval_ms.to_string(),
            ),
        ],
    );
    // The receiver has its own pre-fetch budget (16 MiB for all its consumers, split by the
    // receiver), sized to its memory budget; the ceiling's 64 MiB would be most of it.
    params.retain(|(k, _)| k != "queued.min.messages" && k != "queued.max.messages.kbytes");
    TimedJob {
        name: name.to_owned(),
        config: engine_config("bench-receiver", &args.common),
        checkpoint,
        expected_units: topic.records,
        timeout: Duration::from_secs(args.common.timeout_secs),
        build: Box::new(move |ctx, progress| {
            let stream = KafkaUtils::create_stream(ctx, params, [(topic.topic.clone(), threads)])?;
            count_records(&stream, progress);
            Ok(())
        }),
    }
}

impl WalUsage {
    /// The write-ahead log's usage from the sizes its files reached (`sizes`, by path) and the
    /// bytes the receivers took in: files under `receivedData` hold blocks, the others block
    /// metadata.
    fn of(sizes: &BTreeMap<PathBuf, u64>, received_bytes: u64) -> WalUsage {
        let is_block_log = |p: &Path| p.components().any(|c| c.as_os_str() == "receivedData");
        let block_log_bytes: u64 = sizes
            .iter()
            .filter(|(p, _)| is_block_log(p))
            .map(|(_, n)| n)
            .sum();
        let metadata_log_bytes: u64 = sizes
            .iter()
            .filter(|(p, _)| !is_block_log(p))
            .map(|(_, n)| n)
            .sum();
        let received = received_bytes.max(1) as f64;
        WalUsage {
            block_log_bytes,
            metadata_log_bytes,
            received_bytes,
            write_amplification: block_log_bytes as f64 / received,
            write_amplification_with_metadata: (block_log_bytes + metadata_log_bytes) as f64
                / received,
        }
    }

    /// The line under the table: log bytes against received bytes.
    fn print(&self) {
        println!(
            "write-ahead log: {:.1} MB of blocks + {:.2} MB of block metadata for {:.1} MB received: \
             write amplification {:.2} ({:.2} with metadata)",
            self.block_log_bytes as f64 / 1e6,
            self.metadata_log_bytes as f64 / 1e6,
            self.received_bytes as f64 / 1e6,
            self.write_amplification,
            self.write_amplification_with_metadata,
        );
    }
}

/// Runs `spate bench receiver`: preloads a topic, then times the receiver stream with the
/// write-ahead log off and on, and the direct stream, and prints the report.
pub fn run(args: ReceiverBenchArgs) -> Result<()> {
    let topic = Preloaded::start("receiver", &args.common)?;
    let config = args.common.config_json(
        &topic,
        serde_json::json!({
            "receiver_threads": args.receiver_threads,
            "block_interval_ms": args.block_interval_ms,
            "receiver_max_rate": null,
            "write_ahead_log_fsync": "every block",
        }),
    );
    let mut report: Report<JobResult> = Report::new("receiver", config);
    let (ceiling, ceiling_row) = topic.measure_ceiling()?;
    report
        .results
        .push(ceiling_row.clone().with_ceiling(&ceiling, &ceiling_row));
    let direct = run_direct_passthrough(&topic, &args.common)?;
    report
        .results
        .push(direct.with_ceiling(&ceiling, &ceiling_row));
    let off = run_timed(&topic, receiver_job(&topic, &args, false, None))?;
    report
        .results
        .push(off.with_ceiling(&ceiling, &ceiling_row));

    let checkpoint = tempfile::Builder::new()
        .prefix("spate-bench-receiver-")
        .tempdir()
        .map_err(BenchError::io("could not create a checkpoint dir"))?;
    let logs = checkpoint.path().join("receivers");
    std::fs::create_dir_all(&logs).map_err(BenchError::io("could not create the receivers dir"))?;
    let sampler = LogSampler::start(logs)?;
    let on = run_timed(
        &topic,
        receiver_job(&topic, &args, true, Some(checkpoint.path().to_path_buf())),
    );
    let sizes = sampler.finish();
    let on = on?;
    let wal = WalUsage::of(&sizes, on.bytes);
    report.results.push(on.with_ceiling(&ceiling, &ceiling_row));

    report.ceiling.push(ceiling);
    report.resources = ResourceUsage::now();
    print_rows(
        &report.results,
        report.machine.load_average,
        &topic.target.description,
    );
    wal.print();
    if let Some(path) = &args.common.json {
        let full = ReceiverReport {
            report,
            write_ahead_log: wal,
        };
        let json = serde_json::to_vec_pretty(&full)?;
        std::fs::write(path, json).map_err(BenchError::io(format!(
            "could not write the report to {}",
            path.display()
        )))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_keeps_the_largest_size_seen() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("receivedData").join("0");
        std::fs::create_dir_all(&sub).unwrap();
        let file = sub.join("log-1.wal");
        std::fs::write(&file, vec![0u8; 100]).unwrap();
        let mut sizes = BTreeMap::new();
        scan(dir.path(), &mut sizes);
        std::fs::write(&file, vec![0u8; 10]).unwrap();
        scan(dir.path(), &mut sizes);
        assert_eq!(sizes.get(&file), Some(&100));
        std::fs::remove_file(&file).unwrap();
        scan(dir.path(), &mut sizes);
        assert_eq!(sizes.len(), 1, "deleted files keep their last size");
    }
}

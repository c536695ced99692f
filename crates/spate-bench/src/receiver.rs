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
//! 16 MiB and `queued.min.messages` 16384 for the whole receiver, split over its consumer
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
    /// Jobs to run, comma-separated: direct (the direct pass-through), log-off, log-on.
    #[arg(long, value_delimiter = ',', default_value = "direct,log-off,log-on")]
    pub jobs: Vec<String>,
}

impl ReceiverBenchArgs {
    fn wants(&self, job: &str) -> bool {
        self.jobs.iter().any(|j| j == job)
    }
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
    /// How much the log-on job wrote to the write-ahead log (when it ran).
    pub write_ahead_log: Option<WalUsage>,
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

/// Client settings of the ceiling's consumer that the receiver decides for itself from its
/// pre-fetch budget.
const RECEIVER_DECIDES: &[&str] = &[
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
];

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
    // receiver) and bounds its fetches by it; the ceiling's 64 MiB queue and 64 MiB fetches
    // would be more than its whole memory budget.
    // What `-X` sets is the user's and stays (the last value of a key wins).
    let user_set = |k: &str| topic.client.config.iter().any(|(key, _)| key == k);
    params.retain(|(k, _)| !RECEIVER_DECIDES.contains(&k.as_str()) || user_set(k));
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

/// Runs `spate bench receiver`: preloads a topic (or reads `--topic`), then times the
/// `--jobs` — the direct stream, the receiver stream with the write-ahead log off and on —
/// next to the consumer ceiling, and prints the report.
pub fn run(args: ReceiverBenchArgs) -> Result<()> {
    for job in &args.jobs {
        if !matches!(job.as_str(), "direct" | "log-off" | "log-on") {
            return Err(BenchError::InvalidOptions(format!(
                "unknown job {job:?} in --jobs: expected direct, log-off, log-on"
            )));
        }
    }
    // The receiver joins a consumer group; Kafka's 3 s `group.initial.rebalance.delay.ms`
    // would then be most of a run's time. Kafka's shipped server.properties sets it to 0 for
    // development and testing, and so does the embedded broker here; an external broker is
    // used as it is (start it with `--config group.initial.rebalance.delay.ms=0`).
    let topic = args.common.preloaded_with(
        "receiver",
        &[("group.initial.rebalance.delay.ms", "0".to_owned())],
    )?;
    if args.common.target.bootstrap_server.is_some() {
        eprintln!(
            "  note: the receiver jobs' times include their group join, so the external broker's \
             group.initial.rebalance.delay.ms (Kafka's default 3 s) counts"
        );
    }
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
    let ceiling = if args.common.no_ceiling {
        None
    } else {
        let (ceiling, row) = topic.measure_ceiling()?;
        report
            .results
            .push(row.clone().with_ceiling(&ceiling, &row));
        Some((ceiling, row))
    };
    let rated = |row: JobResult| match &ceiling {
        Some((c, c_row)) => row.with_ceiling(c, c_row),
        None => row,
    };
    if args.wants("direct") {
        report
            .results
            .push(rated(run_direct_passthrough(&topic, &args.common)?));
    }
    if args.wants("log-off") {
        let off = run_timed(&topic, receiver_job(&topic, &args, false, None))?;
        report.results.push(rated(off));
    }
    let wal = if args.wants("log-on") {
        let (on, wal) = run_log_on(&topic, &args)?;
        report.results.push(rated(on));
        Some(wal)
    } else {
        None
    };
    report.ceiling.extend(ceiling.map(|(c, _)| c));
    report.resources = ResourceUsage::now();
    print_rows(
        &report.results,
        report.machine.load_average,
        &topic.target.description,
    );
    if let Some(wal) = &wal {
        print_wal(wal);
    }
    if let Some(path) = &args.common.json {
        let full = ReceiverReport {
            report,
            write_ahead_log: wal,
        };
        crate::report::write_json_report(path, &full)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The log-on job, with its checkpoint in a temp dir and the log's growth sampled while it
/// runs.
fn run_log_on(topic: &Preloaded, args: &ReceiverBenchArgs) -> Result<(JobResult, WalUsage)> {
    let checkpoint = tempfile::Builder::new()
        .prefix("spate-bench-receiver-")
        .tempdir()
        .map_err(BenchError::io("could not create a checkpoint dir"))?;
    let logs = checkpoint.path().join("receivers");
    std::fs::create_dir_all(&logs).map_err(BenchError::io("could not create the receivers dir"))?;
    let sampler = LogSampler::start(logs)?;
    let on = run_timed(
        topic,
        receiver_job(topic, args, true, Some(checkpoint.path().to_path_buf())),
    );
    let sizes = sampler.finish();
    let on = on?;
    let received_bytes = on.bytes;
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
    let wal = WalUsage {
        block_log_bytes,
        metadata_log_bytes,
        received_bytes,
        write_amplification: block_log_bytes as f64 / received,
        write_amplification_with_metadata: (block_log_bytes + metadata_log_bytes) as f64 / received,
    };
    Ok((on, wal))
}

fn print_wal(wal: &WalUsage) {
    println!(
        "write-ahead log: {:.1} MB of blocks + {:.2} MB of block metadata for {:.1} MB received: \
         write amplification {:.2} ({:.2} with metadata)",
        wal.block_log_bytes as f64 / 1e6,
        wal.metadata_log_bytes as f64 / 1e6,
        wal.received_bytes as f64 / 1e6,
        wal.write_amplification,
        wal.write_amplification_with_metadata,
    );
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

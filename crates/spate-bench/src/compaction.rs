//! `spate bench compaction`: how fast the broker's log cleaner compacts, and with how much
//! memory, beside the produce rate of the same run.
//!
//! Starts the embedded broker (disk storage; the cleaner threads off, `log.cleaner.enable=false`,
//! so that none starts while the topic is loading), creates a compacted topic, produces N keyed
//! records over K keys with the tuned rdkafka producer, then cleans every partition with the
//! broker's own `LogCleaner::clean_now` — the passes a cleaner thread runs, with the broker's
//! `log.cleaner.*` settings — on this thread, until the whole cleanable section is clean (more
//! than one pass when the keys do not fit `log.cleaner.dedupe.buffer.size`). The peak RSS mark
//! is reset before cleaning, so the memory figure is the broker process's peak while cleaning
//! (producer buffers freed by then). Last, the raw librdkafka consumer reads the compacted topic
//! from the start: the ceiling, as other benchmarks report it.

use crate::error::{BenchError, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::broker::{create_topic_with, tuning_json};
use crate::kafka_io;
use crate::report::{Ceiling, Report, Table};
use crate::resources::{self, CpuTime, ResourceUsage};
use spate_broker::cleaner::CleanStats;
use spate_broker::partition::Partition;
use spate_broker::BrokerState;
use spate_client::config::{parse_key_value, ClientArgs};
use spate_client::embedded::{EmbeddedBroker, Storage};
use spate_client::measure::{fmt_count, Throughput};
use spate_client::tuning::{CONSUMER_TUNING, PRODUCER_TUNING};

/// Options of `spate bench compaction`.
#[derive(Args, Debug)]
pub struct CompactionBenchArgs {
    /// Records to produce.
    #[arg(long, default_value_t = 10_000_000, value_name = "N")]
    records: u64,
    /// Distinct keys (record i has key i mod K).
    #[arg(long, default_value_t = 100_000, value_name = "K")]
    keys: u64,
    /// Value size in bytes (keys are 11 bytes, `key-NNNNNNN`).
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    record_size: usize,
    /// Partitions of the compacted topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// `segment.bytes` of the topic (the active segment is never cleaned).
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    segment_bytes: u64,
    /// `log.cleaner.dedupe.buffer.size`: the offset map's memory bound (Kafka's default 128 MiB).
    #[arg(long, default_value_t = 128 << 20, value_name = "BYTES")]
    dedupe_buffer_size: u64,
    /// Keep the broker's data here instead of a fresh temp dir (deleted afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Write the report as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// A librdkafka setting for both clients, applied after the tuning (e.g. -X linger.ms=50).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
}

/// The run's one table row, with raw numbers for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionBenchRow {
    /// Records produced.
    pub records: u64,
    /// Distinct keys among them.
    pub keys: u64,
    /// Value size in bytes.
    pub record_size: usize,
    /// Partitions of the compacted topic.
    pub partitions: i32,
    /// How long producing took, and how much.
    pub produce: Throughput,
    /// Produce rate, records per second.
    pub produce_records_per_sec: f64,
    /// Produce rate, MB per second.
    pub produce_mb_per_sec: f64,
    /// `log.cleaner.dedupe.buffer.size` in force.
    pub dedupe_buffer_size: u64,
    /// Cleaning passes over all partitions (one per partition when the keys fit the map).
    pub passes: usize,
    /// Bytes and records the recopy read (the whole cleanable section, every pass).
    pub clean_bytes_read: u64,
    /// Records the recopy read.
    pub clean_records_read: u64,
    /// Bytes the offset-map phase read (the dirty section).
    pub map_bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub clean_bytes_written: u64,
    /// Records the last pass of each partition kept below its end (what cleaning left).
    pub clean_records_kept: u64,
    /// Wall time of all passes.
    pub clean_seconds: f64,
    /// Cleaning throughput: bytes read by the recopy per second, in MB.
    pub clean_mb_per_sec: f64,
    /// Cleaning throughput in records read by the recopy per second.
    pub clean_records_per_sec: f64,
    /// CPU time of the process while cleaning.
    pub clean_cpu_seconds: f64,
    /// The largest offset map of a pass, and its keys.
    pub map_memory_bytes: usize,
    /// Keys in the largest offset map.
    pub map_entries: usize,
    /// Resident memory before cleaning and its peak while cleaning (`None` where /proc or
    /// `clear_refs` is unavailable: then the peak is the whole run's).
    pub rss_before_clean_bytes: Option<u64>,
    /// Peak RSS up to the end of producing (broker and producer in this process).
    pub peak_rss_produce_bytes: Option<u64>,
    /// Peak RSS while cleaning (see `peak_rss_is_cleaning_only`).
    pub peak_rss_clean_bytes: Option<u64>,
    /// Whether the peak above was reset before cleaning (else it is the whole run's).
    pub peak_rss_is_cleaning_only: bool,
    /// The raw consumer reading the compacted topic from the start.
    pub consume: Throughput,
    /// The consumer's rate, records per second.
    pub consume_records_per_sec: f64,
    /// The consumer's rate, MB per second.
    pub consume_mb_per_sec: f64,
}

/// Runs `spate bench compaction`: produce, clean until nothing is cleanable, read the result
/// back with the raw consumer; prints the table and writes `--json`.
pub fn run(args: CompactionBenchArgs) -> Result<()> {
    if args.keys == 0 || args.records == 0 || args.record_size == 0 {
        return Err(BenchError::InvalidOptions(
            "--records, --keys and --record-size must be at least 1".into(),
        ));
    }
    let settings = [
        ("log.cleaner.enable", "false".to_string()),
        (
            "log.cleaner.dedupe.buffer.size",
            args.dedupe_buffer_size.to_string(),
        ),
    ];
    let broker = EmbeddedBroker::start_with(Storage::Disk(args.data_dir.clone()), &settings)?;
    let state = broker
        .state()
        .ok_or_else(|| BenchError::Missing("the embedded broker's state".into()))?
        .clone();
    let mut client = ClientArgs::new(broker.bootstrap());
    client.config = args.config.clone();
    let mut report: Report<CompactionBenchRow> =
        Report::new("compaction", bench_config(&args, &broker));
    let (topic, produce) = load_topic(&client, &args)?;

    eprintln!("cleaning...");
    let partitions: Vec<_> = (0..args.partitions)
        .map(|p| {
            state
                .topics
                .partition(&topic, p)
                .ok_or_else(|| BenchError::Missing(format!("partition {p} of {topic}")))
        })
        .collect::<Result<_>>()?;
    let cleaning = clean_all(&state, &partitions)?;

    eprintln!("consuming the compacted topic...");
    let ends: Vec<i64> = partitions
        .iter()
        .map(|p| p.log().log_end_offset())
        .collect();
    let consume =
        kafka_io::drain_to_end(&client, &topic, &ends).map_err(|e| e.during("consuming"))?;

    report.ceiling.push(Ceiling {
        record_size: args.record_size,
        records_per_sec: consume.records_per_sec(),
        mb_per_sec: consume.mb_per_sec(),
        method: "rdkafka BaseConsumer over the compacted topic, all partitions assigned, no group"
            .to_owned(),
    });
    report
        .results
        .push(compaction_row(&args, produce, &cleaning, consume));
    report.resources = ResourceUsage::now();
    print(&report)?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Creates the compacted topic and produces the keyed records into it; returns the topic
/// and the producer's throughput.
fn load_topic(client: &ClientArgs, args: &CompactionBenchArgs) -> Result<(String, Throughput)> {
    let topic = format!("spate-bench-compaction-{}", std::process::id());
    create_topic_with(
        client,
        &topic,
        args.partitions,
        &[
            ("cleanup.policy", "compact".to_string()),
            ("segment.bytes", args.segment_bytes.to_string()),
        ],
    )?;

    eprintln!(
        "spate bench compaction: {} records over {} keys, {} B values, {} partition(s), \
         log.cleaner.dedupe.buffer.size = {} B; producing...",
        args.records, args.keys, args.record_size, args.partitions, args.dedupe_buffer_size
    );
    let produce = kafka_io::load_keyed(
        client,
        &topic,
        args.partitions,
        args.records,
        args.record_size,
        args.keys,
    )
    .map_err(|e| e.during("producing the keyed records"))?
    .throughput;
    Ok((topic, produce))
}

/// The report's `config`: the run's options, the broker and the clients' tuning.
fn bench_config(args: &CompactionBenchArgs, broker: &EmbeddedBroker) -> serde_json::Value {
    serde_json::json!({
        "broker": broker.description(),
        "records": args.records,
        "keys": args.keys,
        "record_size": args.record_size,
        "partitions": args.partitions,
        "segment_bytes": args.segment_bytes,
        "log.cleaner.dedupe.buffer.size": args.dedupe_buffer_size,
        "cleaning": "LogCleaner::clean_now on the bench thread, cleaner threads off",
        "producer": tuning_json(PRODUCER_TUNING, &args.config),
        "consumer": tuning_json(CONSUMER_TUNING, &args.config),
    })
}

/// What cleaning every partition until nothing was cleanable did and cost.
struct Cleaning {
    /// Every pass over every partition.
    passes: Vec<CleanStats>,
    /// Records left: each pass recopies the whole cleanable section, so a partition's count is
    /// its last pass's.
    kept: u64,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_produce: Option<u64>,
    rss_before: Option<u64>,
    peak_rss_clean: Option<u64>,
    peak_reset: bool,
}

/// Cleans each partition on this thread until nothing is cleanable, measuring time, CPU and
/// resident memory (the peak is reset first where the kernel allows it).
fn clean_all(state: &BrokerState, partitions: &[Arc<Partition>]) -> Result<Cleaning> {
    let peak_rss_produce = resources::peak_rss_bytes();
    let rss_before = resources::rss_bytes();
    let peak_reset = resources::reset_peak_rss();
    let cpu = CpuTime::now();
    let started = Instant::now();
    let mut passes: Vec<CleanStats> = Vec::new();
    let mut kept = 0u64;
    for p in partitions {
        let now = spate_broker::time::now_ms();
        let mine = state
            .cleaner
            .clean_now(p, now)
            .map_err(|e| BenchError::from(e).during(format!("cleaning {}", p.tp)))?;
        kept += mine.last().map_or(0, |s| s.records_kept);
        passes.extend(mine);
    }
    Ok(Cleaning {
        passes,
        kept,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: CpuTime::now().since(&cpu).total(),
        peak_rss_produce,
        rss_before,
        peak_rss_clean: resources::peak_rss_bytes(),
        peak_reset,
    })
}

/// The report row of one run: the producer's rate, the cleaning's totals and the consumer's
/// rate over the compacted topic.
fn compaction_row(
    args: &CompactionBenchArgs,
    produce: Throughput,
    cleaning: &Cleaning,
    consume: Throughput,
) -> CompactionBenchRow {
    let passes = &cleaning.passes;
    let sum = |f: fn(&CleanStats) -> u64| passes.iter().map(f).sum::<u64>();
    let clean_bytes_read = sum(|s| s.bytes_read);
    let clean_records_read = sum(|s| s.records_read);
    let clean_seconds = cleaning.seconds;
    CompactionBenchRow {
        records: args.records,
        keys: args.keys,
        record_size: args.record_size,
        partitions: args.partitions,
        produce,
        produce_records_per_sec: produce.records_per_sec(),
        produce_mb_per_sec: produce.mb_per_sec(),
        dedupe_buffer_size: args.dedupe_buffer_size,
        passes: passes.len(),
        clean_bytes_read,
        clean_records_read,
        map_bytes_read: sum(|s| s.map_bytes_read),
        clean_bytes_written: sum(|s| s.bytes_written),
        clean_records_kept: cleaning.kept,
        clean_seconds,
        clean_mb_per_sec: clean_bytes_read as f64 / 1e6 / clean_seconds.max(1e-9),
        clean_records_per_sec: clean_records_read as f64 / clean_seconds.max(1e-9),
        clean_cpu_seconds: cleaning.cpu_seconds,
        map_memory_bytes: passes.iter().map(|s| s.map_memory_bytes).max().unwrap_or(0),
        map_entries: passes.iter().map(|s| s.map_entries).max().unwrap_or(0),
        rss_before_clean_bytes: cleaning.rss_before,
        peak_rss_produce_bytes: cleaning.peak_rss_produce,
        peak_rss_clean_bytes: cleaning.peak_rss_clean,
        peak_rss_is_cleaning_only: cleaning.peak_reset,
        consume,
        consume_records_per_sec: consume.records_per_sec(),
        consume_mb_per_sec: consume.mb_per_sec(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

fn print(report: &Report<CompactionBenchRow>) -> Result<()> {
    let mut table = Table::new([
        "records",
        "keys",
        "produce rec/s",
        "produce MB/s",
        "passes",
        "clean MB read",
        "clean s",
        "clean MB/s",
        "clean rec/s",
        "kept",
        "map MiB",
        "peak RSS MiB",
        "consume rec/s",
    ]);
    for r in &report.results {
        table.row([
            fmt_count(r.records as f64),
            fmt_count(r.keys as f64),
            fmt_count(r.produce_records_per_sec),
            format!("{:.1}", r.produce_mb_per_sec),
            r.passes.to_string(),
            format!("{:.0}", r.clean_bytes_read as f64 / 1e6),
            format!("{:.2}", r.clean_seconds),
            format!("{:.1}", r.clean_mb_per_sec),
            fmt_count(r.clean_records_per_sec),
            fmt_count(r.clean_records_kept as f64),
            mib(r.map_memory_bytes as u64),
            r.peak_rss_clean_bytes.map_or("-".to_owned(), mib),
            fmt_count(r.consume_records_per_sec),
        ]);
    }
    table
        .print()
        .map_err(BenchError::io("could not print the table"))?;
    let Some(r) = report.results.first() else {
        return Ok(());
    };
    let load = report
        .machine
        .load_average
        .map_or("unknown".to_owned(), |l| format!("{:.2}", l[0]));
    println!(
        "log.cleaner.dedupe.buffer.size = {} B ({} MiB): offset map {} MiB for {} keys, {} pass(es); \
         map phase read {} MB; wrote {} MB; cleaning CPU {:.2} s",
        r.dedupe_buffer_size,
        mib(r.dedupe_buffer_size),
        mib(r.map_memory_bytes as u64),
        fmt_count(r.map_entries as f64),
        r.passes,
        (r.map_bytes_read as f64 / 1e6).round(),
        (r.clean_bytes_written as f64 / 1e6).round(),
        r.clean_cpu_seconds,
    );
    println!(
        "RSS: peak {} MiB while producing (broker + producer), {} MiB before cleaning, peak {} MiB {}; \
         CPU {:.2} s in all, {} CPUs, load average {load} at start",
        r.peak_rss_produce_bytes.map_or("-".to_owned(), mib),
        r.rss_before_clean_bytes.map_or("-".to_owned(), mib),
        r.peak_rss_clean_bytes.map_or("-".to_owned(), mib),
        if r.peak_rss_is_cleaning_only {
            "while cleaning"
        } else {
            "(whole run: the peak mark could not be reset)"
        },
        report.resources.cpu_seconds,
        report.machine.cpus,
    );
    Ok(())
}

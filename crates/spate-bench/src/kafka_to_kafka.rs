//! `spate bench kafka-to-kafka`: a Kafka→Kafka pass-through job (the direct stream reading a
//! preloaded topic, every record written unchanged to an output topic, same partition) with the
//! at-least-once output (`save_to_kafka`) and the exactly-once output
//! (`save_to_kafka_exactly_once`: one transaction per batch with the batch's offsets committed
//! to the job's group), at each batch interval of `--batch-intervals-ms`, next to the raw
//! librdkafka consumer ceiling measured on the same topic in the same run.
//!
//! Besides throughput, each job reports its output's per-batch write time (`BatchWrite`: from
//! the first record sent until every record was acknowledged, or the transaction committed) and
//! the commit part of it (`send_offsets_to_transaction` + `commit_transaction`). What exactly-once
//! adds to a batch is the difference between the two outputs' write times at the same batch
//! interval and batch size. The first batch of each job is left out of the write-time
//! percentiles: its write includes connecting to the partition leaders and, for exactly-once,
//! finding the transaction and group coordinators (FindCoordinator), costs a job pays once.
//!
//! The stream is capped per partition (`--max-rate-per-partition`) so both outputs see batches
//! of the same size (cap × interval per partition, full while the backlog lasts): batches queue
//! behind each other when the job is slower than the cap, and the rate is then the job's own.

use crate::error::{BenchError, Result};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use spate_client::config::parse_key_value;
use spate_client::measure::{fmt_count, Percentiles};
use spate_kafka::{
    BatchWrite, ConsumerStrategy, DirectStreamConfig, KafkaOffsetStore, KafkaOutput, KafkaParams,
    KafkaUtils, OutputRecord, SaveToKafka, TopicPartition,
};
use spate_streaming::StreamingError;

use crate::broker::{create_topic, delete_topic};
use crate::job_result::JobResult;
use crate::report::{Report, Table};
use crate::resources::ResourceUsage;
use crate::stream_job::{engine_config, run_timed, TimedJob};
use crate::stream_topic::{Preloaded, StreamBenchArgs};
use crate::target::TargetArgs;

/// Options of `spate bench kafka-to-kafka`.
#[derive(Args, Debug)]
pub struct KafkaToKafkaBenchArgs {
    /// The broker the run uses (embedded in another process, or `--bootstrap-server`).
    #[command(flatten)]
    pub target: TargetArgs,
    /// Records preloaded into the input topic (each job reads and writes all of them).
    #[arg(long, value_name = "N", default_value_t = 2_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,
    /// Record (value) size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub record_size: u64,
    /// Partitions of the input and of each output topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Batch intervals to run every output at, ms, comma-separated.
    #[arg(long, value_name = "MS,...", value_delimiter = ',', default_values_t = [100u64, 1000])]
    pub batch_intervals_ms: Vec<u64>,
    /// Outputs to run, comma-separated: at-least-once, exactly-once.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "at-least-once,exactly-once"
    )]
    pub outputs: Vec<String>,
    /// Per-partition cap of the direct stream, records/s: a batch holds cap × interval records
    /// per partition while the backlog lasts.
    #[arg(long, value_name = "RECORDS", default_value_t = 250_000)]
    pub max_rate_per_partition: u64,
    /// Worker threads of the engine (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Give up on a job that has not written every record after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout_secs: u64,
    /// Write the report as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// A librdkafka setting for every consumer, applied after the tuning.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// A librdkafka setting for the output producers (e.g. -P linger.ms=5).
    #[arg(short = 'P', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub producer_config: Vec<(String, String)>,
}

impl KafkaToKafkaBenchArgs {
    /// The shared stream-benchmark settings at one batch interval.
    fn stream_args(&self, batch_interval_ms: u64) -> StreamBenchArgs {
        StreamBenchArgs {
            target: self.target.clone(),
            records: self.records,
            record_size: self.record_size,
            partitions: self.partitions,
            batch_interval_ms,
            threads: self.threads,
            timeout_secs: self.timeout_secs,
            json: self.json.clone(),
            config: self.config.clone(),
            topic: None,
            keep_topic: false,
            no_ceiling: false,
        }
    }
}

/// The output a job writes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// `save_to_kafka`: an idempotent producer; a restarted batch may write its records again.
    AtLeastOnce,
    /// `save_to_kafka_exactly_once`: one transaction per batch with the batch's offsets.
    ExactlyOnce,
}

impl Guarantee {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "at-least-once" | "alo" => Ok(Guarantee::AtLeastOnce),
            "exactly-once" | "eos" => Ok(Guarantee::ExactlyOnce),
            other => Err(BenchError::InvalidOptions(format!(
                "unknown output {other:?} in --outputs: expected at-least-once, exactly-once"
            ))),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }
}

/// One row of the report: the job's figures and its output's per-batch write times.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaToKafkaRow {
    /// Throughput, latency and peak RSS of the job (or of the raw consumer, for the ceiling).
    #[serde(flatten)]
    pub job: JobResult,
    /// `None` for the ceiling.
    pub output: Option<Guarantee>,
    /// The job's batch interval; `None` for the ceiling.
    pub batch_interval_ms: Option<u64>,
    /// Output records per batch (all batches but the first, as the write times).
    pub records_per_batch: Option<Percentiles>,
    /// The first batch's write, ms (connections, coordinator lookups), left out of `write_ms`.
    pub first_write_ms: Option<f64>,
    /// Per batch: first record sent → acknowledged (at-least-once) or committed (exactly-once).
    pub write_ms: Option<Percentiles>,
    /// Per batch: the part of `write_ms` after every record was acknowledged.
    pub commit_ms: Option<Percentiles>,
}

/// Runs one pass-through job from the input to a fresh output topic.
fn run_job(
    topic: &Preloaded,
    args: &KafkaToKafkaBenchArgs,
    guarantee: Guarantee,
    batch_interval_ms: u64,
) -> Result<KafkaToKafkaRow> {
    let output_topic = format!(
        "{}-out-{}-{batch_interval_ms}",
        topic.topic,
        guarantee.label()
    );
    create_topic(&topic.client, &output_topic, topic.partitions)?;
    let common = args.stream_args(batch_interval_ms);
    let output: Arc<Mutex<Option<KafkaOutput>>> = Arc::default();
    let job = TimedJob {
        name: format!("{}, {batch_interval_ms} ms batches", guarantee.label()),
        config: engine_config("bench-kafka-to-kafka", &common),
        checkpoint: None,
        expected_units: topic.records,
        timeout: Duration::from_secs(args.timeout_secs),
        build: Box::new({
            let (output, output_topic) = (output.clone(), output_topic.clone());
            move |ctx, progress| {
                let out = define_job(ctx, topic, args, guarantee, &output_topic)?;
                *output.lock().unwrap_or_else(|p| p.into_inner()) = Some(out.output.clone());
                out.stream.foreach_batch(move |_batch, time| {
                    // Runs after the Kafka output of the same batch: the batch itself is not
                    // computed again, only the output's count is read.
                    progress
                        .units
                        .store(out.output.records_written(), Ordering::SeqCst);
                    progress.batch_done(time);
                    Ok::<_, StreamingError>(())
                });
                Ok(())
            }
        }),
    };
    let result = run_timed(topic, job);
    delete_topic(&topic.client, &output_topic);
    let job = result?;
    let out = output
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| BenchError::Missing("the job's output".into()))?;
    Ok(row(job, guarantee, batch_interval_ms, &out.batch_writes()))
}

/// The job's direct stream and its Kafka output.
#[derive(Clone)]
struct DefinedJob {
    stream: spate_kafka::DirectKafkaStream,
    output: KafkaOutput,
}

/// Defines the direct stream over the whole input and its Kafka output.
fn define_job(
    ctx: &spate_streaming::StreamingContext,
    topic: &Preloaded,
    args: &KafkaToKafkaBenchArgs,
    guarantee: Guarantee,
    output_topic: &str,
) -> Result<DefinedJob> {
    let group = format!("{output_topic}-job");
    let consumers = u32::try_from(topic.partitions).unwrap_or(1);
    let stream_params: KafkaParams = topic
        .kafka_params(consumers, &[("group.id".to_owned(), group.clone())])
        .into_iter()
        .collect();
    let output_params: KafkaParams = [
        (
            "bootstrap.servers".to_owned(),
            topic.target.bootstrap.clone(),
        ),
        ("group.id".to_owned(), group),
        ("auto.offset.reset".to_owned(), "earliest".to_owned()),
    ]
    .into_iter()
    .chain(args.producer_config.iter().cloned())
    .collect();
    let partitions: Vec<TopicPartition> = (0..topic.partitions)
        .map(|p| TopicPartition::new(&topic.topic, p))
        .collect();
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(args.max_rate_per_partition)
        .backpressure(false)
        .initial_rate(None);
    let pass_through = |r: &spate_kafka::ConsumerRecord| OutputRecord {
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
        partition: Some(r.partition),
    };
    Ok(match guarantee {
        Guarantee::AtLeastOnce => {
            let strategy = ConsumerStrategy::assign(partitions, stream_params);
            let stream = KafkaUtils::create_direct_stream_with(ctx, strategy, config)?;
            let output = stream.save_to_kafka(output_topic, output_params, pass_through)?;
            DefinedJob { stream, output }
        }
        Guarantee::ExactlyOnce => {
            let mut store = KafkaOffsetStore::open(output_params)?;
            let strategy = store.assign_strategy(partitions, stream_params)?;
            let stream = KafkaUtils::create_direct_stream_with(ctx, strategy, config)?;
            let output = stream.save_to_kafka_exactly_once(
                &stream,
                store,
                "bench",
                output_topic,
                pass_through,
            )?;
            DefinedJob { stream, output }
        }
    })
}

/// A job's row from its figures and its output's batch writes.
fn row(
    job: JobResult,
    guarantee: Guarantee,
    batch_interval_ms: u64,
    writes: &[BatchWrite],
) -> KafkaToKafkaRow {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // The first write pays for connections and coordinator lookups (see the module doc).
    let with_records: Vec<&BatchWrite> = writes.iter().skip(1).filter(|w| w.records > 0).collect();
    let of = |f: &dyn Fn(&BatchWrite) -> f64| {
        Percentiles::of(&with_records.iter().map(|w| f(w)).collect::<Vec<_>>())
    };
    KafkaToKafkaRow {
        job,
        output: Some(guarantee),
        batch_interval_ms: Some(batch_interval_ms),
        records_per_batch: of(&|w| w.records as f64),
        first_write_ms: writes.first().map(|w| ms(w.total)),
        write_ms: of(&|w| ms(w.total)),
        commit_ms: of(&|w| ms(w.commit)),
    }
}

/// Runs `spate bench kafka-to-kafka`: the consumer ceiling, then each output at each batch
/// interval; prints the table and writes `--json`.
pub fn run(args: KafkaToKafkaBenchArgs) -> Result<()> {
    let guarantees = args
        .outputs
        .iter()
        .map(|o| Guarantee::parse(o))
        .collect::<Result<Vec<_>>>()?;
    if args.batch_intervals_ms.is_empty() || args.batch_intervals_ms.contains(&0) {
        return Err(BenchError::InvalidOptions(
            "--batch-intervals-ms needs at least one interval, each at least 1 ms".into(),
        ));
    }
    let first = args.stream_args(args.batch_intervals_ms[0]);
    let topic = Preloaded::start("k2k", &first, &[])?;
    let config = first.config_json(
        &topic,
        serde_json::json!({
            "batch_intervals_ms": args.batch_intervals_ms,
            "outputs": args.outputs,
            "max_rate_per_partition": args.max_rate_per_partition,
            "producer": crate::broker::tuning_json(&[], &args.producer_config),
        }),
    );
    let mut report: Report<KafkaToKafkaRow> = Report::new("kafka-to-kafka", config);
    let (ceiling, ceiling_row) = topic.measure_ceiling()?;
    report.results.push(KafkaToKafkaRow {
        job: ceiling_row.clone().with_ceiling(&ceiling, &ceiling_row),
        output: None,
        batch_interval_ms: None,
        records_per_batch: None,
        first_write_ms: None,
        write_ms: None,
        commit_ms: None,
    });
    for &interval in &args.batch_intervals_ms {
        for &g in &guarantees {
            let mut r = run_job(&topic, &args, g, interval)?;
            r.job = r.job.with_ceiling(&ceiling, &ceiling_row);
            report.results.push(r);
        }
    }
    report.ceiling.push(ceiling);
    report.resources = ResourceUsage::now();
    print_report(&report, &topic.target.description);
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The table, then per batch interval what exactly-once costs next to at-least-once.
fn print_report(report: &Report<KafkaToKafkaRow>, broker: &str) {
    let mut table = Table::new([
        "job",
        "records",
        "seconds",
        "records/s",
        "of ceiling",
        "rec/CPU-s",
        "batches",
        "rec/batch p50",
        "first write ms",
        "write p50 ms",
        "write p99 ms",
        "commit p50 ms",
        "commit p99 ms",
        "batch p99 ms",
        "CPU s",
        "peak RSS MiB",
    ]);
    let p = |x: Option<Percentiles>, f: fn(&Percentiles) -> f64, digits: usize| {
        x.map_or("-".to_owned(), |x| format!("{:.*}", digits, f(&x)))
    };
    for r in &report.results {
        let j = &r.job;
        table.row([
            j.job.clone(),
            fmt_count(j.records as f64),
            format!("{:.2}", j.seconds),
            fmt_count(j.records_per_sec),
            j.ratio_to_ceiling
                .map_or("-".to_owned(), |x| format!("{:.0}%", x * 100.0)),
            fmt_count(j.records_per_cpu_second),
            j.batches.to_string(),
            p(r.records_per_batch, |x| x.p50, 0),
            r.first_write_ms
                .map_or("-".to_owned(), |ms| format!("{ms:.1}")),
            p(r.write_ms, |x| x.p50, 1),
            p(r.write_ms, |x| x.p99, 1),
            p(r.commit_ms, |x| x.p50, 1),
            p(r.commit_ms, |x| x.p99, 1),
            p(j.batch_ms, |x| x.p99, 1),
            format!("{:.2}", j.cpu_seconds),
            j.peak_rss_bytes.map_or("-".to_owned(), |b| {
                format!("{:.0}", b as f64 / (1 << 20) as f64)
            }),
        ]);
    }
    if let Err(e) = table.print() {
        tracing::warn!("could not print the table: {e}");
    }
    for line in comparisons(&report.results) {
        println!("{line}");
    }
    let load = report
        .machine
        .load_average
        .map_or("unknown".to_owned(), |l| format!("{:.2}", l[0]));
    println!("load average {load} at start, {broker}");
}

/// Per batch interval with both outputs: exactly-once's throughput as a share of
/// at-least-once's, and the write time it adds at p50 and p99.
fn comparisons(rows: &[KafkaToKafkaRow]) -> Vec<String> {
    let find = |g: Guarantee, interval: u64| {
        rows.iter()
            .find(|r| r.output == Some(g) && r.batch_interval_ms == Some(interval))
    };
    let mut intervals: Vec<u64> = rows.iter().filter_map(|r| r.batch_interval_ms).collect();
    intervals.dedup();
    intervals
        .into_iter()
        .filter_map(|i| {
            let (alo, eos) = (
                find(Guarantee::AtLeastOnce, i)?,
                find(Guarantee::ExactlyOnce, i)?,
            );
            let (aw, ew) = (alo.write_ms?, eos.write_ms?);
            Some(format!(
                "{i} ms batches: exactly-once at {:.0}% of at-least-once's records/s; write time \
                 added per batch: p50 {:+.1} ms, p99 {:+.1} ms (its commit p99 {:.1} ms)",
                eos.job.records_per_sec / alo.job.records_per_sec.max(1e-9) * 100.0,
                ew.p50 - aw.p50,
                ew.p99 - aw.p99,
                eos.commit_ms.map_or(0.0, |c| c.p99),
            ))
        })
        .collect()
}

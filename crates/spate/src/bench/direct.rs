//! `spate bench direct`: the direct stream (`KafkaUtils::create_direct_stream`) reading a
//! preloaded topic at full speed, next to the raw librdkafka consumer ceiling on the same topic
//! in the same run.
//!
//! One run: start (or target) a broker, create a topic (4 partitions by default), load it with
//! N records of text (`wNNNN` words from a 1,000-word vocabulary, space-separated, padded to the
//! record size), drain it once with a bare `BaseConsumer` (the ceiling), then run two streaming
//! jobs over all of it: pass-through (count records and bytes per partition) and word count
//! (`flat_map` → `(word, 1)` → `reduce_by_key`). Each job is timed from `start()` until its
//! output has seen every record, so the first batch interval and the engine's planning are
//! included, as a user would see them.
//!
//! The stream runs unthrottled: no backpressure, no initial rate, and a per-partition cap
//! (`--max-rate-per-partition`) chosen only to bound how many records one batch holds in memory
//! (cap × batch interval per partition) — far above what the job can process, so batches are
//! always full and queue behind each other while the backlog lasts.
//!
//! The pieces the receiver benchmark shares (topic set-up, client settings, the timed job) live
//! here too.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils, TopicPartition};
use spate_streaming::{BatchInfo, Config, StreamingContext, StreamingError, StreamingListener};

use super::broker::{create_topic, delete_topic, tuning_json};
use super::kafka_io::{self, LoadResult, CONSUMER_TUNING};
use super::target::{BrokerTarget, TargetArgs};
use super::{fmt_count, Ceiling, CpuTime, Percentiles, Report, ResourceUsage, Table, Throughput};
use crate::cli::client_config::{parse_key_value, ClientArgs};

/// The topic, broker and engine settings shared by `bench direct` and `bench receiver`.
#[derive(Args, Debug, Clone)]
pub struct StreamBenchArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Records preloaded into the topic (each job reads all of them).
    #[arg(long, value_name = "N", default_value_t = 5_000_000)]
    pub records: u64,
    /// Record (value) size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub record_size: u64,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Batch interval of the streaming jobs, ms.
    #[arg(long, value_name = "MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_interval_ms: u64,
    /// Worker threads of the engine (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Give up on a job that has not seen every record after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout_secs: u64,
    /// Write the report as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// A librdkafka setting for every consumer, applied after the tuning (e.g. -X fetch.wait.max.ms=50).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
}

impl StreamBenchArgs {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    pub fn batch_interval(&self) -> Duration {
        Duration::from_millis(self.batch_interval_ms)
    }

    /// The report's `config`, with what is specific to one benchmark merged in.
    pub fn config_json(&self, topic: &Preloaded, extra: serde_json::Value) -> serde_json::Value {
        let mut config = serde_json::json!({
            "broker": topic.target.description,
            "bootstrap_server": topic.target.bootstrap,
            "topic": topic.topic,
            "partitions": self.partitions,
            "records": self.records,
            "record_size": self.record_size,
            "words_per_record": words_per_record(self.record_size as usize),
            "batch_interval_ms": self.batch_interval_ms,
            "threads": self.threads(),
            "consumer": tuning_json(CONSUMER_TUNING, &self.config),
        });
        if let (Some(c), serde_json::Value::Object(e)) = (config.as_object_mut(), extra) {
            c.extend(e);
        }
        config
    }
}

/// Options of `spate bench direct`.
#[derive(Args, Debug)]
pub struct DirectBenchArgs {
    #[command(flatten)]
    pub common: StreamBenchArgs,
    /// Per-partition cap of the direct stream, records/s: it only bounds a batch's size (cap ×
    /// batch interval per partition), so keep it well above the achievable rate.
    #[arg(long, value_name = "RECORDS", default_value_t = DEFAULT_MAX_RATE_PER_PARTITION)]
    pub max_rate_per_partition: u64,
    /// Jobs to run, comma-separated: passthrough, wordcount.
    #[arg(long, value_delimiter = ',', default_value = "passthrough,wordcount")]
    pub jobs: Vec<String>,
}

/// Words in a record of `size` bytes: `wNNNN` (5 bytes) separated by single spaces.
pub fn words_per_record(size: usize) -> u64 {
    ((size + 1) / 6) as u64
}

/// Writes record `i`'s text into `payload`: words from a 1,000-word vocabulary (an xorshift of
/// the record number picks them, so every run loads the same data), then spaces up to the size.
fn fill_words(i: u64, payload: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words = words_per_record(payload.len()) as usize;
    for (w, chunk) in payload.chunks_mut(6).enumerate() {
        if w >= words {
            chunk.fill(b' ');
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = x % 1000;
        let word = [
            b'w',
            b'0',
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
            b' ',
        ];
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The broker and the loaded topic; the topic is deleted (best effort) and an embedded broker
/// stopped on drop.
pub struct Preloaded {
    pub target: BrokerTarget,
    pub client: ClientArgs,
    pub topic: String,
    pub partitions: i32,
    pub records: u64,
    pub record_size: usize,
    pub load: LoadResult,
}

impl Preloaded {
    /// Starts the target broker, creates a topic named after `benchmark` and loads it.
    pub fn start(benchmark: &str, args: &StreamBenchArgs) -> anyhow::Result<Self> {
        let target = BrokerTarget::start(&args.target)?;
        let mut client = ClientArgs::new(target.bootstrap.clone());
        client.config = args.config.clone();
        let topic = format!(
            "spate-bench-{benchmark}-{}-{}",
            std::process::id(),
            unique_suffix()
        );
        create_topic(&client, &topic, args.partitions)?;
        let record_size = usize::try_from(args.record_size).context("--record-size too large")?;
        eprintln!(
            "spate bench {benchmark}: {} at {}; loading {} records of {record_size} B into {} partitions...",
            target.description, target.bootstrap, args.records, args.partitions
        );
        let load = kafka_io::load_with(
            &client,
            &topic,
            args.partitions,
            args.records,
            record_size,
            fill_words,
        )
        .context("loading the benchmark topic")?;
        eprintln!(
            "  loaded in {:.1} s ({} records/s)",
            load.throughput.seconds,
            fmt_count(load.throughput.records_per_sec())
        );
        Ok(Preloaded {
            target,
            client,
            topic,
            partitions: args.partitions,
            records: args.records,
            record_size,
            load,
        })
    }

    pub fn bytes(&self) -> u64 {
        self.records * self.record_size as u64
    }

    /// Drains the topic with a bare rdkafka consumer: the ceiling every job is compared with.
    pub fn measure_ceiling(&self) -> anyhow::Result<(Ceiling, JobResult)> {
        eprintln!("  ceiling: rdkafka BaseConsumer...");
        let phase = Phase::begin();
        let t = kafka_io::drain(&self.client, &self.topic, self.partitions, self.records)
            .context("draining the topic for the ceiling")?;
        let ceiling = Ceiling {
            record_size: self.record_size,
            records_per_sec: t.records_per_sec(),
            mb_per_sec: t.mb_per_sec(),
            method: "rdkafka BaseConsumer, all partitions assigned, no group, no engine".to_owned(),
        };
        Ok((
            ceiling,
            phase.end("rdkafka consumer (ceiling)", t, Vec::new()),
        ))
    }

    /// Kafka parameters for a stream over this topic: the consumer tuning of the ceiling (minus
    /// what the stream decides itself) with its pre-fetch budget split evenly over `consumers`
    /// consumers, `-X` overrides, and a fresh consumer group.
    ///
    /// The split keeps the comparison fair in memory: the ceiling's one consumer may queue
    /// 64 MiB / 1M records ahead; a direct stream has one consumer per partition, and giving each
    /// the whole budget cost it 40% of its throughput in page faults (librdkafka's buffers
    /// growing to over 1 GiB).
    pub fn kafka_params(
        &self,
        consumers: u32,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.target.bootstrap.clone()),
            (
                "group.id".into(),
                format!("spate-bench-{}-{}", std::process::id(), unique_suffix()),
            ),
            ("auto.offset.reset".into(), "earliest".into()),
        ];
        let consumers = u64::from(consumers.max(1));
        params.extend(
            CONSUMER_TUNING
                .iter()
                .filter(|(k, _)| !k.starts_with("group.") && !k.starts_with("enable.auto."))
                .map(|&(k, v)| {
                    let v = match (k, v.parse::<u64>()) {
                        ("queued.min.messages" | "queued.max.messages.kbytes", Ok(n)) => {
                            (n / consumers).max(1).to_string()
                        }
                        _ => v.to_owned(),
                    };
                    (k.to_owned(), v)
                }),
        );
        params.extend(extra.iter().cloned());
        params.extend(self.client.config.iter().cloned());
        params
    }
}

impl Drop for Preloaded {
    fn drop(&mut self) {
        delete_topic(&self.client, &self.topic);
    }
}

/// Distinguishes topics and groups of runs in the same process (tests run in parallel).
fn unique_suffix() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 32)
}

/// One row of the report: a job (or the ceiling) and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    pub job: String,
    pub records: u64,
    /// Key + value bytes read.
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// records/s ÷ the ceiling's records/s (1.0 for the ceiling itself).
    pub ratio_to_ceiling: Option<f64>,
    /// Processing time of the batches that had records, ms.
    pub batch_ms: Option<Percentiles>,
    pub batches: usize,
    /// CPU seconds of the whole process (all threads, the in-process broker included) during
    /// the job.
    pub cpu_seconds: f64,
    /// Records per CPU second: on a shared machine a job with more threads can take a larger
    /// share of the cores than the one-thread ceiling, so its wall-clock ratio flatters it; this
    /// one does not.
    pub records_per_cpu_second: f64,
    /// records per CPU second ÷ the ceiling's.
    pub cpu_ratio_to_ceiling: Option<f64>,
    /// Peak resident memory during the job (the high-water mark is reset before it, where the
    /// kernel allows).
    pub peak_rss_bytes: Option<u64>,
}

impl JobResult {
    /// Fills in the ratios to `ceiling`, whose row is `ceiling_row`.
    pub fn with_ceiling(mut self, ceiling: &Ceiling, ceiling_row: &JobResult) -> Self {
        self.ratio_to_ceiling = Some(self.records_per_sec / ceiling.records_per_sec.max(1e-9));
        self.cpu_ratio_to_ceiling =
            Some(self.records_per_cpu_second / ceiling_row.records_per_cpu_second.max(1e-9));
        self
    }
}

/// CPU and peak memory from the start of a phase.
struct Phase {
    cpu: CpuTime,
}

impl Phase {
    fn begin() -> Self {
        reset_peak_rss();
        Phase {
            cpu: CpuTime::now(),
        }
    }

    fn end(self, job: &str, t: Throughput, batch_ms: Vec<f64>) -> JobResult {
        let cpu_seconds = CpuTime::now().since(&self.cpu).total();
        JobResult {
            job: job.to_owned(),
            records: t.records,
            bytes: t.bytes,
            seconds: t.seconds,
            records_per_sec: t.records_per_sec(),
            mb_per_sec: t.mb_per_sec(),
            ratio_to_ceiling: None,
            batches: batch_ms.len(),
            batch_ms: Percentiles::of(&batch_ms),
            cpu_seconds,
            records_per_cpu_second: t.records as f64 / cpu_seconds.max(1e-9),
            cpu_ratio_to_ceiling: None,
            peak_rss_bytes: ResourceUsage::now().peak_rss_bytes,
        }
    }
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) so the next phase's peak is its own; best effort
/// (Linux ≥ 4.0: writing 5 to `/proc/self/clear_refs`).
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::debug!("cannot reset the peak RSS mark: {e}");
    }
}

/// Processing times of the batches that had records, and the newest batch reported complete
/// (listeners hear of a batch after its outputs ran, so the harness waits for it).
#[derive(Default)]
struct BatchTimes {
    ms: Mutex<Vec<f64>>,
    completed_through_ms: AtomicU64,
}

impl StreamingListener for BatchTimes {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if info.num_records() > 0 {
            if let Some(us) = info.processing_micros {
                self.ms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(us as f64 / 1000.0);
            }
        }
        self.completed_through_ms
            .fetch_max(info.batch_time.as_millis(), Ordering::Relaxed);
    }
}

/// What a job's output counts, for the harness to wait on.
#[derive(Default)]
pub struct Progress {
    /// Units counted so far (records, or words for word count).
    pub units: AtomicU64,
    /// Key + value bytes seen so far (jobs that see records).
    pub bytes: AtomicU64,
    /// The newest batch time whose output ran.
    pub last_batch_ms: AtomicU64,
    /// `units` as of the end of the newest batch whose output ran.
    pub units_at_batch_end: AtomicU64,
}

impl Progress {
    /// The output of batch `time` is done.
    pub fn batch_done(&self, time: spate_streaming::Time) {
        self.last_batch_ms
            .fetch_max(time.as_millis(), Ordering::SeqCst);
        self.units_at_batch_end
            .fetch_max(self.units.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A streaming job to time: the engine settings, and `build`, which defines the job on the
/// context and makes its output add to the [`Progress`] it is given.
pub struct TimedJob<'a> {
    pub name: String,
    pub config: Config,
    pub checkpoint: Option<PathBuf>,
    /// The job is done when `Progress::units` reaches this.
    pub expected_units: u64,
    pub timeout: Duration,
    #[allow(clippy::type_complexity)]
    pub build: Box<dyn FnOnce(&StreamingContext, Arc<Progress>) -> anyhow::Result<()> + 'a>,
}

/// Runs `job` over `topic` from `start()` until its output has counted every unit; the bytes
/// are those the output counted, or all of the topic's when the job does not count bytes.
pub fn run_timed(topic: &Preloaded, job: TimedJob<'_>) -> anyhow::Result<JobResult> {
    eprintln!("  {}...", job.name);
    let ctx = StreamingContext::new(job.config)?;
    if let Some(dir) = &job.checkpoint {
        ctx.checkpoint(dir)?;
    }
    let times = Arc::new(BatchTimes::default());
    ctx.add_streaming_listener(times.clone());
    let progress = Arc::new(Progress::default());
    (job.build)(&ctx, progress.clone())?;
    let phase = Phase::begin();
    let started = Instant::now();
    ctx.start()?;
    while progress.units.load(Ordering::Relaxed) < job.expected_units {
        if ctx.await_termination_or_timeout(Duration::from_millis(2))? {
            bail!("{}: the streaming context stopped early", job.name);
        }
        if started.elapsed() > job.timeout {
            let _ = ctx.stop(false);
            bail!(
                "{}: only {} of {} counted after {} s",
                job.name,
                progress.units.load(Ordering::Relaxed),
                job.expected_units,
                job.timeout.as_secs()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // The batch that finished the job ends its output, then reaches the listener, a moment
    // later; its processing time belongs in the percentiles.
    let waiting = Instant::now();
    while waiting.elapsed() < Duration::from_secs(10)
        && (progress.units_at_batch_end.load(Ordering::SeqCst) < job.expected_units
            || times.completed_through_ms.load(Ordering::SeqCst)
                < progress.last_batch_ms.load(Ordering::SeqCst))
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let counted = progress.bytes.load(Ordering::Relaxed);
    let t = Throughput {
        records: topic.records,
        bytes: if counted > 0 { counted } else { topic.bytes() },
        seconds,
    };
    let batch_ms = std::mem::take(&mut *times.ms.lock().unwrap_or_else(|p| p.into_inner()));
    let result = phase.end(&job.name, t, batch_ms);
    ctx.stop(false)?;
    Ok(result)
}

/// Engine settings for a benchmark job.
pub fn engine_config(app: &str, args: &StreamBenchArgs) -> Config {
    Config::new(app)
        .batch_interval(args.batch_interval())
        .executor_threads(args.threads())
        .default_parallelism(args.threads())
        .graceful_stop_timeout(Duration::from_secs(30))
}

/// Counts records and key + value bytes per partition, in parallel: the pass-through output.
pub fn count_records(
    stream: &spate_streaming::DStream<spate_kafka::ConsumerRecord>,
    progress: Arc<Progress>,
) {
    stream.foreach_batch(move |batch, time| {
        let counter = progress.clone();
        batch.foreach_partition(move |_, records| {
            let (mut n, mut bytes) = (0u64, 0u64);
            for r in records {
                n += 1;
                bytes += (r.value.as_ref().map_or(0, Vec::len) + r.key.as_ref().map_or(0, Vec::len))
                    as u64;
            }
            counter.bytes.fetch_add(bytes, Ordering::Relaxed);
            counter.units.fetch_add(n, Ordering::Relaxed);
            Ok::<_, StreamingError>(())
        })?;
        progress.batch_done(time);
        Ok::<_, StreamingError>(())
    });
}

/// Word count: split values on whitespace, `(word, 1)`, `reduce_by_key`; the output adds up the
/// counts, so the job is done when it has counted every word of the topic.
pub fn word_count(
    stream: &spate_streaming::DStream<spate_kafka::ConsumerRecord>,
    progress: Arc<Progress>,
) {
    stream
        .flat_map(|r| {
            let text = r.value.as_deref().unwrap_or_default();
            String::from_utf8_lossy(text)
                .split_whitespace()
                .map(|w| (w.to_owned(), 1u64))
                .collect::<Vec<_>>()
        })
        .reduce_by_key(|a, b| a + b)
        .foreach_batch(move |batch, time| {
            let words: u64 = batch.collect()?.iter().map(|(_, c)| c).sum();
            progress.units.fetch_add(words, Ordering::Relaxed);
            progress.batch_done(time);
            Ok::<_, StreamingError>(())
        });
}

/// A direct stream over the whole topic, unthrottled apart from the batch-size cap.
fn direct_job<'a>(
    topic: &'a Preloaded,
    common: &StreamBenchArgs,
    max_rate_per_partition: u64,
    name: &str,
    wordcount: bool,
) -> TimedJob<'a> {
    let expected_units = if wordcount {
        topic.records * words_per_record(topic.record_size)
    } else {
        topic.records
    };
    let stream_config = DirectStreamConfig::default()
        .max_rate_per_partition(max_rate_per_partition)
        .backpressure(false)
        .initial_rate(None);
    TimedJob {
        name: name.to_owned(),
        config: engine_config("bench-direct", common),
        checkpoint: None,
        expected_units,
        timeout: Duration::from_secs(common.timeout_secs),
        build: Box::new(move |ctx, progress| {
            let consumers = u32::try_from(topic.partitions).unwrap_or(1);
            let params: KafkaParams = topic.kafka_params(consumers, &[]).into_iter().collect();
            let partitions = (0..topic.partitions).map(|p| TopicPartition::new(&topic.topic, p));
            let stream = KafkaUtils::create_direct_stream_with(
                ctx,
                ConsumerStrategy::assign(partitions, params),
                stream_config,
            )?;
            if wordcount {
                word_count(&stream, progress);
            } else {
                count_records(&stream, progress);
            }
            Ok(())
        }),
    }
}

/// Runs the direct-stream pass-through job (the receiver benchmark's reference figure).
pub fn run_direct_passthrough(
    topic: &Preloaded,
    args: &StreamBenchArgs,
) -> anyhow::Result<JobResult> {
    run_timed(
        topic,
        direct_job(
            topic,
            args,
            DEFAULT_MAX_RATE_PER_PARTITION,
            "direct stream, pass-through",
            false,
        ),
    )
}

/// `--max-rate-per-partition`'s default.
const DEFAULT_MAX_RATE_PER_PARTITION: u64 = 2_500_000;

/// Prints the rows and the process totals.
pub fn print_rows(rows: &[JobResult], report_machine_load: Option<[f64; 3]>, broker: &str) {
    let mut table = Table::new([
        "job",
        "records",
        "seconds",
        "records/s",
        "MB/s",
        "of ceiling",
        "rec/CPU-s",
        "of ceiling/CPU",
        "batches",
        "batch p50 ms",
        "batch p99 ms",
        "CPU s",
        "peak RSS MiB",
    ]);
    for r in rows {
        table.row([
            r.job.clone(),
            fmt_count(r.records as f64),
            format!("{:.2}", r.seconds),
            fmt_count(r.records_per_sec),
            format!("{:.1}", r.mb_per_sec),
            r.ratio_to_ceiling
                .map_or("-".to_owned(), |x| format!("{:.0}%", x * 100.0)),
            fmt_count(r.records_per_cpu_second),
            r.cpu_ratio_to_ceiling
                .map_or("-".to_owned(), |x| format!("{:.0}%", x * 100.0)),
            r.batches.to_string(),
            r.batch_ms
                .map_or("-".to_owned(), |p| format!("{:.1}", p.p50)),
            r.batch_ms
                .map_or("-".to_owned(), |p| format!("{:.1}", p.p99)),
            format!("{:.2}", r.cpu_seconds),
            r.peak_rss_bytes.map_or("-".to_owned(), |b| {
                format!("{:.0}", b as f64 / (1 << 20) as f64)
            }),
        ]);
    }
    if let Err(e) = table.print() {
        tracing::warn!("could not print the table: {e}");
    }
    let load = report_machine_load.map_or("unknown".to_owned(), |l| format!("{:.2}", l[0]));
    println!("load average {load} at start, {broker}");
}

pub fn run(args: DirectBenchArgs) -> anyhow::Result<()> {
    for job in &args.jobs {
        if !matches!(job.as_str(), "passthrough" | "wordcount") {
            bail!("unknown job {job:?} in --jobs: expected passthrough, wordcount");
        }
    }
    if args.jobs.iter().any(|j| j == "wordcount")
        && words_per_record(args.common.record_size as usize) == 0
    {
        bail!("--record-size must be at least 5 bytes for the word-count job");
    }
    let topic = Preloaded::start("direct", &args.common)?;
    let config = args.common.config_json(
        &topic,
        serde_json::json!({
            "max_rate_per_partition": args.max_rate_per_partition,
            "backpressure": false,
            "initial_rate": null,
        }),
    );
    let mut report: Report<JobResult> = Report::new("direct", config);
    let (ceiling, ceiling_row) = topic.measure_ceiling()?;
    report
        .results
        .push(ceiling_row.clone().with_ceiling(&ceiling, &ceiling_row));
    for (job, name, wordcount) in [
        ("passthrough", "direct stream, pass-through", false),
        ("wordcount", "direct stream, word count", true),
    ] {
        if args.jobs.iter().any(|j| j == job) {
            let job = direct_job(
                &topic,
                &args.common,
                args.max_rate_per_partition,
                name,
                wordcount,
            );
            let row = run_timed(&topic, job)?;
            report
                .results
                .push(row.with_ceiling(&ceiling, &ceiling_row));
        }
    }
    report.ceiling.push(ceiling);
    report.resources = ResourceUsage::now();
    print_rows(
        &report.results,
        report.machine.load_average,
        &topic.target.description,
    );
    if let Some(path) = &args.common.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_words_of_the_vocabulary() {
        for size in [5usize, 6, 11, 100, 103] {
            let mut p = vec![0u8; size];
            fill_words(42, &mut p);
            let text = std::str::from_utf8(&p).unwrap();
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(words.len() as u64, words_per_record(size), "{text:?}");
            assert!(words
                .iter()
                .all(|w| w.len() == 5 && w.starts_with('w') && w[1..].parse::<u32>().is_ok()));
        }
        assert_eq!(words_per_record(100), 16);
        assert_eq!(words_per_record(4), 0);
        let (mut a, mut b) = (vec![0u8; 100], vec![0u8; 100]);
        fill_words(1, &mut a);
        fill_words(2, &mut b);
        assert_ne!(a, b, "records differ");
    }
}

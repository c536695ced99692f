//! The timed streaming job of the Kafka stream benchmarks: a job is defined on a fresh
//! `StreamingContext`, started, and timed until its output has counted every record of the
//! topic; CPU seconds, peak RSS (reset before the job) and the processing times of its batches
//! (from a listener) are taken around it. Also the two outputs (pass-through count, word count)
//! and the table every such benchmark prints.

use crate::error::{BenchError, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spate_streaming::{BatchInfo, Config, StreamingContext, StreamingError, StreamingListener};

use spate_client::measure::{fmt_count, Throughput};

use crate::job_result::{JobResult, Phase};
use crate::report::Table;
use crate::stream_topic::{Preloaded, StreamBenchArgs};

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
#[derive(Debug, Default)]
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
    /// The job's row label in the report.
    pub name: String,
    /// The engine settings of the job's context.
    pub config: Config,
    /// Checkpoint directory of the context, for jobs that need one (the write-ahead log).
    pub checkpoint: Option<PathBuf>,
    /// The job is done when `Progress::units` reaches this.
    pub expected_units: u64,
    /// How long to wait for `expected_units` before failing the run.
    pub timeout: Duration,
    /// Defines the job's streams and outputs on the context.
    #[allow(clippy::type_complexity)]
    pub build: Box<dyn FnOnce(&StreamingContext, Arc<Progress>) -> Result<()> + 'a>,
}

impl std::fmt::Debug for TimedJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedJob")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("checkpoint", &self.checkpoint)
            .field("expected_units", &self.expected_units)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Runs `job` over `topic` from `start()` until its output has counted every unit; the bytes
/// are those the output counted, or all of the topic's when the job does not count bytes.
pub fn run_timed(topic: &Preloaded, job: TimedJob<'_>) -> Result<JobResult> {
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
            return Err(BenchError::StoppedEarly {
                job: job.name.to_string(),
            });
        }
        if started.elapsed() > job.timeout {
            let _ = ctx.stop(false);
            return Err(BenchError::TimedOut {
                job: job.name.to_string(),
                done: progress.units.load(Ordering::Relaxed),
                expected: job.expected_units,
                secs: job.timeout.as_secs(),
            });
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
                bytes += (r.value().map_or(0, <[u8]>::len) + r.key().map_or(0, <[u8]>::len)) as u64;
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
            let text = r.value().unwrap_or_default();
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

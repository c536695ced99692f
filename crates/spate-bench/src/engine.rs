//! `spate bench engine`: throughput and fixed per-batch overhead of the micro-batch engine,
//! with no Kafka in the way.
//!
//! Inputs are pre-built batches handed to a queue stream (so input cost is not measured). Three
//! jobs: pass-through (map + a parallel count per partition), word count over 1K distinct keys
//! (map to pairs + `reduce_by_key`), and a windowed count (incremental
//! `reduce_by_key_and_window` with an inverse). Throughput is reported per wall-clock second
//! and per CPU-second ("per core"): CPU time is the process's, summed over all its threads from
//! `/proc/self/task/*/schedstat` (nanoseconds), so idle threads cost nothing and busy-waiting
//! does. The fixed overhead is measured on empty batches: planning + hand-off to the job runner
//! (including any queueing behind the previous batch) + running + committing one batch, with and
//! without a checkpoint directory (which fsyncs the plan and the commit).

use crate::error::{BenchError, Result};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_streaming::{
    BatchInfo, Config, DStream, Data, StreamingContext, StreamingError, StreamingListener,
};

/// Options of `spate bench engine`.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineBenchArgs {
    /// Records per throughput scenario (split evenly over `--batches`).
    #[arg(long, default_value_t = 2_000_000)]
    pub records: usize,
    /// Batches per throughput scenario.
    #[arg(long, default_value_t = 10)]
    pub batches: usize,
    /// Worker threads (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Distinct keys in the word-count and window scenarios.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Empty batches measured for the fixed overhead (in-memory; a quarter of this with a
    /// checkpoint).
    #[arg(long, default_value_t = 2000)]
    pub overhead_batches: usize,
    /// Scenarios to run, comma-separated: passthrough, wordcount, window, overhead.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "passthrough,wordcount,window,overhead"
    )]
    pub scenarios: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One throughput result.
struct Throughput {
    name: &'static str,
    records: u64,
    wall: Duration,
    cpu: Duration,
    batch_p50_ms: f64,
    batch_p99_ms: f64,
}

impl Throughput {
    fn per_sec(&self) -> f64 {
        self.records as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn per_core_sec(&self) -> f64 {
        self.records as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// One fixed-overhead result (microseconds).
struct Overhead {
    name: &'static str,
    batches: usize,
    /// Engine work: planning + running + committing.
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// The same plus the hand-off from generator to runner (thread wake-up, queueing).
    with_handoff_p50_us: u64,
    with_handoff_p99_us: u64,
}

/// CPU time of this process: the sum over its threads of `/proc/self/task/*/schedstat`'s first
/// field (ns on CPU), falling back to `/proc/self/stat` (clock ticks, assumed 100 Hz).
fn process_cpu_time() -> Duration {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                if let Some(ns) = s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    total += ns;
                    found = true;
                }
            }
        }
    }
    if found {
        return Duration::from_nanos(total);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // Fields after the ')' start at state (3); utime and stime are fields 14 and 15.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Collects completed batch infos.
#[derive(Default)]
struct Completed(parking::Mutex<Vec<BatchInfo>>);

/// A tiny mutex module so the file depends only on std (the `spate` crate has no parking_lot).
mod parking {
    pub(super) struct Mutex<T>(std::sync::Mutex<T>);
    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Mutex(std::sync::Mutex::new(T::default()))
        }
    }
    impl<T> Mutex<T> {
        pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }
    }
}

impl StreamingListener for Completed {
    fn on_batch_completed(&self, info: &BatchInfo) {
        self.0.lock().push(info.clone());
    }
}

fn context(threads: usize, interval: Duration) -> Result<StreamingContext> {
    Ok(StreamingContext::new(
        Config::new("bench-engine")
            .batch_interval(interval)
            .executor_threads(threads)
            .default_parallelism(threads)
            .graceful_stop_timeout(Duration::from_secs(120)),
    )?)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs one throughput job: `data` is pushed as pre-partitioned batches; `build` defines the job
/// and must add the number of records it processed to the counter it is given.
fn throughput<T: Data>(
    name: &'static str,
    threads: usize,
    data: Vec<Vec<Vec<T>>>,
    expected: u64,
    build: impl FnOnce(&DStream<T>, Arc<AtomicU64>) -> Result<()>,
) -> Result<Throughput> {
    let ctx = context(threads, Duration::from_millis(1))?;
    let done = Arc::new(Completed::default());
    ctx.add_streaming_listener(done.clone());
    let (queue, stream) = ctx.queue_stream::<T>(true);
    let records: u64 = data.iter().flatten().map(|p| p.len() as u64).sum();
    for batch in data {
        queue.push_partitions(batch);
    }
    let processed = Arc::new(AtomicU64::new(0));
    build(&stream, processed.clone())?;
    let cpu0 = process_cpu_time();
    let t0 = Instant::now();
    ctx.start()?;
    while processed.load(Ordering::SeqCst) < expected {
        if ctx.await_termination_or_timeout(Duration::from_millis(1))? {
            return Err(BenchError::StoppedEarly { job: name.into() });
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err(BenchError::TimedOut {
                job: name.into(),
                done: processed.load(Ordering::SeqCst),
                expected,
                secs: 300,
            });
        }
    }
    let wall = t0.elapsed();
    let cpu = process_cpu_time().saturating_sub(cpu0);
    ctx.stop(false)?;
    let mut times: Vec<u64> = done
        .0
        .lock()
        .iter()
        .filter(|b| b.num_records() > 0)
        .filter_map(|b| b.processing_micros)
        .collect();
    times.sort_unstable();
    Ok(Throughput {
        name,
        records,
        wall,
        cpu,
        batch_p50_ms: percentile(&times, 0.5) as f64 / 1000.0,
        batch_p99_ms: percentile(&times, 0.99) as f64 / 1000.0,
    })
}

/// `keys` distinct words, and `batches` batches of `per_batch` words split in `parts`.
fn word_batches(
    keys: usize,
    batches: usize,
    per_batch: usize,
    parts: usize,
) -> Vec<Vec<Vec<String>>> {
    let pool: Vec<String> = (0..keys.max(1)).map(|i| format!("key-{i:05}")).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..batches)
        .map(|_| {
            (0..parts)
                .map(|p| {
                    let n = per_batch / parts + usize::from(p < per_batch % parts);
                    (0..n)
                        .map(|_| {
                            // xorshift: a fixed, cheap sequence of keys.
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            pool[(x % pool.len() as u64) as usize].clone()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn overhead(
    name: &'static str,
    threads: usize,
    batches: usize,
    checkpoint: bool,
) -> Result<Overhead> {
    let interval = Duration::from_millis(if checkpoint { 5 } else { 1 });
    let ctx = context(threads, interval)?;
    let dir = std::env::temp_dir().join(format!("spate-bench-engine-{}", std::process::id()));
    if checkpoint {
        let _ = std::fs::remove_dir_all(&dir);
        ctx.checkpoint(&dir)?;
    }
    let done = Arc::new(Completed::default());
    ctx.add_streaming_listener(done.clone());
    let (_queue, stream) = ctx.queue_stream::<u64>(true);
    stream.foreach_batch(|b, _| b.count().map(|_| ()));
    ctx.start()?;
    let t0 = Instant::now();
    while (ctx.metrics().total_completed_batches() as usize) < batches {
        if ctx.await_termination_or_timeout(Duration::from_millis(5))? {
            return Err(BenchError::StoppedEarly { job: name.into() });
        }
        if t0.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    ctx.stop(true)?;
    if checkpoint {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let infos = done.0.lock().clone();
    let mut work: Vec<u64> = infos
        .iter()
        .filter_map(|b| Some(b.planning_micros + b.processing_micros?))
        .collect();
    let mut all: Vec<u64> = infos
        .iter()
        .filter_map(|b| Some(b.planning_micros + b.scheduling_micros? + b.processing_micros?))
        .collect();
    work.sort_unstable();
    all.sort_unstable();
    Ok(Overhead {
        name,
        batches: work.len(),
        p50_us: percentile(&work, 0.5),
        p99_us: percentile(&work, 0.99),
        max_us: work.last().copied().unwrap_or(0),
        with_handoff_p50_us: percentile(&all, 0.5),
        with_handoff_p99_us: percentile(&all, 0.99),
    })
}

/// The shape of a run: worker threads and the batches each throughput scenario is split into.
#[derive(Debug, Clone, Copy)]
struct Shape {
    threads: usize,
    batches: usize,
    per_batch: usize,
}

/// Runs the engine benchmark and prints a table (and JSON with `--json`).
pub fn run(args: EngineBenchArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let batches = args.batches.max(1);
    let shape = Shape {
        threads,
        batches,
        per_batch: (args.records / batches).max(1),
    };
    let want = |s: &str| args.scenarios.iter().any(|x| x == s);
    let results = run_throughput(&args, shape, &want)?;
    let overheads = if want("overhead") {
        run_overheads(&args, threads)?
    } else {
        Vec::new()
    };
    print_tables(&args, shape, &results, &overheads);
    if let Some(path) = &args.json {
        write_json(path, &args, shape, &results, &overheads)?;
    }
    Ok(())
}

/// The throughput scenarios asked for (pass-through, word count, window), each over the same
/// generated words.
fn run_throughput(
    args: &EngineBenchArgs,
    shape: Shape,
    want: &dyn Fn(&str) -> bool,
) -> Result<Vec<Throughput>> {
    let Shape {
        threads,
        batches,
        per_batch,
    } = shape;
    let total = (per_batch * batches) as u64;
    let mut results = Vec::new();
    if want("passthrough") {
        let data = word_batches(args.keys, batches, per_batch, threads);
        results.push(throughput("passthrough", threads, data, total, |s, n| {
            s.map(|w| w).foreach_batch(move |b, _| {
                let n = n.clone();
                b.foreach_partition(move |_, it| {
                    n.fetch_add(it.count() as u64, Ordering::Relaxed);
                    Ok::<_, StreamingError>(())
                })
            });
            Ok(())
        })?);
    }
    if want("wordcount") {
        let data = word_batches(args.keys, batches, per_batch, threads);
        results.push(throughput("wordcount", threads, data, total, |s, n| {
            s.map(|w| (w, 1u64))
                .reduce_by_key(|a, b| a + b)
                .foreach_batch(move |b, _| {
                    let sum: u64 = b.collect()?.iter().map(|(_, c)| c).sum();
                    n.fetch_add(sum, Ordering::Relaxed);
                    Ok::<_, StreamingError>(())
                });
            Ok(())
        })?);
    }
    if want("window") {
        let data = word_batches(args.keys, batches, per_batch, threads);
        results.push(throughput("window", threads, data, total, |s, n| {
            // A 4-batch window sliding every batch, incremental (add entering, subtract
            // leaving). The counter takes what entered the window in this batch.
            let seen = Arc::new(AtomicU64::new(0));
            s.map(|w| (w, 1u64))
                .reduce_by_key_and_window_inv(
                    |a, b| a + b,
                    |a, b| a - b,
                    Duration::from_millis(4),
                    Duration::from_millis(1),
                )?
                .foreach_batch(move |b, _| {
                    b.count()?;
                    Ok::<_, StreamingError>(())
                });
            s.foreach_batch(move |b, _| {
                let c = b.count()?;
                seen.fetch_add(c, Ordering::Relaxed);
                n.store(seen.load(Ordering::Relaxed), Ordering::Relaxed);
                Ok::<_, StreamingError>(())
            });
            Ok(())
        })?);
    }
    Ok(results)
}

/// The fixed per-batch overhead of empty batches, without and with a checkpoint.
fn run_overheads(args: &EngineBenchArgs, threads: usize) -> Result<Vec<Overhead>> {
    Ok(vec![
        overhead(
            "empty batch, no checkpoint",
            threads,
            args.overhead_batches,
            false,
        )?,
        overhead(
            "empty batch, checkpoint (fsync)",
            threads,
            (args.overhead_batches / 4).max(10),
            true,
        )?,
    ])
}

/// The throughput table and, when measured, the overhead table.
fn print_tables(
    args: &EngineBenchArgs,
    shape: Shape,
    results: &[Throughput],
    overheads: &[Overhead],
) {
    let Shape {
        threads,
        batches,
        per_batch,
    } = shape;
    println!("engine benchmark: {threads} worker thread(s), {batches} batches × {per_batch} records, {} keys", args.keys);
    println!();
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>14} {:>14} {:>11} {:>11}",
        "scenario",
        "records",
        "wall s",
        "cpu s",
        "records/s",
        "records/s/core",
        "batch p50ms",
        "batch p99ms"
    );
    for r in results {
        println!(
            "{:<12} {:>10} {:>8.3} {:>8.3} {:>14.0} {:>14.0} {:>11.2} {:>11.2}",
            r.name,
            r.records,
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            r.per_sec(),
            r.per_core_sec(),
            r.batch_p50_ms,
            r.batch_p99_ms
        );
    }
    if !overheads.is_empty() {
        println!();
        println!("fixed per-batch overhead of an empty batch: plan + run + commit, and with the hand-off");
        println!(
            "from generator to runner (thread wake-up; grows with machine load and queueing):"
        );
        println!(
            "{:<34} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12}",
            "mode", "batches", "p50 µs", "p99 µs", "max µs", "+handoff p50", "+handoff p99"
        );
        for o in overheads {
            println!(
                "{:<34} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12}",
                o.name,
                o.batches,
                o.p50_us,
                o.p99_us,
                o.max_us,
                o.with_handoff_p50_us,
                o.with_handoff_p99_us
            );
        }
    }
}

/// `--json`: the same results as one JSON object.
fn write_json(
    path: &std::path::Path,
    args: &EngineBenchArgs,
    shape: Shape,
    results: &[Throughput],
    overheads: &[Overhead],
) -> Result<()> {
    let Shape {
        threads,
        batches,
        per_batch,
    } = shape;
    let mut j = String::new();
    let _ = write!(j, "{{\"threads\":{threads},\"batches\":{batches},\"records_per_batch\":{per_batch},\"keys\":{},\"throughput\":[", args.keys);
    for (i, r) in results.iter().enumerate() {
        let _ = write!(
            j,
            "{}{{\"scenario\":\"{}\",\"records\":{},\"wall_s\":{:.6},\"cpu_s\":{:.6},\"records_per_s\":{:.0},\"records_per_s_per_core\":{:.0},\"batch_p50_ms\":{:.3},\"batch_p99_ms\":{:.3}}}",
            if i > 0 { "," } else { "" },
            r.name,
            r.records,
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            r.per_sec(),
            r.per_core_sec(),
            r.batch_p50_ms,
            r.batch_p99_ms
        );
    }
    let _ = write!(j, "],\"overhead\":[");
    for (i, o) in overheads.iter().enumerate() {
        let _ = write!(
            j,
            "{}{{\"mode\":\"{}\",\"batches\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"with_handoff_p50_us\":{},\"with_handoff_p99_us\":{}}}",
            if i > 0 { "," } else { "" },
            o.name,
            o.batches,
            o.p50_us,
            o.p99_us,
            o.max_us,
            o.with_handoff_p50_us,
            o.with_handoff_p99_us
        );
    }
    j.push_str("]}\n");
    std::fs::write(path, j).map_err(BenchError::io(format!(
        "could not write the report to {}",
        path.display()
    )))?;
    println!();
    println!("wrote {}", path.display());
    Ok(())
}

//! One run of `spate bench ysb`: fresh input and output topics, the generator (preloaded or at
//! a fixed rate), the raw consumer ceiling on the same input topic, the YSB job on the engine,
//! and the checker; the numbers of the run as a [`YsbRow`].
//!
//! CPU time is the whole process's (getrusage): the embedded broker (unless external), the
//! engine, librdkafka's threads and, in live runs, the generator — unless it runs in its own
//! process (`--generator-process`: `spate ysb-generate`, whose CPU and memory are then not
//! counted). Either way the generator's achieved rate and worst lag are reported beside the
//! results, and a run whose generator could not offer the load is marked so
//! (`load_offered: false`) rather than read as a slow job.

use crate::error::{BenchError, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use spate_streaming::{Config, StreamingContext};

use crate::broker::{create_topic, delete_topic};
use crate::job_result::reset_peak_rss;
use crate::kafka_io::drain;
use crate::report::Ceiling;
use crate::resources::{peak_rss_bytes, CpuTime};
use spate_client::config::ClientArgs;
use spate_client::measure::{Percentiles, Throughput};
use spate_ysb::checker::check_topics;
use spate_ysb::generator::{now_ms, preload, produce_at_rate};
use spate_ysb::{
    CampaignMap, Encoding, EventClock, GeneratorConfig, JobStats, LiveLoad, YsbJob, YsbJobConfig,
    YsbSetup,
};

/// Catch-up (a preloaded topic, as fast as possible) or live (a fixed offered rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Preload the input topic, then process it as fast as possible.
    CatchUp,
    /// Generate events at a fixed rate while the job runs.
    Live,
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Catch-up or live.
    pub mode: Mode,
    /// How events are written to the input topic.
    pub encoding: Encoding,
    /// The engine's batch interval.
    pub batch_interval: Duration,
    /// Partitions of the input topic.
    pub partitions: i32,
    /// Catch-up: events preloaded.
    pub events: u64,
    /// Live: offered events/s and for how long.
    pub rate: f64,
    /// Live: how long the generator runs.
    pub duration: Duration,
    /// Caps the stream at this many records/s (`maxRatePerPartition` × partitions), which
    /// bounds a catch-up batch to `max_rate × batch_interval` records.
    pub max_rate: u64,
    /// Engine worker threads.
    pub threads: usize,
    /// Run the checker on the output afterwards.
    pub check: bool,
    /// Seed of the YSB set-up and the event stream.
    pub seed: u64,
    /// Live: run the generator as its own process (`spate ysb-generate`).
    pub generator_process: bool,
    /// Catch-up: read this topic, loaded and kept by an earlier run (`--keep-topic`), instead
    /// of preloading a fresh one, so the process holds the job's memory alone.
    pub input_topic: Option<String>,
    /// Leave the input topic on the broker for later runs (`--topic`).
    pub keep_topic: bool,
    /// Drain the input with the raw consumer for the ceiling (off: no ratios).
    pub ceiling: bool,
}

/// One run's numbers (raw, unformatted; `*_ms` in milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct YsbRow {
    /// The run's label ([`RunSpec::name`]).
    pub name: String,
    /// Catch-up or live.
    pub mode: Mode,
    /// Encoding of the input events.
    pub encoding: Encoding,
    /// The engine's batch interval.
    pub batch_interval_ms: f64,
    /// Partitions of the input topic.
    pub partitions: i32,
    /// Events processed.
    pub events: u64,
    /// Mean size of an event record's value, bytes.
    pub record_bytes: f64,
    /// Live: the rate the generator was asked for, events/s.
    pub offered_rate: Option<f64>,
    /// Live: the generator's worst lag behind its schedule (YSB's "Falling behind by").
    pub generator_max_behind_ms: Option<f64>,
    /// Live: events/s the generator actually sent.
    pub generator_rate: Option<f64>,
    /// Live: whether the generator offered the load in full (≥ 95% of the rate, never more
    /// than a second behind). `false`: the row measured the generator or the box, not the job.
    pub load_offered: Option<bool>,
    /// Live: the generator ran in its own process.
    pub generator_process: bool,
    /// Engine wall time: from the context's start until every event was processed.
    pub seconds: f64,
    /// Events per second of engine wall time.
    pub records_per_sec: f64,
    /// CPU seconds of the process (broker + engine, + generator in live runs) during the job.
    pub cpu_seconds: f64,
    /// Events per CPU second.
    pub records_per_cpu_second: f64,
    /// The raw librdkafka consumer's rate on the same input topic.
    pub ceiling_records_per_sec: f64,
    /// `records_per_sec ÷ ceiling_records_per_sec`.
    pub ratio_to_ceiling: f64,
    /// Batches that completed during the job.
    pub batches: u64,
    /// Processing time of the batches that had records.
    pub batch_processing_ms: Option<Percentiles>,
    /// Live: sampled end-to-end latency, from an event's time to the acknowledged write of
    /// the count it went into.
    pub end_to_end_ms: Option<Percentiles>,
    /// YSB's time after window close, of the windows that closed while the generator ran
    /// (checked runs only).
    pub window_close_ms: Option<Percentiles>,
    /// Live: how long after the generator stopped the job had processed everything.
    pub drain_ms: Option<f64>,
    /// Live, after warm-up: events due by the generator's schedule but not yet processed,
    /// sampled every 50 ms (it includes the generator's own lag).
    pub backlog_events: Option<Percentiles>,
    /// Live: the backlog stayed within two batch intervals plus half a second of offered load.
    pub sustained: Option<bool>,
    /// Peak resident memory of the process while the job ran (broker + engine; + generator).
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory when the job started: what the broker, the preload and the ceiling's
    /// drain left behind (glibc keeps freed memory); the job's own growth is the difference.
    pub rss_at_start_bytes: Option<u64>,
    /// Whether the checker found every window's count right; `None` when not checked.
    pub check_passed: Option<bool>,
    /// Windows the checker recomputed from the input.
    pub windows: usize,
    /// Windows whose output count differed from the recomputed one.
    pub mismatches: usize,
    /// Sampled end-to-end latencies, for the latency plots (not serialized).
    #[serde(skip)]
    pub latency_samples: Vec<f64>,
}

impl RunSpec {
    /// A label such as `catch-up json 100ms` or `live binary 1s @200K/s`.
    pub fn name(&self) -> String {
        let enc = match self.encoding {
            Encoding::Json => "json",
            Encoding::Binary => "binary",
        };
        let interval = fmt_interval(self.batch_interval);
        match self.mode {
            Mode::CatchUp => format!("catch-up {enc} {interval}"),
            Mode::Live => format!("live {enc} {interval} @{:.0}K/s", self.rate / 1000.0),
        }
    }
}

/// `10ms`, `100ms`, `1s`.
pub fn fmt_interval(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 && (ms % 1000.0) == 0.0 {
        format!("{}s", ms / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `spec` against the broker at `bootstrap`.
pub fn run(bootstrap: &str, spec: &RunSpec) -> Result<YsbRow> {
    let client = ClientArgs::new(bootstrap);
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let (input, created) = match &spec.input_topic {
        Some(topic) => (topic.clone(), false),
        None => {
            let input = format!("ysb-ad-events-{pid}-{n}");
            create_topic(&client, &input, spec.partitions)?;
            (input, true)
        }
    };
    let output = format!("ysb-window-counts-{pid}-{n}");
    create_topic(&client, &output, spec.partitions)?;
    let result = run_on(&client, spec, &input, &output);
    if created && spec.keep_topic {
        eprintln!(
            "  kept the input topic {input} ({} events): rerun with --topic {input}",
            spec.events
        );
    } else if created {
        delete_topic(&client, &input);
    }
    delete_topic(&client, &output);
    result
}

fn run_on(client: &ClientArgs, spec: &RunSpec, input: &str, output: &str) -> Result<YsbRow> {
    let setup = YsbSetup::new(spec.seed);
    let campaigns = Arc::new(setup.campaign_map());
    let gen = GeneratorConfig {
        topic: input.to_owned(),
        partitions: spec.partitions,
        encoding: spec.encoding,
        seed: spec.seed.wrapping_add(1),
    };
    let name = spec.name();

    let mut ceiling = None;
    let mut record_bytes = 0.0;
    if spec.mode == Mode::CatchUp {
        if spec.input_topic.is_none() {
            record_bytes = preload_input(client, spec, &gen, &setup)?;
        }
        if spec.ceiling {
            eprintln!("  {name}: raw consumer ceiling...");
            let drained = drain(client, input, spec.partitions, spec.events)?;
            if spec.input_topic.is_some() {
                record_bytes = drained.bytes as f64 / drained.records.max(1) as f64;
            }
            ceiling = Some(drained);
        }
    }

    let job = JobRun {
        client,
        spec,
        gen: &gen,
        setup: &setup,
        input,
        output,
    };
    let m = job.measure(campaigns.clone())?;

    if let Some(l) = &m.live {
        record_bytes = l.bytes as f64 / l.events.max(1) as f64;
        if spec.ceiling {
            eprintln!("  {name}: raw consumer ceiling...");
            ceiling = Some(drain(client, input, spec.partitions, l.events)?);
        }
    }
    let check = if spec.check {
        check_counts(
            client,
            spec,
            input,
            output,
            &campaigns,
            m.live.is_some(),
            m.gen_end_ms,
        )?
    } else {
        Checked::default()
    };
    Ok(ysb_row(
        spec,
        name,
        m,
        record_bytes,
        ceiling.as_ref(),
        check,
    ))
}

/// One run of the YSB job on its topics, with what it needs to offer load.
struct JobRun<'a> {
    client: &'a ClientArgs,
    spec: &'a RunSpec,
    gen: &'a GeneratorConfig,
    setup: &'a YsbSetup,
    input: &'a str,
    output: &'a str,
}

/// What the measured part of a run (job start to stop) observed.
struct Measured {
    events: u64,
    live: Option<LiveLoad>,
    drain_ms: Option<f64>,
    seconds: f64,
    cpu: f64,
    peak_rss: Option<u64>,
    rss_at_start: Option<u64>,
    gen_end_ms: i64,
    backlog: Vec<f64>,
    stats: Arc<JobStats>,
}

impl JobRun<'_> {
    /// Starts the job, processes the preloaded events (catch-up) or offers the live load and
    /// drains it, stops the job; times and samples resources around exactly that.
    fn measure(&self, campaigns: Arc<CampaignMap>) -> Result<Measured> {
        let (client, spec) = (self.client, self.spec);
        let (ctx, job) = start_job(client, spec, self.input, self.output, campaigns)?;
        let mut gen_end_ms = i64::MAX;
        let mut backlog: Vec<f64> = Vec::new();
        // The peak of the job's run (broker + engine), not of the preload and the ceiling's drain.
        reset_peak_rss();
        let rss_at_start = peak_rss_bytes();
        let cpu0 = CpuTime::now();
        let t0 = Instant::now();
        ctx.start()?;
        let (events, live, drain_ms, seconds) = match spec.mode {
            Mode::CatchUp => {
                wait_processed(&ctx, &job, spec.events, Duration::from_secs(600))?;
                (spec.events, None, None, t0.elapsed().as_secs_f64())
            }
            Mode::Live => {
                let live = offer_live_load(client, spec, self.gen, self.setup, &job, &mut backlog)?;
                let gen_done = Instant::now();
                gen_end_ms = now_ms();
                wait_processed(&ctx, &job, live.events, Duration::from_secs(120))?;
                let drain_ms = gen_done.elapsed().as_secs_f64() * 1000.0;
                (
                    live.events,
                    Some(live),
                    Some(drain_ms),
                    t0.elapsed().as_secs_f64(),
                )
            }
        };
        let cpu = CpuTime::now().since(&cpu0).total();
        ctx.stop(true)?;
        Ok(Measured {
            events,
            live,
            drain_ms,
            seconds,
            cpu,
            peak_rss: peak_rss_bytes(),
            rss_at_start,
            gen_end_ms,
            backlog,
            stats: job.stats.clone(),
        })
    }
}

/// The report row of a run from what it measured, its ceiling and its check.
fn ysb_row(
    spec: &RunSpec,
    name: String,
    m: Measured,
    record_bytes: f64,
    ceiling: Option<&Throughput>,
    check: Checked,
) -> YsbRow {
    let infos = m.stats.batch_infos();
    // Batches with records: an empty batch (planned while an earlier one still ran, or at no
    // load) takes microseconds and would hide the real processing times.
    let batch_ms: Vec<f64> = infos
        .iter()
        .filter(|b| b.num_records() > 0)
        .filter_map(|b| b.processing_micros)
        .map(|us| us as f64 / 1000.0)
        .collect();
    let latency_samples = m.stats.latencies_ms();
    let (events, live, backlog) = (m.events, m.live, m.backlog);
    let records_per_sec = events as f64 / m.seconds.max(1e-9);
    // Without a ceiling (`--no-ceiling`) both are 0: the table prints "-".
    let ceiling_rate = ceiling.map_or(0.0, Throughput::records_per_sec);
    YsbRow {
        name,
        mode: spec.mode,
        encoding: spec.encoding,
        batch_interval_ms: spec.batch_interval.as_secs_f64() * 1000.0,
        partitions: spec.partitions,
        events,
        record_bytes,
        offered_rate: live.map(|l| l.offered_rate),
        generator_max_behind_ms: live.map(|l| l.max_behind_ms),
        generator_rate: live.map(|l| l.achieved_rate()),
        load_offered: live.map(|l| l.offered_in_full()),
        generator_process: live.is_some() && spec.generator_process,
        seconds: m.seconds,
        records_per_sec,
        cpu_seconds: m.cpu,
        records_per_cpu_second: events as f64 / m.cpu.max(1e-9),
        ceiling_records_per_sec: ceiling_rate,
        ratio_to_ceiling: if ceiling_rate > 0.0 {
            records_per_sec / ceiling_rate
        } else {
            0.0
        },
        batches: infos.len() as u64,
        batch_processing_ms: Percentiles::of(&batch_ms),
        end_to_end_ms: if live.is_some() {
            Percentiles::of(&latency_samples)
        } else {
            None
        },
        window_close_ms: check.window_close,
        drain_ms: m.drain_ms,
        sustained: live.map(|l| {
            // Two batches plus half a second of load: what a run that keeps up holds at most
            // (the batch being filled, the one being processed, and the generator's lag).
            let limit = l.offered_rate * (2.0 * spec.batch_interval.as_secs_f64() + 0.5);
            backlog.iter().all(|&b| b <= limit)
        }),
        backlog_events: Percentiles::of(&backlog),
        peak_rss_bytes: m.peak_rss,
        rss_at_start_bytes: m.rss_at_start,
        check_passed: check.passed,
        windows: check.windows,
        mismatches: check.mismatches,
        latency_samples,
    }
}

/// A catch-up run's input: `spec.events` events preloaded (100K events/s of event time, so
/// windows of about 1M events, 100 campaigns each). Returns the mean record size.
fn preload_input(
    client: &ClientArgs,
    spec: &RunSpec,
    gen: &GeneratorConfig,
    setup: &YsbSetup,
) -> Result<f64> {
    let name = spec.name();
    eprintln!("  {name}: preloading {} events...", spec.events);
    let clock = EventClock {
        start_ms: now_ms() - (spec.events as f64 / 100.0) as i64 - 60_000,
        events_per_sec: 100_000.0,
    };
    let loaded = preload(client, gen, setup, spec.events, clock)?;
    eprintln!(
        "  {name}: loaded at {:.0} events/s",
        loaded.throughput.records_per_sec()
    );
    Ok(loaded.throughput.bytes as f64 / spec.events.max(1) as f64)
}

/// The YSB job on a fresh streaming context, defined but not started.
fn start_job(
    client: &ClientArgs,
    spec: &RunSpec,
    input: &str,
    output: &str,
    campaigns: Arc<CampaignMap>,
) -> Result<(StreamingContext, YsbJob)> {
    let ctx = StreamingContext::new(
        Config::new("ysb")
            .batch_interval(spec.batch_interval)
            .executor_threads(spec.threads)
            .default_parallelism(spec.threads)
            .graceful_stop_timeout(Duration::from_secs(60)),
    )?;
    let mut config = YsbJobConfig::new(client.bootstrap_server.clone(), input, output);
    config.encoding = spec.encoding;
    config.partitions = spec.partitions.max(1) as usize;
    config.max_records_per_batch =
        Some(((spec.max_rate as f64) * spec.batch_interval.as_secs_f64()).ceil() as u64);
    let job = YsbJob::build(&ctx, &config, campaigns)?;
    Ok((ctx, job))
}

/// A live run's load: the generator at `spec.rate` for `spec.duration` on its own thread, the
/// warm-up's samples dropped, and the backlog (events due by the schedule but not yet
/// processed) sampled every 50 ms into `backlog`.
fn offer_live_load(
    client: &ClientArgs,
    spec: &RunSpec,
    gen: &GeneratorConfig,
    setup: &YsbSetup,
    job: &YsbJob,
    backlog: &mut Vec<f64>,
) -> Result<LiveLoad> {
    eprintln!(
        "  {}: offering {:.0} events/s for {} s...",
        spec.name(),
        spec.rate,
        spec.duration.as_secs()
    );
    let stats = &job.stats;
    let stop = AtomicBool::new(false);
    let warm_up = (spec.duration / 5).max(Duration::from_secs(2));
    let gen_start = Instant::now();
    if spec.generator_process {
        return offer_from_process(client, spec, gen, job, backlog, warm_up);
    }
    std::thread::scope(|s| {
        let generator =
            s.spawn(|| produce_at_rate(client, gen, setup, spec.rate, spec.duration, &stop));
        std::thread::sleep(warm_up.min(spec.duration));
        // Batches and latencies of the warm-up do not count.
        stats.reset_samples();
        // The backlog: events due by the schedule but not yet processed. A rate the
        // box sustains keeps it within a few batches; one it does not lets it grow.
        while !generator.is_finished() {
            let due = (gen_start.elapsed().as_secs_f64() * spec.rate) as u64;
            let done = stats.records_completed.load(Ordering::Relaxed);
            backlog.push(due.saturating_sub(done) as f64);
            std::thread::sleep(Duration::from_millis(50));
        }
        let load = generator
            .join()
            .map_err(|_| BenchError::ThreadPanicked("generator"))??;
        Ok(load)
    })
}

/// The backlog sample: events due by the schedule since `gen_start` but not yet processed.
fn backlog_now(spec: &RunSpec, job: &YsbJob, gen_start: Instant) -> f64 {
    let due = (gen_start.elapsed().as_secs_f64() * spec.rate) as u64;
    let done = job.stats.records_completed.load(Ordering::Relaxed);
    due.saturating_sub(done) as f64
}

/// [`offer_live_load`] with the generator in its own process: this binary's `ysb-generate`
/// subcommand, whose one line of JSON on stdout is its [`LiveLoad`].
fn offer_from_process(
    client: &ClientArgs,
    spec: &RunSpec,
    gen: &GeneratorConfig,
    job: &YsbJob,
    backlog: &mut Vec<f64>,
    warm_up: Duration,
) -> Result<LiveLoad> {
    use std::io::Read as _;
    let args = crate::ysb_generate::YsbGenerateArgs {
        bootstrap_server: client.bootstrap_server.clone(),
        topic: gen.topic.clone(),
        partitions: gen.partitions,
        binary: gen.encoding == Encoding::Binary,
        rate: spec.rate,
        duration: spec.duration.as_secs_f64(),
        setup_seed: spec.seed,
        seed: gen.seed,
    };
    let exe = std::env::current_exe().map_err(BenchError::io("cannot find this executable"))?;
    let mut child = std::process::Command::new(&exe)
        .arg("ysb-generate")
        .args(args.to_args())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(BenchError::io(format!(
            "cannot start {} ysb-generate",
            exe.display()
        )))?;
    let gen_start = Instant::now();
    let mut warmed_up = false;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(BenchError::io("waiting for the generator"))?
        {
            break status;
        }
        if !warmed_up && gen_start.elapsed() >= warm_up.min(spec.duration) {
            job.stats.reset_samples();
            warmed_up = true;
        }
        if warmed_up {
            backlog.push(backlog_now(spec, job, gen_start));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .map_err(BenchError::io("reading the generator's result"))?;
    }
    if !status.success() {
        return Err(BenchError::GeneratorProcess(format!(
            "it failed ({status})"
        )));
    }
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| {
        BenchError::GeneratorProcess(format!("it printed no result ({e}), only {out:?}"))
    })
}

/// What the checker found; all empty when the run was not checked.
#[derive(Debug, Default)]
struct Checked {
    passed: Option<bool>,
    windows: usize,
    mismatches: usize,
    /// YSB's time after window close, of the windows that closed while the generator ran.
    window_close: Option<Percentiles>,
}

/// Recomputes the counts from the input topic and compares them with the job's output.
fn check_counts(
    client: &ClientArgs,
    spec: &RunSpec,
    input: &str,
    output: &str,
    campaigns: &CampaignMap,
    live: bool,
    gen_end_ms: i64,
) -> Result<Checked> {
    eprintln!("  {}: checking the counts...", spec.name());
    let (report, latest) = check_topics(client, input, output, spec.encoding, campaigns)?;
    if !report.passed() {
        tracing::error!("YSB check failed: {report:?}");
    }
    let mut window_close = None;
    if live {
        // Windows that closed while the generator ran; the last, partial one is left out.
        let closes: Vec<f64> = latest
            .values()
            .filter(|c| c.window_start + spate_ysb::WINDOW_MS <= gen_end_ms)
            .map(|c| c.time_after_window_close() as f64)
            .collect();
        window_close = Percentiles::of(&closes);
    }
    Ok(Checked {
        passed: Some(report.passed()),
        windows: report.expected_windows,
        mismatches: report.mismatch_count,
        window_close,
    })
}

/// Waits until the job has processed `events` input records.
fn wait_processed(
    ctx: &StreamingContext,
    job: &YsbJob,
    events: u64,
    limit: Duration,
) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let done = job.stats.records_completed.load(Ordering::SeqCst);
        if done >= events {
            return Ok(());
        }
        if let Some(f) = job.stats.failures().first() {
            return Err(BenchError::BatchFailed(f.to_string()));
        }
        if ctx
            .await_termination_or_timeout(Duration::from_millis(2))
            .map_err(|e| BenchError::from(e).during("the streaming context failed"))?
        {
            return Err(BenchError::StoppedEarly { job: "YSB".into() });
        }
        if t0.elapsed() > limit {
            return Err(BenchError::TimedOut {
                job: "YSB".into(),
                done,
                expected: events,
                secs: limit.as_secs(),
            });
        }
    }
}

/// The ceiling as the report records it.
pub fn ceiling_of(row: &YsbRow) -> Ceiling {
    Ceiling {
        record_size: row.record_bytes.round() as usize,
        records_per_sec: row.ceiling_records_per_sec,
        mb_per_sec: row.ceiling_records_per_sec * row.record_bytes / 1e6,
        method: format!(
            "rdkafka BaseConsumer on the run's input topic ({}), all partitions assigned",
            row.name
        ),
    }
}

//! `spate quickstart`: the whole pipeline in one command, the README's first step.
//!
//! It starts the embedded broker in this process (or uses `--bootstrap-server`), creates the
//! `ad-events` topic, produces a steady stream of ad events shaped like the Yahoo Streaming
//! Benchmark's, and runs a direct-stream job with a checkpoint that counts views per campaign
//! per 10-second event-time window into SQLite — results and offset ranges in one transaction,
//! so the counts are exactly-once. It prints one line per batch, serves the web UI, and stops
//! gracefully on Ctrl-C or after `--duration`, printing a summary. Everything lives under
//! `--dir`, so a second run resumes: the job from its checkpoint, the producer from the topic's
//! end offsets. With `--sink kafka` the counts go exactly once to a topic instead, in one Kafka
//! transaction per batch with the batch's offsets ([`kafka_sink`]).
//!
//! Map: [`layout`] (the directory) · [`cluster`] (broker, topic, end offsets) · [`producer`] (the event generator thread) ·
//! [`job`] (the streaming job) · [`kafka_sink`] (the counts in a topic) · [`progress`] (per-batch lines) · [`stop`] (signals, duration) ·
//! [`summary`] (what the run did, from SQLite) · [`web`] (the UI on 4040 or a free port).

pub mod cluster;
pub mod job;
pub mod kafka_sink;
pub mod layout;
pub mod producer;
pub mod progress;
pub mod stop;
pub mod summary;
pub mod web;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use cluster::Cluster;
pub use layout::{Layout, Source};
use progress::Progress;
use spate_client::config::{parse_key_value, parse_properties_file, PropertiesFile};

/// Flags of `spate quickstart`; every one has a default, so the command runs without any.
#[derive(Args, Debug, Clone)]
pub struct QuickstartArgs {
    /// Stop after this long (e.g. 10s, 2m, 1h); by default run until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Ad events produced per second.
    #[arg(long, value_name = "EVENTS_PER_SEC", default_value_t = 10_000)]
    pub rate: u64,

    /// The job's batch interval (e.g. 1s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub batch_interval: Duration,

    /// Directory for the broker's data, the job's checkpoint and the SQLite results; a second
    /// run with the same directory resumes.
    #[arg(long, value_name = "DIR", default_value = "spate-quickstart")]
    pub dir: PathBuf,

    /// Port of the web UI (0 picks a free port; if the port is taken, a free one is used
    /// instead).
    #[arg(long, value_name = "PORT", default_value_t = 4040)]
    pub ui_port: u16,

    /// Address the web UI listens on. Anything but a loopback address needs --ui-token-file or
    /// --ui-basic-auth-file: the UI shows the job's topics, offsets and settings.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub ui_bind: IpAddr,

    /// A file whose first line is the token the web UI, REST API and /metrics ask for
    /// (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "FILE", conflicts_with = "ui_basic_auth_file")]
    pub ui_token_file: Option<PathBuf>,

    /// A file whose first line is `user:password` for the web UI's basic auth.
    #[arg(long, value_name = "FILE")]
    pub ui_basic_auth_file: Option<PathBuf>,

    /// Do not serve the web UI.
    #[arg(long)]
    pub no_ui: bool,

    /// Run against an existing Kafka cluster (HOST:PORT[,HOST:PORT…]) instead of starting the
    /// embedded broker.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,

    /// The topic of ad events.
    #[arg(long, value_name = "TOPIC", default_value = "ad-events")]
    pub topic: String,

    /// Partitions of the topic when the quickstart creates it.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,

    /// Where the window counts go: `sqlite` (results.db under --dir) or `kafka` (the output
    /// topic, exactly once with Kafka transactions; read it with isolation.level=read_committed).
    #[arg(long, value_enum, default_value_t = Sink::Sqlite)]
    pub sink: Sink,

    /// The topic of window counts with `--sink kafka`.
    #[arg(long, value_name = "TOPIC", default_value = "campaign-windows")]
    pub output_topic: String,

    /// A Kafka client setting for the producer and the job (e.g. -X security.protocol=SASL_SSL),
    /// repeatable; overrides --command-config.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,

    /// A properties file of Kafka client settings for the producer and the job
    /// (`security.protocol`, `sasl.*`, `ssl.*`), like the `--command-config` of Kafka's tools.
    #[arg(long, value_name = "FILE", value_parser = parse_properties_file)]
    pub command_config: Option<PropertiesFile>,
}

/// Where the quickstart's window counts go.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// A SQLite database, the counts and the offsets in one SQLite transaction.
    Sqlite,
    /// A Kafka topic, the counts and the offsets in one Kafka transaction.
    Kafka,
}

impl QuickstartArgs {
    /// The sink as recorded in the directory's `source.json`.
    fn sink_name(&self) -> String {
        match self.sink {
            Sink::Sqlite => "sqlite".to_owned(),
            Sink::Kafka => format!("kafka:{}", self.output_topic),
        }
    }

    /// Where the results are, for the banner.
    fn results_location(&self, layout: &Layout) -> String {
        match self.sink {
            Sink::Sqlite => layout.results.display().to_string(),
            Sink::Kafka => format!(
                "topic {} (exactly once: read it with isolation.level=read_committed)",
                self.output_topic
            ),
        }
    }
}

/// `10s`, `2m`, `1h30m`, `500ms` (humantime); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (examples: 10s, 2m, 500ms)"))
}

/// A Ctrl-C or SIGTERM before the job started: say so; the caller returns and drops what it
/// started (an embedded broker stops cleanly on drop), and a re-run resumes.
fn interrupted_while_starting(interrupts: &stop::Interrupts) -> bool {
    if interrupts.requested() {
        interrupts.begin_stopping();
        println!("stopping (interrupted) before the job started");
    }
    interrupts.requested()
}

/// Refuses options no run can work with, before anything starts.
fn check_args(args: &QuickstartArgs) -> anyhow::Result<()> {
    if args.rate == 0 {
        anyhow::bail!("--rate must be at least 1 event per second");
    }
    if args.batch_interval.is_zero() {
        anyhow::bail!("--batch-interval must be longer than zero");
    }
    Ok(())
}

/// The layout under `--dir`, claimed for this Kafka source, topic and sink (a directory of
/// another source is refused rather than mixed).
fn claim_layout(args: &QuickstartArgs) -> anyhow::Result<Layout> {
    let layout = Layout::new(&args.dir);
    layout.claim(&Source {
        kafka: args
            .bootstrap_server
            .clone()
            .unwrap_or_else(|| "embedded".to_owned()),
        topic: args.topic.clone(),
        sink: args.sink_name(),
    })?;
    Ok(layout)
}

/// Creates the events topic if it is missing; returns its partition count and how many events
/// it holds already (the producer numbers new events after them).
fn prepare_topic(args: &QuickstartArgs, cluster: &Cluster) -> anyhow::Result<(i32, i64)> {
    let partitions = cluster.ensure_topic(&args.topic, args.partitions)?;
    let end_offsets = cluster.end_offsets(&args.topic, partitions)?;
    let existing: i64 = end_offsets.values().sum();
    println!(
        "topic {} ({partitions} partitions, {existing} events so far)",
        args.topic
    );
    Ok((partitions, existing))
}

/// Prints what is running: the producer's rate, the batch interval, where results go, the UI's
/// address and how the run ends.
fn announce_running(args: &QuickstartArgs, layout: &Layout, ui_url: Option<String>) {
    println!(
        "producing {} ad events/s; batches every {}; results in {}",
        args.rate,
        humantime::format_duration(args.batch_interval),
        args.results_location(layout)
    );
    if let Some(url) = ui_url {
        println!("web UI: {url}");
    }
    match args.duration {
        Some(d) => println!("running for {}", humantime::format_duration(d)),
        None => println!("press Ctrl-C to stop"),
    }
}

/// Reads the results from the sink (over all runs) and prints them beside what this run did.
fn print_summary(
    args: &QuickstartArgs,
    layout: &Layout,
    cluster: &Cluster,
    pipeline: &job::Pipeline,
    facts: &summary::RunFacts,
) -> anyhow::Result<()> {
    let results = match args.sink {
        Sink::Sqlite => summary::Results::read(layout),
        Sink::Kafka => {
            kafka_sink::read_results(cluster, &pipeline.params, &args.output_topic, &args.topic)
        }
    }
    .context("reading the results")?;
    summary::print(facts, &results, layout);
    Ok(())
}

/// Runs `spate quickstart`: broker, producer, job and UI until Ctrl-C or `--duration`.
pub fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let ui_auth = web::auth(&args)?;
    let interrupts = stop::Interrupts::install()?;
    let layout = claim_layout(&args)?;
    let resuming = layout.checkpoint.exists();

    let cluster = Cluster::start(
        args.bootstrap_server.as_deref(),
        &layout.broker,
        args.command_config.as_ref(),
        &args.config,
    )?;
    println!("spate quickstart — {}", cluster.description);
    if interrupted_while_starting(&interrupts) {
        return Ok(());
    }
    let (partitions, existing) = prepare_topic(&args, &cluster)?;

    let pipeline = job::Pipeline::build(&args, &layout, &cluster, partitions)?;
    if interrupted_while_starting(&interrupts) {
        return Ok(());
    }
    let progress = Arc::new(Progress::default());
    pipeline.ctx.add_streaming_listener(progress.clone());
    if resuming {
        println!(
            "resuming from the checkpoint in {}",
            layout.checkpoint.display()
        );
    }
    // Before start, so the UI sees every batch.
    let ui = if args.no_ui {
        None
    } else {
        let addr = SocketAddr::new(args.ui_bind, args.ui_port);
        Some(web::start(&pipeline.ctx, addr, ui_auth, &pipeline.params)?)
    };
    pipeline.ctx.start().context("starting the streaming job")?;
    let producer = producer::Producer::start(
        &cluster,
        &args.topic,
        partitions,
        args.rate,
        u64::try_from(existing).unwrap_or(0),
    )?;
    announce_running(&args, &layout, ui.as_ref().map(|ui| ui.url()));

    let started = Instant::now();
    let reason = stop::wait(&pipeline.ctx, &interrupts, args.duration, || {
        producer.is_running()
    });
    interrupts.begin_stopping();
    println!("stopping ({reason}): finishing planned batches…");
    let produced = producer.stop();
    let stopped = pipeline.ctx.stop(true);
    let outcome = pipeline.ctx.await_termination();
    let elapsed = started.elapsed();
    if let Some(ui) = ui {
        ui.shutdown();
    }

    let facts = summary::RunFacts {
        elapsed,
        produced: produced.as_ref().copied().unwrap_or(0),
        totals: progress.totals(),
        already_applied: pipeline.output.skipped_batches(),
        malformed: pipeline
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    print_summary(&args, &layout, &cluster, &pipeline, &facts)?;
    // The summary first (it shows what was done), then whatever went wrong.
    outcome.context("the streaming job failed")?;
    stopped.context("stopping the streaming job")?;
    produced.context("the event producer failed")?;
    drop(cluster);
    Ok(())
}

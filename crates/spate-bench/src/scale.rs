//! `spate bench scale`: one job run as 1, 2 and 3 instances (docs/scale-out.md) on the same
//! preloaded topic and the same total engine threads, and what a killed instance costs.
//!
//! Each instance is a child process (`spate bench scale-instance`) running the word count of
//! `bench direct` on a group-managed direct stream; the instances of one layout share a fresh
//! consumer group (static members, cooperative-sticky). The benchmark waits until the group has
//! settled (every instance owns partitions, all partitions owned), tells every instance to
//! start at once, and times the layout until the instances together counted every word of the
//! topic. Batch processing times come from every instance's batches.
//!
//! Then, for layouts of two or more instances, a producer writes `--live-rate` records/s and the
//! last instance is SIGKILLed. The survivors report the rebalance that gives them its
//! partitions: *reassigned* is the time from the kill to that assignment (the coordinator first
//! waits out `session.timeout.ms`), *processing again* the time from the kill to the end of the
//! first batch over those partitions, which resume after the killed instance's last completed
//! batch (positions shared in a directory, see `scale_instance`). The word count keeps no
//! changelog state, so there is no restore to time. The raw librdkafka consumer ceiling of the same run is in the report.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use serde::Serialize;
use spate_client::measure::{fmt_count, Percentiles};
use spate_streaming::{RebalanceInfo, RebalanceKind, Time};

use crate::error::{BenchError, Result};
use crate::report::{Report, Table};
use crate::resources::ResourceUsage;
use crate::scale_instance::InstanceEvent;
use crate::stream_topic::{fill_words, words_per_record, Preloaded, StreamBenchArgs};

/// Options of `spate bench scale`.
#[derive(Args, Debug)]
pub struct ScaleBenchArgs {
    /// The topic, broker and engine settings shared with `bench direct` (`--threads` is
    /// ignored: `--layouts` sets the threads per instance).
    #[command(flatten)]
    pub common: StreamBenchArgs,
    /// Layouts to run, comma-separated `INSTANCESxTHREADS` (threads per instance).
    #[arg(long, value_delimiter = ',', default_value = "1x2,2x1,3x1")]
    pub layouts: Vec<String>,
    /// `session.timeout.ms` of the instances (the embedded broker's
    /// `group.min.session.timeout.ms` is lowered to allow it).
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    pub session_timeout_ms: u64,
    /// Records/s produced while an instance is killed.
    #[arg(long, value_name = "RECORDS", default_value_t = 20_000)]
    pub live_rate: u64,
    /// Skip the kill after each multi-instance layout.
    #[arg(long)]
    pub no_kill: bool,
    /// Per-partition cap of the stream, records/s (bounds a batch's size only).
    #[arg(long, value_name = "RECORDS", default_value_t = 2_500_000)]
    pub max_rate_per_partition: u64,
}

/// One layout's row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    /// e.g. "2 x 1 thread".
    pub layout: String,
    /// Instances (processes).
    pub instances: usize,
    /// Engine threads per instance.
    pub threads_per_instance: usize,
    /// Records read by all instances together.
    pub records: u64,
    /// From the start signal to the last word counted.
    pub seconds: f64,
    /// Records per second, all instances together.
    pub records_per_sec: f64,
    /// records/s ÷ the raw consumer ceiling's.
    pub ratio_to_ceiling: Option<f64>,
    /// records/s ÷ the first layout's.
    pub ratio_to_first: Option<f64>,
    /// Processing times of the batches with records, over every instance, ms.
    pub batch_ms: Option<Percentiles>,
    /// Batches with records, over every instance.
    pub batches: usize,
    /// Peak RSS of each instance, bytes.
    pub peak_rss_bytes: Vec<u64>,
    /// CPU seconds of all instances together (the broker and loader excluded).
    pub cpu_seconds: f64,
    /// What killing one instance cost (layouts of two or more instances).
    pub kill: Option<KillResult>,
}

/// One SIGKILLed instance and how long its partitions were not processed.
#[derive(Debug, Clone, Serialize)]
pub struct KillResult {
    /// The partitions it owned.
    pub partitions: Vec<i32>,
    /// `session.timeout.ms` of the instances.
    pub session_timeout_ms: u64,
    /// From the kill until the last of its partitions was assigned to a survivor, ms.
    pub reassigned_ms: u64,
    /// From the kill until the first batch over each of them had completed, ms (the latest).
    pub processing_again_ms: u64,
    /// Per moved partition, its new owner's assignment-to-first-batch time, ms.
    pub first_batch_ms: Vec<u64>,
    /// Keyed state restored per second by the new owners (`None`: the job has no changelog
    /// state).
    pub restore_records_per_sec: Option<f64>,
}

/// What the benchmark knows about one instance, from its events.
#[derive(Debug, Default)]
struct Seen {
    owned: Vec<i32>,
    units: u64,
    batch_ms: Vec<f64>,
    peak_rss: u64,
    cpu_seconds: f64,
    rebalances: Vec<RebalanceInfo>,
}

impl Seen {
    fn apply(&mut self, event: InstanceEvent) {
        match event {
            InstanceEvent::Owned { partitions } => self.owned = partitions,
            InstanceEvent::Batch {
                processing_ms,
                units,
                ..
            } => {
                self.units = self.units.max(units);
                self.batch_ms.extend(processing_ms);
            }
            InstanceEvent::Rebalance { info } => {
                match self.rebalances.iter_mut().find(|r| r.seq == info.seq) {
                    Some(r) => *r = info,
                    None => self.rebalances.push(info),
                }
            }
            InstanceEvent::Usage {
                peak_rss_bytes,
                cpu_seconds,
            } => {
                self.peak_rss = self.peak_rss.max(peak_rss_bytes.unwrap_or(0));
                self.cpu_seconds = self.cpu_seconds.max(cpu_seconds);
            }
        }
    }
}

/// A running instance.
struct Instance {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Seen>>,
}

impl Instance {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&mut self, line: &str) {
        if let Some(s) = &mut self.stdin {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Asks it to stop and waits, killing it after `grace`.
    fn stop(mut self, grace: Duration) {
        self.send("stop");
        self.stdin = None;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `INSTANCESxTHREADS`.
fn parse_layout(s: &str) -> Result<(usize, usize)> {
    let bad = || BenchError::InvalidOptions(format!("bad layout {s:?}: expected e.g. 2x1"));
    let (n, t) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let n: usize = n.parse().map_err(|_| bad())?;
    let t: usize = t.parse().map_err(|_| bad())?;
    if n == 0 || t == 0 {
        return Err(bad());
    }
    Ok((n, t))
}

fn spawn_instance(
    args: &ScaleBenchArgs,
    topic: &Preloaded,
    offsets_dir: &std::path::Path,
    params: &[(String, String)],
    instance_id: &str,
    threads: usize,
) -> Result<Instance> {
    let exe = std::env::current_exe().map_err(BenchError::io("finding the spate binary"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "scale-instance", "--topic"])
        .arg(&topic.topic)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--batch-interval-ms")
        .arg(args.common.batch_interval_ms.to_string())
        .arg("--max-rate-per-partition")
        .arg(args.max_rate_per_partition.to_string())
        .arg("--offsets-dir")
        .arg(offsets_dir);
    for (k, v) in params {
        cmd.arg("-X").arg(format!("{k}={v}"));
    }
    cmd.arg("-X")
        .arg(format!("group.instance.id={instance_id}"));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(BenchError::io("starting an instance"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or(BenchError::Missing("an instance's stdout".into()))?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if let Some(e) = InstanceEvent::parse(&line) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).apply(e);
            }
        }
    });
    Ok(Instance {
        stdin: child.stdin.take(),
        child,
        seen,
    })
}

/// Waits until `done` holds for the instances, failing after `timeout`.
fn wait_for(
    what: &str,
    timeout: Duration,
    instances: &mut [Instance],
    done: impl Fn(&[Instance]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(instances) {
            return Ok(());
        }
        for i in instances.iter_mut() {
            if let Ok(Some(status)) = i.child.try_wait() {
                return Err(BenchError::Instances(format!(
                    "an instance exited ({status}) while waiting for {what}"
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Instances(format!(
                "timed out after {} s waiting for {what}",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The group has settled: every partition owned once, every instance owning some.
fn settled(instances: &[Instance], partitions: i32) -> bool {
    let mut all = BTreeSet::new();
    let mut total = 0;
    for i in instances {
        let s = i.seen();
        if s.owned.is_empty() {
            return false;
        }
        total += s.owned.len();
        all.extend(s.owned.iter().copied());
    }
    total == partitions as usize && all.len() == total
}

/// Kafka parameters of every instance of one layout (one fresh group).
fn instance_params(
    args: &ScaleBenchArgs,
    topic: &Preloaded,
    instances: usize,
) -> Vec<(String, String)> {
    let per_instance = (topic.partitions as usize).div_ceil(instances).max(1);
    let heartbeat = (args.session_timeout_ms / 3).clamp(100, 3_000);
    topic.kafka_params(
        u32::try_from(per_instance).unwrap_or(1),
        &[
            (
                "session.timeout.ms".into(),
                args.session_timeout_ms.to_string(),
            ),
            ("heartbeat.interval.ms".into(), heartbeat.to_string()),
            ("max.poll.interval.ms".into(), "30000".into()),
        ],
    )
}

/// Runs one layout: settle, start, time the catch-up, then the kill.
fn run_layout(
    args: &ScaleBenchArgs,
    topic: &Preloaded,
    layout: (usize, usize),
) -> Result<ScaleRow> {
    let (n, threads) = layout;
    let label = format!(
        "{n} x {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    eprintln!("  {label}...");
    let params = instance_params(args, topic, n);
    let offsets =
        tempfile::tempdir().map_err(BenchError::io("creating the positions directory"))?;
    let mut instances = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("scale-{n}x{threads}-{i}");
        instances.push(spawn_instance(
            args,
            topic,
            offsets.path(),
            &params,
            &id,
            threads,
        )?);
    }
    let result = measure_layout(args, topic, &mut instances, &label, layout);
    for i in instances {
        i.stop(Duration::from_secs(15));
    }
    result
}

fn measure_layout(
    args: &ScaleBenchArgs,
    topic: &Preloaded,
    instances: &mut [Instance],
    label: &str,
    (n, threads): (usize, usize),
) -> Result<ScaleRow> {
    let partitions = topic.partitions;
    wait_for(
        "the group to settle",
        Duration::from_secs(90),
        instances,
        |is| settled(is, partitions),
    )?;
    let started = Instant::now();
    for i in instances.iter_mut() {
        i.send("go");
    }
    let expected = topic.records * words_per_record(topic.record_size);
    let timeout = Duration::from_secs(args.common.timeout_secs);
    wait_for("every word counted", timeout, instances, |is| {
        is.iter().map(|i| i.seen().units).sum::<u64>() >= expected
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let batch_ms: Vec<f64> = instances
        .iter()
        .flat_map(|i| i.seen().batch_ms.clone())
        .collect();
    let kill = if n >= 2 && !args.no_kill {
        Some(kill_one(args, topic, instances)?)
    } else {
        None
    };
    Ok(ScaleRow {
        layout: label.to_owned(),
        instances: n,
        threads_per_instance: threads,
        records: topic.records,
        seconds,
        records_per_sec: topic.records as f64 / seconds.max(1e-9),
        ratio_to_ceiling: None,
        ratio_to_first: None,
        batches: batch_ms.len(),
        batch_ms: Percentiles::of(&batch_ms),
        peak_rss_bytes: instances.iter().map(|i| i.seen().peak_rss).collect(),
        cpu_seconds: instances.iter().map(|i| i.seen().cpu_seconds).sum(),
        kill,
    })
}

/// Produces `rate` records/s round-robin until `stop`.
fn live_producer(
    topic: &Preloaded,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let producer: BaseProducer = topic
        .client
        .create_with_context(&[("linger.ms", "5")], DefaultProducerContext)?;
    let (name, partitions, size) = (
        topic.topic.clone(),
        topic.partitions.max(1),
        topic.record_size,
    );
    Ok(std::thread::spawn(move || {
        let mut payload = vec![b' '; size];
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                fill_words(sent, &mut payload);
                let p = i32::try_from(sent % partitions as u64).unwrap_or(0);
                let _ = producer.send(
                    BaseRecord::<[u8], [u8]>::to(&name)
                        .payload(&payload[..])
                        .partition(p),
                );
                sent += 1;
            }
            producer.poll(Duration::from_millis(1));
        }
        let _ = producer.flush(Duration::from_secs(10));
    }))
}

/// SIGKILLs the last instance under live traffic and times until its partitions are processed
/// again by the survivors.
fn kill_one(
    args: &ScaleBenchArgs,
    topic: &Preloaded,
    instances: &mut [Instance],
) -> Result<KillResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let producer = live_producer(topic, args.live_rate, stop.clone())?;
    std::thread::sleep(Duration::from_secs(2));
    let (victim, survivors) = instances
        .split_last_mut()
        .ok_or(BenchError::Missing("an instance to kill".into()))?;
    let moved: BTreeSet<i32> = victim.seen().owned.iter().copied().collect();
    let killed_at = Time::now();
    victim
        .child
        .kill()
        .map_err(BenchError::io("killing an instance"))?;
    let _ = victim.child.wait();
    // Per moved partition: the survivor's assignment after the kill that covers it.
    let takeover = |is: &[Instance]| -> Option<Vec<(i32, RebalanceInfo)>> {
        moved
            .iter()
            .map(|p| {
                is.iter().find_map(|i| {
                    i.seen()
                        .rebalances
                        .iter()
                        .find(|r| {
                            r.kind == RebalanceKind::Assigned
                                && r.time >= killed_at
                                && r.partitions.iter().any(|tp| tp.partition == *p)
                        })
                        .cloned()
                        .map(|r| (*p, r))
                })
            })
            .collect()
    };
    let waited = wait_for(
        "the killed instance's partitions processed again",
        Duration::from_secs(60),
        survivors,
        |is| takeover(is).is_some_and(|t| t.iter().all(|(_, r)| r.first_batch_ms.is_some())),
    );
    stop.store(true, Ordering::Relaxed);
    let _ = producer.join();
    waited?;
    let taken = takeover(survivors).unwrap_or_default();
    let since_kill = |t: Time| t.millis_since(killed_at);
    let reassigned_ms = taken
        .iter()
        .map(|(_, r)| since_kill(r.time))
        .max()
        .unwrap_or(0);
    let processing_again_ms = taken
        .iter()
        .map(|(_, r)| since_kill(r.time) + r.first_batch_ms.unwrap_or(0))
        .max()
        .unwrap_or(0);
    let first: Vec<u64> = taken.iter().filter_map(|(_, r)| r.first_batch_ms).collect();
    Ok(KillResult {
        partitions: moved.into_iter().collect(),
        session_timeout_ms: args.session_timeout_ms,
        reassigned_ms,
        processing_again_ms,
        first_batch_ms: first,
        restore_records_per_sec: None,
    })
}

fn print_rows(rows: &[ScaleRow], ceiling: Option<f64>, machine_load: Option<[f64; 3]>) {
    let mut table = Table::new([
        "layout",
        "records/s",
        "of 1st",
        "of ceiling",
        "batch p50 ms",
        "batch p99 ms",
        "CPU s",
        "peak RSS MiB each",
        "killed: reassigned ms",
        "processing again ms",
    ]);
    let pct = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{:.0}%", x * 100.0));
    for r in rows {
        let rss: Vec<String> = r
            .peak_rss_bytes
            .iter()
            .map(|b| format!("{:.0}", *b as f64 / (1 << 20) as f64))
            .collect();
        table.row([
            r.layout.clone(),
            fmt_count(r.records_per_sec),
            pct(r.ratio_to_first),
            pct(r.ratio_to_ceiling),
            r.batch_ms.map_or("-".into(), |p| format!("{:.1}", p.p50)),
            r.batch_ms.map_or("-".into(), |p| format!("{:.1}", p.p99)),
            format!("{:.1}", r.cpu_seconds),
            rss.join("/"),
            r.kill
                .as_ref()
                .map_or("-".into(), |k| k.reassigned_ms.to_string()),
            r.kill
                .as_ref()
                .map_or("-".into(), |k| k.processing_again_ms.to_string()),
        ]);
    }
    if let Err(e) = table.print() {
        tracing::warn!("could not print the table: {e}");
    }
    let load = machine_load.map_or("unknown".to_owned(), |l| format!("{:.2}", l[0]));
    let ceiling = ceiling.map_or("not measured".to_owned(), |c| {
        format!("{} records/s", fmt_count(c))
    });
    println!("raw consumer ceiling {ceiling}; load average {load} at start");
}

/// Runs `spate bench scale`.
pub fn run(args: ScaleBenchArgs) -> Result<()> {
    let layouts: Vec<(usize, usize)> = args
        .layouts
        .iter()
        .map(|l| parse_layout(l))
        .collect::<Result<_>>()?;
    if words_per_record(args.common.record_size as usize) == 0 {
        return Err(BenchError::InvalidOptions(
            "--record-size must be at least 5 bytes for the word-count job".into(),
        ));
    }
    // Instances must be able to ask for a short session timeout.
    let settings = [(
        "group.min.session.timeout.ms",
        args.session_timeout_ms.min(6_000).to_string(),
    )];
    let topic = args.common.preloaded_with("scale", &settings)?;
    let config = args.common.config_json(
        &topic,
        serde_json::json!({
            "layouts": args.layouts,
            "session_timeout_ms": args.session_timeout_ms,
            "live_rate": args.live_rate,
            "max_rate_per_partition": args.max_rate_per_partition,
            "job": "word count, group-managed direct stream, static members, cooperative-sticky",
        }),
    );
    let mut report: Report<ScaleRow> = Report::new("scale", config);
    let ceiling = if args.common.no_ceiling {
        None
    } else {
        let (c, _) = topic.measure_ceiling()?;
        report.ceiling.push(c.clone());
        Some(c.records_per_sec)
    };
    for layout in layouts {
        let mut row = run_layout(&args, &topic, layout)?;
        row.ratio_to_ceiling = ceiling.map(|c| row.records_per_sec / c.max(1e-9));
        row.ratio_to_first = report
            .results
            .first()
            .map(|f| row.records_per_sec / f.records_per_sec.max(1e-9))
            .or(Some(1.0));
        report.results.push(row);
    }
    report.resources = ResourceUsage::now();
    print_rows(&report.results, ceiling, report.machine.load_average);
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
    fn layouts_parse() {
        assert_eq!(parse_layout("2x1").unwrap(), (2, 1));
        assert_eq!(parse_layout(" 1X2").unwrap(), (1, 2));
        assert!(parse_layout("0x1").is_err());
        assert!(parse_layout("2").is_err());
    }

    #[test]
    fn events_round_trip_and_fold() {
        let mut seen = Seen::default();
        for line in [
            r#"SCALE {"event":"owned","partitions":[0,2]}"#,
            r#"SCALE {"event":"batch","records":10,"processing_ms":3.5,"units":160}"#,
            r#"SCALE {"event":"usage","peak_rss_bytes":1048576,"cpu_seconds":0.5}"#,
            "some log line",
        ] {
            if let Some(e) = InstanceEvent::parse(line) {
                seen.apply(e);
            }
        }
        assert_eq!(seen.owned, vec![0, 2]);
        assert_eq!((seen.units, seen.batch_ms.clone()), (160, vec![3.5]));
        assert_eq!(seen.peak_rss, 1 << 20);
    }
}

//! `spate bench broker`: how fast rdkafka moves records through a broker on this machine.
//!
//! Starts the embedded broker in-process (durable segment files in a temp dir by default,
//! `--in-memory` for the memory backend) or targets `--bootstrap-server`, creates a topic, loads
//! it with a tuned `BaseProducer`, then drains it with a bare `BaseConsumer`: the raw librdkafka
//! ceiling that the engine benchmarks compare against. One row per record size.
//!
//! Then, with the embedded broker only, the many-partitions rows ([`crate::many_partitions`]):
//! one consumer of 500 partitions with fetch sessions on and off.

use crate::error::{BenchError, Result};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use serde::Serialize;

use crate::kafka_io;
use crate::many_partitions::{self, ManyPartitionsRow};
use crate::report::{Ceiling, Report, Table};
use crate::resources::{CpuTime, ResourceUsage};
use crate::target::{BrokerTarget, TargetArgs};
use spate_client::config::{parse_key_value, CliContext, ClientArgs};
use spate_client::embedded::Storage;
use spate_client::measure::{fmt_count, Percentiles, Throughput};
use spate_client::tuning::{CONSUMER_TUNING, PRODUCER_TUNING};

/// Options of `spate bench broker`.
#[derive(Args, Debug)]
pub struct BrokerBenchArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Records per record size (default: 8M for 100 B, fewer for larger records, ~800 MB each).
    #[arg(long, value_name = "N")]
    records: Option<u64>,
    /// Record (value) sizes in bytes, comma-separated.
    #[arg(long, value_name = "BYTES,...", value_delimiter = ',', default_values_t = [100usize, 1024])]
    record_size: Vec<usize>,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Partitions of the many-partitions rows (one consumer, fetch sessions on and off); 0
    /// skips them. Embedded broker only.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(i32).range(0..))]
    many_partitions: i32,
    /// Records (100 B) spread over the many-partitions topic.
    #[arg(long, value_name = "N", default_value_t = 250_000)]
    many_partitions_records: u64,
    /// Write the report as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// A librdkafka setting for both clients, applied after the tuning (e.g. -X linger.ms=50).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
}

/// One table row, with raw numbers for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerBenchRow {
    /// Value size of every record in this row, bytes.
    pub record_size: usize,
    /// Records produced, then consumed.
    pub records: u64,
    /// The produce phase: records and bytes acknowledged, and how long it took.
    pub produce: Throughput,
    /// `produce`'s records per second.
    pub produce_records_per_sec: f64,
    /// `produce`'s megabytes (10^6 bytes) per second.
    pub produce_mb_per_sec: f64,
    /// CPU seconds of the whole process (broker included) during the produce phase.
    pub produce_cpu_seconds: f64,
    /// Send-to-acknowledgement latency of sampled records, ms (under full load, so mostly queueing).
    pub produce_ack_latency_ms: Option<Percentiles>,
    /// The consume phase: every produced record read back from the beginning.
    pub consume: Throughput,
    /// `consume`'s records per second.
    pub consume_records_per_sec: f64,
    /// `consume`'s megabytes (10^6 bytes) per second.
    pub consume_mb_per_sec: f64,
    /// CPU seconds of the whole process (broker included) during the consume phase.
    pub consume_cpu_seconds: f64,
}

/// The broker report: the rows per record size, plus the many-partitions rows.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerReport {
    /// The common report, one row per record size.
    #[serde(flatten)]
    pub report: Report<BrokerBenchRow>,
    /// One consumer of many partitions, fetch sessions on and off (empty when skipped).
    pub many_partitions: Vec<ManyPartitionsRow>,
}

/// The default record count for `size`: about 800 MB of values, capped at 8M records, which
/// takes 10-20 s for the default sizes on a 2-core machine (each phase runs for seconds, long
/// enough that connection set-up and the first fetch do not show in the rate).
fn default_records(size: usize) -> u64 {
    let by_bytes = (768usize << 20) / size.max(1);
    by_bytes.clamp(50_000, 8_000_000) as u64
}

/// Runs `spate bench broker`: for each record size, produce the records with rdkafka, then
/// consume them, and print (and optionally write as JSON) the rates and CPU cost.
pub fn run(args: BrokerBenchArgs) -> Result<()> {
    if args.record_size.is_empty() || args.record_size.contains(&0) {
        return Err(BenchError::InvalidOptions(
            "--record-size needs at least one size, each at least 1 byte".into(),
        ));
    }
    let target = BrokerTarget::start(&args.target)?;
    let mut client = ClientArgs::new(target.bootstrap.clone());
    client.config = args.config.clone();

    let config = serde_json::json!({
        "broker": target.description,
        "bootstrap_server": target.bootstrap,
        "partitions": args.partitions,
        "record_sizes": args.record_size,
        "records": args.record_size.iter().map(|s| args.records.unwrap_or_else(|| default_records(*s))).collect::<Vec<_>>(),
        "producer": tuning_json(PRODUCER_TUNING, &args.config),
        "consumer": tuning_json(CONSUMER_TUNING, &args.config),
    });
    let mut report: Report<BrokerBenchRow> = Report::new("broker", config);
    eprintln!(
        "spate bench broker: {} at {}, {} partitions",
        target.description, target.bootstrap, args.partitions
    );

    for &size in &args.record_size {
        measure_size(&client, &args, size, &mut report)?;
    }
    let many = many_partitions_rows(&args)?;
    report.resources = ResourceUsage::now();

    print_table(&report.results)?;
    print_many_partitions(&many)?;
    let load = report
        .machine
        .load_average
        .map_or("unknown".to_owned(), |l| format!("{:.2}", l[0]));
    println!(
        "peak RSS {:.1} MiB, CPU {:.2} s (user {:.2} s, system {:.2} s), {} CPUs, load average \
         {load} at start, {}",
        report.resources.peak_rss_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
        report.resources.cpu_seconds,
        report.resources.cpu.user_seconds,
        report.resources.cpu.system_seconds,
        report.machine.cpus,
        target.description,
    );
    if let Some(path) = &args.json {
        let full = BrokerReport {
            report,
            many_partitions: many,
        };
        crate::report::write_json_report(path, &full)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// One record size: produces the records to a new topic, consumes them, and adds the row
/// (rates and CPU of each phase) and the consumer's ceiling to the report.
fn measure_size(
    client: &ClientArgs,
    args: &BrokerBenchArgs,
    size: usize,
    report: &mut Report<BrokerBenchRow>,
) -> Result<()> {
    let count = args.records.unwrap_or_else(|| default_records(size));
    let topic = format!("spate-bench-broker-{size}b-{}", std::process::id());
    create_topic(client, &topic, args.partitions)?;

    eprintln!("  {size} B: producing {count} records...");
    let cpu = CpuTime::now();
    let loaded = kafka_io::load(client, &topic, args.partitions, count, size)
        .map_err(|e| e.during(format!("producing {size}-byte records")))?;
    let produce = loaded.throughput;
    let produce_cpu = CpuTime::now().since(&cpu).total();

    eprintln!("  {size} B: consuming...");
    let cpu = CpuTime::now();
    let consume = kafka_io::drain(client, &topic, args.partitions, count)
        .map_err(|e| e.during(format!("consuming {size}-byte records")))?;
    let consume_cpu = CpuTime::now().since(&cpu).total();

    report.results.push(BrokerBenchRow {
        record_size: size,
        records: count,
        produce,
        produce_records_per_sec: produce.records_per_sec(),
        produce_mb_per_sec: produce.mb_per_sec(),
        produce_cpu_seconds: produce_cpu,
        produce_ack_latency_ms: loaded.ack_latency_ms,
        consume,
        consume_records_per_sec: consume.records_per_sec(),
        consume_mb_per_sec: consume.mb_per_sec(),
        consume_cpu_seconds: consume_cpu,
    });
    report.ceiling.push(Ceiling {
        record_size: size,
        records_per_sec: consume.records_per_sec(),
        mb_per_sec: consume.mb_per_sec(),
        method: "rdkafka BaseConsumer, all partitions assigned, no group".to_owned(),
    });
    delete_topic(client, &topic);
    Ok(())
}

/// Prints one line per record size: produce and consume rates, CPU and ack latency.
fn print_table(rows: &[BrokerBenchRow]) -> Result<()> {
    let mut table = Table::new([
        "record size",
        "records",
        "produce rec/s",
        "produce MB/s",
        "produce CPU s",
        "ack p50 ms",
        "ack p99 ms",
        "consume rec/s",
        "consume MB/s",
        "consume CPU s",
    ]);
    for r in rows {
        table.row([
            format!("{} B", r.record_size),
            fmt_count(r.records as f64),
            fmt_count(r.produce_records_per_sec),
            format!("{:.1}", r.produce_mb_per_sec),
            format!("{:.2}", r.produce_cpu_seconds),
            r.produce_ack_latency_ms
                .map_or("-".to_owned(), |p| format!("{:.0}", p.p50)),
            r.produce_ack_latency_ms
                .map_or("-".to_owned(), |p| format!("{:.0}", p.p99)),
            fmt_count(r.consume_records_per_sec),
            format!("{:.1}", r.consume_mb_per_sec),
            format!("{:.2}", r.consume_cpu_seconds),
        ]);
    }
    table
        .print()
        .map_err(BenchError::io("could not print the table"))
}

/// The many-partitions rows, each on a broker of its own (a fresh temp dir, or in memory with
/// `--in-memory`); none against an external broker, whose session settings are its own.
fn many_partitions_rows(args: &BrokerBenchArgs) -> Result<Vec<ManyPartitionsRow>> {
    if args.many_partitions == 0 {
        return Ok(Vec::new());
    }
    if args.target.bootstrap_server.is_some() {
        eprintln!("  many-partitions rows skipped: they need the embedded broker");
        return Ok(Vec::new());
    }
    let storage = if args.target.in_memory {
        Storage::Memory
    } else {
        Storage::Disk(None)
    };
    many_partitions::run(
        &storage,
        args.many_partitions,
        args.many_partitions_records,
        100,
    )
}

fn print_many_partitions(rows: &[ManyPartitionsRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    println!();
    let mut table = Table::new([
        "consumer",
        "partitions",
        "session slots",
        "in session",
        "records/s",
        "fetches",
        "broker CPU µs/fetch",
        "idle fetch B (req+resp)",
        "idle broker CPU µs/fetch",
    ]);
    for r in rows {
        table.row([
            r.consumer.clone(),
            r.partitions.to_string(),
            r.session_slots.to_string(),
            if r.in_session { "yes" } else { "no" }.to_owned(),
            fmt_count(r.records_per_sec),
            r.fetches.to_string(),
            format!("{:.0}", r.broker_cpu_us_per_fetch),
            format!("{:.0} + {:.0}", r.idle_request_bytes, r.idle_response_bytes),
            format!("{:.0}", r.idle_broker_cpu_us_per_fetch),
        ]);
    }
    table
        .print()
        .map_err(BenchError::io("could not print the table"))
}

pub(super) fn tuning_json(
    defaults: &[(&str, &str)],
    overrides: &[(String, String)],
) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in defaults {
        map.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
    }
    for (k, v) in overrides {
        map.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    serde_json::Value::Object(map)
}

/// Creates `topic` with `partitions` partitions (replication 1) through the admin API, waiting
/// at most the client's request timeout (plus 5 s) for the answer.
pub fn create_topic(client: &ClientArgs, topic: &str, partitions: i32) -> Result<()> {
    create_topic_with(client, topic, partitions, &[])
}

/// [`create_topic`] with topic configs (e.g. `cleanup.policy=compact`).
pub fn create_topic_with(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    configs: &[(&str, String)],
) -> Result<()> {
    let admin: AdminClient<CliContext> = client.create(&[])?;
    client.metadata(admin.inner(), None)?;
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let opts = AdminOptions::new()
        .request_timeout(Some(client.request_timeout()))
        .operation_timeout(Some(client.request_timeout()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("could not start the async runtime"))?;
    let results = runtime
        .block_on(async {
            tokio::time::timeout(
                client.request_timeout() + Duration::from_secs(5),
                admin.create_topics([&new_topic], &opts),
            )
            .await
        })
        .map_err(|_| BenchError::CreateTopic {
            topic: topic.to_owned(),
            reason: "no answer in time".into(),
        })?
        .map_err(|e| BenchError::CreateTopic {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })?;
    for r in results {
        if let Err((name, code)) = r {
            return Err(BenchError::CreateTopic {
                topic: name,
                reason: code.to_string(),
            });
        }
    }
    Ok(())
}

/// Best effort: an external broker should not keep benchmark topics around.
pub fn delete_topic(client: &ClientArgs, topic: &str) {
    let Ok(admin) = client.create::<AdminClient<CliContext>>(&[]) else {
        return;
    };
    let opts = AdminOptions::new().request_timeout(Some(client.request_timeout()));
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let result = runtime.block_on(async {
        tokio::time::timeout(
            client.request_timeout(),
            admin.delete_topics(&[topic], &opts),
        )
        .await
    });
    if !matches!(result, Ok(Ok(_))) {
        tracing::warn!("could not delete benchmark topic {topic}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_record_counts() {
        assert_eq!(default_records(100), 8_000_000);
        assert_eq!(default_records(1024), 786_432);
        assert_eq!(default_records(1 << 20), 50_000);
    }
}

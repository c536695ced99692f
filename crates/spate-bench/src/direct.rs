//! `spate bench direct`: the direct stream (`KafkaUtils::create_direct_stream`) reading a
//! preloaded topic at full speed, next to the raw librdkafka consumer ceiling on the same topic
//! in the same run.
//!
//! One run: load the topic (`stream_topic`), drain it once with a bare `BaseConsumer` (the
//! ceiling), then run two streaming jobs over all of it (`stream_job`): pass-through (count
//! records and bytes per partition) and word count (`flat_map` → `(word, 1)` → `reduce_by_key`).
//!
//! The stream runs unthrottled: no backpressure, no initial rate, and a per-partition cap
//! (`--max-rate-per-partition`) chosen only to bound how many records one batch holds in memory
//! (cap × batch interval per partition) — far above what the job can process, so batches are
//! always full and queue behind each other while the backlog lasts.

use crate::error::{BenchError, Result};
use std::time::Duration;

use clap::Args;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils, TopicPartition};

use crate::job_result::JobResult;
use crate::report::Report;
use crate::resources::ResourceUsage;
use crate::stream_job::{
    count_records, engine_config, print_rows, run_timed, word_count, TimedJob,
};
use crate::stream_topic::{words_per_record, Preloaded, StreamBenchArgs};

/// Options of `spate bench direct`.
#[derive(Args, Debug)]
pub struct DirectBenchArgs {
    /// The topic, broker and engine settings shared with `bench receiver`.
    #[command(flatten)]
    pub common: StreamBenchArgs,
    /// Per-partition cap of the direct stream, records/s: it only bounds a batch's size (cap ×
    /// batch interval per partition), so keep it well above the achievable rate.
    #[arg(long, value_name = "RECORDS", default_value_t = DEFAULT_MAX_RATE_PER_PARTITION)]
    pub max_rate_per_partition: u64,
    /// Jobs to run, comma-separated: passthrough, wordcount.
    #[arg(long, value_delimiter = ',', default_value = "passthrough,wordcount")]
    pub jobs: Vec<String>,
    /// Pre-fetch budget of the stream's task consumers together, KiB
    /// (`spate.streaming.kafka.consumer.prefetch.kbytes`; default: the stream's default).
    /// The stream's consumers do not get the ceiling's pre-fetch settings.
    #[arg(long, value_name = "KIB")]
    pub prefetch_kbytes: Option<u64>,
}

/// Client settings of the ceiling's consumer that a direct stream decides for itself from its
/// pre-fetch budget (`DirectStreamConfig::prefetch_kbytes`).
const STREAM_DECIDES: &[&str] = &[
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
];

/// A direct stream over the whole topic, unthrottled apart from the batch-size cap.
fn direct_job<'a>(
    topic: &'a Preloaded,
    common: &StreamBenchArgs,
    max_rate_per_partition: u64,
    prefetch_kbytes: Option<u64>,
    name: &str,
    wordcount: bool,
) -> TimedJob<'a> {
    let expected_units = if wordcount {
        topic.records * words_per_record(topic.record_size)
    } else {
        topic.records
    };
    let mut stream_config = DirectStreamConfig::default()
        .max_rate_per_partition(max_rate_per_partition)
        .backpressure(false)
        .initial_rate(None);
    if let Some(kb) = prefetch_kbytes {
        stream_config = stream_config.prefetch_kbytes(kb);
    }
    // `-X` settings still apply: they come after the tuning in `kafka_params`.
    let explicit: Vec<String> = common.config.iter().map(|(k, _)| k.clone()).collect();
    TimedJob {
        name: name.to_owned(),
        config: engine_config("bench-direct", common),
        checkpoint: None,
        expected_units,
        timeout: Duration::from_secs(common.timeout_secs),
        build: Box::new(move |ctx, progress| {
            let consumers = u32::try_from(topic.partitions).unwrap_or(1);
            let params: KafkaParams = topic
                .kafka_params(consumers, &[])
                .into_iter()
                .filter(|(k, _)| !STREAM_DECIDES.contains(&k.as_str()) || explicit.contains(k))
                .collect();
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
pub fn run_direct_passthrough(topic: &Preloaded, args: &StreamBenchArgs) -> Result<JobResult> {
    run_timed(
        topic,
        direct_job(
            topic,
            args,
            DEFAULT_MAX_RATE_PER_PARTITION,
            None,
            "direct stream, pass-through",
            false,
        ),
    )
}

/// `--max-rate-per-partition`'s default.
const DEFAULT_MAX_RATE_PER_PARTITION: u64 = 2_500_000;

/// Runs `spate bench direct`: preloads a topic, measures the raw consumer ceiling, then times
/// each `--jobs` job over the direct stream and prints the report.
pub fn run(args: DirectBenchArgs) -> Result<()> {
    for job in &args.jobs {
        if !matches!(job.as_str(), "passthrough" | "wordcount") {
            return Err(BenchError::InvalidOptions(format!(
                "unknown job {job:?} in --jobs: expected passthrough, wordcount"
            )));
        }
    }
    if args.jobs.iter().any(|j| j == "wordcount")
        && words_per_record(args.common.record_size as usize) == 0
    {
        return Err(BenchError::InvalidOptions(
            "--record-size must be at least 5 bytes for the word-count job".into(),
        ));
    }
    let topic = args.common.preloaded("direct")?;
    let config = args.common.config_json(
        &topic,
        serde_json::json!({
            "max_rate_per_partition": args.max_rate_per_partition,
            "backpressure": false,
            "initial_rate": null,
        }),
    );
    let mut report: Report<JobResult> = Report::new("direct", config);
    let ceiling = if args.common.no_ceiling {
        None
    } else {
        let (ceiling, row) = topic.measure_ceiling()?;
        report
            .results
            .push(row.clone().with_ceiling(&ceiling, &row));
        Some((ceiling, row))
    };
    for (job, name, wordcount) in [
        ("passthrough", "direct stream, pass-through", false),
        ("wordcount", "direct stream, word count", true),
    ] {
        if args.jobs.iter().any(|j| j == job) {
            let job = direct_job(
                &topic,
                &args.common,
                args.max_rate_per_partition,
                args.prefetch_kbytes,
                name,
                wordcount,
            );
            let row = run_timed(&topic, job)?;
            report.results.push(match &ceiling {
                Some((c, c_row)) => row.with_ceiling(c, c_row),
                None => row,
            });
        }
    }
    report.ceiling.extend(ceiling.map(|(c, _)| c));
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

//! Exactly-once from Kafka to Kafka: a word count reads `k2k-lines` with the direct stream and
//! writes each batch's counts to `k2k-counts` in ONE Kafka transaction together with the
//! batch's offsets, committed to the job's group `k2k-wordcount` (`save_to_kafka_exactly_once`).
//! The job starts from the group's committed offsets (`KafkaOffsetStore`), and its stable
//! `transactional.id` (`k2k-wordcount-counts`) fences any earlier instance.
//!
//! Topics and group are fixed and the producer only tops the input up to `--records` lines, so
//! the same command can be run again at any time — also after `kill -9`: it resumes from the
//! group's offsets, runs until every line is counted, then reads the output with
//! `isolation.level=read_committed` and prints the check: the counts summed per word equal the
//! counts of the lines in the input topic, exactly.
//!
//! ```text
//! cargo run -p spate-kafka --example kafka_to_kafka_exactly_once -- --db /tmp/k2k
//! kill -9 $(pgrep -f 'examples/kafka_to_kafka_exactly_once')   # while it runs
//! cargo run -p spate-kafka --example kafka_to_kafka_exactly_once -- --db /tmp/k2k
//! ```
//!
//! Options: `--db DIR` (the embedded broker keeps its log in `<DIR>.broker/`; default
//! `<temp dir>/spate-examples/kafka_to_kafka`), `--bootstrap-server HOST:PORT` (a running
//! Kafka instead), `--records N` (2000), `--rate N` (200 lines/s per partition), `--seconds N`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{Args, Cluster};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spate_kafka::{
    DirectStreamConfig, KafkaOffsetStore, KafkaUtils, OutputRecord, SaveToKafka, TopicPartition,
};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::clients;

const INPUT: &str = "k2k-lines";
const OUTPUT: &str = "k2k-counts";
const GROUP: &str = "k2k-wordcount";
const PARTITIONS: i32 = 3;

/// The group's committed offsets summed over the input partitions.
fn committed(cluster: &Cluster) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let mut store = KafkaOffsetStore::open(cluster.params(Some(GROUP)))?;
    Ok(store.committed_offsets((0..PARTITIONS).map(|p| TopicPartition::new(INPUT, p)))?)
}

/// Runs the job from the group's offsets until they reach `ends`; returns the batches
/// committed and skipped by this run.
fn run_job(cluster: &Cluster, ends: &[i64], args: &Args) -> anyhow::Result<(u64, u64)> {
    let params = cluster
        .params(Some(GROUP))
        .set("transaction.timeout.ms", "30000");
    let mut store = KafkaOffsetStore::open(params.clone())?;
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(INPUT, p));
    let strategy = store.assign_strategy(partitions, params)?;
    println!(
        "starting from the offsets committed to group {GROUP}: {}",
        common::fmt_offsets(strategy.starting_offsets())
    );
    let ctx = StreamingContext::new(
        Config::new("kafka-to-kafka-exactly-once").batch_interval(Duration::from_millis(200)),
    )?;
    let config = DirectStreamConfig::default().max_rate_per_partition(args.rate);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let counts = stream
        .flat_map(|r| {
            r.value_str()
                .unwrap_or_default()
                .split_whitespace()
                .map(|w| (w.to_owned(), 1_i64))
                .collect::<Vec<_>>()
        })
        .reduce_by_key(|a, b| a + b);
    let output = counts.save_to_kafka_exactly_once(
        &stream,
        store,
        "counts",
        OUTPUT,
        |(w, n): &(String, i64)| OutputRecord::new(w.as_bytes(), n.to_string()),
    )?;
    println!(
        "writing to {OUTPUT} with transactional.id {}",
        output.transactional_id().unwrap_or_default()
    );
    ctx.start()?;
    let caught_up = common::wait_until(args.deadline(), || {
        let got = committed(cluster)?;
        Ok((0..PARTITIONS).all(|p| {
            got.get(&TopicPartition::new(INPUT, p))
                .copied()
                .unwrap_or(0)
                >= ends[p as usize]
        }))
    })?;
    ctx.stop(true)?;
    if !caught_up {
        bail!("the job did not catch up with the input in time (raise --seconds)");
    }
    Ok((output.committed_batches(), output.skipped_batches()))
}

/// The output topic read with `read_committed` to its end, counts summed per word.
fn read_output(cluster: &Cluster) -> anyhow::Result<(BTreeMap<String, i64>, usize)> {
    let consumer: BaseConsumer = clients::consumer_config(&cluster.bootstrap, "k2k-check")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(OUTPUT, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut counts, mut records, mut eof) = (BTreeMap::new(), 0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof < PARTITIONS {
        if Instant::now() > deadline {
            bail!("reading {OUTPUT} did not reach its end");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let word = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let n: i64 = std::str::from_utf8(m.payload().unwrap_or_default())?
                    .parse()
                    .context("a count in the output")?;
                *counts.entry(word).or_insert(0) += n;
                records += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => bail!("reading {OUTPUT}: {e}"),
            None => {}
        }
    }
    Ok((counts, records))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let home = common::db_path(&args, "kafka_to_kafka")?;
    let cluster = Cluster::connect(&args, &common::broker_dir(&home))?;
    cluster.ensure_topic(OUTPUT, PARTITIONS)?;
    let (ends, lines) = cluster.prepare_input(INPUT, PARTITIONS, args.records)?;

    let (committed, skipped) = run_job(&cluster, &ends, &args).context("the job")?;
    println!("this run: {committed} transactions committed, {skipped} replayed batches skipped");

    let (got, records) = read_output(&cluster)?;
    if !common::counts_match(&got, &lines) {
        bail!("the counts in {OUTPUT} (read_committed) differ from the lines in {INPUT}");
    }
    println!(
        "exactly once: the {records} count records in {OUTPUT} (read_committed) sum to the \
         counts of the {} lines in {INPUT}",
        lines.len()
    );
    Ok(())
}

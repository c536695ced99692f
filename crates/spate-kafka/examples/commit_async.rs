//! At-least-once output plus visible progress: the job writes each batch's output first and
//! then calls `commit_async` with the batch's offset ranges, so the consumer group's committed
//! offsets follow the job and lag tools (`spate groups describe <group>`, Kafka's
//! `kafka-consumer-groups.sh`) show how far behind it is. A producer keeps writing while the
//! example prints the lag per partition from the group API: log end offset − committed offset.
//!
//! Committed offsets are advisory: they are written after the outputs, so a crash in between
//! replays those records (at-least-once). Combine with an idempotent or transactional sink for
//! exactly-once.
//!
//! ```text
//! cargo run -p spate-kafka --example commit_async [-- --bootstrap-server HOST:PORT]
//! ```

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use common::{Args, Cluster};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaUtils};
use spate_streaming::{Config, StreamingContext};

const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Per partition: (committed offset, log end offset, lag).
type Lag = BTreeMap<i32, (Option<i64>, i64, i64)>;

/// Lag per partition of `group` on `topic`: (committed, log end, lag).
fn lag(reader: &BaseConsumer, topic: &str) -> anyhow::Result<Lag> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = reader.committed_offsets(tpl, TIMEOUT)?;
    let mut out = BTreeMap::new();
    for p in 0..PARTITIONS {
        let (_, end) = reader.fetch_watermarks(topic, p, TIMEOUT)?;
        let c = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        out.insert(p, (c, end, end - c.unwrap_or(0)));
    }
    Ok(out)
}

fn print_lag(label: &str, lag: &Lag) {
    let cells: Vec<String> = lag
        .iter()
        .map(|(p, (c, end, l))| {
            let c = c.map_or("-".to_owned(), |c| c.to_string());
            format!("p{p} committed {c:>4} end {end:>4} lag {l:>4}")
        })
        .collect();
    let total: i64 = lag.values().map(|(_, _, l)| l).sum();
    println!("{label:>6}  {} | total lag {total}", cells.join(" | "));
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    // At-least-once with visible lag: a fresh topic and broker log every run.
    let scratch = tempfile::tempdir()?;
    let cluster = Cluster::connect(&args, scratch.path())?;
    let dir = tempfile::tempdir()?;
    let topic = cluster.create_topic("commits", PARTITIONS)?;
    let group = spate_testkit::random_group("commit_async");
    let records = args.records;
    cluster.produce_lines(&topic, PARTITIONS, 0, records / 4)?;

    let ctx = StreamingContext::new(
        Config::new("commit-async").batch_interval(Duration::from_millis(250)),
    )?;
    // A rate limit keeps the job visibly behind while the producer runs.
    let config = DirectStreamConfig::default().max_rate_per_partition(400);
    let strategy = ConsumerStrategy::subscribe([topic.as_str()], cluster.params(Some(&group)));
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let out_path = dir.path().join("output.txt");
    let (handle, path) = (stream.clone(), out_path.clone());
    let commits = Arc::new(AtomicU64::new(0));
    let commits_ok = commits.clone();
    stream.foreach_batch(move |batch, time| {
        let ranges = handle.offset_ranges(time).unwrap_or_default();
        let lines = batch.count()?;
        // 1. The output, durably.
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "{} {lines}", time.as_millis())?;
        f.sync_data()?;
        // 2. Only then the offsets, so a crash before this line replays the batch.
        let ok = commits_ok.clone();
        handle.commit_async(&ranges, move |r| match r {
            Ok(_) => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => eprintln!("commit failed: {e}"),
        })?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    ctx.start()?;
    println!("group {group} on topic {topic}; lag = log end offset − committed offset");

    let producer = {
        let (bootstrap, topic) = (cluster.bootstrap.clone(), topic.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let c = Cluster::external(bootstrap);
            let step = (records - records / 4) / 6;
            for k in 0..6 {
                let from = records / 4 + k * step;
                let until = if k == 5 { records } else { from + step };
                c.produce_lines(&topic, PARTITIONS, from, until)?;
                std::thread::sleep(Duration::from_millis(400));
            }
            Ok(())
        })
    };
    let reader: BaseConsumer =
        spate_testkit::clients::consumer_config(&cluster.bootstrap, &group).create()?;
    let started = Instant::now();
    let deadline = args.deadline();
    let mut produced_all = false;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let l = lag(&reader, &topic)?;
        print_lag(&format!("{:.1}s", started.elapsed().as_secs_f64()), &l);
        produced_all = produced_all || producer.is_finished();
        let total_end: i64 = l.values().map(|(_, end, _)| end).sum();
        if produced_all && usize::try_from(total_end)? == records && l.values().all(|v| v.2 == 0) {
            break;
        }
        if Instant::now() > deadline {
            ctx.stop(false)?;
            bail!("the group still lags after {} s", args.seconds);
        }
    }
    ctx.stop(true)?;
    match producer.join() {
        Ok(r) => r?,
        Err(_) => bail!("the producer thread panicked"),
    }
    let output = std::fs::read_to_string(&out_path)?;
    let written: u64 = output
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
        .sum();
    println!(
        "done: {written} records written by {} batches, {} commits acknowledged, lag 0 \
         (against a running broker, see it with: spate groups describe {group})",
        output.lines().count(),
        commits.load(Ordering::Relaxed)
    );
    if written != records as u64 {
        bail!("wrote {written} records, produced {records}");
    }
    Ok(())
}

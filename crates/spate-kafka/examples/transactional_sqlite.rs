//! Exactly-once word count with a transactional sink: each batch's counts and its offset ranges
//! are stored in ONE SQLite transaction, and the job resumes from the offsets stored there
//! (`Assign` with starting offsets) — no checkpoint, no consumer-group commits.
//!
//! The example runs the job twice: the first run processes the records produced so far and
//! stops; more records are produced; the second run resumes from the stored offsets. The final
//! counts must equal the counts of everything produced, exactly.
//!
//! ```text
//! cargo run -p spate-kafka --example transactional_sqlite [-- --bootstrap-server HOST:PORT --db counts.db]
//! ```

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{Args, Cluster};
use rusqlite::params;
use spate_kafka::sink::{foreach_batch_transactional, SqliteOffsetStore};
use spate_kafka::{DirectStreamConfig, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};

const PARTITIONS: i32 = 3;

/// Runs the word count until the stored offsets cover `records` records; returns the batches
/// committed and skipped.
fn run_job(
    cluster: &Cluster,
    topic: &str,
    db: &Path,
    records: usize,
    deadline: Instant,
) -> anyhow::Result<(u64, u64)> {
    let store = SqliteOffsetStore::open(db, format!("wordcount-{topic}"))?;
    store.connection().execute(
        "CREATE TABLE IF NOT EXISTS word_counts (word TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        [],
    )?;
    println!(
        "starting from stored offsets {}",
        common::fmt_offsets(&store.starting_offsets()?)
    );
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p));
    let strategy = store.assign_strategy(partitions, cluster.params(None))?;

    let ctx = StreamingContext::new(
        Config::new("transactional-sqlite").batch_interval(Duration::from_millis(200)),
    )?;
    // Small batches, so that the run is made of many transactions.
    let config = DirectStreamConfig::default().max_rate_per_partition(1_000);
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
    let output = foreach_batch_transactional(&stream, &counts, store, |tx, counts, _time| {
        let mut add = tx.prepare_cached(
            "INSERT INTO word_counts (word, n) VALUES (?1, ?2)
             ON CONFLICT (word) DO UPDATE SET n = n + excluded.n",
        )?;
        for (word, n) in counts {
            add.execute(params![word, n])?;
        }
        Ok::<_, rusqlite::Error>(())
    });
    ctx.start()?;
    let caught_up = common::wait_until(deadline, || {
        let stored: i64 = output.store().starting_offsets()?.values().sum();
        Ok(usize::try_from(stored)? >= records)
    })?;
    ctx.stop(true)?;
    if !caught_up {
        bail!("the job did not process {records} records in time");
    }
    Ok((output.committed_batches(), output.skipped_batches()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let cluster = Cluster::connect(&args);
    let dir = tempfile::tempdir()?;
    let db = common::db_path(&args, &dir, "transactional.db");
    let topic = cluster.create_topic("wordcount", PARTITIONS)?;
    let deadline = args.deadline();
    let half = args.records / 2;

    cluster.produce_lines(&topic, PARTITIONS, 0, half)?;
    let (c1, s1) = run_job(&cluster, &topic, &db, half, deadline).context("first run")?;
    println!("run 1: {half} records, {c1} batches committed, {s1} skipped");

    cluster.produce_lines(&topic, PARTITIONS, half, args.records)?;
    let (c2, s2) = run_job(&cluster, &topic, &db, args.records, deadline).context("second run")?;
    println!(
        "run 2 (resumed): {} more records, {c2} batches committed, {s2} skipped",
        args.records - half
    );

    let store = SqliteOffsetStore::open(&db, format!("wordcount-{topic}"))?;
    println!(
        "stored offsets: {}",
        common::fmt_offsets(&store.starting_offsets()?)
    );
    let mut stmt = store
        .connection()
        .prepare("SELECT word, n FROM word_counts ORDER BY word")?;
    let got = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<std::collections::BTreeMap<_, _>, _>>()?;
    let expected = common::expected_counts(args.records);
    println!("{:<8} {:>7} {:>9}", "word", "counted", "produced");
    for (word, n) in &expected {
        println!(
            "{word:<8} {:>7} {n:>9}",
            got.get(word).copied().unwrap_or(0)
        );
    }
    if got != expected {
        bail!("the counts differ from what was produced");
    }
    println!(
        "exactly once: counts equal the produced counts ({} records, db {})",
        args.records,
        db.display()
    );
    Ok(())
}

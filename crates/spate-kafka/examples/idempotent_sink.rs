//! Exactly-once output with an idempotent sink: every output row is keyed by the (topic,
//! partition, offset) of its record and written with an upsert, so replaying records — as the
//! direct stream does after a failure — rewrites the same rows instead of adding duplicates.
//!
//! The example runs the job twice over the same records: the second run starts again from the
//! earliest offset (a full replay), and the table still has one row per record.
//!
//! ```text
//! cargo run -p spate-kafka --example idempotent_sink [-- --bootstrap-server HOST:PORT --db lines.db]
//! ```

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use common::{Args, Cluster};
use parking_lot::Mutex;
use spate_kafka::sink::IdempotentSqliteSink;
use spate_kafka::{ConsumerStrategy, KafkaUtils};
use spate_streaming::{Config, StreamingContext};

const PARTITIONS: i32 = 2;

/// Reads the topic from the earliest offset and upserts one row per record; returns the rows
/// written by this run once it has written `records`.
fn run_job(
    cluster: &Cluster,
    topic: &str,
    db: &Path,
    records: u64,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let sink = Arc::new(Mutex::new(IdempotentSqliteSink::open(db, "lines")?));
    let ctx = StreamingContext::new(
        Config::new("idempotent-sink").batch_interval(Duration::from_millis(200)),
    )?;
    let strategy = ConsumerStrategy::subscribe([topic], cluster.params(None));
    let stream = KafkaUtils::create_direct_stream(&ctx, strategy)?;
    let written = Arc::new(AtomicU64::new(0));
    let (s, w) = (sink.clone(), written.clone());
    stream.foreach_batch(move |batch, _time| {
        let records = batch.collect()?;
        // The row's value is computed from the record alone, so a replay writes the same row.
        let n = s
            .lock()
            .upsert(&records, |r| r.value_str().map(|v| v.to_uppercase()))?;
        w.fetch_add(n as u64, Ordering::Relaxed);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    ctx.start()?;
    let done = common::wait_until(deadline, || Ok(written.load(Ordering::Relaxed) >= records))?;
    ctx.stop(true)?;
    if !done {
        bail!("the job did not write {records} rows in time");
    }
    Ok(written.load(Ordering::Relaxed))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let cluster = Cluster::connect(&args);
    let dir = tempfile::tempdir()?;
    let db = common::db_path(&args, &dir, "idempotent.db");
    let topic = cluster.create_topic("idempotent", PARTITIONS)?;
    cluster.produce_lines(&topic, PARTITIONS, 0, args.records)?;
    let records = args.records as u64;
    let deadline = args.deadline();

    let w1 = run_job(&cluster, &topic, &db, records, deadline)?;
    let rows1 = IdempotentSqliteSink::open(&db, "lines")?.row_count()?;
    println!("run 1: {w1} rows written, table has {rows1} rows");
    let w2 = run_job(&cluster, &topic, &db, records, deadline)?;
    let sink = IdempotentSqliteSink::open(&db, "lines")?;
    let rows2 = sink.row_count()?;
    println!("run 2 (replay from the earliest offset): {w2} rows written, table has {rows2} rows");

    let mut stmt = sink.connection().prepare(
        "SELECT topic, partition, offset, value FROM lines ORDER BY offset, partition LIMIT 4",
    )?;
    let sample = stmt.query_map([], |r| {
        Ok(format!(
            "  {}-{}@{} -> {}",
            r.get::<_, String>(0)?,
            r.get::<_, i32>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?
        ))
    })?;
    for row in sample {
        println!("{}", row?);
    }
    if rows1 != records || rows2 != records {
        bail!("expected {records} rows after each run, got {rows1} and {rows2}");
    }
    println!(
        "exactly once: {} records written {} times, {rows2} rows",
        records,
        w1 + w2
    );
    Ok(())
}

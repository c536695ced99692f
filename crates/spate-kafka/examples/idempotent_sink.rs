//! Exactly-once output with an idempotent sink: every output row is keyed by the (topic,
//! partition, offset) of its record and written with an upsert, so replaying records — as the
//! direct stream does after a failure — rewrites the same rows instead of adding duplicates.
//!
//! The job reads the fixed topic `lines` with the fixed consumer group `spate-example-idempotent`
//! and, after each batch's rows are written, commits the batch's offsets to the group
//! (`commit_async`); a run resumes from the group's committed offsets. Those commits trail the
//! table (they are asynchronous and come after the writes), so a run killed part-way can re-read
//! records whose rows are already written — and the upsert absorbs them (the re-run prints how
//! many rows it rewrote). The embedded broker
//! keeps its log (and the group's offsets) beside the database (`<db>.broker/`).
//!
//! See the guarantee by killing it part-way (it reads `--rate` records/s per partition):
//!
//! ```text
//! cargo run -p spate-kafka --example idempotent_sink -- --db lines.db
//! # while it runs, from another shell:
//! kill -9 $(pgrep -f 'examples/idempotent_sink')
//! # then the same command again: it resumes from the group's offsets (rewriting any rows the
//! # killed run wrote after its last commit), and the check passes — one row per record
//! cargo run -p spate-kafka --example idempotent_sink -- --db lines.db
//! ```
//!
//! Options: `--db PATH` (default `<temp dir>/spate-examples/idempotent_sink.db`),
//! `--records N` (2000), `--rate N` (200), `--seconds N` (60), `--bootstrap-server HOST:PORT`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use common::{Args, Cluster};
use parking_lot::Mutex;
use spate_kafka::sink::IdempotentSqliteSink;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaUtils};
use spate_streaming::{Config, StreamingContext};

const TOPIC: &str = "lines";
const GROUP: &str = "spate-example-idempotent";
const PARTITIONS: i32 = 2;
const TABLE: &str = "lines";

/// Reads the topic from the group's committed offsets and upserts one row per record until the
/// table has `records` rows; returns the rows this run wrote (new or rewritten).
fn run_job(
    cluster: &Cluster,
    db: &Path,
    records: u64,
    rate: u64,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let sink = Arc::new(Mutex::new(IdempotentSqliteSink::open(db, TABLE)?));
    let ctx = StreamingContext::new(
        Config::new("idempotent-sink").batch_interval(Duration::from_millis(200)),
    )?;
    let strategy = ConsumerStrategy::subscribe([TOPIC], cluster.params(Some(GROUP)));
    let config = DirectStreamConfig::default().max_rate_per_partition(rate);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let written = Arc::new(AtomicU64::new(0));
    let (s, w, handle) = (sink.clone(), written.clone(), stream.clone());
    stream.foreach_batch(move |batch, time| {
        let records = batch.collect()?;
        // The row's value is computed from the record alone, so a replay writes the same row.
        let n = s
            .lock()
            .upsert(&records, |r| r.value_str().map(|v| v.to_uppercase()))?;
        w.fetch_add(n as u64, Ordering::Relaxed);
        // After the rows: the group's offsets may trail the table, never lead it.
        if let Some(ranges) = handle.offset_ranges(time) {
            handle.commit_async(&ranges, |_| {})?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    ctx.start()?;
    let done = common::wait_until(deadline, || Ok(sink.lock().row_count()? >= records))?;
    ctx.stop(true)?;
    if !done {
        bail!("the table did not reach {records} rows in time (raise --seconds)");
    }
    Ok(written.load(Ordering::Relaxed))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let db = common::db_path(&args, "idempotent_sink.db")?;
    println!("database {}", db.display());
    let cluster = Cluster::connect(&args, &common::broker_dir(&db))?;
    cluster.ensure_topic(TOPIC, PARTITIONS)?;
    let produced = cluster.top_up(TOPIC, PARTITIONS, args.records)?;
    let lines = cluster.lines_in_topic(TOPIC, PARTITIONS)?;
    let records = lines.len() as u64;
    println!("topic {TOPIC}: {records} records ({produced} produced by this run)");

    let before = IdempotentSqliteSink::open(&db, TABLE)?.row_count()?;
    let written = run_job(&cluster, &db, records, args.rate, args.deadline())?;
    let sink = IdempotentSqliteSink::open(&db, TABLE)?;
    let rows = sink.row_count()?;
    println!(
        "this run: {written} rows written, {} of them rewrites of rows already there; table: {before} -> {rows} rows",
        written.saturating_sub(rows - before)
    );

    // Every row holds its record's value: rows are a function of the records, not of the run.
    let mut stmt = sink
        .connection()
        .prepare(&format!("SELECT partition, offset, value FROM {TABLE}"))?;
    let wrong = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|(p, o, v)| {
            let i = (*p + *o * i64::from(PARTITIONS)) as usize;
            *v != common::line(i).to_uppercase()
        })
        .count();
    if rows != records || wrong > 0 {
        bail!("expected {records} rows, each its record's value; got {rows} rows, {wrong} wrong");
    }
    println!("exactly once: one row per record in the topic ({rows} rows)");
    Ok(())
}

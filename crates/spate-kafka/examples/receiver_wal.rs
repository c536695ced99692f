//! The receiver stream with its write-ahead log on (Spark's reliable receiver): at-least-once,
//! across `kill -9`. Every block of records is written to the log under the checkpoint and
//! fsynced before its offsets are committed to the consumer group, so a killed job loses
//! nothing — a restarted job re-runs its unfinished batches from the log and the consumer
//! re-reads what was received but not yet committed. Some records are therefore processed
//! twice; the example counts them.
//!
//! The job records every record it processes in a SQLite table `seen(partition, offset, times)`
//! beside the checkpoint, one transaction per batch, and runs until every record of the topic
//! has been seen. It prints how many records it received, how many were read twice, and checks
//! that none is missing. The topic (`receiver-lines`, 2 partitions) and the group
//! (`spate-example-receiver`) are fixed, and the embedded broker keeps its log under the
//! checkpoint directory, so the same command continues after a kill.
//!
//! ```text
//! cargo run -p spate-kafka --example receiver_wal -- --checkpoint ckpt
//! # while it runs, from another shell:
//! kill -9 $(pgrep -f 'examples/receiver_wal')
//! # then the same command again: it recovers from ckpt/ and the check passes
//! cargo run -p spate-kafka --example receiver_wal -- --checkpoint ckpt
//! ```
//!
//! Layout of `--checkpoint DIR` (default `<temp dir>/spate-examples/receiver_wal`):
//! `streaming/` (the job's checkpoint, with the receiver logs under `streaming/receivers/`),
//! `seen.db`, `broker/`. Options: `--records N` (2000), `--rate N` (records/s per partition,
//! 200), `--seconds N` (60), `--bootstrap-server HOST:PORT`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use common::{Args, Cluster};
use parking_lot::Mutex;
use rusqlite::{params, Connection};
use spate_kafka::receiver::{BLOCK_INTERVAL_MS, RECEIVER_MAX_RATE, WRITE_AHEAD_LOG_ENABLE};
use spate_kafka::KafkaUtils;
use spate_streaming::{Config, StreamingContext, StreamingError};

const TOPIC: &str = "receiver-lines";
const GROUP: &str = "spate-example-receiver";
const PARTITIONS: i32 = 2;

/// What the job has processed: one row per record, with how many times it was processed.
fn open_seen(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS seen (
             partition INTEGER NOT NULL, offset INTEGER NOT NULL, times INTEGER NOT NULL,
             PRIMARY KEY (partition, offset));",
    )?;
    Ok(conn)
}

/// (records seen, records seen more than once, records processed in total).
fn seen_counts(conn: &Connection) -> rusqlite::Result<(u64, u64, u64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(times > 1), 0), COALESCE(SUM(times), 0) FROM seen",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The job: a reliable receiver on the topic, each batch's records counted in `seen`.
fn build(
    cluster_bootstrap: String,
    rate: u64,
    seen: Arc<Mutex<Connection>>,
) -> Result<StreamingContext, StreamingError> {
    let ctx = StreamingContext::new(
        Config::new("receiver-wal").batch_interval(Duration::from_millis(500)),
    )?;
    let params = [
        ("bootstrap.servers".to_owned(), cluster_bootstrap),
        ("group.id".to_owned(), GROUP.to_owned()),
        ("auto.offset.reset".to_owned(), "earliest".to_owned()),
        ("broker.address.family".to_owned(), "v4".to_owned()),
        (WRITE_AHEAD_LOG_ENABLE.to_owned(), "true".to_owned()),
        (BLOCK_INTERVAL_MS.to_owned(), "100".to_owned()),
        (
            RECEIVER_MAX_RATE.to_owned(),
            (rate * PARTITIONS as u64).to_string(),
        ),
    ];
    let stream = KafkaUtils::create_stream(&ctx, params, [(TOPIC, 1)])?;
    stream.foreach_batch(move |batch, _time| {
        let records = batch.collect()?;
        let mut conn = seen.lock();
        let tx = conn.transaction()?;
        {
            let mut add = tx.prepare_cached(
                "INSERT INTO seen (partition, offset, times) VALUES (?1, ?2, 1)
                 ON CONFLICT (partition, offset) DO UPDATE SET times = times + 1",
            )?;
            for r in &records {
                add.execute(params![r.partition, r.offset])?;
            }
        }
        tx.commit()?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    Ok(ctx)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let dir = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| common::default_path("receiver_wal"));
    std::fs::create_dir_all(&dir)?;
    println!("checkpoint {}", dir.display());
    let cluster = Cluster::connect(&args, &dir.join("broker"))?;
    cluster.ensure_topic(TOPIC, PARTITIONS)?;
    let produced = cluster.top_up(TOPIC, PARTITIONS, args.records)?;
    let records = cluster.lines_in_topic(TOPIC, PARTITIONS)?.len() as u64;
    println!("topic {TOPIC}: {records} records ({produced} produced by this run)");

    let seen = Arc::new(Mutex::new(open_seen(&dir.join("seen.db"))?));
    let (bootstrap, rate, job_seen) = (cluster.bootstrap.clone(), args.rate, seen.clone());
    let ctx = StreamingContext::get_or_create(dir.join("streaming"), move || {
        build(bootstrap, rate, job_seen)
    })?;
    ctx.start()?;
    let done = common::wait_until(args.deadline(), || {
        Ok(seen_counts(&seen.lock())?.0 >= records)
    })?;
    ctx.stop(true)?;

    let (received, twice, processed) = seen_counts(&seen.lock())?;
    println!(
        "records received: {received} of {records}; read twice: {twice}; processed in total: {processed}"
    );
    if !done || received != records {
        bail!(
            "{} records of the topic were never processed",
            records - received.min(records)
        );
    }
    println!("at least once: every record processed, {twice} of them twice (after a kill)");
    Ok(())
}

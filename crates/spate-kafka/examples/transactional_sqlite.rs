//! Exactly-once word count with a transactional sink: each batch's counts and its offset ranges
//! are stored in ONE SQLite transaction, and the job resumes from the offsets stored there
//! (`Assign` with starting offsets) — no checkpoint, no consumer-group commits.
//!
//! The topic (`wordcount`, 3 partitions) and the job are fixed, the embedded broker keeps its
//! log beside the database (`<db>.broker/`), and the producer only tops the topic up to
//! `--records` lines, so the same command can be run again at any time: it resumes from the
//! stored offsets, runs until every line in the topic is counted, and prints the check — the
//! counts in the database equal the counts of the lines in the topic, exactly.
//!
//! See the guarantee by killing it part-way (it reads `--rate` records/s per partition, so a run
//! of the defaults lasts about 4 s):
//!
//! ```text
//! cargo run -p spate-kafka --example transactional_sqlite -- --db counts.db
//! # while it runs, from another shell:
//! kill -9 $(pgrep -f 'examples/transactional_sqlite')
//! # then the same command again: it resumes where the stored offsets end, and the check passes
//! cargo run -p spate-kafka --example transactional_sqlite -- --db counts.db
//! ```
//!
//! Options: `--db PATH` (default `<temp dir>/spate-examples/transactional_sqlite.db`),
//! `--records N` (2000), `--rate N` (200), `--seconds N` (60), `--bootstrap-server HOST:PORT`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{Args, Cluster};
use rusqlite::params;
use spate_kafka::sink::{foreach_batch_transactional, SqliteOffsetStore};
use spate_kafka::{DirectStreamConfig, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};

const TOPIC: &str = "wordcount";
const PARTITIONS: i32 = 3;
/// The job's name in the offset store: the stored offsets are this job's.
const JOB: &str = "wordcount";

/// Runs the word count from the stored offsets until they reach `ends` (the log end offset of
/// every partition); returns the batches committed and skipped.
fn run_job(
    cluster: &Cluster,
    db: &Path,
    ends: &[i64],
    rate: u64,
    deadline: Instant,
) -> anyhow::Result<(u64, u64)> {
    let store = SqliteOffsetStore::open(db, JOB)?;
    store.connection().execute(
        "CREATE TABLE IF NOT EXISTS word_counts (word TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        [],
    )?;
    println!(
        "starting from stored offsets {}",
        common::fmt_offsets(&store.starting_offsets()?)
    );
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(TOPIC, p));
    let strategy = store.assign_strategy(partitions, cluster.params(None))?;

    let ctx = StreamingContext::new(
        Config::new("transactional-sqlite").batch_interval(Duration::from_millis(200)),
    )?;
    // Small batches, so that the run is made of many transactions (and lasts long enough to
    // be killed part-way).
    let config = DirectStreamConfig::default().max_rate_per_partition(rate);
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
        let stored = output.store().starting_offsets()?;
        Ok((0..PARTITIONS).all(|p| {
            stored
                .get(&TopicPartition::new(TOPIC, p))
                .copied()
                .unwrap_or(0)
                >= ends[p as usize]
        }))
    })?;
    ctx.stop(true)?;
    if !caught_up {
        bail!("the job did not catch up with the topic in time (raise --seconds)");
    }
    Ok((output.committed_batches(), output.skipped_batches()))
}

/// The word counts stored in `db`.
fn stored_counts(db: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    let store = SqliteOffsetStore::open(db, JOB)?;
    println!(
        "stored offsets: {}",
        common::fmt_offsets(&store.starting_offsets()?)
    );
    let mut stmt = store
        .connection()
        .prepare("SELECT word, n FROM word_counts ORDER BY word")?;
    let got = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(got)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let db = common::db_path(&args, "transactional_sqlite.db")?;
    println!("database {}", db.display());
    let cluster = Cluster::connect(&args, &common::broker_dir(&db))?;
    let (ends, lines) = cluster.prepare_input(TOPIC, PARTITIONS, args.records)?;

    let (committed, skipped) =
        run_job(&cluster, &db, &ends, args.rate, args.deadline()).context("the job")?;
    println!("this run: {committed} batches committed, {skipped} replayed batches skipped");

    let got = stored_counts(&db)?;
    if !common::counts_match(&got, &lines) {
        bail!("the counts differ from the lines in the topic");
    }
    println!(
        "exactly once: the counts equal the counts of the {} lines in the topic (db {})",
        lines.len(),
        db.display()
    );
    Ok(())
}

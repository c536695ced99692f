//! Exactly-once word count with a PostgreSQL transactional sink: each batch's counts and its
//! offset ranges are stored in ONE PostgreSQL transaction ([`PostgresOffsetStore`]), and the
//! job resumes from the offsets stored there (`Assign` with starting offsets) — no checkpoint,
//! no consumer-group commits. On start it claims its partitions, raising their writer epochs in
//! the database, so an older run that were still alive (a zombie) could no longer commit.
//!
//! The topic (`wordcount`, 3 partitions) and the job id (`wordcount-pg`) are fixed, the
//! embedded broker keeps its log in `<temp dir>/spate-examples/transactional_postgres.broker/`,
//! and the producer only tops the topic up to `--records` lines, so the same command can be run
//! again at any time: it resumes from the stored offsets, runs until every line in the topic is
//! counted, and prints the check — the counts in PostgreSQL equal the counts of the lines in the
//! topic, exactly.
//!
//! It needs a PostgreSQL database, e.g. Debian's `postgresql` package:
//!
//! ```text
//! sudo -u postgres createuser --superuser $USER && createdb spate
//! cargo run -p spate-kafka --example transactional_postgres -- --url postgres://$USER@localhost/spate
//! # while it runs, from another shell:
//! kill -9 $(pgrep -f 'examples/transactional_postgres')
//! # then the same command again: it resumes where the stored offsets end, and the check passes
//! cargo run -p spate-kafka --example transactional_postgres -- --url postgres://$USER@localhost/spate
//! ```
//!
//! Options: `--url URL` (default `$SPATE_PG_URL`), `--records N` (2000), `--rate N` (200
//! records/s per partition, so a run of the defaults lasts about 4 s), `--seconds N` (60),
//! `--bootstrap-server HOST:PORT` (a running broker instead of the embedded one). Tables:
//! `word_counts`, `spate_offsets`, `spate_writer_epochs`; drop them (and the broker directory)
//! to start over.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{Args, Cluster};
use spate_kafka::sink::{foreach_batch_transactional, PostgresOffsetStore, TransactionalStore};
use spate_kafka::{DirectStreamConfig, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};

const TOPIC: &str = "wordcount";
const PARTITIONS: i32 = 3;
/// The job's id in the store: the stored offsets and epochs are this job's.
const JOB: &str = "wordcount-pg";

/// Runs the word count from the stored offsets until they reach `ends` (the log end offset of
/// every partition); returns the batches committed and skipped.
fn run_job(
    cluster: &Cluster,
    url: &str,
    ends: &[i64],
    rate: u64,
    deadline: Instant,
) -> anyhow::Result<(u64, u64)> {
    let mut store = PostgresOffsetStore::connect(url, JOB)?;
    store.client().batch_execute(
        "CREATE TABLE IF NOT EXISTS word_counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL)",
    )?;
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    let epochs = store.claim_partitions(&partitions)?;
    println!(
        "claimed partitions with writer epochs {}",
        common::fmt_offsets(&epochs)
    );
    println!(
        "starting from stored offsets {}",
        common::fmt_offsets(&store.starting_offsets()?)
    );
    let strategy = store.assign_strategy(&partitions, cluster.params(None))?;

    let ctx = StreamingContext::new(
        Config::new("transactional-postgres").batch_interval(Duration::from_millis(200)),
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
    let output = foreach_batch_transactional(&stream, &counts, store, |tx, mut counts, _time| {
        // Rows in word order: concurrent writers lock shared rows in the same order.
        counts.sort();
        let add = tx.prepare(
            "INSERT INTO word_counts (word, n) VALUES ($1, $2)
             ON CONFLICT (word) DO UPDATE SET n = word_counts.n + EXCLUDED.n",
        )?;
        for (word, n) in counts {
            tx.execute(&add, &[&word, &n])?;
        }
        Ok::<_, spate_kafka::sink::postgres::Error>(())
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

/// The word counts stored in the database.
fn stored_counts(url: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut store = PostgresOffsetStore::connect(url, JOB)?;
    println!(
        "stored offsets: {}",
        common::fmt_offsets(&store.starting_offsets()?)
    );
    let rows = store
        .client()
        .query("SELECT word, n FROM word_counts ORDER BY word", &[])?;
    let mut got = BTreeMap::new();
    for row in rows {
        got.insert(row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?);
    }
    Ok(got)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let Some(url) = args.url.clone() else {
        bail!("give the database: --url postgres://USER@HOST/DB (or set SPATE_PG_URL)");
    };
    let broker_dir = common::default_path("transactional_postgres.broker");
    let cluster = Cluster::connect(&args, &broker_dir)?;
    let (ends, lines) = cluster.prepare_input(TOPIC, PARTITIONS, args.records)?;

    let (committed, skipped) =
        run_job(&cluster, &url, &ends, args.rate, args.deadline()).context("the job")?;
    println!("this run: {committed} batches committed, {skipped} replayed batches skipped");

    let got = stored_counts(&url)?;
    if !common::counts_match(&got, &lines) {
        bail!("the counts differ from the lines in the topic");
    }
    println!(
        "exactly once: the counts equal the counts of the {} lines in the topic (job {JOB})",
        lines.len()
    );
    Ok(())
}

//! End-to-end exactly-once under SIGKILL: a word count whose counts and offset ranges are stored
//! in one SQLite transaction ([`SqliteOffsetStore`]) runs as a child process (this test binary
//! re-invoked with environment variables) and is killed at random moments, at least 20 times,
//! while a producer writes a known keyed sequence of lines. Each restart resumes from the offsets
//! stored in SQLite (`Assign` with starting offsets; no checkpoint). After the last restart has
//! caught up, the counts in SQLite must equal the counts of what was produced exactly: nothing
//! lost, nothing counted twice.
//!
//! The second test runs the same job with an engine checkpoint (`Subscribe`, offsets from the
//! checkpoint): a kill between the SQLite commit and the engine's commit makes the restarted
//! engine re-run a batch the store already applied, and the store's fence must skip it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::producer::BaseProducer;
use rusqlite::params;
use spate_kafka::sink::{foreach_batch_transactional, SqliteOffsetStore};
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::child::{ChildJob, Running};
use spate_testkit::{clients, TestBroker};

const ENV_DB: &str = "SPATE_EXACTLY_ONCE_CRASH_DB";
const ENV_BOOTSTRAP: &str = "SPATE_EXACTLY_ONCE_CRASH_BOOTSTRAP";
const ENV_TOPIC: &str = "SPATE_EXACTLY_ONCE_CRASH_TOPIC";
const ENV_CHECKPOINT: &str = "SPATE_EXACTLY_ONCE_CRASH_CHECKPOINT";

const JOB: &str = "crash-wordcount";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 6_000;
const CHUNK: usize = 150;
const KILLS: u32 = 20;

fn create_tables(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS word_counts (word TEXT PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS batches (time_ms INTEGER NOT NULL, records INTEGER NOT NULL);",
    )
}

/// The job: lines → word counts added to `word_counts`, the batch's record count appended to
/// `batches`, offsets stored — all in one transaction per batch. Without `checkpoint` it starts
/// from the stored offsets; with one, the engine recovers from it and re-runs uncommitted
/// batches, and each batch the store skips as already applied is reported on stderr.
fn child(db: &Path, bootstrap: &str, topic: &str, checkpoint: Option<&Path>) -> anyhow::Result<()> {
    let store = SqliteOffsetStore::open(db, JOB)?;
    create_tables(store.connection())?;
    let params = KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4");
    let strategy = match checkpoint {
        None => {
            let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p));
            store.assign_strategy(partitions, params)?
        }
        Some(_) => ConsumerStrategy::subscribe([topic], params),
    };
    let ctx = StreamingContext::new(
        Config::new("exactly-once-crash").batch_interval(Duration::from_millis(100)),
    )?;
    if let Some(dir) = checkpoint {
        ctx.checkpoint(dir)?;
    }
    // 30 offsets per partition per batch: slower than the producer while restarts eat time, so
    // the job is busy with a backlog (many transactions) when the kills land.
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(300)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let lines = stream.map(|r| r.value_str().unwrap_or_default());
    let output = foreach_batch_transactional(&stream, &lines, store, move |tx, lines, time| {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for w in lines.iter().flat_map(|l| l.split_whitespace()) {
            *counts.entry(w).or_insert(0) += 1;
        }
        let mut add = tx.prepare_cached(
            "INSERT INTO word_counts (word, n) VALUES (?1, ?2)
             ON CONFLICT (word) DO UPDATE SET n = n + excluded.n",
        )?;
        for (w, n) in counts {
            add.execute(params![w, n])?;
        }
        tx.execute(
            "INSERT INTO batches (time_ms, records) VALUES (?1, ?2)",
            params![time.as_millis() as i64, lines.len() as i64],
        )?;
        // Widens the window in which a kill lands between the counts and the commit.
        std::thread::sleep(Duration::from_millis(5));
        Ok::<_, rusqlite::Error>(())
    });
    if checkpoint.is_some() {
        // A second output after the transactional one: a kill while it runs leaves the batch
        // committed in SQLite but not in the checkpoint, so the restart re-runs it.
        lines.foreach_batch(|_, _| {
            std::thread::sleep(Duration::from_millis(20));
            Ok::<_, std::convert::Infallible>(())
        });
    }
    ctx.start()?;
    let mut reported = 0;
    loop {
        if ctx.await_termination_or_timeout(Duration::from_millis(10))? {
            return Ok(());
        }
        let skipped = output.skipped_batches();
        for _ in reported..skipped {
            eprintln!("{SKIPPED_MARKER}");
        }
        reported = skipped;
    }
}

/// Printed by the child for each replayed batch the store skipped.
const SKIPPED_MARKER: &str = "exactly-once-crash: replayed batch skipped by the offset store";

#[test]
fn child_entry() {
    let (Ok(db), Ok(bootstrap), Ok(topic)) = (
        std::env::var(ENV_DB),
        std::env::var(ENV_BOOTSTRAP),
        std::env::var(ENV_TOPIC),
    ) else {
        return;
    };
    let checkpoint = std::env::var(ENV_CHECKPOINT).ok().map(PathBuf::from);
    spate_testkit::init_logging();
    if let Err(e) = child(Path::new(&db), &bootstrap, &topic, checkpoint.as_deref()) {
        eprintln!("exactly-once crash child failed: {e:#}");
        std::process::exit(3);
    }
}

struct Job {
    db: PathBuf,
    bootstrap: String,
    topic: String,
    checkpoint: Option<PathBuf>,
    /// Each run's stderr, for counting skipped replays.
    logs: PathBuf,
    runs: u32,
}

impl Job {
    fn spawn(&mut self) -> Running {
        self.runs += 1;
        let mut job = ChildJob::test_entry("child_entry");
        job.env(ENV_DB, &self.db)
            .env(ENV_BOOTSTRAP, &self.bootstrap)
            .env(ENV_TOPIC, &self.topic)
            .stderr_to(&self.log(self.runs));
        if let Some(dir) = &self.checkpoint {
            job.env(ENV_CHECKPOINT, dir);
        }
        job.spawn()
    }

    fn log(&self, run: u32) -> PathBuf {
        self.logs.join(format!("run-{run}.log"))
    }

    /// Panics with the run's stderr if the child exited on its own.
    fn check_alive(&self, child: &mut Running) {
        if let Some(status) = child.exited() {
            let log = std::fs::read_to_string(self.log(self.runs)).unwrap_or_default();
            panic!("the job exited on its own: {status}; its stderr:\n{log}");
        }
    }

    /// Replayed batches the children reported as skipped by the store.
    fn skipped_replays(&self) -> usize {
        (1..=self.runs)
            .map(|n| {
                std::fs::read_to_string(self.log(n))
                    .unwrap_or_default()
                    .matches(SKIPPED_MARKER)
                    .count()
            })
            .sum()
    }
}

/// What the parent reads from the job's database.
struct Snapshot {
    stored: i64,
    counts: BTreeMap<String, i64>,
    batches: i64,
    records: i64,
}

fn snapshot(store: &SqliteOffsetStore) -> Snapshot {
    let conn = store.connection();
    let stored = store
        .starting_offsets()
        .expect("stored offsets")
        .values()
        .sum();
    let mut stmt = conn.prepare("SELECT word, n FROM word_counts").unwrap();
    let counts = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (batches, records) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(records), 0) FROM batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    Snapshot {
        stored,
        counts,
        batches,
        records,
    }
}

/// Produces while killing the job at least `KILLS` times, lets a last run catch up, and checks
/// the counts in SQLite against what was produced.
fn crash_run(with_checkpoint: bool) {
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = TestBroker::start();
    let topic = common::create_topic(&broker, "eo_crash", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job {
        db: dir.path().join("wordcount.db"),
        bootstrap: broker.bootstrap_servers(),
        topic: topic.clone(),
        checkpoint: with_checkpoint.then(|| dir.path().join("checkpoint")),
        logs: dir.path().to_path_buf(),
        runs: 0,
    };
    let store = SqliteOffsetStore::open(&job.db, JOB).unwrap();
    create_tables(store.connection()).unwrap();

    let produced_all = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, done) = (job.bootstrap.clone(), topic.clone(), produced_all.clone());
        std::thread::spawn(move || {
            let p: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
            for from in (0..RECORDS).step_by(CHUNK) {
                let until = (from + CHUNK).min(RECORDS);
                common::produce_lines(&p, &topic, PARTITIONS, from, until);
                std::thread::sleep(Duration::from_millis(300));
            }
            done.store(true, Ordering::Release);
        })
    };

    let mut rng = rand::rng();
    let mut kills = 0;
    let mut progress = Vec::new();
    while kills < KILLS || !produced_all.load(Ordering::Acquire) {
        let mut child = job.spawn();
        std::thread::sleep(Duration::from_millis(rng.random_range(150..1_300)));
        job.check_alive(&mut child);
        child.kill();
        kills += 1;
        progress.push(snapshot(&store).stored);
    }
    producer.join().unwrap();
    eprintln!("offsets stored after each of the {kills} kills: {progress:?}");

    // Last restart: let it catch up with everything produced.
    let mut child = job.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot(&store).stored < RECORDS as i64 {
        job.check_alive(&mut child);
        assert!(Instant::now() < deadline, "the last run did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give a wrongly re-applied batch the chance to show up before looking.
    std::thread::sleep(Duration::from_millis(500));
    drop(child);

    let s = snapshot(&store);
    let expected = common::expected_counts(RECORDS);
    let total = |c: &BTreeMap<String, i64>| c.values().sum::<i64>();
    let mode = if with_checkpoint {
        "engine checkpoint + SQLite fence"
    } else {
        "resume from SQLite offsets"
    };
    eprintln!(
        "exactly-once crash test ({mode}): {kills} SIGKILLs, {RECORDS} records produced, {} \
         records in {} committed batches, {} replayed batches skipped, stored offsets {}, {} \
         words counted / {} produced, {:?}",
        s.records,
        s.batches,
        job.skipped_replays(),
        store
            .starting_offsets()
            .unwrap()
            .iter()
            .map(|(tp, o)| format!("{tp}={o}"))
            .collect::<Vec<_>>()
            .join(" "),
        total(&s.counts),
        total(&expected),
        started.elapsed()
    );
    for (w, n) in &expected {
        eprintln!(
            "  {w:<8} counted {:>5} produced {n:>5}",
            s.counts.get(w).copied().unwrap_or(0)
        );
    }
    assert!(kills >= KILLS);
    assert_eq!(
        s.stored, RECORDS as i64,
        "stored offsets cover every record"
    );
    assert_eq!(
        s.records, RECORDS as i64,
        "every record counted exactly once"
    );
    assert_eq!(s.counts, expected, "word counts equal the produced counts");
}

#[test]
fn sqlite_transactional_word_count_is_exact_after_20_sigkills() {
    crash_run(false);
}

#[test]
fn checkpointed_replays_are_fenced_by_the_sqlite_offsets_after_20_sigkills() {
    crash_run(true);
}

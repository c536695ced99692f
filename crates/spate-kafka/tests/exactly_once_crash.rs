//! End-to-end exactly-once under SIGKILL: a word count whose counts and offset ranges are stored
//! in one SQLite transaction ([`SqliteOffsetStore`]) runs as a child process (this test binary
//! re-invoked with environment variables) and is killed at random moments, at least 20 times,
//! while a producer writes a known keyed sequence of lines. Each restart resumes from the offsets
//! stored in SQLite (`Assign` with starting offsets; no checkpoint). After the last restart has
//! caught up, the counts in SQLite must equal the counts of what was produced exactly: nothing
//! lost, nothing counted twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rusqlite::params;
use spate_kafka::sink::{foreach_batch_transactional, SqliteOffsetStore};
use spate_kafka::{DirectStreamConfig, KafkaParams, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::{clients, TestBroker};

const ENV_DB: &str = "SPATE_EXACTLY_ONCE_CRASH_DB";
const ENV_BOOTSTRAP: &str = "SPATE_EXACTLY_ONCE_CRASH_BOOTSTRAP";
const ENV_TOPIC: &str = "SPATE_EXACTLY_ONCE_CRASH_TOPIC";

const JOB: &str = "crash-wordcount";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 6_000;
const CHUNK: usize = 150;
const KILLS: u32 = 20;
const WORDS: [&str; 11] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo",
];

/// Record `i`'s value: one to four words, a deterministic function of `i`.
fn line(i: usize) -> String {
    (0..=i % 4)
        .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn expected_counts(n: usize) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for w in (0..n).flat_map(|i| line(i).split(' ').map(str::to_owned).collect::<Vec<_>>()) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts
}

fn create_tables(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS word_counts (word TEXT PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS batches (time_ms INTEGER NOT NULL, records INTEGER NOT NULL);",
    )
}

/// The job: lines → word counts added to `word_counts`, the batch's record count appended to
/// `batches`, offsets stored — all in one transaction per batch.
fn child(db: &Path, bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let store = SqliteOffsetStore::open(db, JOB)?;
    create_tables(store.connection())?;
    let params = KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4");
    let partitions = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p));
    let strategy = store.assign_strategy(partitions, params)?;
    let ctx = StreamingContext::new(
        Config::new("exactly-once-crash").batch_interval(Duration::from_millis(100)),
    )?;
    // 30 offsets per partition per batch: slower than the producer while restarts eat time, so
    // the job is busy with a backlog (many transactions) when the kills land.
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(300)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let lines = stream.map(|r| r.value_str().unwrap_or_default());
    foreach_batch_transactional(&stream, &lines, store, |tx, lines, time| {
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
    ctx.start()?;
    ctx.await_termination()?;
    Ok(())
}

#[test]
fn child_entry() {
    let (Ok(db), Ok(bootstrap), Ok(topic)) = (
        std::env::var(ENV_DB),
        std::env::var(ENV_BOOTSTRAP),
        std::env::var(ENV_TOPIC),
    ) else {
        return;
    };
    spate_testkit::init_logging();
    if let Err(e) = child(Path::new(&db), &bootstrap, &topic) {
        eprintln!("exactly-once crash child failed: {e:#}");
        std::process::exit(3);
    }
}

struct Job {
    db: PathBuf,
    bootstrap: String,
    topic: String,
}

impl Job {
    fn spawn(&self) -> Child {
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ENV_DB, &self.db)
            .env(ENV_BOOTSTRAP, &self.bootstrap)
            .env(ENV_TOPIC, &self.topic)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crash child")
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

fn produce_lines(producer: &BaseProducer, topic: &str, from: usize, until: usize) {
    for i in from..until {
        let (key, value) = (format!("k{i}"), line(i));
        let mut rec = BaseRecord::to(topic)
            .partition((i % PARTITIONS as usize) as i32)
            .key(&key)
            .payload(&value);
        while let Err((_, r)) = producer.send(rec) {
            producer.poll(Duration::from_millis(10));
            rec = r;
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn sqlite_transactional_word_count_is_exact_after_20_sigkills() {
    spate_testkit::init_logging();
    let started = Instant::now();
    let broker = TestBroker::start();
    let topic = common::create_topic(&broker, "eo_crash", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let job = Job {
        db: dir.path().join("wordcount.db"),
        bootstrap: broker.bootstrap_servers(),
        topic: topic.clone(),
    };
    let store = SqliteOffsetStore::open(&job.db, JOB).unwrap();
    create_tables(store.connection()).unwrap();

    let produced_all = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, done) = (job.bootstrap.clone(), topic.clone(), produced_all.clone());
        std::thread::spawn(move || {
            let p: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
            for from in (0..RECORDS).step_by(CHUNK) {
                produce_lines(&p, &topic, from, (from + CHUNK).min(RECORDS));
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
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the job exited on its own: {status} (see its stderr above)");
        }
        child.kill().expect("SIGKILL the job");
        let _ = child.wait();
        kills += 1;
        progress.push(snapshot(&store).stored);
    }
    producer.join().unwrap();
    eprintln!("offsets stored after each of the {kills} kills: {progress:?}");

    // Last restart: let it catch up with everything produced.
    let mut child = job.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot(&store).stored < RECORDS as i64 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the job exited on its own: {status}");
        }
        assert!(Instant::now() < deadline, "the last run did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give a wrongly re-applied batch the chance to show up before looking.
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();

    let s = snapshot(&store);
    let expected = expected_counts(RECORDS);
    let total = |c: &BTreeMap<String, i64>| c.values().sum::<i64>();
    eprintln!(
        "exactly-once crash test: {kills} SIGKILLs, {RECORDS} records produced, {} records in \
         {} committed batches, stored offsets {}, {} words counted / {} produced, {:?}",
        s.records,
        s.batches,
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

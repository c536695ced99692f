//! End-to-end exactly-once on PostgreSQL under SIGKILL: a word count whose counts and offset
//! ranges commit in one PostgreSQL transaction ([`PostgresOffsetStore`]) runs as child
//! processes (this test binary re-invoked with environment variables) against a real
//! PostgreSQL server started by the test kit, and is killed at random moments while a producer
//! writes a known sequence of lines. Each run claims its partitions (raising their writer
//! epochs, as a scale-out instance taking them over does) and resumes from the offsets stored in
//! PostgreSQL. After the last runs have caught up, the counts must equal the counts of what was
//! produced exactly: nothing lost, nothing counted twice.
//!
//! * one instance owning every partition, killed at least 20 times;
//! * two instances sharing one database, each owning different partitions and updating the
//!   same word rows, killed independently: both commit, neither disturbs the other, and each
//!   partition's writer epoch counts exactly the runs of its owner.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::producer::BaseProducer;
use spate_kafka::sink::postgres::{Client, NoTls};
use spate_kafka::sink::{foreach_batch_transactional, PostgresOffsetStore, TransactionalStore};
use spate_kafka::{DirectStreamConfig, KafkaParams, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::child::{ChildJob, Running};
use spate_testkit::{clients, PostgresServer, TestBroker};

const ENV_URL: &str = "SPATE_PG_CRASH_URL";
const ENV_BOOTSTRAP: &str = "SPATE_PG_CRASH_BOOTSTRAP";
const ENV_TOPIC: &str = "SPATE_PG_CRASH_TOPIC";
const ENV_PARTITIONS: &str = "SPATE_PG_CRASH_PARTITIONS";
const ENV_INSTANCE: &str = "SPATE_PG_CRASH_INSTANCE";

const JOB: &str = "pg-crash-wordcount";
const CHUNK: usize = 150;

fn create_tables(client: &mut Client) -> Result<(), spate_kafka::sink::postgres::Error> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS word_counts (word TEXT PRIMARY KEY, n BIGINT NOT NULL);
         CREATE TABLE IF NOT EXISTS batches (
             instance TEXT NOT NULL, time_ms BIGINT NOT NULL, records BIGINT NOT NULL);",
    )
}

/// The job: claims its partitions, resumes from the stored offsets, and per batch adds the word
/// counts to `word_counts` (in word order, so that two instances lock shared rows in the same
/// order), appends the batch's record count to `batches` and stores the offsets — one
/// transaction.
fn child(
    url: &str,
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    instance: &str,
) -> anyhow::Result<()> {
    let mut store = PostgresOffsetStore::connect(url, JOB)?;
    let tps: Vec<TopicPartition> = partitions
        .iter()
        .map(|&p| TopicPartition::new(topic, p))
        .collect();
    let epochs = store.claim_partitions(&tps)?;
    eprintln!("instance {instance} claimed {epochs:?}");
    let params = KafkaParams::new()
        .set("bootstrap.servers", bootstrap)
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4");
    let strategy = store.assign_strategy(&tps, params)?;
    let ctx = StreamingContext::new(
        Config::new("postgres-crash").batch_interval(Duration::from_millis(100)),
    )?;
    // 30 offsets per partition per batch: slower than the producer while restarts eat time, so
    // the job is busy with a backlog (many transactions) when the kills land.
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(300)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let lines = stream.map(|r| r.value_str().unwrap_or_default());
    let instance = instance.to_owned();
    foreach_batch_transactional(&stream, &lines, store, move |tx, lines, time| {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for w in lines.iter().flat_map(|l| l.split_whitespace()) {
            *counts.entry(w).or_insert(0) += 1;
        }
        let add = tx.prepare(
            "INSERT INTO word_counts (word, n) VALUES ($1, $2)
             ON CONFLICT (word) DO UPDATE SET n = word_counts.n + EXCLUDED.n",
        )?;
        for (w, n) in counts {
            tx.execute(&add, &[&w, &n])?;
        }
        let records = i64::try_from(lines.len()).unwrap_or(i64::MAX);
        let time_ms = i64::try_from(time.as_millis()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO batches (instance, time_ms, records) VALUES ($1, $2, $3)",
            &[&instance, &time_ms, &records],
        )?;
        // Widens the window in which a kill lands between the counts and the commit.
        std::thread::sleep(Duration::from_millis(5));
        Ok::<_, spate_kafka::sink::postgres::Error>(())
    });
    ctx.start()?;
    ctx.await_termination()?;
    Ok(())
}

#[test]
fn child_entry() {
    let (Ok(url), Ok(bootstrap), Ok(topic), Ok(partitions), Ok(instance)) = (
        std::env::var(ENV_URL),
        std::env::var(ENV_BOOTSTRAP),
        std::env::var(ENV_TOPIC),
        std::env::var(ENV_PARTITIONS),
        std::env::var(ENV_INSTANCE),
    ) else {
        return;
    };
    spate_testkit::init_logging();
    let partitions: Vec<i32> = partitions
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    if let Err(e) = child(&url, &bootstrap, &topic, &partitions, &instance) {
        eprintln!("postgres crash child {instance} failed: {e:#}");
        std::process::exit(3);
    }
}

/// One instance of the job: the partitions it owns, its runs and their logs.
struct Instance {
    name: String,
    partitions: Vec<i32>,
    job: ChildJob,
    logs: PathBuf,
    runs: u32,
    kills: u32,
    running: Option<Running>,
}

impl Instance {
    fn new(name: &str, partitions: Vec<i32>, env: &[(&str, String)], logs: PathBuf) -> Self {
        let mut job = ChildJob::test_entry("child_entry");
        for (k, v) in env {
            job.env(k, v);
        }
        let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
        job.env(ENV_PARTITIONS, list.join(","))
            .env(ENV_INSTANCE, name);
        Instance {
            name: name.to_owned(),
            partitions,
            job,
            logs,
            runs: 0,
            kills: 0,
            running: None,
        }
    }

    fn log(&self, run: u32) -> PathBuf {
        self.logs.join(format!("{}-run-{run}.log", self.name))
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = self.log(self.runs);
        self.running = Some(self.job.stderr_to(&log).spawn());
    }

    /// Panics with the run's stderr if the child exited on its own.
    fn check_alive(&mut self) {
        if let Some(status) = self.running.as_mut().and_then(Running::exited) {
            let log = std::fs::read_to_string(self.log(self.runs)).unwrap_or_default();
            panic!(
                "instance {} exited on its own: {status}; its stderr:\n{log}",
                self.name
            );
        }
    }

    fn kill_and_restart(&mut self) {
        self.check_alive();
        if let Some(child) = self.running.take() {
            child.kill();
            self.kills += 1;
        }
        self.spawn();
    }
}

/// What the parent reads from the job's database.
struct Snapshot {
    offsets: BTreeMap<i32, i64>,
    epochs: BTreeMap<i32, i64>,
    counts: BTreeMap<String, i64>,
    /// Batches and records per instance.
    batches: BTreeMap<String, (i64, i64)>,
}

impl Snapshot {
    fn stored(&self) -> i64 {
        self.offsets.values().sum()
    }

    fn records(&self) -> i64 {
        self.batches.values().map(|(_, r)| r).sum()
    }
}

fn snapshot(db: &mut Client) -> Snapshot {
    let pairs = |db: &mut Client, sql: &str| -> BTreeMap<i32, i64> {
        db.query(sql, &[&JOB])
            .expect("query")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let offsets = pairs(
        db,
        "SELECT partition, until_offset FROM spate_offsets WHERE job = $1",
    );
    let epochs = pairs(
        db,
        "SELECT partition, epoch FROM spate_writer_epochs WHERE job = $1",
    );
    let counts = db
        .query("SELECT word, n FROM word_counts", &[])
        .expect("word counts")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let batches = db
        .query(
            "SELECT instance, COUNT(*), COALESCE(SUM(records), 0)::BIGINT FROM batches GROUP BY instance",
            &[],
        )
        .expect("batches")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    Snapshot {
        offsets,
        epochs,
        counts,
        batches,
    }
}

/// Produces `records` lines while killing a random instance every 150–1300 ms, at least
/// `kills` times in all, lets the last runs catch up, and checks the counts in PostgreSQL.
fn crash_run(name: &str, owners: &[&[i32]], records: usize, kills: u32) {
    spate_testkit::init_logging();
    let started = Instant::now();
    let partitions = owners.iter().map(|o| o.len() as i32).sum();
    let broker = TestBroker::start();
    let topic = common::create_topic(&broker, "pg_crash", partitions);
    let server = PostgresServer::shared();
    let database = server.create_database("pg_crash");
    let mut db = Client::connect(&database.url, NoTls).expect("connect to the test database");
    create_tables(&mut db).expect("create tables");
    // Created before the instances start, so that they never race to create them.
    PostgresOffsetStore::connect(&database.url, JOB).expect("offsets tables");

    let dir = tempfile::tempdir().unwrap();
    let env = [
        (ENV_URL, database.url.clone()),
        (ENV_BOOTSTRAP, broker.bootstrap_servers()),
        (ENV_TOPIC, topic.clone()),
    ];
    let mut instances: Vec<Instance> = owners
        .iter()
        .enumerate()
        .map(|(i, ps)| Instance::new(&format!("i{i}"), ps.to_vec(), &env, dir.path().into()))
        .collect();

    let produced_all = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, done) = (
            broker.bootstrap_servers(),
            topic.clone(),
            produced_all.clone(),
        );
        std::thread::spawn(move || {
            let p: BaseProducer = clients::producer_config(&bootstrap).create().unwrap();
            for from in (0..records).step_by(CHUNK) {
                let until = (from + CHUNK).min(records);
                common::produce_lines(&p, &topic, partitions, from, until);
                std::thread::sleep(Duration::from_millis(300));
            }
            done.store(true, Ordering::Release);
        })
    };

    instances.iter_mut().for_each(Instance::spawn);
    let mut rng = rand::rng();
    let mut total_kills = 0;
    let mut progress = Vec::new();
    while total_kills < kills || !produced_all.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..1_300)));
        let victim = rng.random_range(0..instances.len());
        instances[victim].kill_and_restart();
        total_kills += 1;
        progress.push(snapshot(&mut db).stored());
    }
    producer.join().unwrap();
    eprintln!("{name}: offsets stored after each of the {total_kills} kills: {progress:?}");

    // The last runs (already started) catch up with everything produced.
    let deadline = Instant::now() + Duration::from_secs(90);
    while snapshot(&mut db).stored() < records as i64 {
        instances.iter_mut().for_each(Instance::check_alive);
        assert!(
            Instant::now() < deadline,
            "{name}: the last runs did not catch up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give a wrongly re-applied batch the chance to show up before looking.
    std::thread::sleep(Duration::from_millis(500));
    for i in &mut instances {
        i.check_alive();
        i.running.take();
    }

    let s = snapshot(&mut db);
    let expected = common::expected_counts(records);
    let total = |c: &BTreeMap<String, i64>| c.values().sum::<i64>();
    let counted = total(&s.counts);
    let produced_words = total(&expected);
    let lost: i64 = expected
        .iter()
        .map(|(w, n)| (n - s.counts.get(w).copied().unwrap_or(0)).max(0))
        .sum();
    let duplicated: i64 = expected
        .iter()
        .map(|(w, n)| (s.counts.get(w).copied().unwrap_or(0) - n).max(0))
        .sum();
    eprintln!(
        "{name}: {total_kills} SIGKILLs, {records} records produced, {} records counted, {counted} \
         words counted / {produced_words} produced, lost {lost}, duplicated {duplicated}, in {:?}",
        s.records(),
        started.elapsed()
    );
    for i in &instances {
        let (batches, recs) = s.batches.get(&i.name).copied().unwrap_or_default();
        eprintln!(
            "  instance {} partitions {:?}: {} runs, {} kills, {batches} batches committed, \
             {recs} records",
            i.name, i.partitions, i.runs, i.kills
        );
    }
    eprintln!(
        "  stored offsets {:?}, writer epochs {:?}",
        s.offsets, s.epochs
    );
    for (w, n) in &expected {
        eprintln!(
            "  {w:<8} counted {:>5} produced {n:>5}",
            s.counts.get(w).copied().unwrap_or(0)
        );
    }
    assert!(total_kills >= kills);
    assert_eq!(
        s.stored(),
        records as i64,
        "stored offsets cover every record"
    );
    assert_eq!(
        s.records(),
        records as i64,
        "every record counted exactly once"
    );
    assert_eq!(s.counts, expected, "word counts equal the produced counts");
    for i in &instances {
        let (batches, _) = s.batches.get(&i.name).copied().unwrap_or_default();
        assert!(batches > 0, "instance {} committed no batch", i.name);
        for p in &i.partitions {
            assert_eq!(
                s.epochs.get(p).copied(),
                Some(i64::from(i.runs)),
                "partition {p}'s writer epoch counts the claims of its owner {} only",
                i.name
            );
        }
    }
}

#[test]
fn postgres_transactional_word_count_is_exact_after_20_sigkills() {
    crash_run("one instance", &[&[0, 1, 2]], 6_000, 20);
}

#[test]
fn two_instances_sharing_one_database_commit_their_own_partitions_exactly_once() {
    crash_run("two instances", &[&[0, 1], &[2, 3]], 4_000, 10);
}

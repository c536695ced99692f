//! What the examples share: command-line options, a broker (an embedded one on 127.0.0.1:0
//! whose log lives in a directory next to the example's own store, unless `--bootstrap-server`
//! names a running one), a topic with a fixed name, a producer of deterministic lines of words
//! that tops the topic up to `--records` (so a re-run after a kill produces nothing twice), and
//! the Kafka parameters of the direct stream.
//!
//! Everything an example keeps lives at fixed paths, so running the same command again after
//! `kill -9` continues where the killed run stopped.

#![allow(dead_code)] // each example uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use spate_broker::BrokerConfig;
use spate_kafka::KafkaParams;
use spate_testkit::{clients, TestBroker};

const WORDS: [&str; 7] = [
    "spate", "kafka", "stream", "batch", "offset", "sink", "once",
];

/// Options every example takes.
pub struct Args {
    /// `--bootstrap-server HOST:PORT`: use a running broker instead of an embedded one.
    pub bootstrap: Option<String>,
    /// `--db PATH`: the SQLite file (default: a fixed file in the system temp directory).
    pub db: Option<PathBuf>,
    /// `--url URL`: the PostgreSQL database (`postgres://user:password@host:port/db`) of the
    /// PostgreSQL examples; default `$SPATE_PG_URL`.
    pub url: Option<String>,
    /// `--checkpoint DIR`: the checkpoint directory (default: a fixed one in the system temp
    /// directory).
    pub checkpoint: Option<PathBuf>,
    /// `--rate N`: records/s per partition the job reads (small, so a run lasts long enough to
    /// be killed part-way).
    pub rate: u64,
    /// `--seconds N`: how long the job may run at most.
    pub seconds: u64,
    /// `--records N`: how many records to produce.
    pub records: usize,
}

impl Args {
    pub fn parse() -> anyhow::Result<Args> {
        let mut args = Args {
            bootstrap: None,
            db: None,
            url: std::env::var("SPATE_PG_URL").ok(),
            checkpoint: None,
            rate: 200,
            seconds: 60,
            records: 2_000,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--bootstrap-server" => args.bootstrap = Some(value()?),
                "--db" => args.db = Some(PathBuf::from(value()?)),
                "--url" => args.url = Some(value()?),
                "--checkpoint" => args.checkpoint = Some(PathBuf::from(value()?)),
                "--rate" => args.rate = value()?.parse().context("--rate")?,
                "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
                "--records" => args.records = value()?.parse().context("--records")?,
                "-h" | "--help" => {
                    println!(
                        "options: --bootstrap-server HOST:PORT  --db PATH  --url POSTGRES_URL  --checkpoint DIR  --rate N  --seconds N  --records N"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown option {other} (try --help)"),
            }
        }
        Ok(args)
    }

    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.seconds)
    }
}

/// The broker the example talks to; an embedded one lives as long as this value.
pub struct Cluster {
    pub bootstrap: String,
    _embedded: Option<TestBroker>,
}

impl Cluster {
    /// The broker of `--bootstrap-server`, or an embedded one keeping its log in `data_dir`
    /// (created if missing), so that a re-run finds the topic as the killed run left it.
    pub fn connect(args: &Args, data_dir: &Path) -> anyhow::Result<Cluster> {
        if let Some(b) = &args.bootstrap {
            return Ok(Cluster::external(b.clone()));
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let broker = TestBroker::start_with(BrokerConfig::default().data_dir(data_dir));
        println!(
            "embedded broker on {} (log in {})",
            broker.bootstrap_servers(),
            data_dir.display()
        );
        Ok(Cluster {
            bootstrap: broker.bootstrap_servers(),
            _embedded: Some(broker),
        })
    }

    /// A running broker at `bootstrap`.
    pub fn external(bootstrap: String) -> Cluster {
        Cluster {
            bootstrap,
            _embedded: None,
        }
    }

    /// Creates a topic with a fresh name and returns the name.
    pub fn create_topic(&self, prefix: &str, partitions: i32) -> anyhow::Result<String> {
        let topic = spate_testkit::random_topic(prefix);
        self.ensure_topic(&topic, partitions)?;
        Ok(topic)
    }

    /// Creates `topic` with `partitions` partitions unless it exists already.
    pub fn ensure_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            clients::admin_config(&self.bootstrap).create()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        for r in rt.block_on(admin.create_topics([&new], &opts))? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => bail!("creating topic {t}: {e}"),
            }
        }
        Ok(())
    }

    /// Log end offset of each partition of `topic`.
    pub fn log_end_offsets(&self, topic: &str, partitions: i32) -> anyhow::Result<Vec<i64>> {
        let consumer: BaseConsumer =
            clients::consumer_config(&self.bootstrap, "spate-example-watermarks").create()?;
        (0..partitions)
            .map(|p| {
                let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
                Ok(high)
            })
            .collect()
    }

    /// Tops `topic` up to lines `0..records` (line `i` goes to partition `i % partitions`, so
    /// partition `p` holds lines `p, p + partitions, …` in order): produces only the lines each
    /// partition does not have yet. Returns the number of lines produced now.
    pub fn top_up(&self, topic: &str, partitions: i32, records: usize) -> anyhow::Result<usize> {
        let ends = self.log_end_offsets(topic, partitions)?;
        let parts = partitions as usize;
        let missing = (0..records).filter(|i| {
            let (p, k) = (i % parts, i / parts);
            k as i64 >= ends[p]
        });
        self.produce(topic, partitions, missing)
    }

    /// What `topic` holds: line `p + k * partitions` for every offset `k` below partition `p`'s
    /// log end. An exactly-once job's output must equal a function of exactly these lines.
    pub fn lines_in_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<Vec<usize>> {
        let ends = self.log_end_offsets(topic, partitions)?;
        let parts = partitions as usize;
        Ok(ends
            .iter()
            .enumerate()
            .flat_map(|(p, &end)| (0..end.max(0) as usize).map(move |k| p + k * parts))
            .collect())
    }

    /// Prepares an exactly-once example's input: creates `topic` if needed, tops it up to
    /// `records` lines and prints how many it holds. Returns the log end offsets the job must
    /// reach and the lines the topic holds, which the job's output is checked against.
    pub fn prepare_input(
        &self,
        topic: &str,
        partitions: i32,
        records: usize,
    ) -> anyhow::Result<(Vec<i64>, Vec<usize>)> {
        self.ensure_topic(topic, partitions)?;
        let produced = self.top_up(topic, partitions, records)?;
        let ends = self.log_end_offsets(topic, partitions)?;
        let lines = self.lines_in_topic(topic, partitions)?;
        println!(
            "topic {topic}: {} lines ({produced} produced by this run)",
            lines.len()
        );
        Ok((ends, lines))
    }

    /// Produces lines `from..until` (see [`line`]) round-robin over `partitions`, key `k<i>`.
    pub fn produce_lines(
        &self,
        topic: &str,
        partitions: i32,
        from: usize,
        until: usize,
    ) -> anyhow::Result<()> {
        self.produce(topic, partitions, from..until).map(|_| ())
    }

    /// Produces lines `lines` to partition `i % partitions`, in order, with an idempotent
    /// producer (a retried send is not written twice).
    fn produce(
        &self,
        topic: &str,
        partitions: i32,
        lines: impl Iterator<Item = usize>,
    ) -> anyhow::Result<usize> {
        let producer: BaseProducer = clients::producer_config(&self.bootstrap)
            .set("enable.idempotence", "true")
            .create()?;
        let mut produced = 0;
        for i in lines {
            produced += 1;
            let (key, value) = (format!("k{i}"), line(i));
            let partition = i32::try_from(i % partitions as usize)?;
            let mut rec = BaseRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&value);
            while let Err((e, r)) = producer.send(rec) {
                if !matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ) {
                    bail!("producing to {topic}: {e}");
                }
                producer.poll(Duration::from_millis(10));
                rec = r;
            }
        }
        producer.flush(Duration::from_secs(30))?;
        Ok(produced)
    }

    /// Direct-stream parameters: this broker, `group` if given, earliest offsets.
    pub fn params(&self, group: Option<&str>) -> KafkaParams {
        let p = KafkaParams::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("auto.offset.reset", "earliest")
            .set("broker.address.family", "v4");
        match group {
            Some(g) => p.set("group.id", g),
            None => p,
        }
    }
}

/// Line `i`: one to three words, a deterministic function of `i`.
pub fn line(i: usize) -> String {
    (0..=i % 3)
        .map(|j| WORDS[(i * 3 + j * 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Word counts of `lines`: what an exactly-once word count over them must end with.
pub fn expected_counts(lines: impl IntoIterator<Item = usize>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in lines {
        for w in line(i).split(' ') {
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Prints the word counts `got` beside those of `lines` (the exactly-once check every
/// word-count example ends with) and returns whether they are equal.
pub fn counts_match(got: &BTreeMap<String, i64>, lines: &[usize]) -> bool {
    let expected = expected_counts(lines.iter().copied());
    println!("{:<8} {:>7} {:>9}", "word", "counted", "in topic");
    for (word, n) in &expected {
        println!(
            "{word:<8} {:>7} {n:>9}",
            got.get(word).copied().unwrap_or(0)
        );
    }
    *got == expected
}

/// Polls `done` every 50 ms until it holds or `deadline` passes; returns whether it held.
pub fn wait_until(
    deadline: Instant,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The example's fixed home when no path is given: `<temp dir>/spate-examples/<name>`.
pub fn default_path(name: &str) -> PathBuf {
    std::env::temp_dir().join("spate-examples").join(name)
}

/// The SQLite file: `--db`, or `<temp dir>/spate-examples/<name>` — the same file every run.
pub fn db_path(args: &Args, name: &str) -> anyhow::Result<PathBuf> {
    let path = args.db.clone().unwrap_or_else(|| default_path(name));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    Ok(path)
}

/// Where the embedded broker keeps its log for an example whose store is `store`:
/// `<store>.broker/` beside it.
pub fn broker_dir(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".broker");
    PathBuf::from(name)
}

/// `topic-0: 334, topic-1: 333` for printing stored offsets.
pub fn fmt_offsets(offsets: &BTreeMap<spate_kafka::TopicPartition, i64>) -> String {
    if offsets.is_empty() {
        return "(none: start from auto.offset.reset)".to_owned();
    }
    offsets
        .iter()
        .map(|(tp, o)| format!("{tp}: {o}"))
        .collect::<Vec<_>>()
        .join(", ")
}

//! What the exactly-once examples share: command-line options, a broker (an embedded one on
//! 127.0.0.1:0 unless `--bootstrap-server` names a running one), a fresh topic, a producer of
//! deterministic lines of words, and the Kafka parameters of the direct stream.

#![allow(dead_code)] // each example uses a different subset

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_kafka::KafkaParams;
use spate_testkit::{clients, TestBroker};

const WORDS: [&str; 7] = [
    "spate", "kafka", "stream", "batch", "offset", "sink", "once",
];

/// Options every example takes.
pub struct Args {
    /// `--bootstrap-server HOST:PORT`: use a running broker instead of an embedded one.
    pub bootstrap: Option<String>,
    /// `--db PATH`: the SQLite file (default: in a temporary directory).
    pub db: Option<PathBuf>,
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
            seconds: 20,
            records: 2_000,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--bootstrap-server" => args.bootstrap = Some(value()?),
                "--db" => args.db = Some(PathBuf::from(value()?)),
                "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
                "--records" => args.records = value()?.parse().context("--records")?,
                "-h" | "--help" => {
                    println!(
                        "options: --bootstrap-server HOST:PORT  --db PATH  --seconds N  --records N"
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
    pub fn connect(args: &Args) -> Cluster {
        match &args.bootstrap {
            Some(b) => Cluster::external(b.clone()),
            None => {
                let broker = TestBroker::start();
                println!("embedded broker on {}", broker.bootstrap_servers());
                Cluster {
                    bootstrap: broker.bootstrap_servers(),
                    _embedded: Some(broker),
                }
            }
        }
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
        let admin: AdminClient<DefaultClientContext> =
            clients::admin_config(&self.bootstrap).create()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
        for r in rt.block_on(admin.create_topics([&new], &opts))? {
            r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
        }
        Ok(topic)
    }

    /// Produces lines `from..until` (see [`line`]) round-robin over `partitions`, key `k<i>`.
    pub fn produce_lines(
        &self,
        topic: &str,
        partitions: i32,
        from: usize,
        until: usize,
    ) -> anyhow::Result<()> {
        let producer: BaseProducer = clients::producer_config(&self.bootstrap).create()?;
        for i in from..until {
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
        Ok(())
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

/// Word counts of lines `0..n`: what an exactly-once word count must end with.
pub fn expected_counts(n: usize) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        for w in line(i).split(' ') {
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    counts
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

/// The SQLite file: `--db` or a file in `dir`.
pub fn db_path(args: &Args, dir: &tempfile::TempDir, name: &str) -> PathBuf {
    args.db.clone().unwrap_or_else(|| dir.path().join(name))
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

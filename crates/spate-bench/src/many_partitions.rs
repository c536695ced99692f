//! The many-partitions rows of `spate bench broker`: one consumer of a topic with hundreds of
//! partitions (500 by default), with incremental fetch sessions (KIP-227) on and off, to show
//! what sessions save: records per second while reading the topic, the broker's CPU per Fetch,
//! and the bytes on the wire of a Fetch once the consumer has caught up and the partitions are
//! idle (where a session-less fetch names, and is answered for, every partition).
//!
//! Sessions are switched in the broker, the way an operator can: an embedded broker with
//! `max.incremental.fetch.session.cache.slots=0` declines every session (Kafka's behaviour for
//! that setting), one with the default 1000 grants them. The consumer that asks for sessions
//! is [`SessionFetcher`]; an rdkafka consumer (which never asks) is measured next to it. Bytes
//! and Fetch counts come from the broker's request metrics, CPU from its threads' times.

use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use kafka_protocol::messages::ApiKey;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::kafka_io;
use crate::resources::threads_cpu_seconds;
use crate::session_fetcher::SessionFetcher;
use spate_broker::metrics::ApiTotals;
use spate_broker::state::BrokerState;
use spate_broker::topics::NewTopic;
use spate_client::config::ClientArgs;
use spate_client::embedded::{EmbeddedBroker, Storage};
use spate_client::tuning::CONSUMER_TUNING;

/// How long the idle phase fetches, and how long each idle Fetch waits for data (the same
/// 100 ms as rdkafka's `fetch.wait.max.ms` in the bench's consumer tuning).
const IDLE_FOR: Duration = Duration::from_secs(3);
const IDLE_MAX_WAIT_MS: i32 = 100;
/// The prefix of an in-process broker's thread names.
const BROKER_THREADS: &str = "spate-broker";

/// One many-partitions row.
#[derive(Debug, Clone, Serialize)]
pub struct ManyPartitionsRow {
    /// The consumer: `sessions` (asks for KIP-227 sessions) or `rdkafka` (never does).
    pub consumer: String,
    /// The broker's `max.incremental.fetch.session.cache.slots` (0: sessions declined).
    pub session_slots: usize,
    /// Whether the consumer ended up in a session.
    pub in_session: bool,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Records read (every record of the topic, from offset 0).
    pub records: u64,
    /// Records read per second.
    pub records_per_sec: f64,
    /// Fetch requests while reading.
    pub fetches: u64,
    /// Broker thread CPU per Fetch while reading, microseconds.
    pub broker_cpu_us_per_fetch: f64,
    /// Fetch requests in the idle phase.
    pub idle_fetches: u64,
    /// Request bytes per idle Fetch (size prefix included).
    pub idle_request_bytes: f64,
    /// Response bytes per idle Fetch (size prefix included).
    pub idle_response_bytes: f64,
    /// Broker thread CPU per idle Fetch, microseconds.
    pub idle_broker_cpu_us_per_fetch: f64,
}

/// Fetch totals and broker CPU at one moment, to take differences of.
struct Mark {
    fetch: ApiTotals,
    cpu: f64,
}

impl Mark {
    fn now(state: &BrokerState) -> Mark {
        Mark {
            fetch: state.request_metrics.totals(ApiKey::Fetch as i16),
            cpu: threads_cpu_seconds(BROKER_THREADS).unwrap_or(0.0),
        }
    }

    /// (fetches, request bytes, response bytes, broker CPU seconds) since `self`.
    fn since(&self, state: &BrokerState) -> (u64, u64, u64, f64) {
        let now = Mark::now(state);
        (
            now.fetch.requests - self.fetch.requests,
            now.fetch.request_bytes - self.fetch.request_bytes,
            now.fetch.response_bytes - self.fetch.response_bytes,
            now.cpu - self.cpu,
        )
    }
}

/// Runs the rows: the session consumer against a broker that grants sessions and one that
/// declines them, then rdkafka. `records` of `size` bytes are spread over `partitions`.
pub fn run(
    storage: &Storage,
    partitions: i32,
    records: u64,
    size: usize,
) -> Result<Vec<ManyPartitionsRow>> {
    let mut rows = Vec::new();
    for slots in [1000usize, 0] {
        let broker = EmbeddedBroker::start_with(
            storage.clone(),
            &[(
                "max.incremental.fetch.session.cache.slots",
                slots.to_string(),
            )],
        )?;
        let (client, topic) = load(&broker, partitions, records, size)?;
        rows.push(session_row(&broker, &topic, partitions, records, slots)?);
        if slots != 0 {
            rows.push(rdkafka_row(
                &broker, &client, &topic, partitions, records, slots,
            )?);
        }
    }
    Ok(rows)
}

/// Creates the topic and loads it; returns the client settings and the topic.
fn load(
    broker: &EmbeddedBroker,
    partitions: i32,
    records: u64,
    size: usize,
) -> Result<(ClientArgs, String)> {
    let client = ClientArgs::new(broker.bootstrap());
    let topic = format!("spate-bench-many-{partitions}p-{}", std::process::id());
    // Created in the broker itself: 500 partition directories on a busy disk can take longer
    // than an admin client waits for CreateTopics.
    state(broker)?
        .topics
        .create(
            NewTopic {
                name: topic.clone(),
                partitions,
                configs: Default::default(),
            },
            false,
        )
        .map_err(|e| BenchError::CreateTopic {
            topic: topic.clone(),
            reason: e.to_string(),
        })?;
    eprintln!("  {partitions} partitions: producing {records} records of {size} B...");
    kafka_io::load(&client, &topic, partitions, records, size)
        .map_err(|e| e.during(format!("loading {topic}")))?;
    Ok((client, topic))
}

fn state(broker: &EmbeddedBroker) -> Result<&BrokerState> {
    match broker.state() {
        Some(s) => Ok(s),
        None => Err(BenchError::Missing(
            "the embedded broker (it has stopped)".into(),
        )),
    }
}

fn per_fetch(total: f64, fetches: u64) -> f64 {
    if fetches == 0 {
        0.0
    } else {
        total / fetches as f64
    }
}

fn session_row(
    broker: &EmbeddedBroker,
    topic: &str,
    partitions: i32,
    records: u64,
    slots: usize,
) -> Result<ManyPartitionsRow> {
    let state = state(broker)?;
    eprintln!("  {partitions} partitions, session slots {slots}: reading with sessions asked...");
    let mut fetcher = SessionFetcher::connect(&broker.bootstrap(), topic, partitions)?;
    let mark = Mark::now(state);
    let started = Instant::now();
    let mut read = 0u64;
    while read < records {
        if started.elapsed() > Duration::from_secs(300) {
            return Err(BenchError::TimedOut {
                job: "the session fetcher".into(),
                done: read,
                expected: records,
                secs: 300,
            });
        }
        read += fetcher.fetch(500)?.records;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (fetches, _, _, cpu) = mark.since(state);

    // The first fetch after the backlog tells the session every partition's new offset; the
    // idle ones after it carry nothing.
    for _ in 0..2 {
        fetcher.fetch(IDLE_MAX_WAIT_MS)?;
    }
    let idle = Mark::now(state);
    let until = Instant::now() + IDLE_FOR;
    while Instant::now() < until {
        fetcher.fetch(IDLE_MAX_WAIT_MS)?;
    }
    let (idle_fetches, request_bytes, response_bytes, idle_cpu) = idle.since(state);
    Ok(ManyPartitionsRow {
        consumer: "sessions".to_owned(),
        session_slots: slots,
        in_session: fetcher.in_session(),
        partitions,
        records: read,
        records_per_sec: read as f64 / elapsed,
        fetches,
        broker_cpu_us_per_fetch: per_fetch(cpu * 1e6, fetches),
        idle_fetches,
        idle_request_bytes: per_fetch(request_bytes as f64, idle_fetches),
        idle_response_bytes: per_fetch(response_bytes as f64, idle_fetches),
        idle_broker_cpu_us_per_fetch: per_fetch(idle_cpu * 1e6, idle_fetches),
    })
}

fn rdkafka_row(
    broker: &EmbeddedBroker,
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    records: u64,
    slots: usize,
) -> Result<ManyPartitionsRow> {
    let state = state(broker)?;
    eprintln!("  {partitions} partitions: reading with rdkafka...");
    let mark = Mark::now(state);
    let consumed = kafka_io::drain(client, topic, partitions, records)?;
    let (fetches, _, _, cpu) = mark.since(state);

    // Idle: a consumer of every partition at its end, fetching with the same wait.
    // The bench's consumer tuning, `fetch.wait.max.ms` 100 included.
    let consumer: BaseConsumer<spate_client::config::CliContext> =
        client.create(CONSUMER_TUNING)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::End)
            .map_err(BenchError::kafka("assigning the idle consumer"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(BenchError::kafka("assigning the idle consumer"))?;
    // Let it find the ends first: the first fetches of a fresh consumer are not idle ones.
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let idle = Mark::now(state);
    let until = Instant::now() + IDLE_FOR;
    while Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let (idle_fetches, request_bytes, response_bytes, idle_cpu) = idle.since(state);
    drop(consumer);
    Ok(ManyPartitionsRow {
        consumer: "rdkafka".to_owned(),
        session_slots: slots,
        in_session: false,
        partitions,
        records: consumed.records,
        records_per_sec: consumed.records_per_sec(),
        fetches,
        broker_cpu_us_per_fetch: per_fetch(cpu * 1e6, fetches),
        idle_fetches,
        idle_request_bytes: per_fetch(request_bytes as f64, idle_fetches),
        idle_response_bytes: per_fetch(response_bytes as f64, idle_fetches),
        idle_broker_cpu_us_per_fetch: per_fetch(idle_cpu * 1e6, idle_fetches),
    })
}

//! Keyed state backed by compacted changelog topics (Kafka Streams' changelog-backed state
//! stores): [`KafkaChangelog`] implements the engine's
//! [`StateChangelog`](spate_streaming::StateChangelog).
//!
//! * **Topic**: `<application.id>-<operator uid>-changelog`, created at start if missing with
//!   `cleanup.policy=compact` and one partition per state partition (state partition p is
//!   changelog partition p); an existing topic with another partition count is refused with an
//!   error naming both counts. The application id is the job's `group.id` unless set.
//! * **Records**: key = the state key, value = the key's state, both encoded with postcard by
//!   the engine (from the state's serde types); a removed key is a tombstone (null value), which
//!   compaction eventually drops.
//! * **Writes**: joined to an exactly-once output ([`KafkaChangelog::join`]), a batch's changes
//!   ride in the output's transaction for that batch, so state, outputs and input offsets
//!   commit or abort together. Standalone, each batch's changes are written with an idempotent
//!   producer and acknowledged before the batch's outputs run (at-least-once: a batch re-run
//!   after a crash applies its changes to the state again).
//! * **Restore**: every partition from its start to its end, `read_committed`, streamed into the
//!   state partition (the `restore` module).

mod restore;
pub(crate) mod topic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use spate_streaming::error::BoxError;
use spate_streaming::state::changelog::RestoreFn;
use spate_streaming::{StateChangelog, StateChanges, Time};

use crate::error::{Result, SpateKafkaError};
use crate::sink::{producer_config, OutputProducer};
use crate::sink::{KafkaOutput, OutputRecord, TopicRecords, TransactionParticipant};
use crate::KafkaParams;
use topic::{changelog_topic, ensure_topic, TopicSpec};

/// Where a changelog's batches go.
enum Writes {
    /// Its own idempotent producer, created at `open`.
    Standalone(Option<OutputProducer>),
    /// An exactly-once output's transactions: changes wait here, by batch, until the output
    /// takes them into the batch's transaction.
    Transactional(BTreeMap<Time, Vec<TopicRecords>>),
}

/// State changelogs in compacted Kafka topics (see the module docs).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use spate_kafka::changelog::KafkaChangelog;
/// # use spate_kafka::{KafkaOffsetStore, KafkaParams, KafkaUtils, OutputRecord, SaveToKafka, TopicPartition};
/// # use spate_streaming::{Config, StreamingContext};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let params = KafkaParams::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .set("group.id", "wordcount");
/// let ctx = StreamingContext::new(Config::new("wordcount"))?;
/// let mut store = KafkaOffsetStore::open(params.clone())?;
/// let strategy = store.assign_strategy([TopicPartition::new("lines", 0)], params.clone())?;
/// let lines = KafkaUtils::create_direct_stream(&ctx, strategy)?;
/// let counts = lines
///     .flat_map(|r| r.value_str().unwrap_or_default().split_whitespace().map(|w| (w.to_owned(), 1u64)).collect::<Vec<_>>())
///     .update_state_by_key(|new: &[u64], old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
///     .uid("counts");
/// let out = counts.save_to_kafka_exactly_once(&lines, store, "counts", "word-counts", |(w, n)| {
///     OutputRecord::new(w.as_bytes(), n.to_string())
/// })?;
/// let changelog = Arc::new(KafkaChangelog::new(params)?); // `wordcount-counts-changelog`
/// changelog.join(&out)?;
/// ctx.state_changelog("counts", changelog);
/// ctx.start()?;
/// # Ok(()) }
/// ```
pub struct KafkaChangelog {
    params: KafkaParams,
    application_id: String,
    spec: TopicSpec,
    /// Operator uid → its changelog topic, filled by `open`.
    topics: Mutex<BTreeMap<String, String>>,
    writes: Mutex<Writes>,
    records: AtomicU64,
}

impl std::fmt::Debug for KafkaChangelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaChangelog")
            .field("application_id", &self.application_id)
            .field("topics", &*self.topics.lock())
            .finish_non_exhaustive()
    }
}

impl KafkaChangelog {
    /// A changelog on the cluster of `params`; its topics are named after the application id,
    /// `group.id` unless set with [`KafkaChangelog::application_id`].
    pub fn new(params: KafkaParams) -> Result<Self> {
        params.bootstrap_servers()?;
        Ok(KafkaChangelog {
            application_id: params.group_id().unwrap_or_default().to_owned(),
            params,
            spec: TopicSpec {
                replication_factor: -1,
                configs: Vec::new(),
            },
            topics: Mutex::new(BTreeMap::new()),
            writes: Mutex::new(Writes::Standalone(None)),
            records: AtomicU64::new(0),
        })
    }

    /// Names the topics `<application_id>-<operator uid>-changelog` (Kafka Streams'
    /// `application.id`).
    pub fn application_id(mut self, application_id: &str) -> Self {
        application_id.clone_into(&mut self.application_id);
        self
    }

    /// Creates missing topics with `replication_factor` replicas (default -1: the broker's
    /// `default.replication.factor`, KIP-464).
    pub fn replication_factor(mut self, replication_factor: i32) -> Self {
        self.spec.replication_factor = replication_factor;
        self
    }

    /// Creates missing topics with topic config `key=value` too (e.g. `min.insync.replicas`,
    /// `segment.bytes`); `cleanup.policy` is always `compact` and cannot be changed.
    pub fn topic_config(mut self, key: &str, value: &str) -> Self {
        self.spec.set_config(key, value);
        self
    }

    /// Writes this changelog's changes in `output`'s per-batch transactions (exactly-once
    /// outputs only): a batch's state changes, outputs and offsets commit or abort together.
    pub fn join(self: &Arc<Self>, output: &KafkaOutput) -> Result<()> {
        output.add_participant(self.clone())?;
        *self.writes.lock() = Writes::Transactional(BTreeMap::new());
        Ok(())
    }

    /// The changelog topic of state operator `operator` (its `uid()`).
    pub fn topic(&self, operator: &str) -> Result<String> {
        if self.application_id.is_empty() {
            return Err(SpateKafkaError::config(
                "group.id",
                "",
                "changelog topics are named after the application id, which is the job's \
                 group.id unless set with KafkaChangelog::application_id",
            ));
        }
        changelog_topic(&self.application_id, operator)
    }

    /// Changelog records written (standalone) or handed to a transaction by this process.
    pub fn records_written(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    fn open_topic(&self, operator: &str, partitions: usize) -> Result<()> {
        let topic = self.topic(operator)?;
        let mut admin = producer_config(&self.params)?;
        admin.set("allow.auto.create.topics", "false");
        ensure_topic(&admin, &topic, operator, partitions, &self.spec)?;
        let mut writes = self.writes.lock();
        if let Writes::Standalone(producer @ None) = &mut *writes {
            *producer = Some(OutputProducer::create(
                &format!("changelog {topic}"),
                &topic,
                producer_config(&self.params)?,
            )?);
        }
        self.topics.lock().insert(operator.to_owned(), topic);
        Ok(())
    }

    /// One batch's changes as records of the operator's topic, partition = state partition.
    fn to_records(&self, changes: StateChanges) -> Result<TopicRecords> {
        let topic = self.topics.lock().get(&changes.operator).cloned();
        let topic = topic.ok_or_else(|| {
            SpateKafkaError::config(
                "changelog",
                &changes.operator,
                "changes recorded for an operator whose changelog was never opened",
            )
        })?;
        let mut records = Vec::with_capacity(changes.len());
        for (p, entries) in changes.partitions.into_iter().enumerate() {
            let partition = i32::try_from(p).ok();
            records.extend(entries.into_iter().map(|e| OutputRecord {
                key: Some(e.key),
                value: e.value,
                partition,
            }));
        }
        Ok(TopicRecords { topic, records })
    }

    fn write(&self, changes: StateChanges) -> Result<()> {
        let time = changes.time;
        let batch = self.to_records(changes)?;
        let n = batch.records.len() as u64;
        match &mut *self.writes.lock() {
            Writes::Transactional(pending) => pending.entry(time).or_default().push(batch),
            Writes::Standalone(producer) => {
                let producer = producer.as_ref().ok_or_else(|| {
                    SpateKafkaError::config("changelog", &batch.topic, "written before opened")
                })?;
                producer.enqueue(&batch.topic, &batch.records)?;
                producer.await_acks()?;
                self.records.fetch_add(n, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl StateChangelog for KafkaChangelog {
    fn open(&self, operator: &str, partitions: usize) -> std::result::Result<(), BoxError> {
        Ok(self.open_topic(operator, partitions)?)
    }

    fn restore(
        &self,
        operator: &str,
        partition: usize,
        expected: &mut dyn FnMut(u64),
        apply: &mut RestoreFn<'_>,
    ) -> std::result::Result<u64, BoxError> {
        let topic = self.topic(operator)?;
        let partition = i32::try_from(partition).map_err(|_| {
            SpateKafkaError::config("partition", partition.to_string(), "out of range")
        })?;
        let config = self.params.executor_config()?;
        Ok(restore::restore_partition(
            config, &topic, partition, expected, apply,
        )?)
    }

    fn record(&self, changes: StateChanges) -> std::result::Result<(), BoxError> {
        Ok(self.write(changes)?)
    }
}

impl TransactionParticipant for KafkaChangelog {
    fn take_records(&self, time: Time) -> Result<Vec<TopicRecords>> {
        let mut writes = self.writes.lock();
        let Writes::Transactional(pending) = &mut *writes else {
            return Ok(Vec::new());
        };
        let later = pending.split_off(&Time(time.0 + 1));
        let due = std::mem::replace(pending, later);
        let batches: Vec<TopicRecords> = due.into_values().flatten().collect();
        let n: usize = batches.iter().map(|b| b.records.len()).sum();
        self.records.fetch_add(n as u64, Ordering::Relaxed);
        Ok(batches)
    }
}

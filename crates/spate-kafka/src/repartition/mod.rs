//! Repartition topics (Kafka Streams' `repartition()` / `groupBy`), as
//! [`Repartition::repartition_through_kafka`] (Spark's `DStream::repartition(n)`, which
//! reshuffles within the process, keeps its name): a keyed stream whose key changed is written to an internal topic partitioned by the new key and read back as a second,
//! internal direct stream, which the stateful stages downstream consume. In one process this is
//! still one job; across processes the topic is where the keys meet their owners.
//!
//! * **Topic**: `<application.id>-<name>-repartition`, created at start if missing with the
//!   source stream's partition count (the most partitions of any topic it subscribes to;
//!   [`RepartitionConfig::number_of_partitions`] overrides it), `cleanup.policy=delete` and, as
//!   Kafka Streams creates them, `retention.ms=-1` (records leave by purging, not by age). An
//!   existing topic with another partition count is refused with an error naming both counts.
//! * **Records**: key and value encoded with postcard from their serde types (the engine's
//!   encoding, as in state changelogs); the partition is Kafka's default partitioner (murmur2)
//!   over the key bytes (the `partitioner` module).
//! * **Exactly-once**: joined to the job's exactly-once output ([`RepartitionStream::join`]),
//!   batch *t*'s records are written in batch *t*'s transaction, and the internal stream —
//!   `read_committed`, starting at the group's committed offsets — has its ranges of batch *t*
//!   committed to the job's group in that same transaction (the `writer` module).
//! * **Purge**: records below committed offsets are deleted with DeleteRecords, at most once per
//!   [`RepartitionConfig::purge_interval`] (Kafka Streams' `repartition.purge.interval.ms`,
//!   30 s by default; the `purge` module). Standalone (not joined) the job commits the internal
//!   stream's offsets itself, so nothing is purged: set a `retention.ms` instead.

mod partitioner;
mod purge;
mod writer;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use spate_streaming::{fail_task, DStream, Data};

use crate::changelog::topic::{ensure_internal_topic, internal_topic_name, TopicSpec};
use crate::direct::config::DirectStreamConfig;
use crate::direct::offset_range::TopicPartition;
use crate::direct::params::KafkaParams;
use crate::direct::stream::DirectKafkaStream;
use crate::error::{Result, SpateKafkaError};
use crate::kafka_utils::KafkaUtils;
use crate::sink::{producer_config, KafkaOffsetStore, KafkaOutput};
pub use partitioner::kafka_partition;
use purge::Purger;
use writer::RepartitionWriter;

/// Kafka Streams' default `repartition.purge.interval.ms`.
const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(30);

/// How a repartition topic is made and read (Kafka Streams' `Repartitioned`).
#[derive(Debug, Clone)]
pub struct RepartitionConfig {
    name: String,
    partitions: Option<usize>,
    application_id: Option<String>,
    spec: TopicSpec,
    purge_interval: Duration,
    stream: DirectStreamConfig,
    group_managed: bool,
}

impl RepartitionConfig {
    /// A repartition named `name` (its topic is `<application.id>-<name>-repartition`).
    pub fn new(name: &str) -> Self {
        RepartitionConfig {
            name: name.to_owned(),
            partitions: None,
            application_id: None,
            spec: TopicSpec {
                replication_factor: -1,
                configs: vec![("retention.ms".to_owned(), "-1".to_owned())],
            },
            purge_interval: DEFAULT_PURGE_INTERVAL,
            stream: DirectStreamConfig::default(),
            group_managed: false,
        }
    }

    /// The topic's partition count (default: the source stream's partition count).
    pub fn number_of_partitions(mut self, partitions: usize) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Names the topic after `application_id` instead of the job's `group.id`.
    pub fn application_id(mut self, application_id: &str) -> Self {
        self.application_id = Some(application_id.to_owned());
        self
    }

    /// Creates a missing topic with `replication_factor` replicas (default -1: the broker's
    /// `default.replication.factor`, KIP-464).
    pub fn replication_factor(mut self, replication_factor: i32) -> Self {
        self.spec.replication_factor = replication_factor;
        self
    }

    /// Creates a missing topic with topic config `key=value` too (e.g. `retention.ms` for a
    /// standalone repartition, `segment.bytes`); `cleanup.policy` is always `delete`.
    pub fn topic_config(mut self, key: &str, value: &str) -> Self {
        self.spec.set_config(key, value);
        self
    }

    /// Purges consumed records at most this often (`repartition.purge.interval.ms`, 30 s).
    pub fn purge_interval(mut self, interval: Duration) -> Self {
        self.purge_interval = interval;
        self
    }

    /// Reads the topic group-managed, for jobs whose source is group-managed: the internal
    /// stream joins the job's group as a member of its own (its `group.instance.id`, if the job
    /// sets one, suffixed `-<name>-repartition`), so each instance reads only the repartition
    /// partitions the group assigns it, and every record of a key meets the same instance.
    /// Without it the internal stream reads every partition (one instance).
    ///
    /// Keyed state partitioned by task (`update_state_by_key_by_task`, `StateSpec::by_task`)
    /// on the stream read back is then held per repartition partition: an instance restores a
    /// task's state when the group assigns it the partition and drops it when the partition
    /// leaves. The source's partitions stop being tasks (one group-managed input owns the
    /// job's tasks), so state partitioned by task straight on the source is refused.
    pub fn group_managed(mut self) -> Self {
        self.group_managed = true;
        self
    }

    /// Rate limits and timeouts of the internal stream.
    pub fn stream_config(mut self, config: DirectStreamConfig) -> Self {
        self.stream = config;
        self
    }
}

/// The stream read back from a repartition topic: the records as `(key, value)`, plus the
/// handle that joins the topic's writes to the job's exactly-once output.
pub struct RepartitionStream<K: Data, V: Data> {
    stream: DStream<(K, V)>,
    internal: DirectKafkaStream,
    writer: Arc<RepartitionWriter>,
}

impl<K: Data, V: Data> Clone for RepartitionStream<K, V> {
    fn clone(&self) -> Self {
        RepartitionStream {
            stream: self.stream.clone(),
            internal: self.internal.clone(),
            writer: self.writer.clone(),
        }
    }
}

impl<K: Data, V: Data> std::fmt::Debug for RepartitionStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepartitionStream")
            .field("topic", &self.writer.topic())
            .finish_non_exhaustive()
    }
}

impl<K: Data, V: Data> std::ops::Deref for RepartitionStream<K, V> {
    type Target = DStream<(K, V)>;
    fn deref(&self) -> &DStream<(K, V)> {
        &self.stream
    }
}

impl<K: Data, V: Data> RepartitionStream<K, V> {
    /// The re-keyed records.
    pub fn dstream(&self) -> &DStream<(K, V)> {
        &self.stream
    }

    /// The internal direct stream reading the topic (its offset ranges, its position).
    pub fn internal_stream(&self) -> &DirectKafkaStream {
        &self.internal
    }

    /// The repartition topic.
    pub fn topic(&self) -> &str {
        self.writer.topic()
    }

    /// Writes the topic's records, and commits the internal stream's offsets, in `output`'s
    /// per-batch transactions, and purges what they committed. Define `output` after the
    /// repartition (outputs run in the order defined, and the repartition's write is one).
    pub fn join(&self, output: &KafkaOutput) -> Result<()> {
        output.add_participant(self.writer.clone())?;
        self.writer.make_transactional();
        Ok(())
    }

    /// Records written (standalone) or handed to a transaction by this process.
    pub fn records_written(&self) -> u64 {
        self.writer.records_written()
    }

    /// DeleteRecords calls that succeeded.
    pub fn purges(&self) -> u64 {
        self.writer.purger().stats().purges.load(Ordering::Relaxed)
    }

    /// Per partition, the offset below which the last purge deleted records.
    pub fn purged_offsets(&self) -> BTreeMap<i32, i64> {
        self.writer.purger().stats().purged.lock().clone()
    }
}

/// `repartition` on keyed DStreams.
pub trait Repartition<K: Data, V: Data> {
    /// Writes every batch through the repartition topic `config` names, partitioned by key, and
    /// returns the stream reading it back (see the module docs). `source` is the job's input
    /// (the default partition count is its); `params` are the job's Kafka settings, whose
    /// `group.id` is the application id and the group the internal stream's offsets go to.
    fn repartition_through_kafka(
        &self,
        source: &DirectKafkaStream,
        params: &KafkaParams,
        config: RepartitionConfig,
    ) -> Result<RepartitionStream<K, V>>;
}

impl<K, V> Repartition<K, V> for DStream<(K, V)>
where
    K: Data + Serialize + DeserializeOwned,
    V: Data + Serialize + DeserializeOwned,
{
    fn repartition_through_kafka(
        &self,
        source: &DirectKafkaStream,
        params: &KafkaParams,
        config: RepartitionConfig,
    ) -> Result<RepartitionStream<K, V>> {
        let (topic, partitions) = open_topic(source, params, &config)?;
        let purger = Purger::start(&producer_config(params)?, &topic, config.purge_interval);
        let writer = Arc::new(RepartitionWriter::new(
            topic.clone(),
            producer_config(params)?,
            purger,
        ));
        let internal = if config.group_managed {
            group_managed_stream(self, source, params, &topic, &config)?
        } else {
            internal_stream(self, params, &topic, partitions, config.stream)?
        };
        writer.set_internal(internal.clone());
        define_write(self, &writer, partitions);
        let t = topic.clone();
        let stream = internal.map(move |r| {
            match partitioner::decode(&t, r.key.as_deref(), r.value.as_deref()) {
                Ok(kv) => kv,
                Err(e) => fail_task(e),
            }
        });
        Ok(RepartitionStream {
            stream,
            internal,
            writer,
        })
    }
}

/// The topic's name and partition count, after making sure it exists with that count.
fn open_topic(
    source: &DirectKafkaStream,
    params: &KafkaParams,
    config: &RepartitionConfig,
) -> Result<(String, i32)> {
    let application_id = match &config.application_id {
        Some(a) => a.as_str(),
        None => params.group_id().unwrap_or_default(),
    };
    if application_id.is_empty() {
        return Err(SpateKafkaError::config(
            "group.id",
            "",
            "repartition topics are named after the application id, which is the job's \
             group.id unless set with RepartitionConfig::application_id",
        ));
    }
    let topic = internal_topic_name(application_id, &config.name, "repartition", "repartition")?;
    let partitions = match config.partitions {
        Some(n) => n,
        None => source_partitions(source)?,
    };
    let wanted = i32::try_from(partitions)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            SpateKafkaError::config(
                "number_of_partitions",
                partitions.to_string(),
                "a repartition topic needs 1 to 2^31-1 partitions",
            )
        })?;
    let mut admin = producer_config(params)?;
    admin.set("allow.auto.create.topics", "false");
    ensure_internal_topic(
        &admin,
        &topic,
        partitions,
        &config.spec,
        "delete",
        |existing| {
            if existing == wanted {
                return Ok(());
            }
            Err(SpateKafkaError::RepartitionPartitions {
                topic: topic.clone(),
                topic_partitions: existing,
                expected: partitions,
            })
        },
    )?;
    Ok((topic, wanted))
}

/// The most partitions of any topic `source` subscribes to (Kafka Streams sizes a repartition
/// topic by its source topics the same way).
fn source_partitions(source: &DirectKafkaStream) -> Result<usize> {
    let mut per_topic: BTreeMap<String, usize> = BTreeMap::new();
    for tp in source.subscribed_partitions()? {
        *per_topic.entry(tp.topic).or_default() += 1;
    }
    per_topic.into_values().max().ok_or_else(|| {
        SpateKafkaError::config(
            "number_of_partitions",
            "",
            "the source stream has no partitions to size the repartition topic by; set \
             RepartitionConfig::number_of_partitions",
        )
    })
}

/// The output operation that writes each batch to the topic: records encoded and partitioned
/// in the batch's tasks, then handed to the writer.
fn define_write<K, V>(keyed: &DStream<(K, V)>, writer: &Arc<RepartitionWriter>, partitions: i32)
where
    K: Data + Serialize,
    V: Data + Serialize,
{
    let writer = writer.clone();
    keyed.foreach_batch(move |batch, time| {
        let records = batch
            .map_partitions(move |it| {
                it.map(|(k, v)| match partitioner::encode(&k, &v, partitions) {
                    Ok(r) => r,
                    Err(e) => fail_task(e),
                })
                .collect::<Vec<_>>()
            })
            .collect()?;
        writer.write(time, records)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
}

/// The direct stream reading the topic back: every partition, `read_committed` (only batches
/// whose transaction committed), from the group's committed offsets or else the beginning.
fn internal_stream<K: Data, V: Data>(
    keyed: &DStream<(K, V)>,
    params: &KafkaParams,
    topic: &str,
    partitions: i32,
    config: DirectStreamConfig,
) -> Result<DirectKafkaStream> {
    let params = params
        .clone()
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    let mut store = KafkaOffsetStore::open(params.clone())?;
    let tps = (0..partitions).map(|p| TopicPartition::new(topic, p));
    let strategy = store.assign_strategy(tps, params)?;
    KafkaUtils::create_direct_stream_with(keyed.context(), strategy, config)
}

/// The internal stream as a member of the job's group (see
/// [`RepartitionConfig::group_managed`]). Its offsets are committed with the source's member
/// metadata — one group, one generation — so the source must be group-managed too.
fn group_managed_stream<K: Data, V: Data>(
    keyed: &DStream<(K, V)>,
    source: &DirectKafkaStream,
    params: &KafkaParams,
    topic: &str,
    config: &RepartitionConfig,
) -> Result<DirectKafkaStream> {
    if source.group_member().is_none() {
        return Err(SpateKafkaError::config(
            "repartition",
            topic,
            "a group-managed repartition commits its offsets with the source's group \
             membership: create the source with ConsumerStrategy::subscribe_group_managed",
        ));
    }
    let mut params = params
        .clone()
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    if let Some(instance) = params.get("group.instance.id").map(str::to_owned) {
        params = params.set(
            "group.instance.id",
            format!("{instance}-{}-repartition", config.name),
        );
    }
    let strategy = crate::direct::strategy::ConsumerStrategy::subscribe_group_managed(
        [topic.to_owned()],
        params,
    )?;
    let internal =
        KafkaUtils::create_direct_stream_with(keyed.context(), strategy, config.stream.clone())?;
    // The keys meet their state on the repartition topic's partitions: they are the tasks.
    source.hand_tasks_to(topic);
    Ok(internal)
}

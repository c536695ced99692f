//! The topic registry: which topics exist, their ids, partition counts and config overrides, and
//! the open [`Partition`] of each.
//!
//! This broker is its own controller, so the registry is the cluster metadata. It is persisted as
//! one JSON file (`meta/topics.json`, replaced atomically) and reloaded on start, reopening every
//! partition log. Changes (create, delete, add partitions, alter configs) are serialised by one
//! mutex and written before they become visible, so a crash never leaves a topic that clients saw
//! but the next start does not know.

pub mod config;
pub mod name;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::persist;
use crate::storage::{LogConfig, LogStorage, TopicPartition};

/// One topic.
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// Topic id (Metadata v10+, Fetch v13+, DeleteTopics by id).
    pub id: Uuid,
    inner: RwLock<TopicInner>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

struct TopicInner {
    partitions: Vec<Arc<Partition>>,
    /// Topic-level config overrides, validated and normalised.
    configs: BTreeMap<String, String>,
}

impl Topic {
    /// Partition `index`, if the topic has it.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let inner = self.inner.read();
        usize::try_from(index)
            .ok()
            .and_then(|i| inner.partitions.get(i).cloned())
    }

    /// Every partition, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.inner.read().partitions.clone()
    }

    /// How many partitions the topic has.
    pub fn partition_count(&self) -> i32 {
        self.inner.read().partitions.len() as i32
    }

    /// The topic's own config overrides.
    pub fn configs(&self) -> BTreeMap<String, String> {
        self.inner.read().configs.clone()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Default)]
struct StoredTopics {
    version: u32,
    topics: Vec<StoredTopic>,
}

/// All topics of the broker.
pub struct TopicRegistry {
    storage: Arc<dyn LogStorage>,
    /// Broker-level topic config defaults (`log.*`, static and dynamic), keyed by topic
    /// config name.
    broker_defaults: RwLock<BTreeMap<String, String>>,
    path: Option<PathBuf>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    by_id: RwLock<HashMap<Uuid, Arc<Topic>>>,
    /// Serialises metadata changes and their persistence.
    change: Mutex<()>,
}

impl std::fmt::Debug for TopicRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicRegistry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// The topic's name.
    pub name: String,
    /// How many partitions to create.
    pub partitions: i32,
    /// Topic configs that override the broker's defaults (`cleanup.policy`, `retention.ms`, …).
    pub configs: BTreeMap<String, String>,
}

impl TopicRegistry {
    /// Opens the registry, reloading `path` (when given) and reopening every partition.
    pub fn open(
        storage: Arc<dyn LogStorage>,
        broker_defaults: BTreeMap<String, String>,
        path: Option<PathBuf>,
    ) -> Result<Self> {
        let reg = TopicRegistry {
            storage,
            broker_defaults: RwLock::new(broker_defaults),
            path,
            topics: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            change: Mutex::new(()),
        };
        reg.check_supported(&config::log_config(
            &reg.broker_defaults(),
            &BTreeMap::new(),
        )?)?;
        let stored = match &reg.path {
            Some(p) => persist::read_json::<StoredTopics>(p)?.unwrap_or_default(),
            None => StoredTopics::default(),
        };
        for t in stored.topics {
            let log_config = config::log_config(&reg.broker_defaults(), &t.configs)?;
            let partitions = (0..t.partitions)
                .map(|i| reg.open_partition(&t.name, i, &log_config))
                .collect::<Result<Vec<_>>>()?;
            reg.insert(Arc::new(Topic {
                name: t.name,
                id: t.id,
                inner: RwLock::new(TopicInner {
                    partitions,
                    configs: t.configs,
                }),
            }));
        }
        // A crash between opening a new partition's log and saving the registry leaves a log
        // that no topic owns. It is only reported here (the data dir may hold directories that
        // merely look like partitions); creating that partition again starts it empty.
        for tp in reg.storage.partitions()? {
            if reg.partition(&tp.topic, tp.partition).is_none() {
                tracing::warn!(partition = %tp, "found a partition log that no topic owns; ignoring it");
            }
        }
        Ok(reg)
    }

    /// Opens the partitions `from..to` of a topic being created or grown. A leftover log of the
    /// same name (see [`TopicRegistry::open`]) is removed first, so new partitions start empty.
    fn open_new_partitions(
        &self,
        topic: &str,
        from: i32,
        to: i32,
        config: &LogConfig,
    ) -> Result<Vec<Arc<Partition>>> {
        let leftovers = self.storage.partitions()?;
        (from..to)
            .map(|i| {
                let tp = TopicPartition::new(topic, i);
                if leftovers.contains(&tp) {
                    tracing::warn!(partition = %tp, "removing a leftover log before creating the partition");
                    self.storage.remove(&tp)?;
                }
                self.open_partition(topic, i, config)
            })
            .collect()
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: &LogConfig,
    ) -> Result<Arc<Partition>> {
        let tp = TopicPartition::new(topic, index);
        let log = self.storage.open(&tp, config.clone())?;
        Ok(Arc::new(Partition::open(tp, log, config.clone())?))
    }

    fn insert(&self, topic: Arc<Topic>) {
        self.by_id.write().insert(topic.id, topic.clone());
        self.topics.write().insert(topic.name.clone(), topic);
    }

    fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut topics: Vec<StoredTopic> = self
            .topics
            .read()
            .values()
            .map(|t| StoredTopic {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partition_count(),
                configs: t.configs(),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        persist::write_json(path, &StoredTopics { version: 1, topics })
    }

    /// The topic named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic with id `id`, if it exists.
    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.by_id.read().get(id).cloned()
    }

    /// Partition `index` of `topic`, if both exist.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.get(topic).and_then(|t| t.partition(index))
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Broker-level topic config defaults (a snapshot).
    pub fn broker_defaults(&self) -> BTreeMap<String, String> {
        self.broker_defaults.read().clone()
    }

    /// Checks that every topic still has a valid log config under new broker defaults.
    pub fn check_broker_defaults(&self, defaults: &BTreeMap<String, String>) -> Result<()> {
        for t in self.list() {
            self.check_supported(&config::log_config(defaults, &t.configs())?)?;
        }
        self.check_supported(&config::log_config(defaults, &BTreeMap::new())?)
    }

    /// Puts new broker defaults (a dynamic broker config change) into effect: every partition
    /// of a topic without its own override of a changed key picks up the new value at once.
    pub fn set_broker_defaults(&self, defaults: BTreeMap<String, String>) {
        let _change = self.change.lock();
        *self.broker_defaults.write() = defaults;
        let defaults = self.broker_defaults();
        for t in self.list() {
            match config::log_config(&defaults, &t.configs()) {
                Ok(log_config) => {
                    for p in t.partitions() {
                        p.update_config(log_config.clone());
                    }
                }
                // check_broker_defaults ran first; a topic created in between keeps its config.
                Err(e) => {
                    tracing::warn!(topic = %t.name, error = %e, "broker defaults not applied")
                }
            }
        }
    }

    /// Validates a new topic: name, partition count and configs. Returns normalised configs.
    pub fn validate_new(&self, t: &NewTopic) -> Result<BTreeMap<String, String>> {
        name::validate(&t.name)?;
        if t.partitions < 1 {
            return Err(BrokerError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {}",
                t.partitions
            )));
        }
        let mut configs = BTreeMap::new();
        for (k, v) in &t.configs {
            configs.insert(k.clone(), config::validate(k, v)?);
        }
        self.check_supported(&config::log_config(&self.broker_defaults(), &configs)?)?;
        if self.get(&t.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(t.name.clone()));
        }
        Ok(configs)
    }

    /// Creates a topic (or only validates it). Fails with `TopicAlreadyExists` if it exists.
    pub fn create(&self, t: NewTopic, validate_only: bool) -> Result<Arc<Topic>> {
        let _change = self.change.lock();
        let configs = self.validate_new(&t)?;
        let log_config = config::log_config(&self.broker_defaults(), &configs)?;
        let topic = if validate_only {
            Arc::new(Topic {
                name: t.name,
                id: Uuid::nil(),
                inner: RwLock::new(TopicInner {
                    partitions: Vec::new(),
                    configs,
                }),
            })
        } else {
            let partitions = self.open_new_partitions(&t.name, 0, t.partitions, &log_config)?;
            let topic = Arc::new(Topic {
                name: t.name,
                id: Uuid::new_v4(),
                inner: RwLock::new(TopicInner {
                    partitions,
                    configs,
                }),
            });
            self.insert(topic.clone());
            if let Err(e) = self.save() {
                self.topics.write().remove(&topic.name);
                self.by_id.write().remove(&topic.id);
                return Err(e);
            }
            tracing::info!(topic = %topic.name, id = %topic.id, partitions = t.partitions, "created topic");
            topic
        };
        Ok(topic)
    }

    /// Deletes a topic and its partition logs.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>> {
        let _change = self.change.lock();
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        self.by_id.write().remove(&topic.id);
        self.save()?;
        for p in topic.partitions() {
            self.storage.remove(&p.tp)?;
            p.wake_fetchers();
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic)
    }

    /// Raises a topic's partition count to `count` (Kafka cannot decrease it).
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        let _change = self.change.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic {name} currently has {current} partitions, {count} would not be an increase"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let log_config = config::log_config(&self.broker_defaults(), &topic.configs())?;
        let added = self.open_new_partitions(name, current, count, &log_config)?;
        topic.inner.write().partitions.extend(added);
        self.save()?;
        tracing::info!(topic = %name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides with `configs` (validated first; AlterConfigs
    /// semantics). IncrementalAlterConfigs computes the new set and calls this.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let _change = self.change.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        let mut normalised = BTreeMap::new();
        for (k, v) in &configs {
            normalised.insert(k.clone(), config::validate(k, v)?);
        }
        let log_config = config::log_config(&self.broker_defaults(), &normalised)?;
        self.check_supported(&log_config)?;
        if validate_only {
            return Ok(());
        }
        let old = std::mem::replace(&mut topic.inner.write().configs, normalised);
        if let Err(e) = self.save() {
            topic.inner.write().configs = old;
            return Err(e);
        }
        for p in topic.partitions() {
            p.update_config(log_config.clone());
        }
        Ok(())
    }

    /// Refuses what the storage cannot do rather than accepting it and ignoring it.
    pub fn check_supported(&self, c: &LogConfig) -> Result<()> {
        if c.compact() && !self.storage.supports_compaction() {
            return Err(BrokerError::invalid_config(
                "cleanup.policy",
                "compact",
                "not supported by this broker's in-memory storage (use the disk storage)",
            ));
        }
        Ok(())
    }

    /// Clean shutdown of the storage (after the last append).
    pub fn close_storage(&self) -> Result<()> {
        self.storage.close()
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.list().iter().flat_map(|t| t.partitions()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    fn one_record_batch() -> Vec<u8> {
        use kafka_protocol::records::*;
        let r = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1,
            key: None,
            value: Some(bytes::Bytes::from_static(b"old")),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [&r],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn leftover_logs_are_kept_until_their_partition_is_created() {
        let storage = Arc::new(MemoryStorage::new());
        let tp = TopicPartition::new("t", 1);
        let log = storage.open(&tp, LogConfig::default()).unwrap();
        let mut b = one_record_batch();
        let h = crate::record_batch::BatchHeader::parse(&b).unwrap();
        log.append(&mut b, &h).unwrap();

        let reg = TopicRegistry::open(storage.clone(), BTreeMap::new(), None).unwrap();
        assert_eq!(
            storage.partitions().unwrap(),
            vec![tp.clone()],
            "not deleted on open"
        );
        reg.create(new_topic("t", 1), false).unwrap();
        assert_eq!(
            storage.partitions().unwrap(),
            vec![TopicPartition::new("t", 0), tp.clone()]
        );
        reg.create_partitions("t", 2, false).unwrap();
        assert_eq!(
            reg.partition("t", 1).unwrap().log().log_end_offset(),
            0,
            "starts empty"
        );
    }

    #[test]
    fn registry_persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.json");
        let storage = Arc::new(MemoryStorage::new());
        let reg =
            TopicRegistry::open(storage.clone(), BTreeMap::new(), Some(path.clone())).unwrap();
        let mut nt = new_topic("a", 2);
        nt.configs.insert("retention.ms".into(), " 5000".into());
        let id = reg.create(nt, false).unwrap().id;
        reg.create(new_topic("b", 1), true).unwrap();
        assert!(reg.get("b").is_none(), "validate_only creates nothing");
        assert!(matches!(
            reg.create(new_topic("a", 1), false),
            Err(BrokerError::TopicAlreadyExists(_))
        ));
        assert!(matches!(
            reg.create_partitions("a", 1, false),
            Err(BrokerError::InvalidPartitions(_))
        ));

        let again = TopicRegistry::open(storage, BTreeMap::new(), Some(path)).unwrap();
        let a = again.get("a").unwrap();
        assert_eq!((a.id, a.partition_count()), (id, 2));
        assert_eq!(a.configs().get("retention.ms").unwrap(), "5000");
        assert_eq!(again.get_by_id(&id).unwrap().name, "a");
        again.delete("a").unwrap();
        assert!(again.get_by_id(&id).is_none());
    }
}

//! The committed-offset store: every group's last committed offset per partition, in memory
//! for OffsetFetch and written through to the [`OffsetsLog`] so that it survives restarts.
//!
//! The store knows nothing about members or generations; the coordinator validates a commit
//! against the group first and only then writes it here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::Result;

use super::offsets_log::{GroupRecord, LogEntry, OffsetRecord, OffsetsLog};

/// A committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The committed offset: the next record the group reads.
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    /// The metadata string committed with the offset.
    pub metadata: String,
    /// When the offset was committed (ms since the epoch); retention counts from here.
    pub commit_timestamp_ms: i64,
    /// OffsetCommit v1's per-partition retention; `None` = the broker's retention applies.
    pub expire_timestamp_ms: Option<i64>,
}

/// `(topic, partition)`, ordered so that listings come out sorted.
pub type PartitionKey = (String, i32);

/// All committed offsets, by group.
#[derive(Debug, Default)]
pub struct OffsetStore {
    groups: HashMap<String, BTreeMap<PartitionKey, CommittedOffset>>,
    /// The last stored membership of each group (durable membership, as Kafka's group records).
    memberships: HashMap<String, GroupRecord>,
    /// Consumer-protocol groups' encoded state (see `durable_consumer_group`).
    consumer_groups: HashMap<String, Vec<u8>>,
    /// `None` for a broker without a data directory (tests, `--in-memory`).
    log: Option<OffsetsLog>,
}

impl OffsetStore {
    /// An empty store that keeps nothing on disk.
    pub fn in_memory() -> Self {
        OffsetStore::default()
    }

    /// Opens the store in `dir`, replaying its log.
    pub fn open(dir: &Path) -> Result<Self> {
        let (log, entries) = OffsetsLog::open(dir)?;
        let mut store = OffsetStore {
            groups: HashMap::new(),
            memberships: HashMap::new(),
            consumer_groups: HashMap::new(),
            log: Some(log),
        };
        for entry in entries {
            store.apply(entry);
        }
        tracing::info!(groups = store.groups.len(), dir = %dir.display(),
                       "loaded committed offsets");
        Ok(store)
    }

    fn apply(&mut self, entry: LogEntry) {
        match entry {
            LogEntry::Commit(r) => {
                self.groups.entry(r.group).or_default().insert(
                    (r.topic, r.partition),
                    CommittedOffset {
                        offset: r.offset,
                        leader_epoch: r.leader_epoch,
                        metadata: r.metadata,
                        commit_timestamp_ms: r.commit_timestamp_ms,
                        expire_timestamp_ms: r.expire_timestamp_ms,
                    },
                );
            }
            LogEntry::Delete {
                group,
                topic,
                partition,
            } => {
                if let Some(offsets) = self.groups.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                    if offsets.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
            LogEntry::Group(g) => {
                self.memberships.insert(g.group.clone(), g);
            }
            LogEntry::ConsumerGroup { group, state } => {
                self.consumer_groups.insert(group, state);
            }
            LogEntry::GroupTombstone { group } => {
                self.consumer_groups.remove(&group);
                self.memberships.remove(&group);
            }
        }
    }

    /// Writes entries to the log (durably) and then applies them in memory, so memory never
    /// shows an offset that a restart would lose.
    fn write(&mut self, entries: Vec<LogEntry>) -> Result<()> {
        if let Some(log) = self.log.as_mut() {
            log.append(&entries)?;
        }
        for e in entries {
            self.apply(e);
        }
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<()> {
        let live = self.len();
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        if !log.should_compact(live) {
            return Ok(());
        }
        let memberships = self.memberships.values().cloned().map(LogEntry::Group);
        let consumer_groups =
            self.consumer_groups
                .iter()
                .map(|(group, state)| LogEntry::ConsumerGroup {
                    group: group.clone(),
                    state: state.clone(),
                });
        let snapshot: Vec<LogEntry> = self
            .groups
            .iter()
            .flat_map(|(group, offsets)| {
                offsets.iter().map(move |((topic, partition), c)| {
                    LogEntry::Commit(OffsetRecord {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: c.offset,
                        leader_epoch: c.leader_epoch,
                        metadata: c.metadata.clone(),
                        commit_timestamp_ms: c.commit_timestamp_ms,
                        expire_timestamp_ms: c.expire_timestamp_ms,
                    })
                })
            })
            .chain(memberships)
            .chain(consumer_groups)
            .collect();
        log.compact(&snapshot)
    }

    /// Number of live records: committed offsets and stored memberships.
    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum::<usize>()
            + self.memberships.len()
            + self.consumer_groups.len()
    }

    /// Whether no group has a committed offset.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Commits offsets of `group` (one durable write for the whole request).
    pub fn commit(
        &mut self,
        group: &str,
        offsets: Vec<(PartitionKey, CommittedOffset)>,
    ) -> Result<()> {
        let entries = offsets
            .into_iter()
            .map(|((topic, partition), c)| {
                LogEntry::Commit(OffsetRecord {
                    group: group.to_owned(),
                    topic,
                    partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata,
                    commit_timestamp_ms: c.commit_timestamp_ms,
                    expire_timestamp_ms: c.expire_timestamp_ms,
                })
            })
            .collect();
        self.write(entries)
    }

    /// Stores a group's membership durably (replacing the previous one).
    pub fn store_membership(&mut self, record: GroupRecord) -> Result<()> {
        self.write(vec![LogEntry::Group(record)])
    }

    /// Forgets a group's stored membership (DeleteGroups, or a group removed as unused).
    pub fn delete_membership(&mut self, group: &str) -> Result<()> {
        if !self.memberships.contains_key(group) && !self.consumer_groups.contains_key(group) {
            return Ok(());
        }
        self.write(vec![LogEntry::GroupTombstone {
            group: group.to_owned(),
        }])
    }

    /// Stores a consumer-protocol group's encoded state durably (replacing the previous one).
    pub fn store_consumer_group(&mut self, group: &str, state: Vec<u8>) -> Result<()> {
        self.write(vec![LogEntry::ConsumerGroup {
            group: group.to_owned(),
            state,
        }])
    }

    /// Every stored consumer-protocol group: id and encoded state (loaded on start).
    pub fn consumer_groups(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.consumer_groups.iter()
    }

    /// Every stored membership (loaded on start).
    pub fn memberships(&self) -> impl Iterator<Item = &GroupRecord> {
        self.memberships.values()
    }

    /// The committed offset of one partition.
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups.get(group)?.get(&(topic.to_owned(), partition))
    }

    /// Every committed offset of `group`, sorted by topic and partition.
    pub fn group_offsets(&self, group: &str) -> Option<&BTreeMap<PartitionKey, CommittedOffset>> {
        self.groups.get(group)
    }

    /// Whether `group` has any committed offset.
    pub fn has_offsets(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    /// Deletes the given partitions' offsets of `group` (OffsetDelete).
    pub fn delete(&mut self, group: &str, partitions: &[PartitionKey]) -> Result<()> {
        let Some(existing) = self.groups.get(group) else {
            return Ok(());
        };
        let entries = partitions
            .iter()
            .filter(|k| existing.contains_key(*k))
            .map(|(topic, partition)| LogEntry::Delete {
                group: group.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        self.write(entries)
    }

    /// Deletes every offset of `group` (DeleteGroups).
    pub fn delete_group(&mut self, group: &str) -> Result<()> {
        let keys: Vec<PartitionKey> = self
            .groups
            .get(group)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        self.delete(group, &keys)
    }

    /// Offsets of `group` that are expired at `now_ms`. `empty_since_ms` is when a group using
    /// group management became Empty (Kafka 2.1+ counts retention from then); for a group that
    /// never used group management (`None`), each offset's own commit time counts.
    pub fn expired(
        &self,
        group: &str,
        empty_since_ms: Option<i64>,
        retention_ms: i64,
        now_ms: i64,
    ) -> Vec<PartitionKey> {
        let Some(offsets) = self.groups.get(group) else {
            return Vec::new();
        };
        offsets
            .iter()
            .filter(|(_, c)| {
                let expires_at = c.expire_timestamp_ms.unwrap_or_else(|| {
                    empty_since_ms.unwrap_or(c.commit_timestamp_ms) + retention_ms
                });
                now_ms >= expires_at
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: i64, ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: ts,
            expire_timestamp_ms: None,
        }
    }

    #[test]
    fn commits_survive_reopen_and_deletes_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::open(dir.path()).unwrap();
        store
            .commit(
                "g",
                vec![(("a".into(), 0), c(10, 1)), (("a".into(), 1), c(20, 1))],
            )
            .unwrap();
        store
            .commit("g", vec![(("a".into(), 0), c(11, 2))])
            .unwrap();
        store.commit("h", vec![(("b".into(), 0), c(1, 2))]).unwrap();
        store.delete("g", &[("a".into(), 1)]).unwrap();
        store.delete_group("h").unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", "a", 0).map(|c| c.offset), Some(11));
        assert_eq!(store.get("g", "a", 1), None);
        assert!(!store.has_offsets("h"));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn many_commits_compact_and_keep_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::open(dir.path()).unwrap();
        for i in 0..1200 {
            store
                .commit("g", vec![(("t".into(), (i % 3) as i32), c(i, i))])
                .unwrap();
        }
        let size = std::fs::metadata(dir.path().join("offsets.log"))
            .unwrap()
            .len();
        // 1200 records of ~40 bytes would be ~48 KB; compaction keeps it near the live set.
        assert!(size < 20_000, "log not compacted: {size} bytes");
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", "t", 0).map(|c| c.offset), Some(1197));
        assert_eq!(store.get("g", "t", 1).map(|c| c.offset), Some(1198));
        assert_eq!(store.get("g", "t", 2).map(|c| c.offset), Some(1199));
    }

    #[test]
    fn expiry_counts_from_empty_or_commit_time() {
        let mut store = OffsetStore::in_memory();
        store
            .commit(
                "g",
                vec![(("t".into(), 0), c(1, 100)), (("t".into(), 1), c(1, 500))],
            )
            .unwrap();
        // Simple (no group management): per-offset commit time.
        assert_eq!(store.expired("g", None, 1000, 1200), vec![("t".into(), 0)]);
        // Group became empty at 2000: nothing expires before 3000.
        assert!(store.expired("g", Some(2000), 1000, 2999).is_empty());
        assert_eq!(store.expired("g", Some(2000), 1000, 3000).len(), 2);
    }
}

//! `DiskStorage`: the data directory, the partition directories in it, and the open logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::checkpoint::sync_dir;
use super::log::{now_ms, DiskLog};
use super::DiskOptions;
use crate::error::{BrokerError, Result};
use crate::storage::{LogConfig, LogStorage, PartitionLog, TopicPartition};

/// Suffix of a partition directory being deleted (renamed first, so a crash mid-delete never
/// leaves a half-deleted partition that looks live).
const DELETE_SUFFIX: &str = "-delete";

/// The segmented on-disk [`LogStorage`].
pub struct DiskStorage {
    data_dir: PathBuf,
    options: DiskOptions,
    logs: Mutex<HashMap<TopicPartition, Arc<DiskLog>>>,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens (creating if needed) the data directory. Partition logs are opened, and recovered,
    /// lazily by [`LogStorage::open`]; [`LogStorage::partitions`] lists those found on disk.
    /// Leftovers of interrupted partition deletions are removed.
    pub fn open(data_dir: impl Into<PathBuf>, options: DiskOptions) -> Result<DiskStorage> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir).map_err(|e| BrokerError::io(&data_dir, e))?;
        let rd = std::fs::read_dir(&data_dir).map_err(|e| BrokerError::io(&data_dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| BrokerError::io(&data_dir, e))?;
            let path = entry.path();
            if path.is_dir()
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(DELETE_SUFFIX))
            {
                std::fs::remove_dir_all(&path).map_err(|e| BrokerError::io(&path, e))?;
            }
        }
        Ok(DiskStorage {
            data_dir,
            options,
            logs: Mutex::new(HashMap::new()),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory of a partition: `<data_dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.data_dir.join(tp.to_string())
    }

    /// Opens `tp` as a [`DiskLog`] (the concrete type, for tools and tests that need more than
    /// the trait).
    pub fn open_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<DiskLog>> {
        validate_topic_name(&tp.topic)?;
        if tp.partition < 0 {
            return Err(BrokerError::UnknownTopicPartition(tp.to_string()));
        }
        let mut logs = self.logs.lock();
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let log = Arc::new(DiskLog::open(
            self.partition_dir(tp),
            tp,
            config,
            self.options.clone(),
        )?);
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// fsyncs every open partition.
    pub fn flush_all(&self) -> Result<()> {
        let logs: Vec<_> = self.logs.lock().values().cloned().collect();
        for log in logs {
            log.flush()?;
        }
        Ok(())
    }
}

impl LogStorage for DiskStorage {
    fn open(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<dyn PartitionLog>> {
        Ok(self.open_log(tp, config)?)
    }

    fn remove(&self, tp: &TopicPartition) -> Result<()> {
        if let Some(log) = self.logs.lock().remove(tp) {
            // Serialise with an in-flight append, then refuse later ones.
            let _app = log.appender.lock();
            log.deleted.store(true, Ordering::Release);
        }
        let dir = self.partition_dir(tp);
        if !dir.exists() {
            return Ok(());
        }
        let doomed = self
            .data_dir
            .join(format!("{tp}.{}{DELETE_SUFFIX}", now_ms()));
        std::fs::rename(&dir, &doomed).map_err(|e| BrokerError::io(&dir, e))?;
        sync_dir(&self.data_dir)?;
        std::fs::remove_dir_all(&doomed).map_err(|e| BrokerError::io(&doomed, e))?;
        sync_dir(&self.data_dir)
    }

    /// Clean shutdown: [`DiskLog::close`]s every open partition, so that the next start skips
    /// re-validating their active segments. Appends to these logs fail afterwards; the storage
    /// itself stays usable (opening a partition again reopens it from disk).
    fn close(&self) -> Result<()> {
        let logs: Vec<_> = self.logs.lock().drain().map(|(_, log)| log).collect();
        for log in logs {
            log.close()?;
        }
        Ok(())
    }

    fn supports_compaction(&self) -> bool {
        true
    }

    fn partitions(&self) -> Result<Vec<TopicPartition>> {
        let mut found = Vec::new();
        let rd =
            std::fs::read_dir(&self.data_dir).map_err(|e| BrokerError::io(&self.data_dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| BrokerError::io(&self.data_dir, e))?;
            if !entry.path().is_dir() {
                continue;
            }
            if let Some(tp) = entry.file_name().to_str().and_then(parse_partition_dir) {
                found.push(tp);
            }
        }
        found.sort();
        Ok(found)
    }
}

/// `<topic>-<partition>`, split at the last dash (topic names may contain dashes).
pub(crate) fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    validate_topic_name(topic).ok()?;
    Some(TopicPartition::new(topic, partition))
}

/// Kafka's topic name rules, which also make the name safe as a directory name.
pub(crate) fn validate_topic_name(topic: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(BrokerError::InvalidTopicName {
            topic: topic.to_string(),
            reason: reason.to_string(),
        })
    };
    if topic.is_empty() {
        return invalid("empty");
    }
    if topic == "." || topic == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if topic.len() > 249 {
        return invalid("longer than 249 characters");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dirs_split_at_the_last_dash() {
        assert_eq!(
            parse_partition_dir("my-topic-12"),
            Some(TopicPartition::new("my-topic", 12))
        );
        assert_eq!(
            parse_partition_dir("t-0"),
            Some(TopicPartition::new("t", 0))
        );
        assert_eq!(parse_partition_dir("t-0.123-delete"), None);
        assert_eq!(parse_partition_dir("t-"), None);
        assert_eq!(parse_partition_dir("-3"), None);
        assert_eq!(
            parse_partition_dir("t--1"),
            Some(TopicPartition::new("t-", 1))
        );
        assert_eq!(parse_partition_dir("notapartition"), None);
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name("ok.topic_name-1").is_ok());
    }
}

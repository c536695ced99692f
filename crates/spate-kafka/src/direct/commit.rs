//! [`OffsetCommitter`]: Spark's `CanCommitOffsets.commitAsync` — ranges whose outputs have
//! succeeded are committed to the user's consumer group, so lag tools see the stream's progress.
//!
//! Spark only queues the ranges and commits them at the *next* batch generation, so commits
//! arrive one batch late, and a stopped job never commits its last batch. Here a committer thread commits as soon as a request is
//! queued, merging whatever queued up meanwhile (highest `until_offset` per partition), and runs
//! every request's callback with the outcome. Committed offsets are advisory (for lag tools): the
//! checkpoint stays the source of truth, since a commit can fail or lag behind outputs.

use std::collections::BTreeMap;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::direct::config::DirectStreamConfig;
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::error::{Result, SpateKafkaError};

/// The offsets a commit wrote (next offset to read, per partition), or why it failed.
pub type CommitResult = Result<BTreeMap<TopicPartition, i64>>;

/// A commit callback: runs once with the outcome.
pub type CommitCallback = Box<dyn FnOnce(&CommitResult) + Send>;

struct Request {
    ranges: Vec<OffsetRange>,
    callback: Option<CommitCallback>,
}

/// Something that can commit offset ranges to Kafka (Spark's `CanCommitOffsets`).
pub trait CanCommitOffsets {
    /// Queues `ranges` for commit; `callback` gets the outcome.
    fn commit_async(&self, ranges: &[OffsetRange], callback: Option<CommitCallback>);
}

/// Commits offsets of one consumer group on a background thread.
pub struct OffsetCommitter {
    group: String,
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OffsetCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetCommitter")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl OffsetCommitter {
    /// A committer for `params`' `group.id` (required).
    pub fn new(params: &KafkaParams, config: &DirectStreamConfig) -> Result<Self> {
        let group = params
            .group_id()
            .ok_or_else(|| {
                SpateKafkaError::config(
                    "group.id",
                    "",
                    "commit_async needs the consumer group to commit to",
                )
            })?
            .to_owned();
        let consumer: BaseConsumer = params
            .driver_config()?
            .create()
            .map_err(|e| SpateKafkaError::client("creating the offset committer", e))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let config = config.clone();
        let g = group.clone();
        let thread = std::thread::Builder::new()
            .name(format!("spate-commit-{group}"))
            .spawn(move || run(consumer, g, config, rx))
            .map_err(|e| SpateKafkaError::config("commit thread", "", e.to_string()))?;
        Ok(OffsetCommitter {
            group,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// The consumer group offsets are committed to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Queues `ranges`; `callback` runs on the committer thread with the outcome.
    pub fn commit_async_with(
        &self,
        ranges: &[OffsetRange],
        callback: impl FnOnce(&CommitResult) + Send + 'static,
    ) {
        self.send(ranges, Some(Box::new(callback)));
    }

    fn send(&self, ranges: &[OffsetRange], callback: Option<CommitCallback>) {
        let req = Request {
            ranges: ranges.to_vec(),
            callback,
        };
        if let Some(tx) = &self.tx {
            if let Err(crossbeam_channel::SendError(req)) = tx.send(req) {
                tracing::error!(group = %self.group, "offset committer stopped; commit dropped");
                if let Some(cb) = req.callback {
                    cb(&Err(SpateKafkaError::config(
                        "commit_async",
                        "",
                        "the offset committer has stopped",
                    )));
                }
            }
        }
    }
}

impl CanCommitOffsets for OffsetCommitter {
    fn commit_async(&self, ranges: &[OffsetRange], callback: Option<CommitCallback>) {
        self.send(ranges, callback);
    }
}

impl Drop for OffsetCommitter {
    /// Commits what is still queued, then stops the thread.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(consumer: BaseConsumer, group: String, config: DirectStreamConfig, rx: Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut offsets: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for r in &batch {
            for range in &r.ranges {
                let e = offsets
                    .entry(range.topic_partition())
                    .or_insert(range.until_offset);
                *e = (*e).max(range.until_offset);
            }
        }
        let result = commit(&consumer, &group, &config, &offsets).map(|()| offsets);
        match &result {
            Ok(o) => tracing::debug!(%group, partitions = o.len(), "offsets committed"),
            Err(e) => tracing::warn!(%group, error = %e, "offset commit failed"),
        }
        for r in batch {
            if let Some(cb) = r.callback {
                cb(&result);
            }
        }
    }
}

fn commit(
    consumer: &BaseConsumer,
    group: &str,
    config: &DirectStreamConfig,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (tp, &o) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(o))
            .map_err(|source| SpateKafkaError::CommitFailed {
                group: group.to_owned(),
                source,
            })?;
    }
    config
        .retry
        .run(&format!("committing offsets of group {group}"), || {
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .map_err(|e| match e {
            SpateKafkaError::Client { source, .. } => SpateKafkaError::CommitFailed {
                group: group.to_owned(),
                source,
            },
            other => other,
        })
}

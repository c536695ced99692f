//! Purging a repartition topic (Kafka Streams' `repartition.purge.interval.ms`): once a batch's
//! transaction committed the internal stream's offsets, the records below them are consumed for
//! good and only take disk space, so they are deleted with DeleteRecords (the partition's log
//! start offset moves up to the committed offset). Purges run on a thread of their own, at most
//! once per interval and only when some committed offset is above what the last purge reached,
//! so a batch never waits for the admin round trip. Committed offsets of partitions that had
//! nothing new count too: a run that starts after a kill purges what the killed run committed
//! but did not live to purge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::{Offset, TopicPartitionList};

/// How long one DeleteRecords call may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the purges did, for the job's handle and its tests.
#[derive(Debug, Default)]
pub(crate) struct PurgeStats {
    /// DeleteRecords calls that succeeded.
    pub(crate) purges: AtomicU64,
    /// Per partition, the offset below which records were deleted by the last purge.
    pub(crate) purged: Mutex<BTreeMap<i32, i64>>,
}

/// The handle of the purge thread: committed offsets go in, the thread ends when it is dropped.
pub(crate) struct Purger {
    committed: Sender<BTreeMap<i32, i64>>,
    stats: Arc<PurgeStats>,
}

impl Purger {
    /// Starts the purge thread of `topic` (admin client from `config`), purging at most once
    /// per `interval`.
    pub(crate) fn start(config: &ClientConfig, topic: &str, interval: Duration) -> Self {
        let (committed, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(PurgeStats::default());
        let admin: Option<AdminClient<DefaultClientContext>> = match config.create() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(%topic, error = %e, "no admin client: the repartition topic is not purged");
                None
            }
        };
        if let Some(admin) = admin {
            let thread = PurgeThread {
                admin,
                topic: topic.to_owned(),
                interval,
                stats: stats.clone(),
            };
            let name = format!("purge-{topic}");
            let spawned = std::thread::Builder::new()
                .name(name.chars().take(15).collect())
                .spawn(move || thread.run(&rx));
            if let Err(e) = spawned {
                tracing::warn!(%topic, error = %e, "no purge thread: the repartition topic is not purged");
            }
        }
        Purger { committed, stats }
    }

    /// Offsets committed by a transaction: records below them may go.
    pub(crate) fn committed(&self, offsets: BTreeMap<i32, i64>) {
        if !offsets.is_empty() {
            // The thread is gone only when it could not start; that was logged then.
            let _ = self.committed.send(offsets);
        }
    }

    pub(crate) fn stats(&self) -> &PurgeStats {
        &self.stats
    }
}

struct PurgeThread {
    admin: AdminClient<DefaultClientContext>,
    topic: String,
    interval: Duration,
    stats: Arc<PurgeStats>,
}

impl PurgeThread {
    fn run(self, committed: &Receiver<BTreeMap<i32, i64>>) {
        let mut due: BTreeMap<i32, i64> = BTreeMap::new();
        let mut last = Instant::now();
        loop {
            // Nothing due: sleep until a commit; else until the interval is over.
            let received = if due.is_empty() {
                committed.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                committed.recv_timeout(self.interval.saturating_sub(last.elapsed()))
            };
            match received {
                Ok(offsets) => merge(&mut due, self.not_purged(offsets)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if due.is_empty() || last.elapsed() < self.interval {
                continue;
            }
            last = Instant::now();
            match self.delete(&due) {
                Ok(()) => {
                    self.stats.purges.fetch_add(1, Ordering::Relaxed);
                    merge(&mut self.stats.purged.lock(), std::mem::take(&mut due));
                }
                // Nothing is lost by purging later: the next interval tries again with the
                // offsets committed by then.
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "purging the repartition topic failed")
                }
            }
        }
    }

    /// The offsets above what the last purges reached: the rest would delete nothing.
    fn not_purged(&self, mut offsets: BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
        let purged = self.stats.purged.lock();
        offsets.retain(|p, o| *o > purged.get(p).copied().unwrap_or(0));
        offsets
    }

    /// DeleteRecords below `offsets`; the first partition's error fails the call.
    fn delete(&self, offsets: &BTreeMap<i32, i64>) -> Result<(), String> {
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in offsets {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(|e| e.to_string())?;
        }
        let opts = AdminOptions::new().operation_timeout(Some(DELETE_TIMEOUT));
        let result = futures_executor::block_on(self.admin.delete_records(&tpl, &opts))
            .map_err(|e| e.to_string())?;
        for e in result.elements() {
            e.error()
                .map_err(|err| format!("partition {}: {err}", e.partition()))?;
        }
        tracing::debug!(topic = %self.topic, ?offsets, "purged the repartition topic");
        Ok(())
    }
}

/// Keeps the highest offset per partition.
fn merge(into: &mut BTreeMap<i32, i64>, offsets: BTreeMap<i32, i64>) {
    for (p, o) in offsets {
        let e = into.entry(p).or_insert(o);
        *e = (*e).max(o);
    }
}

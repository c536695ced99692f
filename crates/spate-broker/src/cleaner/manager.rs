//! The cleaner threads and what they know about each partition (Kafka's `LogCleaner` and
//! `LogCleanerManager`).
//!
//! Each of `log.cleaner.threads` threads repeatedly grabs the filthiest compacted log — the
//! highest dirty ratio among logs above their `min.cleanable.dirty.ratio`, or any log whose
//! oldest dirty record passed `max.compaction.lag.ms`, or whose kept tombstones reached their
//! delete horizon — cleans it, and sleeps `log.cleaner.backoff.ms` when no log qualifies. A log
//! is cleaned by one thread at a time. Per-partition status (dirty ratio, last cleaning) and
//! running totals are kept for `topics describe` and the metrics endpoint.
//!
//! The dynamic `log.cleaner.*` settings ([`LogCleaner::reconfigure`]) take effect without a
//! restart: each thread compares the config generation before it picks a log and rebuilds its
//! offset map when it changed; threads past a lowered `log.cleaner.threads` exit after their
//! current cleaning (Kafka restarts all of them, aborting cleanings in progress; finishing them
//! loses nothing), and a raised count starts the missing threads at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::pass::{CleanStats, Cleaner, PassOutcome};
use super::range::cleanable_range;
use super::throttle::Throttle;
use super::CleanerConfig;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::storage::{CleanupPolicy, TopicPartition};

/// The partitions the cleaner may look at (the broker's topic registry).
pub type PartitionSource = Box<dyn Fn() -> Vec<Arc<Partition>> + Send + Sync>;

/// The last finished cleaning of a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastCleaning {
    /// Wall-clock end of the cleaning (ms since the epoch).
    pub finished_ms: i64,
    /// What the cleaning read, kept and wrote.
    pub stats: CleanStats,
}

/// What the cleaner reports about one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionCleanerStatus {
    /// Whether the topic's `cleanup.policy` includes `compact`.
    pub compacted: bool,
    /// Dirty over clean plus dirty bytes, compared with `min.cleanable.dirty.ratio`.
    pub dirty_ratio: f64,
    /// Bytes of the log that are already cleaned (below the first dirty offset).
    pub clean_bytes: u64,
    /// Bytes written since the last cleaning, up to the first uncleanable offset.
    pub dirty_bytes: u64,
    /// The first offset not yet cleaned (Kafka's cleaner checkpoint).
    pub first_dirty_offset: i64,
    /// Where cleanable data ends: the active segment, the last stable offset or `min.compaction.lag.ms`.
    pub first_uncleanable_offset: i64,
    /// Whether a cleaning of the partition is running now.
    pub in_progress: bool,
    /// The last finished cleaning, if any since the broker started.
    pub last_cleaning: Option<LastCleaning>,
}

/// Running totals since the broker started (the metrics endpoint's counters).
#[derive(Debug, Default)]
pub struct CleanerTotals {
    /// Cleanings finished.
    pub cleanings: AtomicU64,
    /// Bytes the cleaner read.
    pub bytes_read: AtomicU64,
    /// Bytes the cleaner wrote into cleaned segments.
    pub bytes_written: AtomicU64,
    /// Records the cleaner read.
    pub records_read: AtomicU64,
    /// Records the cleaner kept.
    pub records_kept: AtomicU64,
    /// Milliseconds spent cleaning.
    pub cleaning_ms: AtomicU64,
    /// Cleanings that failed (the cleaner then waits `log.cleaner.backoff.ms`).
    pub failures: AtomicU64,
}

#[derive(Default)]
struct Book {
    in_progress: HashSet<TopicPartition>,
    last: HashMap<TopicPartition, LastCleaning>,
}

/// The cleaner threads and their bookkeeping.
pub struct LogCleaner {
    config: RwLock<CleanerConfig>,
    /// Bumped by every [`Self::reconfigure`]; threads rebuild their `Cleaner` when it moves.
    generation: AtomicU64,
    throttle: Arc<Throttle>,
    source: OnceLock<PartitionSource>,
    book: Mutex<Book>,
    /// Signalled when a log is released or the cleaner stops.
    changed: Condvar,
    stop: AtomicBool,
    /// Running threads by index; a thread removes itself when it exits on a lowered count.
    threads: Mutex<BTreeMap<usize, JoinHandle<()>>>,
    /// Running totals since the broker started, for the metrics endpoint.
    pub totals: CleanerTotals,
}

impl std::fmt::Debug for LogCleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCleaner")
            .field("config", &self.config)
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl LogCleaner {
    /// A cleaner with no thread running until [`Self::start`].
    pub fn new(config: CleanerConfig) -> Arc<LogCleaner> {
        Arc::new(LogCleaner {
            throttle: Arc::new(Throttle::new(config.io_max_bytes_per_second)),
            config: RwLock::new(config),
            generation: AtomicU64::new(0),
            source: OnceLock::new(),
            book: Mutex::new(Book::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            threads: Mutex::new(BTreeMap::new()),
            totals: CleanerTotals::default(),
        })
    }

    /// The settings in force now.
    pub fn config(&self) -> CleanerConfig {
        self.config.read().clone()
    }

    /// How many cleaner threads are running now.
    pub fn running_threads(&self) -> usize {
        self.threads
            .lock()
            .values()
            .filter(|t| !t.is_finished())
            .count()
    }

    /// Applies new `log.cleaner.*` settings at runtime (dynamic broker config); `next` must
    /// have passed [`CleanerConfig::check_reconfiguration`]. `log.cleaner.enable` is not
    /// dynamic and keeps its value.
    pub fn reconfigure(self: &Arc<Self>, mut next: CleanerConfig) -> Result<()> {
        {
            let mut config = self.config.write();
            next.enable = config.enable;
            if *config == next {
                return Ok(());
            }
            tracing::info!(?next, "log cleaner settings changed");
            *config = next.clone();
        }
        self.throttle.set_rate(next.io_max_bytes_per_second);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if self.source.get().is_some() && next.enable {
            self.spawn_missing_threads(next.threads)?;
        }
        self.wake();
        Ok(())
    }

    /// Starts `log.cleaner.threads` threads (none when `log.cleaner.enable=false`) over the
    /// partitions `source` lists.
    pub fn start(self: &Arc<Self>, source: PartitionSource) -> Result<()> {
        if self.source.set(source).is_err() {
            return Err(BrokerError::Runtime(
                "the log cleaner was started twice".into(),
            ));
        }
        let config = self.config();
        if !config.enable {
            return Ok(());
        }
        self.spawn_missing_threads(config.threads)
    }

    /// Starts a thread for every index below `count` that has none running.
    fn spawn_missing_threads(self: &Arc<Self>, count: usize) -> Result<()> {
        let mut threads = self.threads.lock();
        if self.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        for i in 0..count {
            if threads.get(&i).is_some_and(|t| !t.is_finished()) {
                continue;
            }
            let me = self.clone();
            let t = std::thread::Builder::new()
                .name(format!("spate-log-cleaner-{i}"))
                .spawn(move || me.run_thread(i))
                .map_err(|e| BrokerError::Runtime(format!("spawning a cleaner thread: {e}")))?;
            threads.insert(i, t);
        }
        Ok(())
    }

    /// Stops the threads, aborting cleanings in progress (their `.cleaned` files are dropped),
    /// and waits for them.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        {
            let _book = self.book.lock();
            self.changed.notify_all();
        }
        // Joined outside the lock: an exiting thread takes it to remove itself.
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads.into_values() {
            let _ = t.join();
        }
    }

    /// A cleaner with the current settings, and the generation they belong to.
    fn new_cleaner(&self) -> (Cleaner, u64) {
        let generation = self.generation.load(Ordering::Acquire);
        let cleaner = Cleaner::new(self.config()).with_throttle(self.throttle.clone());
        (cleaner, generation)
    }

    /// Whether thread `index` is past the configured count; if so it is forgotten (under the
    /// threads lock, so a concurrent raise of the count starts a replacement).
    fn retire_if_surplus(&self, index: usize) -> bool {
        let mut threads = self.threads.lock();
        if index < self.config.read().threads {
            return false;
        }
        threads.remove(&index);
        tracing::info!(
            thread = index,
            "log cleaner thread stops (log.cleaner.threads lowered)"
        );
        true
    }

    fn run_thread(self: Arc<Self>, index: usize) {
        let (mut cleaner, mut generation) = self.new_cleaner();
        while !self.stop.load(Ordering::Acquire) {
            if self.generation.load(Ordering::Acquire) != generation {
                if self.retire_if_surplus(index) {
                    return;
                }
                (cleaner, generation) = self.new_cleaner();
            }
            let now = crate::time::now_ms();
            let backoff = self.config.read().backoff_ms;
            match self.grab_filthiest(now) {
                Some(p) => {
                    let res = self.clean_once(&mut cleaner, &p, now);
                    self.release(&p.tp);
                    if let Err(e) = res {
                        self.totals.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(partition = %p.tp, error = %e, "log cleaning failed");
                        self.sleep(backoff, generation);
                    }
                }
                None => self.sleep(backoff, generation),
            }
        }
    }

    /// Waits up to `ms` for a wake-up. A thread whose settings `generation` is stale does not
    /// wait: a reconfiguration's wake-up may have come between its check and this lock, and
    /// would otherwise be lost for a whole backoff (15 s by default).
    fn sleep(&self, ms: u64, generation: u64) {
        let mut book = self.book.lock();
        if !self.stop.load(Ordering::Acquire)
            && self.generation.load(Ordering::Acquire) == generation
        {
            self.changed
                .wait_for(&mut book, Duration::from_millis(ms.max(1)));
        }
    }

    /// Wakes sleeping threads to look for work now (e.g. after a config change).
    pub fn wake(&self) {
        let _book = self.book.lock();
        self.changed.notify_all();
    }

    /// The compacted partition most in need of cleaning, marked in progress.
    fn grab_filthiest(&self, now: i64) -> Option<Arc<Partition>> {
        let mut best: Option<(f64, Arc<Partition>)> = None;
        let source = self.source.get()?;
        for p in source() {
            if self.book.lock().in_progress.contains(&p.tp) {
                continue;
            }
            let Some(score) = self.needs_cleaning(&p, now) else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, p));
            }
        }
        let (_, p) = best?;
        let mut book = self.book.lock();
        book.in_progress.insert(p.tp.clone()).then_some(p)
    }

    /// `Some(priority)` when `p` should be cleaned now.
    fn needs_cleaning(&self, p: &Partition, now: i64) -> Option<f64> {
        let disk = p.log().as_disk()?;
        let config = disk.config();
        if config.cleanup_policy == CleanupPolicy::Delete || disk.is_closed() {
            return None;
        }
        let range = match cleanable_range(disk, p, &config, now) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(partition = %p.tp, error = %e, "cannot assess the log for cleaning");
                return None;
            }
        };
        let ratio = range.dirty_ratio();
        if range.dirty_bytes > 0 && ratio > config.min_cleanable_dirty_ratio {
            return Some(ratio);
        }
        if range.dirty_bytes > 0 && range.compaction_delay_ms(&config, now) > 0 {
            return Some(ratio);
        }
        let horizon_due = self
            .book
            .lock()
            .last
            .get(&p.tp)
            .and_then(|l| l.stats.next_delete_horizon_ms)
            .is_some_and(|hz| hz <= now);
        (horizon_due && !range.segments.is_empty()).then_some(0.0)
    }

    fn release(&self, tp: &TopicPartition) {
        let mut book = self.book.lock();
        book.in_progress.remove(tp);
        self.changed.notify_all();
    }

    /// One cleaning of `p` with `cleaner`; records the outcome.
    fn clean_once(
        &self,
        cleaner: &mut Cleaner,
        p: &Partition,
        now: i64,
    ) -> Result<Option<CleanStats>> {
        let Some(disk) = p.log().as_disk() else {
            return Ok(None);
        };
        let outcome = cleaner.clean(disk, p, now, &self.stop)?;
        let PassOutcome::Cleaned(stats) = outcome else {
            tracing::debug!(partition = %p.tp, "log cleaning aborted");
            return Ok(None);
        };
        let t = &self.totals;
        t.cleanings.fetch_add(1, Ordering::Relaxed);
        t.bytes_read.fetch_add(stats.bytes_read, Ordering::Relaxed);
        t.bytes_written
            .fetch_add(stats.bytes_written, Ordering::Relaxed);
        t.records_read
            .fetch_add(stats.records_read, Ordering::Relaxed);
        t.records_kept
            .fetch_add(stats.records_kept, Ordering::Relaxed);
        t.cleaning_ms.fetch_add(stats.elapsed_ms, Ordering::Relaxed);
        tracing::info!(
            partition = %p.tp,
            bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written,
            records_kept = stats.records_kept,
            records_read = stats.records_read,
            end_offset = stats.end_offset,
            elapsed_ms = stats.elapsed_ms,
            "cleaned log"
        );
        self.book.lock().last.insert(
            p.tp.clone(),
            LastCleaning {
                finished_ms: crate::time::now_ms(),
                stats: stats.clone(),
            },
        );
        Ok(Some(stats))
    }

    /// Cleans `p` now, on the calling thread, until its whole cleanable section is clean (more
    /// than one pass when the offset map fills up). Waits while a cleaner thread holds it.
    /// Returns the stats of each pass.
    pub fn clean_now(&self, p: &Partition, now: i64) -> Result<Vec<CleanStats>> {
        {
            let mut book = self.book.lock();
            while book.in_progress.contains(&p.tp) {
                self.changed.wait_for(&mut book, Duration::from_millis(50));
            }
            book.in_progress.insert(p.tp.clone());
        }
        let (mut cleaner, _) = self.new_cleaner();
        let mut passes = Vec::new();
        let res = loop {
            match self.clean_once(&mut cleaner, p, now) {
                Ok(Some(stats)) => {
                    let more = stats.map_full;
                    passes.push(stats);
                    if !more {
                        break Ok(passes);
                    }
                }
                Ok(None) => break Ok(passes),
                Err(e) => break Err(e),
            }
        };
        self.release(&p.tp);
        res
    }

    /// The cleaner's view of `p` (`None` for a partition whose storage does not compact).
    pub fn status(&self, p: &Partition, now: i64) -> Result<Option<PartitionCleanerStatus>> {
        let Some(disk) = p.log().as_disk() else {
            return Ok(None);
        };
        let config = disk.config();
        let range = cleanable_range(disk, p, &config, now)?;
        let book = self.book.lock();
        Ok(Some(PartitionCleanerStatus {
            compacted: config.cleanup_policy != CleanupPolicy::Delete,
            dirty_ratio: range.dirty_ratio(),
            clean_bytes: range.clean_bytes,
            dirty_bytes: range.dirty_bytes,
            first_dirty_offset: range.first_dirty_offset,
            first_uncleanable_offset: range.first_uncleanable_offset,
            in_progress: book.in_progress.contains(&p.tp),
            last_cleaning: book.last.get(&p.tp).cloned(),
        }))
    }
}

/// The cleaner's view of every partition of `topic`, by partition index: what
/// `spate topics describe --verbose` prints (dirty ratio, last cleaning). `None` for partitions
/// whose storage does not compact; an unknown topic is an error.
pub fn describe_topic(
    state: &crate::state::BrokerState,
    topic: &str,
) -> Result<Vec<(i32, Option<PartitionCleanerStatus>)>> {
    let t = state
        .topics
        .get(topic)
        .ok_or_else(|| BrokerError::UnknownTopic(topic.to_string()))?;
    let now = crate::time::now_ms();
    t.partitions()
        .iter()
        .map(|p| Ok((p.index(), state.cleaner.status(p, now)?)))
        .collect()
}

/// The cleaner's view of one topic as the metrics listener serves it (`GET /cleaner/TOPIC`,
/// JSON) to `spate topics describe --verbose`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicCleanerReport {
    /// The topic's name.
    pub topic: String,
    /// Each partition's cleaner status.
    pub partitions: Vec<PartitionCleanerReport>,
}

/// One partition of a [`TopicCleanerReport`]; `status` is `None` where the storage does not
/// compact (the in-memory backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionCleanerReport {
    /// The partition's index.
    pub partition: i32,
    /// The partition's cleaner status; `None` where the storage does not compact.
    pub status: Option<PartitionCleanerStatus>,
}

/// [`describe_topic`] as a [`TopicCleanerReport`].
pub fn topic_report(state: &crate::state::BrokerState, topic: &str) -> Result<TopicCleanerReport> {
    Ok(TopicCleanerReport {
        topic: topic.to_string(),
        partitions: describe_topic(state, topic)?
            .into_iter()
            .map(|(partition, status)| PartitionCleanerReport { partition, status })
            .collect(),
    })
}

/// Starts the broker's log cleaner over the broker's topics; a shutdown hook stops it before
/// the logs are closed.
pub fn install(state: &Arc<crate::state::BrokerState>) -> Result<()> {
    let weak = Arc::downgrade(state);
    let source: PartitionSource = Box::new(move || {
        weak.upgrade()
            .map(|s| s.topics.all_partitions())
            .unwrap_or_default()
    });
    state.cleaner.start(source)?;
    let stopping = state.cleaner.clone();
    state.on_shutdown(move || {
        stopping.shutdown();
        Ok(())
    });
    Ok(())
}

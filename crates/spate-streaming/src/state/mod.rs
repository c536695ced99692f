//! Stateful operators: `update_state_by_key` and `map_with_state` (Spark's stateful operations).
//!
//! State is partitioned by key hash into N partitions (a store per partition behind its own
//! lock), so one batch updates all partitions in parallel; batches run one at a time, so updates
//! are never concurrent across batches. Partitioned *by task* instead ([`tasks`]), state
//! partition p is the input's task p (Kafka partition p), so several instances of a job each
//! hold the state of the tasks they own. State types are `Serialize + DeserializeOwned`: with a
//! checkpoint directory the whole store is snapshotted (see `crate::recovery`); with a
//! [`StateChangelog`] attached, each batch's changed keys are written to it per state partition
//! and the store is restored from it at start (see [`changelog`]).

pub mod changelog;
mod map_with_state;
pub(crate) mod restore;
mod task_restore;
pub mod tasks;
pub(crate) mod update;
mod window_by_task;

pub use changelog::{ChangelogEntry, StateChangelog, StateChanges};
pub use map_with_state::{MapWithStateDStream, State, StateSpec};
pub use tasks::TaskStates;

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StreamingError};
use crate::exec::shuffle::{partition_of, FastMap};
use crate::exec::{Batch, Data, Key};
use crate::graph::{decode_state, encode_state, OpId};
use crate::time::Time;
use restore::RestoreProgress;

/// What both state operators checkpoint: the operator's id (which `uid()` may still change
/// while the graph is built, hence shared), its partitioned store, and the changelog attached
/// at start (if any).
pub(crate) struct KeyedState<K, X> {
    pub(crate) id: OpId,
    pub(crate) store: Partitioned<K, X>,
    pub(crate) changelog: OnceLock<Arc<dyn StateChangelog>>,
    /// Partitioned by the input's tasks (the number of partitions is set at start) instead of
    /// by key hash.
    pub(crate) by_task: bool,
}

/// One batch's records of a state operator grouped by state partition: the partitions the
/// batch updates, and each one's records (same order).
pub(crate) type Grouped<K, V> = (Vec<usize>, Vec<Mutex<Vec<(K, V)>>>);

impl<K, X> KeyedState<K, X>
where
    K: Key + Serialize + DeserializeOwned,
    X: Clone + Serialize + DeserializeOwned,
{
    pub(crate) fn op_id(&self) -> String {
        self.id.lock().clone()
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        encode_state(&self.op_id(), &self.store.dump())
    }

    pub(crate) fn restore(&self, bytes: &[u8]) -> Result<()> {
        self.store.load(decode_state(&self.op_id(), bytes)?);
        Ok(())
    }

    pub(crate) fn new(id: OpId, partitions: usize) -> Self {
        KeyedState {
            id,
            store: Partitioned::new(partitions),
            changelog: OnceLock::new(),
            by_task: false,
        }
    }

    /// A store partitioned by task; its partitions exist from [`KeyedState::set_tasks`] on.
    pub(crate) fn by_task(id: OpId) -> Self {
        KeyedState {
            id,
            store: Partitioned::deferred(),
            changelog: OnceLock::new(),
            by_task: true,
        }
    }

    /// At start: one state partition per task of the input.
    pub(crate) fn set_tasks(&self, count: usize) -> Result<()> {
        if self.store.set_count(count) {
            return Ok(());
        }
        Err(StreamingError::operator(
            self.op_id(),
            format!(
                "is partitioned by task into {} partitions; its input now has {count} tasks",
                self.store.n()
            ),
        ))
    }

    /// One batch's records by state partition: every partition by key hash, or — partitioned
    /// by task — the tasks the batch covers, each with the records of its input partitions.
    pub(crate) fn group<V: Data>(&self, input: &Batch<(K, V)>) -> Result<Grouped<K, V>> {
        let n = self.store.n();
        let (which, parts) = if self.by_task {
            tasks::group_by_task(input, n, &self.op_id())?
        } else {
            ((0..n).collect(), input.partition_by_key(n)?)
        };
        Ok((which, parts.into_iter().map(Mutex::new).collect()))
    }

    /// Drops partition `p`'s state from memory (its task went to another instance).
    pub(crate) fn drop_partition(&self, p: usize) {
        if let Some(part) = self.store.parts().get(p) {
            *part.lock() = FastMap::default();
        }
    }

    /// Per-partition change buffers for one batch when a changelog is attached.
    pub(crate) fn change_buffers(&self) -> Option<Vec<Mutex<Vec<ChangelogEntry>>>> {
        self.changelog.get()?;
        Some((0..self.store.n()).map(|_| Mutex::default()).collect())
    }

    /// Hands one batch's changes to the changelog (nothing when no key changed).
    pub(crate) fn record_changes(
        &self,
        time: Time,
        buffers: Option<Vec<Mutex<Vec<ChangelogEntry>>>>,
    ) -> Result<()> {
        let (Some(log), Some(buffers)) = (self.changelog.get(), buffers) else {
            return Ok(());
        };
        let changes = StateChanges {
            operator: self.op_id(),
            time,
            partitions: buffers.into_iter().map(Mutex::into_inner).collect(),
        };
        if changes.is_empty() {
            return Ok(());
        }
        log.record(changes)
            .map_err(|source| StreamingError::StateChangelog {
                operator: self.op_id(),
                operation: format!("recording the changes of batch {time}"),
                source,
            })
    }

    /// An upsert of `key` to `x`, encoded.
    pub(crate) fn put_entry(&self, key: &K, x: &impl Serialize) -> Result<ChangelogEntry> {
        let id = self.op_id();
        Ok(ChangelogEntry::put(
            encode_state(&id, key)?,
            encode_state(&id, x)?,
        ))
    }

    /// A tombstone of `key`, encoded.
    pub(crate) fn tombstone_entry(&self, key: &K) -> Result<ChangelogEntry> {
        Ok(ChangelogEntry::tombstone(encode_state(&self.op_id(), key)?))
    }

    /// Applies partition `p`'s changelog on top of what the partition holds (initial state):
    /// the last value of a key wins, a tombstone removes it. The entries go into a map of the
    /// restore's own, which replaces the partition's when the changelog ends — so a batch that
    /// runs meanwhile (partitioned by task, batches of the other tasks keep running while a
    /// newly assigned one restores) never waits for the partition's lock, and a cancelled
    /// restore leaves the partition as it was. By task the restore starts empty: the partition
    /// may hold what this instance had before the task went away and came back.
    pub(crate) fn restore_partition(
        &self,
        p: usize,
        log: &dyn StateChangelog,
        progress: &dyn RestoreProgress,
    ) -> Result<u64> {
        let id = self.op_id();
        let n = self.store.n();
        let by_task = self.by_task;
        let part = self.store.parts().get(p).ok_or_else(|| {
            StreamingError::operator(&id, format!("has no state partition {p} (of {n})"))
        })?;
        let mut map = if by_task {
            FastMap::default()
        } else {
            std::mem::take(&mut *part.lock())
        };
        let expected = std::cell::Cell::new(0u64);
        let mut reserved = false;
        let mut apply = |key: &[u8], value: Option<&[u8]>| -> Result<()> {
            if !reserved {
                // Growing a large map step by step rehashes every key several times, and
                // holds the old table and the new one at once.
                reserved = true;
                map.reserve(expected.get().min(RESERVE_AT_MOST) as usize);
            }
            let k: K = decode_state(&id, key)?;
            // By task, the input's partitioner placed the key; the engine cannot recompute it.
            let home = if by_task { p } else { partition_of(&k, n) };
            if home != p {
                return Err(misplaced(&id, p, home));
            }
            match value {
                Some(v) => {
                    map.insert(k, decode_state(&id, v)?);
                }
                None => {
                    map.remove(&k);
                }
            }
            progress.applied()
        };
        let restored = log
            .restore(
                &id,
                p,
                &mut |e| {
                    expected.set(e);
                    progress.expected(e);
                },
                &mut apply,
            )
            .map_err(|source| StreamingError::StateChangelog {
                operator: id.clone(),
                operation: format!("restoring state partition {p}"),
                source,
            })?;
        // Checked under the partition's lock: a revocation marks the restore cancelled before
        // it drops the partition under the same lock, so a cancelled map is never installed.
        if map.capacity() > 2 * map.len().max(1024) {
            // The changelog held far fewer live keys than entries (not compacted yet).
            map.shrink_to_fit();
        }
        let mut slot = part.lock();
        if progress.cancelled() {
            return Err(restore::cancelled(&id, p));
        }
        *slot = map;
        Ok(restored)
    }
}

/// The most entries a restore reserves room for up front (the changelog's offset span; an
/// uncompacted log holds more entries than keys, and the map is shrunk after).
const RESERVE_AT_MOST: u64 = 1 << 21;

fn misplaced(id: &str, p: usize, home: usize) -> StreamingError {
    StreamingError::operator(
        id,
        format!(
            "changelog partition {p} holds a key of state partition {home}: the operator's \
             number of state partitions or its key type changed since the changelog was written"
        ),
    )
}

/// The state type recorded in checkpoint metadata, `(K, S)`: a change of either makes an old
/// snapshot unreadable, and the metadata check names it instead of failing in the decoder.
pub(crate) fn state_type_name<K, S>() -> String {
    format!(
        "({}, {})",
        std::any::type_name::<K>(),
        std::any::type_name::<S>()
    )
}

/// Partitioned maps: by key hash (the count is fixed when the operator is defined) or by task
/// (the count is set at start, from the input).
pub(crate) struct Partitioned<K, X> {
    parts: OnceLock<Vec<Mutex<FastMap<K, X>>>>,
}

impl<K: Key, X: Clone> Partitioned<K, X> {
    pub(crate) fn new(n: usize) -> Self {
        let p = Self::deferred();
        p.set_count(n.max(1));
        p
    }

    /// No partitions until [`Partitioned::set_count`].
    pub(crate) fn deferred() -> Self {
        Partitioned {
            parts: OnceLock::new(),
        }
    }

    /// Creates `n` empty partitions; false when the count was already set to another value.
    pub(crate) fn set_count(&self, n: usize) -> bool {
        let parts = self
            .parts
            .get_or_init(|| (0..n).map(|_| Mutex::new(FastMap::default())).collect());
        parts.len() == n
    }

    /// The partitions (none before the count is set).
    pub(crate) fn parts(&self) -> &[Mutex<FastMap<K, X>>] {
        self.parts.get().map_or(&[], Vec::as_slice)
    }

    pub(crate) fn n(&self) -> usize {
        self.parts().len()
    }

    /// Replaces the contents with `pairs`, placing each key in its partition.
    pub(crate) fn load(&self, pairs: Vec<(K, X)>) {
        let n = self.n();
        if n == 0 {
            return; // partitioned by task: placing keys is the input's partitioner's job
        }
        let mut maps: Vec<FastMap<K, X>> = (0..n).map(|_| FastMap::default()).collect();
        for (k, x) in pairs {
            maps[partition_of(&k, n)].insert(k, x);
        }
        for (slot, m) in self.parts().iter().zip(maps) {
            *slot.lock() = m;
        }
    }

    /// Every entry (cloned).
    pub(crate) fn dump(&self) -> Vec<(K, X)> {
        self.parts()
            .iter()
            .flat_map(|p| {
                p.lock()
                    .iter()
                    .map(|(k, x)| (k.clone(), x.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

//! Stateful operators: `update_state_by_key` and `map_with_state` (Spark's stateful operations).
//!
//! State is partitioned by key hash into N partitions (a store per partition behind its own
//! lock), so one batch updates all partitions in parallel; batches run one at a time, so updates
//! are never concurrent across batches. State types are `Serialize + DeserializeOwned`: with a
//! checkpoint directory the whole store is snapshotted (see `crate::recovery`); with a
//! [`StateChangelog`] attached, each batch's changed keys are written to it per state partition
//! and the store is restored from it at start (see [`changelog`]).

pub mod changelog;
mod map_with_state;
pub(crate) mod restore;
mod update;

pub use changelog::{ChangelogEntry, StateChangelog, StateChanges};
pub use map_with_state::{MapWithStateDStream, State, StateSpec};

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StreamingError};
use crate::exec::shuffle::{partition_of, FastMap};
use crate::exec::Key;
use crate::graph::{decode_state, encode_state, OpId};
use crate::time::Time;

/// What both state operators checkpoint: the operator's id (which `uid()` may still change
/// while the graph is built, hence shared), its key-partitioned store, and the changelog
/// attached at start (if any).
pub(crate) struct KeyedState<K, X> {
    pub(crate) id: OpId,
    pub(crate) store: Partitioned<K, X>,
    pub(crate) changelog: OnceLock<Arc<dyn StateChangelog>>,
}

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
    /// the last value of a key wins, a tombstone removes it. One lock for the whole partition:
    /// nothing else runs before the job's first batch.
    pub(crate) fn restore_partition(
        &self,
        p: usize,
        log: &dyn StateChangelog,
        expected: &mut dyn FnMut(u64),
        tick: &mut dyn FnMut(),
    ) -> Result<u64> {
        let id = self.op_id();
        let n = self.store.n();
        let mut map = self.store.parts[p].lock();
        let mut apply = |e: ChangelogEntry| -> Result<()> {
            let k: K = decode_state(&id, &e.key)?;
            let home = partition_of(&k, n);
            if home != p {
                return Err(StreamingError::operator(
                    &id,
                    format!(
                        "changelog partition {p} holds a key of state partition {home}: the \
                         operator's number of state partitions or its key type changed since \
                         the changelog was written"
                    ),
                ));
            }
            match e.value {
                Some(v) => {
                    map.insert(k, decode_state(&id, &v)?);
                }
                None => {
                    map.remove(&k);
                }
            }
            tick();
            Ok(())
        };
        log.restore(&id, p, expected, &mut apply)
            .map_err(|source| StreamingError::StateChangelog {
                operator: id.clone(),
                operation: format!("restoring state partition {p}"),
                source,
            })
    }
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

/// Key-partitioned maps.
pub(crate) struct Partitioned<K, X> {
    pub(crate) parts: Vec<Mutex<FastMap<K, X>>>,
}

impl<K: Key, X: Clone> Partitioned<K, X> {
    pub(crate) fn new(n: usize) -> Self {
        Partitioned {
            parts: (0..n.max(1))
                .map(|_| Mutex::new(FastMap::default()))
                .collect(),
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.parts.len()
    }

    /// Replaces the contents with `pairs`, placing each key in its partition.
    pub(crate) fn load(&self, pairs: Vec<(K, X)>) {
        let n = self.n();
        let mut maps: Vec<FastMap<K, X>> = (0..n).map(|_| FastMap::default()).collect();
        for (k, x) in pairs {
            maps[partition_of(&k, n)].insert(k, x);
        }
        for (slot, m) in self.parts.iter().zip(maps) {
            *slot.lock() = m;
        }
    }

    /// Every entry (cloned).
    pub(crate) fn dump(&self) -> Vec<(K, X)> {
        self.parts
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

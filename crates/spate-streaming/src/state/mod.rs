//! Stateful operators: `update_state_by_key` and `map_with_state` (Spark's C6, C7).
//!
//! State is partitioned by key hash into N partitions (a store per partition behind its own
//! lock), so one batch updates all partitions in parallel; batches run one at a time, so updates
//! are never concurrent across batches. State types are `Serialize + DeserializeOwned`: with a
//! checkpoint directory the whole store is snapshotted (see `crate::recovery`).

mod map_with_state;
mod update;

pub use map_with_state::{MapWithStateDStream, State, StateSpec};

use parking_lot::Mutex;

use crate::exec::shuffle::{partition_of, FastMap};
use crate::exec::Key;

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

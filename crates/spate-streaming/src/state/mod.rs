//! Stateful operators: `update_state_by_key` and `map_with_state` (Spark's stateful operations).
//!
//! State is partitioned by key hash into N partitions (a store per partition behind its own
//! lock), so one batch updates all partitions in parallel; batches run one at a time, so updates
//! are never concurrent across batches. State types are `Serialize + DeserializeOwned`: with a
//! checkpoint directory the whole store is snapshotted (see `crate::recovery`).

mod map_with_state;
mod update;

pub use map_with_state::{MapWithStateDStream, State, StateSpec};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::exec::shuffle::{partition_of, FastMap};
use crate::exec::Key;
use crate::graph::{decode_state, encode_state, OpId};

/// What both state operators checkpoint: the operator's id (which `uid()` may still change
/// while the graph is built, hence shared) and its key-partitioned store.
pub(crate) struct KeyedState<K, X> {
    pub(crate) id: OpId,
    pub(crate) store: Partitioned<K, X>,
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

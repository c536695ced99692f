//! Window machinery: buffering a stream's recent batches, and the incremental
//! reduce-by-key-and-window that adds entering batches and "subtracts" leaving ones.
//!
//! Window length and slide must be multiples of the parent stream's slide (the batch interval
//! for an input); that is checked when the window is defined. A window stream produces a batch
//! when `batch_number % slide == 0`, counting batches from the job's zero time (kept in state
//! snapshots so windows stay aligned across restarts). Window buffers are stateful: they are
//! filled on every parent batch whether an output reads the window then or not, and they are
//! part of state snapshots.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StreamingError};
use crate::exec::shuffle::{partition_of, FastMap};
use crate::exec::{Batch, Data, Key, VecPartitions};
use crate::graph::{decode_state, encode_state, BatchContext, Node, OpId, StatefulOp};
use crate::time::{ms, Time};

/// Window length and slide, validated: in batch intervals, and the length in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowSpec {
    /// Slide in batch intervals.
    pub(crate) slide: u64,
    pub(crate) len_ms: u64,
}

/// Checks that `length` and `slide` are positive multiples of the parent's slide.
pub(crate) fn window_spec(
    operator: &str,
    batch_interval: Duration,
    parent_slide: u64,
    length: Duration,
    slide: Duration,
) -> Result<WindowSpec> {
    let b = ms(batch_interval).max(1);
    let parent_ms = b * parent_slide.max(1);
    let check = |what: &str, d: Duration| -> Result<u64> {
        let d_ms = ms(d);
        if d_ms == 0 || d.as_nanos() % 1_000_000 != 0 || d_ms % parent_ms != 0 {
            return Err(StreamingError::operator(
                operator,
                format!(
                    "window {what} {d:?} must be a positive multiple of the parent stream's slide duration {:?} (batch interval {:?})",
                    Duration::from_millis(parent_ms),
                    batch_interval
                ),
            ));
        }
        Ok(d_ms / b)
    };
    let len = check("length", length)?;
    let sl = check("slide", slide)?;
    Ok(WindowSpec {
        slide: sl,
        len_ms: len * b,
    })
}

/// Buffered batches: (batch time, its partitions).
type History<T> = Mutex<VecDeque<(Time, Vec<Arc<Vec<T>>>)>>;
/// Per-batch reductions: (batch time, one map per partition).
type ReducedHistory<K, V> = Mutex<VecDeque<(Time, Arc<Vec<FastMap<K, V>>>)>>;

/// The recent batches of a stream, for `window`.
pub(crate) struct WindowBuffer<T> {
    id: OpId,
    len_ms: u64,
    history: History<T>,
}

impl<T: Data + Serialize + DeserializeOwned> WindowBuffer<T> {
    pub(crate) fn new(id: OpId, len_ms: u64) -> Self {
        WindowBuffer {
            id,
            len_ms,
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// Buffers the parent's batch of `bc.time` (materialised in parallel).
    pub(crate) fn tick(&self, parent: &Node<T>, bc: &BatchContext) -> Result<()> {
        let parts = parent.get(bc)?.collect_partitions()?;
        let mut h = self.history.lock();
        h.retain(|(t, _)| t.0 > bc.time.0.saturating_sub(self.len_ms) && *t != bc.time);
        h.push_back((bc.time, parts.into_iter().map(Arc::new).collect()));
        Ok(())
    }

    /// The window ending at `bc.time`: every buffered batch in `(t - length, t]`.
    pub(crate) fn window(&self, bc: &BatchContext) -> Batch<T> {
        let from = bc.time.0.saturating_sub(self.len_ms);
        let parts: Vec<Arc<Vec<T>>> = self
            .history
            .lock()
            .iter()
            .filter(|(t, _)| t.0 > from && *t <= bc.time)
            .flat_map(|(_, p)| p.iter().cloned())
            .collect();
        Batch::new(
            Arc::new(VecPartitions::from_shared(parts)),
            bc.exec.clone(),
            bc.time,
        )
    }
}

impl<T: Data + Serialize + DeserializeOwned> StatefulOp for WindowBuffer<T> {
    fn id(&self) -> String {
        self.id.lock().clone()
    }

    fn state_type(&self) -> String {
        format!("window buffer of {}", std::any::type_name::<T>())
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let h = self.history.lock();
        let data: Vec<(u64, Vec<&[T]>)> = h
            .iter()
            .map(|(t, p)| (t.0, p.iter().map(|v| v.as_slice()).collect()))
            .collect();
        encode_state(&self.id(), &data)
    }

    fn restore(&self, bytes: &[u8]) -> Result<()> {
        let data: Vec<(u64, Vec<Vec<T>>)> = decode_state(&self.id(), bytes)?;
        *self.history.lock() = data
            .into_iter()
            .map(|(t, p)| (Time(t), p.into_iter().map(Arc::new).collect()))
            .collect();
        Ok(())
    }
}

/// Optional filter applied to the incremental window's output (and state).
pub(crate) type KeepFn<K, V> = Arc<dyn Fn(&(K, V)) -> bool + Send + Sync>;

/// Incremental `reduce_by_key_and_window` with an inverse function.
pub(crate) struct ReducedWindow<K, V> {
    id: OpId,
    spec: WindowSpec,
    n: usize,
    /// Per parent batch: its values reduced by key, one map per partition.
    history: ReducedHistory<K, V>,
    /// The current window's value per key, one map per partition.
    state: Vec<Mutex<FastMap<K, V>>>,
    /// Time (ms) of the newest batch added into `state`.
    added_upto: Mutex<u64>,
}

impl<K: Key + Serialize + DeserializeOwned, V: Data + Serialize + DeserializeOwned>
    ReducedWindow<K, V>
{
    pub(crate) fn new(id: OpId, spec: WindowSpec, n: usize) -> Self {
        let n = n.max(1);
        ReducedWindow {
            id,
            spec,
            n,
            history: Mutex::new(VecDeque::new()),
            state: (0..n).map(|_| Mutex::new(FastMap::default())).collect(),
            added_upto: Mutex::new(0),
        }
    }

    /// Reduces and buffers the parent's batch of `bc.time`.
    pub(crate) fn tick(
        &self,
        parent: &Node<(K, V)>,
        f: &(impl Fn(V, V) -> V + Send + Sync),
        bc: &BatchContext,
    ) -> Result<()> {
        let maps = parent.get(bc)?.combine_to_maps(|v| v, f, f, self.n)?;
        let mut h = self.history.lock();
        h.retain(|(t, _)| *t != bc.time);
        h.push_back((bc.time, Arc::new(maps)));
        Ok(())
    }

    /// Slides the window to end at `bc.time`: `state ⊕ entering ⊖ leaving`, then the filter.
    pub(crate) fn slide(
        &self,
        f: &(impl Fn(V, V) -> V + Send + Sync),
        inv: &(impl Fn(V, V) -> V + Send + Sync),
        keep: Option<&KeepFn<K, V>>,
        bc: &BatchContext,
    ) -> Result<Batch<(K, V)>> {
        let t = bc.time.0;
        let window_start = t.saturating_sub(self.spec.len_ms);
        let added_upto = *self.added_upto.lock();
        // Entering: buffered batches not yet added that are inside the window. Leaving: added
        // batches now at or before the window start. Tracking what was added (instead of
        // assuming the previous slide was exactly one slide ago) keeps the window exact when
        // batch times have a gap, e.g. after a restart.
        let (entering, leaving): (Vec<_>, Vec<_>) = {
            let h = self.history.lock();
            let entering = h
                .iter()
                .filter(|(bt, _)| bt.0 > added_upto && bt.0 > window_start && bt.0 <= t)
                .map(|(_, m)| m.clone())
                .collect();
            let leaving = h
                .iter()
                .filter(|(bt, _)| bt.0 <= added_upto && bt.0 <= window_start)
                .map(|(_, m)| m.clone())
                .collect();
            (entering, leaving)
        };
        let parts = bc.exec.run_tasks(bc.time, self.n, |r| {
            let mut st = self.state[r].lock();
            for m in &leaving {
                for (k, v) in m[r].iter() {
                    // A key absent from the previous window has nothing to subtract from
                    // (Spark ignores old values of such keys too).
                    if let Some(cur) = st.get_mut(k) {
                        let old = cur.clone();
                        *cur = inv(old, v.clone());
                    }
                }
            }
            for m in &entering {
                for (k, v) in m[r].iter() {
                    match st.get_mut(k) {
                        Some(cur) => {
                            let old = cur.clone();
                            *cur = f(old, v.clone());
                        }
                        None => {
                            st.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if let Some(keep) = keep {
                st.retain(|k, v| keep(&(k.clone(), v.clone())));
            }
            Ok(st
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>())
        })?;
        // Batches at or before the window start have left (or never entered): drop them.
        self.history.lock().retain(|(bt, _)| bt.0 > window_start);
        *self.added_upto.lock() = t;
        Ok(Batch::new(
            Arc::new(VecPartitions::new(parts)),
            bc.exec.clone(),
            bc.time,
        ))
    }
}

impl<K: Key + Serialize + DeserializeOwned, V: Data + Serialize + DeserializeOwned> StatefulOp
    for ReducedWindow<K, V>
{
    fn id(&self) -> String {
        self.id.lock().clone()
    }

    fn state_type(&self) -> String {
        format!(
            "reduced window of ({}, {})",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        )
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let history: Vec<(u64, Vec<(K, V)>)> = self
            .history
            .lock()
            .iter()
            .map(|(t, maps)| {
                (
                    t.0,
                    maps.iter()
                        .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
                        .collect(),
                )
            })
            .collect();
        let state: Vec<(K, V)> = self
            .state
            .iter()
            .flat_map(|m| {
                m.lock()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        encode_state(&self.id(), &(history, state, *self.added_upto.lock()))
    }

    fn restore(&self, bytes: &[u8]) -> Result<()> {
        #[allow(clippy::type_complexity)]
        let (history, state, added_upto): (Vec<(u64, Vec<(K, V)>)>, Vec<(K, V)>, u64) =
            decode_state(&self.id(), bytes)?;
        *self.added_upto.lock() = added_upto;
        // Re-partitioned on load, so a changed parallelism still restores correctly.
        let split = |pairs: Vec<(K, V)>| -> Vec<FastMap<K, V>> {
            let mut maps: Vec<FastMap<K, V>> = (0..self.n).map(|_| FastMap::default()).collect();
            for (k, v) in pairs {
                maps[partition_of(&k, self.n)].insert(k, v);
            }
            maps
        };
        *self.history.lock() = history
            .into_iter()
            .map(|(t, pairs)| (Time(t), Arc::new(split(pairs))))
            .collect();
        for (slot, m) in self.state.iter().zip(split(state)) {
            *slot.lock() = m;
        }
        Ok(())
    }
}

//! `map_with_state`: calls the user's function once per record with the key's state, emits
//! what the function returns, and only touches keys present in the batch — plus, with a
//! timeout, keys idle for longer than it, which get one last call with `is_timing_out()`.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{state_type_name, ChangelogEntry, KeyedState, Partitioned, StateChangelog};
use crate::dstream::DStream;
use crate::error::{Result, StreamingError};
use crate::exec::shuffle::FastMap;
use crate::exec::{Batch, Data, Key, VecPartitions};
use crate::graph::{OpId, StatefulOp};
use crate::time::ms;

/// The state of one key, handed to the `map_with_state` function (Spark's `State[S]`).
#[derive(Debug)]
pub struct State<S> {
    value: Option<S>,
    removed: bool,
    timing_out: bool,
}

impl<S> State<S> {
    /// Whether the key has state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The key's state, if any.
    pub fn get(&self) -> Option<&S> {
        self.value.as_ref()
    }

    /// Sets the key's state. Ignored (with a warning) when the key is timing out: its state is
    /// removed after this call, as in Spark.
    pub fn update(&mut self, s: S) {
        if self.timing_out {
            tracing::warn!("State::update on a key that is timing out is ignored");
            return;
        }
        self.value = Some(s);
        self.removed = false;
    }

    /// Removes the key's state.
    pub fn remove(&mut self) {
        self.value = None;
        self.removed = true;
    }

    /// True in the last call for a key that was idle longer than the timeout.
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }
}

type StateFn<K, V, S, E> = dyn Fn(&K, Option<V>, &mut State<S>) -> E + Send + Sync;

/// What `map_with_state` does (Spark's `StateSpec`): the function plus options.
pub struct StateSpec<K, V, S, E> {
    func: Arc<StateFn<K, V, S, E>>,
    num_partitions: Option<usize>,
    by_task: bool,
    timeout: Option<Duration>,
    initial_state: Vec<(K, S)>,
}

impl<K, V, S, E> std::fmt::Debug for StateSpec<K, V, S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSpec")
            .field("num_partitions", &self.num_partitions)
            .field("by_task", &self.by_task)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<K, V, S, E> StateSpec<K, V, S, E> {
    /// A spec calling `f(key, value, state)` once per record (value `None` only when timing out).
    pub fn function(f: impl Fn(&K, Option<V>, &mut State<S>) -> E + Send + Sync + 'static) -> Self {
        StateSpec {
            func: Arc::new(f),
            num_partitions: None,
            by_task: false,
            timeout: None,
            initial_state: Vec::new(),
        }
    }

    /// Number of state partitions (default: `spate.streaming.default.parallelism`).
    pub fn num_partitions(mut self, n: usize) -> Self {
        self.num_partitions = Some(n.max(1));
        self
    }

    /// Partitions the state by the input's **tasks** instead of by key hash (Kafka Streams'
    /// model, see [`crate::state::tasks`]): state partition p holds the keys of input
    /// partition p, and moves with it between instances of the job. The input must be
    /// co-partitioned (keyed by this stream's key), with only narrow operators in between; no
    /// `num_partitions` or initial state (the engine cannot place keys the way the input's
    /// partitioner does).
    pub fn by_task(mut self) -> Self {
        self.by_task = true;
        self
    }

    /// Removes keys that received no data for `idle` (measured in batch time); the function is
    /// called one last time for them with `state.is_timing_out()`.
    pub fn timeout(mut self, idle: Duration) -> Self {
        self.timeout = Some(idle);
        self
    }

    /// State the keys start with.
    pub fn initial_state(mut self, state: Vec<(K, S)>) -> Self {
        self.initial_state = state;
        self
    }
}

/// State entries: the state and the batch time (ms) the key last received data.
struct MwsStore<K, S> {
    state: KeyedState<K, (S, u64)>,
    /// False until the first batch: initial state gets its idle clock started then.
    started: AtomicBool,
}

impl<K, S> StatefulOp for MwsStore<K, S>
where
    K: Key + Serialize + DeserializeOwned,
    S: Data + Serialize + DeserializeOwned,
{
    fn id(&self) -> String {
        self.state.op_id()
    }

    fn state_type(&self) -> String {
        state_type_name::<K, S>()
    }

    fn encode(&self) -> Result<Vec<u8>> {
        self.state.encode()
    }

    fn restore(&self, bytes: &[u8]) -> Result<()> {
        self.state.restore(bytes)?;
        self.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn supports_changelog(&self) -> bool {
        true
    }

    fn partitions(&self) -> usize {
        self.state.store.n()
    }

    fn attach_changelog(&self, changelog: Arc<dyn StateChangelog>) {
        // Attached once, at start; a second attach of the same operator is refused there.
        let _ = self.state.changelog.set(changelog);
    }

    fn by_task(&self) -> bool {
        self.state.by_task
    }

    fn set_tasks(&self, count: usize) -> Result<()> {
        self.state.set_tasks(count)
    }

    fn drop_partition(&self, partition: usize) {
        self.state.drop_partition(partition)
    }

    fn restore_partition(
        &self,
        partition: usize,
        changelog: &dyn StateChangelog,
        progress: &dyn crate::state::restore::RestoreProgress,
    ) -> Result<u64> {
        self.state.restore_partition(partition, changelog, progress)
    }
}

/// The result of `map_with_state`: a stream of the function's outputs (it derefs to
/// `DStream<E>`), plus [`MapWithStateDStream::state_snapshots`].
pub struct MapWithStateDStream<K, S, E> {
    mapped: DStream<E>,
    snapshots: DStream<(K, S)>,
}

impl<K, S, E> std::fmt::Debug for MapWithStateDStream<K, S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWithStateDStream")
            .field("mapped", &self.mapped)
            .field("snapshots", &self.snapshots)
            .finish()
    }
}

impl<K, S, E> Deref for MapWithStateDStream<K, S, E> {
    type Target = DStream<E>;
    fn deref(&self) -> &DStream<E> {
        &self.mapped
    }
}

impl<K: Data, S: Data, E: Data> MapWithStateDStream<K, S, E> {
    /// Sets the operator's checkpoint id (see [`DStream::uid`]).
    pub fn uid(self, uid: impl Into<String>) -> Self {
        MapWithStateDStream {
            mapped: self.mapped.uid(uid),
            snapshots: self.snapshots,
        }
    }

    /// The function's outputs.
    pub fn mapped(&self) -> DStream<E> {
        self.mapped.clone()
    }

    /// Every batch, every key's state after the batch (Spark's `stateSnapshots()`).
    pub fn state_snapshots(&self) -> DStream<(K, S)> {
        self.snapshots.clone()
    }
}

impl<K, V> DStream<(K, V)>
where
    K: Key + Serialize + DeserializeOwned,
    V: Data,
{
    /// Per-record stateful mapping (Spark's `mapWithState`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use spate_streaming::{Config, StreamingContext, StateSpec, State};
    /// let ctx = StreamingContext::new(Config::new("m").batch_interval(Duration::from_millis(10)))?;
    /// let (_q, words) = ctx.queue_stream::<String>(true);
    /// let spec = StateSpec::function(|w: &String, one: Option<u64>, st: &mut State<u64>| {
    ///     let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
    ///     st.update(n);
    ///     (w.clone(), n)
    /// })
    /// .timeout(Duration::from_secs(60));
    /// let counts = words.map(|w| (w, 1u64)).map_with_state(spec);
    /// let _all = counts.state_snapshots();
    /// # Ok::<(), spate_streaming::StreamingError>(())
    /// ```
    pub fn map_with_state<S, E>(&self, spec: StateSpec<K, V, S, E>) -> MapWithStateDStream<K, S, E>
    where
        S: Data + Serialize + DeserializeOwned,
        E: Data,
    {
        let id = self.ctx.unique_name("map_with_state");
        let op_id: OpId = Arc::new(Mutex::new(id.clone()));
        let state = if spec.by_task {
            if spec.num_partitions.is_some() || !spec.initial_state.is_empty() {
                self.ctx.graph_error(StreamingError::operator(
                    &id,
                    "is partitioned by task: its partitions are the input's, and the engine \
                     cannot place initial state the way the input's partitioner does; drop \
                     num_partitions and initial_state",
                ));
            }
            KeyedState::by_task(op_id.clone())
        } else {
            let n = spec
                .num_partitions
                .unwrap_or_else(|| self.default_partitions());
            KeyedState::new(op_id.clone(), n)
        };
        let st = Arc::new(MwsStore {
            state,
            started: AtomicBool::new(false),
        });
        st.state.store.load(
            spec.initial_state
                .into_iter()
                .map(|(k, s)| (k, (s, 0)))
                .collect(),
        );
        self.ctx.register_stateful(st.clone());
        let func = spec.func;
        let timeout_ms = spec.timeout.map(ms);
        let parent = self.node.clone();
        let core_st = st.clone();
        let mut mapped = self.ctx.add_node(&id, false, self.node.slide, move |bc| {
            let st = &core_st;
            let t = bc.time.as_millis();
            if !st.started.swap(true, Ordering::SeqCst) {
                for p in st.state.store.parts() {
                    for (_, (_, seen)) in p.lock().iter_mut() {
                        *seen = t;
                    }
                }
            }
            let input: Batch<(K, V)> = parent.get(bc)?;
            let (which, grouped) = st.state.group(&input)?;
            let changes = st.state.change_buffers();
            let parts = bc.exec.run_tasks(bc.time, which.len(), |i| {
                let r = which[i];
                let data = std::mem::take(&mut *grouped[i].lock());
                let mut map = st.state.store.parts()[r].lock();
                let mut touched = changes.as_ref().map(|_| Touched::default());
                let mut out = apply_records(&mut map, data, &*func, t, touched.as_mut());
                if let Some(idle) = timeout_ms {
                    let threshold = t.saturating_sub(idle);
                    time_out_idle(&mut map, &*func, threshold, &mut out, touched.as_mut());
                }
                if let (Some(c), Some(touched)) = (&changes, touched) {
                    *c[r].lock() = touched.entries(&st.state, &map)?;
                }
                Ok(out)
            })?;
            st.state.record_changes(bc.time, changes)?;
            Ok(Batch::new(
                Arc::new(VecPartitions::new(parts)),
                bc.exec.clone(),
                bc.time,
            ))
        });
        let core = mapped.node.clone();
        self.ctx
            .register_forced(&id, self.node.slide, move |bc| core.get(bc).map(|_| ()));
        let core = mapped.node.clone();
        let snapshots = self
            .ctx
            .add_node("state_snapshots", false, self.node.slide, move |bc| {
                core.get(bc)?;
                let parts = snapshot_parts(&st.state.store);
                Ok(Batch::new(
                    Arc::new(VecPartitions::new(parts)),
                    bc.exec.clone(),
                    bc.time,
                ))
            });
        mapped.op_id = Some(op_id);
        MapWithStateDStream { mapped, snapshots }
    }
}

/// One partition's records of a batch: each key's function call with its state; a state the
/// function kept is stamped with the batch time `t` (its idle clock restarts).
fn apply_records<K: Key, V, S, E>(
    map: &mut FastMap<K, (S, u64)>,
    data: Vec<(K, V)>,
    func: &StateFn<K, V, S, E>,
    t: u64,
    mut touched: Option<&mut Touched<K>>,
) -> Vec<E> {
    let mut out = Vec::with_capacity(data.len());
    for (k, v) in data {
        let mut state = State {
            value: map.remove(&k).map(|(s, _)| s),
            removed: false,
            timing_out: false,
        };
        let had = state.value.is_some();
        out.push(func(&k, Some(v), &mut state));
        if let Some(log) = touched.as_deref_mut() {
            // A key with no state before and none after changed nothing.
            if had || state.value.is_some() {
                log.keys.push(k.clone());
            }
        }
        if let Some(s) = state.value {
            map.insert(k, (s, t));
        }
    }
    out
}

/// The keys a batch touched in one state partition, for the changelog.
struct Touched<K> {
    keys: Vec<K>,
}

impl<K> Default for Touched<K> {
    fn default() -> Self {
        Touched { keys: Vec::new() }
    }
}

impl<K: Key + Serialize + DeserializeOwned> Touched<K> {
    /// The changelog entries: each touched key's entry (state and idle clock) as it is after the
    /// batch, or a tombstone when it has none. A key touched twice is logged once.
    fn entries<S: Serialize + Clone + DeserializeOwned>(
        mut self,
        st: &KeyedState<K, (S, u64)>,
        map: &FastMap<K, (S, u64)>,
    ) -> Result<Vec<ChangelogEntry>> {
        let keys = std::mem::take(&mut self.keys);
        let mut seen: FastMap<&K, ()> = FastMap::default();
        let mut entries = Vec::with_capacity(keys.len());
        for k in &keys {
            if seen.insert(k, ()).is_some() {
                continue;
            }
            entries.push(match map.get(k) {
                Some(x) => st.put_entry(k, x)?,
                None => st.tombstone_entry(k)?,
            });
        }
        Ok(entries)
    }
}

/// Keys idle since before `threshold` time out: the function is called once more with no value
/// and a timing-out state, and the state is dropped.
fn time_out_idle<K: Key, V, S, E>(
    map: &mut FastMap<K, (S, u64)>,
    func: &StateFn<K, V, S, E>,
    threshold: u64,
    out: &mut Vec<E>,
    mut touched: Option<&mut Touched<K>>,
) {
    let expired: Vec<K> = map
        .iter()
        .filter(|(_, (_, seen))| *seen < threshold)
        .map(|(k, _)| k.clone())
        .collect();
    for k in expired {
        if let Some((s, _)) = map.remove(&k) {
            let mut state = State {
                value: Some(s),
                removed: false,
                timing_out: true,
            };
            out.push(func(&k, None, &mut state));
            if let Some(log) = touched.as_deref_mut() {
                log.keys.push(k);
            }
        }
    }
}

/// Every key's state, per partition (the `state_snapshots` stream).
fn snapshot_parts<K: Key, S: Clone>(store: &Partitioned<K, (S, u64)>) -> Vec<Vec<(K, S)>> {
    store
        .parts()
        .iter()
        .map(|p| {
            p.lock()
                .iter()
                .map(|(k, (s, _))| (k.clone(), s.clone()))
                .collect()
        })
        .collect()
}

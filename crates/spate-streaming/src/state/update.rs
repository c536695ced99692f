//! `update_state_by_key`: every batch, a new state for every key from its new values and its
//! previous state; returning `None` removes the key. Runs for every key that has state, even
//! without new values (as Spark).

use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{state_type_name, ChangelogEntry, KeyedState, StateChangelog};
use crate::dstream::DStream;
use crate::error::Result;
use crate::exec::shuffle::FastMap;
use crate::exec::{Batch, Data, Key, VecPartitions};
use crate::graph::{OpId, StatefulOp};
use crate::time::Time;

pub(crate) struct UpdateStore<K, S>(pub(crate) KeyedState<K, S>);

impl<K, S> StatefulOp for UpdateStore<K, S>
where
    K: Key + Serialize + DeserializeOwned,
    S: Data + Serialize + DeserializeOwned,
{
    fn id(&self) -> String {
        self.0.op_id()
    }

    fn state_type(&self) -> String {
        state_type_name::<K, S>()
    }

    fn encode(&self) -> Result<Vec<u8>> {
        self.0.encode()
    }

    fn restore(&self, bytes: &[u8]) -> Result<()> {
        self.0.restore(bytes)
    }

    fn supports_changelog(&self) -> bool {
        true
    }

    fn partitions(&self) -> usize {
        self.0.store.n()
    }

    fn attach_changelog(&self, changelog: Arc<dyn StateChangelog>) {
        // Attached once, at start; a second attach of the same operator is refused there.
        let _ = self.0.changelog.set(changelog);
    }

    fn by_task(&self) -> bool {
        self.0.by_task
    }

    fn set_tasks(&self, count: usize) -> Result<()> {
        self.0.set_tasks(count)
    }

    fn drop_partition(&self, partition: usize) {
        self.0.drop_partition(partition)
    }

    fn restore_partition(
        &self,
        partition: usize,
        changelog: &dyn StateChangelog,
        progress: &dyn crate::state::restore::RestoreProgress,
    ) -> Result<u64> {
        self.0.restore_partition(partition, changelog, progress)
    }
}

impl<K, V> DStream<(K, V)>
where
    K: Key + Serialize + DeserializeOwned,
    V: Data,
{
    /// Keeps a state per key across batches: `f(new_values, previous_state)` → new state, or
    /// `None` to drop the key. The stream's batches are every key's state after the update.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use spate_streaming::{Config, StreamingContext};
    /// let ctx = StreamingContext::new(Config::new("s").batch_interval(Duration::from_millis(10)))?;
    /// let (_q, words) = ctx.queue_stream::<String>(true);
    /// let running = words.map(|w| (w, 1u64)).update_state_by_key(|new: &[u64], old: Option<u64>| {
    ///     Some(old.unwrap_or(0) + new.iter().sum::<u64>())
    /// });
    /// # Ok::<(), spate_streaming::StreamingError>(())
    /// ```
    pub fn update_state_by_key<S>(
        &self,
        f: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        S: Data + Serialize + DeserializeOwned,
    {
        let n = self.default_partitions();
        self.update_state_by_key_with(f, n, Vec::new())
    }

    /// [`DStream::update_state_by_key`] with a number of state partitions and an initial state.
    pub fn update_state_by_key_with<S>(
        &self,
        f: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        num_partitions: usize,
        initial_state: Vec<(K, S)>,
    ) -> DStream<(K, S)>
    where
        S: Data + Serialize + DeserializeOwned,
    {
        let id = self.ctx.unique_name("update_state_by_key");
        let op_id: OpId = Arc::new(Mutex::new(id.clone()));
        let st = KeyedState::new(op_id, num_partitions);
        st.store.load(initial_state);
        self.update_state(id, st, move |_, _, vs, s| f(vs, s))
    }

    /// [`DStream::update_state_by_key`] with state partitioned by the input's **tasks** (Kafka
    /// Streams' model, see [`crate::state::tasks`]): state partition p holds the keys of input
    /// partition p, so instances of a job that share a topic's partitions each hold the state
    /// of the partitions they own, and a partition's state moves with it (restored from the
    /// changelog by its new owner). The input must be co-partitioned — its records keyed by
    /// this stream's key, as the producer's partitioner placed them — with only narrow
    /// operators (map, filter, flat_map) in between. Each batch updates (and emits) the keys
    /// of the tasks it covers.
    pub fn update_state_by_key_by_task<S>(
        &self,
        f: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        S: Data + Serialize + DeserializeOwned,
    {
        self.update_state_by_key_by_task_with_time(move |_, _, vs, s| f(vs, s))
    }

    /// [`DStream::update_state_by_key_by_task`] with the batch's time and the key passed to
    /// `f(time, key, new_values, previous_state)` (Spark's `updateStateByKey` overload with
    /// `(Time, K, Seq[V], Option[S])`), for state that ages with time — e.g. the panes of
    /// [`DStream::reduce_by_key_and_window_by_task`].
    pub fn update_state_by_key_by_task_with_time<S>(
        &self,
        f: impl Fn(Time, &K, &[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        S: Data + Serialize + DeserializeOwned,
    {
        let id = self.ctx.unique_name("update_state_by_key");
        let op_id: OpId = Arc::new(Mutex::new(id.clone()));
        self.update_state(id, KeyedState::by_task(op_id), f)
    }

    fn update_state<S>(
        &self,
        id: String,
        st: KeyedState<K, S>,
        f: impl Fn(Time, &K, &[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)>
    where
        S: Data + Serialize + DeserializeOwned,
    {
        let op_id = st.id.clone();
        let st = Arc::new(UpdateStore(st));
        self.ctx.register_stateful(st.clone());
        let parent = self.node.clone();
        let mut s = self.ctx.add_node(&id, false, self.node.slide, move |bc| {
            let input: Batch<(K, V)> = parent.get(bc)?;
            let (which, grouped) = st.0.group(&input)?;
            let changes = st.0.change_buffers();
            let parts = bc.exec.run_tasks(bc.time, which.len(), |i| {
                let r = which[i];
                let data = std::mem::take(&mut *grouped[i].lock());
                let mut guard = st.0.store.parts()[r].lock();
                let old = std::mem::take(&mut *guard);
                let log = changes.as_ref().map(|c| &c[r]);
                let new = update_partition(
                    &st.0,
                    old,
                    data,
                    &|k: &K, vs: &[V], s| f(bc.time, k, vs, s),
                    log,
                )?;
                let out: Vec<(K, S)> = new.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
                *guard = new;
                Ok(out)
            })?;
            st.0.record_changes(bc.time, changes)?;
            Ok(Batch::new(
                Arc::new(VecPartitions::new(parts)),
                bc.exec.clone(),
                bc.time,
            ))
        });
        let node = s.node.clone();
        self.ctx
            .register_forced(&id, self.node.slide, move |bc| node.get(bc).map(|_| ()));
        s.op_id = Some(op_id);
        s
    }
}

/// One state partition's update: `f` for every key with state or new values. With a changelog
/// (`log`), every key whose state was written goes into it — a key without new values only when
/// its encoded state changed, so an idle key costs no changelog record — and every removed key
/// as a tombstone.
fn update_partition<K, V, S>(
    st: &KeyedState<K, S>,
    old: FastMap<K, S>,
    data: Vec<(K, V)>,
    f: &(impl Fn(&K, &[V], Option<S>) -> Option<S> + ?Sized),
    log: Option<&Mutex<Vec<ChangelogEntry>>>,
) -> Result<FastMap<K, S>>
where
    K: Key + Serialize + DeserializeOwned,
    S: Data + Serialize + DeserializeOwned,
{
    let mut values: FastMap<K, Vec<V>> = FastMap::default();
    for (k, v) in data {
        values.entry(k).or_default().push(v);
    }
    let mut new = FastMap::with_capacity_and_hasher(old.len() + values.len(), Default::default());
    let mut entries = Vec::new();
    for (k, s) in old {
        let vs = values.remove(&k).unwrap_or_default();
        // An idle key's state is compared by its encoding (S need not be PartialEq).
        let before = match (log, vs.is_empty()) {
            (Some(_), true) => Some(st.put_entry(&k, &s)?),
            _ => None,
        };
        match f(&k, &vs, Some(s)) {
            Some(s2) => {
                if log.is_some() {
                    let entry = st.put_entry(&k, &s2)?;
                    if before.as_ref() != Some(&entry) {
                        entries.push(entry);
                    }
                }
                new.insert(k, s2);
            }
            None if log.is_some() => entries.push(st.tombstone_entry(&k)?),
            None => {}
        }
    }
    for (k, vs) in values {
        if let Some(s2) = f(&k, &vs, None) {
            if log.is_some() {
                entries.push(st.put_entry(&k, &s2)?);
            }
            new.insert(k, s2);
        }
    }
    if let Some(log) = log {
        *log.lock() = entries;
    }
    Ok(new)
}

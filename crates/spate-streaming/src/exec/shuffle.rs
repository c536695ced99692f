//! Hash shuffles for key-value batches: `combine_by_key` (and everything built on it) and
//! `cogroup` (and the joins built on it).
//!
//! A shuffle is two stages. The map stage runs one task per parent partition, combining values
//! per key in N hash maps (one per reduce partition) — map-side combining, so a word count
//! ships one `(word, count)` per distinct word per partition instead of one per occurrence. The
//! reduce stage runs one task per reduce partition, merging the maps that the map tasks produced
//! for it; the maps are moved, not copied. Keys are placed with a fixed (unseeded) hash, so the
//! same key lands in the same partition in every run and after a restart.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::hash_map::Entry;
use hashbrown::{hash_table, HashTable};
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

use crate::error::Result;
use crate::exec::partition::VecPartitions;
use crate::exec::{Batch, Data, Key};

/// Hash map used by shuffles and state: fast, deterministic hashing.
pub(crate) type FastMap<K, V> = hashbrown::HashMap<K, V, FxBuildHasher>;

/// The reduce partition of `key` among `n`.
pub fn partition_of<K: Hash + ?Sized>(key: &K, n: usize) -> usize {
    partition_of_hash(FxBuildHasher.hash_one(key), n)
}

/// The reduce partition of a key whose [`FxBuildHasher`] hash is `h`.
#[inline]
fn partition_of_hash(h: u64, n: usize) -> usize {
    // Fold the high bits in: Fx keeps most of its entropy there.
    let folded = h ^ (h >> 29) ^ (h >> 47);
    let n = n.max(1) as u64;
    // The same partition as `%` (state partitions are keyed by it), without a 64-bit division
    // per key when n is a power of two (the default parallelism of most machines): a word
    // count hashes every word here, and the division was 3.7% of its profile.
    if n.is_power_of_two() {
        (folded & (n - 1)) as usize
    } else {
        (folded % n) as usize
    }
}

/// A map task's combiners for one reduce partition. A hash table keyed by the key's hash
/// rather than a map: the map stage hashes each record's key once, for both its reduce
/// partition and its slot (a word count hashes every word of every record here).
type Combiners<K, C> = HashTable<(K, C)>;

/// Merges `value` into the combiner of `key` (whose hash is `h`), creating it if absent.
fn combine_into<K: Key, V, C>(
    table: &mut Combiners<K, C>,
    h: u64,
    key: K,
    value: V,
    create: &impl Fn(V) -> C,
    merge_value: &impl Fn(C, V) -> C,
) {
    let rehash = |(k, _): &(K, C)| FxBuildHasher.hash_one(k);
    match table.entry(h, |(k, _)| *k == key, rehash) {
        hash_table::Entry::Occupied(e) => {
            // Take the combiner out and put the merged one back in the same slot.
            let ((k, c), slot) = e.remove();
            slot.insert((k, merge_value(c, value)));
        }
        hash_table::Entry::Vacant(e) => {
            e.insert((key, create(value)));
        }
    }
}

/// Merges the map tasks' combiners for one reduce partition into one map, moving entries.
fn merge_maps<K: Key, C>(
    tables: Vec<Combiners<K, C>>,
    merge: &(impl Fn(C, C) -> C + ?Sized),
) -> FastMap<K, C> {
    let capacity = tables.iter().map(HashTable::len).max().unwrap_or(0);
    let mut acc: FastMap<K, C> = FastMap::with_capacity_and_hasher(capacity, FxBuildHasher);
    for table in tables {
        for (k, c) in table {
            match acc.entry(k) {
                Entry::Occupied(e) => {
                    e.replace_entry_with(|_, old| Some(merge(old, c)));
                }
                Entry::Vacant(e) => {
                    e.insert(c);
                }
            }
        }
    }
    acc
}

/// Transposes `[map task][reduce partition]` into `[reduce partition]` slots a reduce task can
/// take its inputs from.
fn transpose<X>(map_outputs: Vec<Vec<X>>, n: usize) -> Vec<Mutex<Vec<X>>> {
    let mut per_reduce: Vec<Vec<X>> = (0..n).map(|_| Vec::new()).collect();
    for out in map_outputs {
        for (r, x) in out.into_iter().enumerate() {
            per_reduce[r].push(x);
        }
    }
    per_reduce.into_iter().map(Mutex::new).collect()
}

impl<K: Key, V: Data> Batch<(K, V)> {
    /// Spark's `combineByKey`: combiners are created from the first value of a key in each map
    /// task, values are merged into them, and combiners of different tasks are merged in the
    /// reduce stage. Result has `num_partitions` hash partitions.
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync,
        merge_value: impl Fn(C, V) -> C + Send + Sync,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync,
        num_partitions: usize,
    ) -> Result<Batch<(K, C)>> {
        let reduced =
            self.combine_to_maps(create, merge_value, &merge_combiners, num_partitions)?;
        let parts = reduced
            .into_iter()
            .map(|m| m.into_iter().collect::<Vec<_>>())
            .collect();
        Ok(self.with_partitions(Arc::new(VecPartitions::new(parts))))
    }

    /// The two shuffle stages of `combine_by_key`, returning one map per reduce partition
    /// (state operators merge these maps into their own state).
    pub(crate) fn combine_to_maps<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync,
        merge_value: impl Fn(C, V) -> C + Send + Sync,
        merge_combiners: &(impl Fn(C, C) -> C + Send + Sync),
        num_partitions: usize,
    ) -> Result<Vec<FastMap<K, C>>> {
        let n = num_partitions.max(1);
        let parts = &self.parts;
        let map_outputs = self
            .exec
            .run_tasks(self.time, parts.num_partitions(), |p| {
                let mut tables: Vec<Combiners<K, C>> = (0..n).map(|_| HashTable::new()).collect();
                for (k, v) in parts.compute(p)? {
                    let h = FxBuildHasher.hash_one(&k);
                    let table = &mut tables[partition_of_hash(h, n)];
                    combine_into(table, h, k, v, &create, &merge_value);
                }
                Ok(tables)
            })?;
        let slots = transpose(map_outputs, n);
        self.exec.run_tasks(self.time, n, |r| {
            let maps = std::mem::take(&mut *slots[r].lock());
            Ok(merge_maps(maps, merge_combiners))
        })
    }

    /// Merges the values of each key with `f` (associative), with map-side combining.
    pub fn reduce_by_key(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync,
        num_partitions: usize,
    ) -> Result<Batch<(K, V)>> {
        self.combine_by_key(|v| v, &f, &f, num_partitions)
    }

    /// All values of each key.
    pub fn group_by_key(&self, num_partitions: usize) -> Result<Batch<(K, Vec<V>)>> {
        self.combine_by_key(
            |v| vec![v],
            |mut c, v| {
                c.push(v);
                c
            },
            |mut a, mut b| {
                a.append(&mut b);
                a
            },
            num_partitions,
        )
    }

    /// Hash-partitions the elements into `n` partitions without combining (one `Vec` each).
    pub(crate) fn partition_by_key(&self, n: usize) -> Result<Vec<Vec<(K, V)>>> {
        let n = n.max(1);
        let parts = &self.parts;
        let map_outputs = self
            .exec
            .run_tasks(self.time, parts.num_partitions(), |p| {
                let mut out: Vec<Vec<(K, V)>> = (0..n).map(|_| Vec::new()).collect();
                for (k, v) in parts.compute(p)? {
                    out[partition_of(&k, n)].push((k, v));
                }
                Ok(out)
            })?;
        let mut merged: Vec<Vec<(K, V)>> = (0..n).map(|_| Vec::new()).collect();
        for out in map_outputs {
            for (r, mut b) in out.into_iter().enumerate() {
                merged[r].append(&mut b);
            }
        }
        Ok(merged)
    }

    /// Applies `f` to each value, keeping keys (and partitioning).
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + Send + Sync + 'static) -> Batch<(K, W)> {
        self.map(move |(k, v)| (k, f(v)))
    }

    /// Maps each value to zero or more values, keeping its key.
    pub fn flat_map_values<W, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> Batch<(K, W)>
    where
        W: Data,
        I: IntoIterator<Item = W> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.flat_map(move |(k, v)| {
            let k2 = k;
            f(v).into_iter()
                .map(move |w| (k2.clone(), w))
                .collect::<Vec<_>>()
        })
    }

    /// For each key in either batch, all its values from `self` and from `other`.
    #[allow(clippy::type_complexity)]
    pub fn cogroup<W: Data>(
        &self,
        other: &Batch<(K, W)>,
        num_partitions: usize,
    ) -> Result<Batch<(K, (Vec<V>, Vec<W>))>> {
        let n = num_partitions.max(1);
        let left = self.partition_by_key(n)?;
        let right = other.partition_by_key(n)?;
        let slots: Vec<Mutex<(Vec<(K, V)>, Vec<(K, W)>)>> =
            left.into_iter().zip(right).map(Mutex::new).collect();
        let parts = self.exec.run_tasks(self.time, n, |r| {
            let (l, rr) = std::mem::take(&mut *slots[r].lock());
            let mut m: FastMap<K, (Vec<V>, Vec<W>)> = FastMap::default();
            for (k, v) in l {
                m.entry(k).or_default().0.push(v);
            }
            for (k, w) in rr {
                m.entry(k).or_default().1.push(w);
            }
            Ok(m.into_iter().collect::<Vec<_>>())
        })?;
        Ok(self.with_partitions(Arc::new(VecPartitions::new(parts))))
    }

    /// Inner join: every pair of values of keys present in both.
    pub fn join<W: Data>(
        &self,
        other: &Batch<(K, W)>,
        num_partitions: usize,
    ) -> Result<Batch<(K, (V, W))>> {
        Ok(self
            .cogroup(other, num_partitions)?
            .flat_map(|(k, (vs, ws))| {
                let mut out = Vec::with_capacity(vs.len() * ws.len());
                for v in &vs {
                    for w in &ws {
                        out.push((k.clone(), (v.clone(), w.clone())));
                    }
                }
                out
            }))
    }

    /// Left outer join: every value of `self`, with `None` where `other` lacks the key.
    #[allow(clippy::type_complexity)]
    pub fn left_outer_join<W: Data>(
        &self,
        other: &Batch<(K, W)>,
        num_partitions: usize,
    ) -> Result<Batch<(K, (V, Option<W>))>> {
        Ok(self
            .cogroup(other, num_partitions)?
            .flat_map(|(k, (vs, ws))| {
                let mut out = Vec::new();
                for v in &vs {
                    if ws.is_empty() {
                        out.push((k.clone(), (v.clone(), None)));
                    }
                    for w in &ws {
                        out.push((k.clone(), (v.clone(), Some(w.clone()))));
                    }
                }
                out
            }))
    }

    /// Right outer join: every value of `other`, with `None` where `self` lacks the key.
    #[allow(clippy::type_complexity)]
    pub fn right_outer_join<W: Data>(
        &self,
        other: &Batch<(K, W)>,
        num_partitions: usize,
    ) -> Result<Batch<(K, (Option<V>, W))>> {
        Ok(self
            .cogroup(other, num_partitions)?
            .flat_map(|(k, (vs, ws))| {
                let mut out = Vec::new();
                for w in &ws {
                    if vs.is_empty() {
                        out.push((k.clone(), (None, w.clone())));
                    }
                    for v in &vs {
                        out.push((k.clone(), (Some(v.clone()), w.clone())));
                    }
                }
                out
            }))
    }

    /// Full outer join: keys of either side, `None` for the missing side.
    #[allow(clippy::type_complexity)]
    pub fn full_outer_join<W: Data>(
        &self,
        other: &Batch<(K, W)>,
        num_partitions: usize,
    ) -> Result<Batch<(K, (Option<V>, Option<W>))>> {
        Ok(self
            .cogroup(other, num_partitions)?
            .flat_map(|(k, (vs, ws))| {
                let mut out = Vec::new();
                match (vs.is_empty(), ws.is_empty()) {
                    (true, _) => {
                        out.extend(ws.iter().map(|w| (k.clone(), (None, Some(w.clone())))))
                    }
                    (_, true) => {
                        out.extend(vs.iter().map(|v| (k.clone(), (Some(v.clone()), None))))
                    }
                    _ => {
                        for v in &vs {
                            for w in &ws {
                                out.push((k.clone(), (Some(v.clone()), Some(w.clone()))));
                            }
                        }
                    }
                }
                out
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// State partitions are keyed by this function: the power-of-two path must place every key
    /// where the division does.
    #[test]
    fn a_power_of_two_count_places_keys_as_the_division_does() {
        for n in [1_usize, 2, 3, 4, 7, 8, 16, 64, 100] {
            for i in 0..10_000_u64 {
                let h = FxBuildHasher.hash_one(format!("w{i}"));
                let folded = h ^ (h >> 29) ^ (h >> 47);
                assert_eq!(partition_of_hash(h, n), (folded % n as u64) as usize);
            }
        }
        assert_eq!(partition_of_hash(12345, 0), 0);
    }
}

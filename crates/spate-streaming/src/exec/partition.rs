//! Partitioned data: the [`Partitions`] trait and the building blocks that implement it.
//!
//! An input computes a batch as a `Partitions` value from its plan (the Kafka direct stream: one
//! partition per offset range). Narrow operators wrap a parent in `Narrow`, which composes an
//! iterator adapter per partition instead of materialising a `Vec` per operator; shuffles and
//! windows produce materialised [`VecPartitions`].

use std::sync::Arc;

use crate::error::Result;

/// An iterator over one partition's elements.
pub type PartitionIter<'a, T> = Box<dyn Iterator<Item = T> + Send + 'a>;

/// A batch's data, split into partitions that are computed independently (and in parallel).
///
/// Implemented by inputs (see [`crate::input::InputStream::compute`]) and internally by the
/// operators. `compute` may be called more than once for the same partition (two outputs on one
/// stream), so it must be repeatable.
pub trait Partitions<T>: Send + Sync {
    /// How many partitions there are.
    fn num_partitions(&self) -> usize;
    /// Computes partition `partition` (`0..num_partitions()`).
    fn compute(&self, partition: usize) -> Result<PartitionIter<'_, T>>;

    /// The concrete type, for inputs that expose per-partition metadata to user code — e.g.
    /// the Kafka direct stream's offset ranges (Spark's `HasOffsetRanges`): `foreach_batch`
    /// can downcast `batch.partitions().as_any()` on the input stream's own batches. Derived
    /// batches (after a map, shuffle or window) return `None`, as in Spark.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The *task* partition `partition` belongs to, when the data is partitioned the way its
    /// input was written (Kafka Streams' tasks: the Kafka direct stream's partition *i* reads
    /// one Kafka partition, and its task is that partition's number). Narrow operators keep
    /// it, so a keyed state operator partitioned by task (see `crate::state::tasks`) finds the
    /// task of its records without a shuffle; a shuffle, a window or a `repartition` loses it
    /// (`None`, the default).
    fn task(&self, _partition: usize) -> Option<usize> {
        None
    }
}

/// Materialised partitions held in memory; reading clones the elements.
#[derive(Debug)]
pub struct VecPartitions<T> {
    parts: Vec<Arc<Vec<T>>>,
}

impl<T> VecPartitions<T> {
    /// One partition per inner `Vec`.
    pub fn new(parts: Vec<Vec<T>>) -> Self {
        VecPartitions {
            parts: parts.into_iter().map(Arc::new).collect(),
        }
    }

    /// From already shared partitions (no copy).
    pub fn from_shared(parts: Vec<Arc<Vec<T>>>) -> Self {
        VecPartitions { parts }
    }

    /// Splits `data` into `n` (at least 1) contiguous, near-equal partitions.
    pub fn split(data: Vec<T>, n: usize) -> Self {
        VecPartitions::new(split_vec(data, n))
    }

    /// The shared partitions.
    pub fn shared(&self) -> &[Arc<Vec<T>>] {
        &self.parts
    }
}

impl<T: Clone + Send + Sync> Partitions<T> for VecPartitions<T> {
    fn num_partitions(&self) -> usize {
        self.parts.len()
    }

    fn compute(&self, partition: usize) -> Result<PartitionIter<'_, T>> {
        match self.parts.get(partition) {
            Some(p) => Ok(Box::new(p.iter().cloned())),
            None => Ok(Box::new(std::iter::empty())),
        }
    }
}

/// Splits `data` into `n` (at least 1) contiguous, near-equal parts.
pub fn split_vec<T>(data: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let n = n.max(1);
    let len = data.len();
    let mut parts = Vec::with_capacity(n);
    let mut it = data.into_iter();
    for i in 0..n {
        let take = len / n + usize::from(i < len % n);
        parts.push(it.by_ref().take(take).collect::<Vec<T>>());
    }
    parts
}

/// A per-partition transformation of a parent: the unit of operator fusion.
pub(crate) type NarrowFn<T, U> =
    dyn for<'a> Fn(usize, PartitionIter<'a, T>) -> PartitionIter<'a, U> + Send + Sync;

/// A narrow (partition-to-partition) transformation of a parent.
pub(crate) struct Narrow<T, U> {
    pub(crate) parent: Arc<dyn Partitions<T>>,
    pub(crate) f: Arc<NarrowFn<T, U>>,
}

impl<T: Send + 'static, U: Send + 'static> Partitions<U> for Narrow<T, U> {
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }

    fn compute(&self, partition: usize) -> Result<PartitionIter<'_, U>> {
        let it = self.parent.compute(partition)?;
        Ok((self.f)(partition, it))
    }

    fn task(&self, partition: usize) -> Option<usize> {
        self.parent.task(partition)
    }
}

/// The partitions of several parents, one after another.
pub(crate) struct Union<T> {
    pub(crate) parents: Vec<Arc<dyn Partitions<T>>>,
}

impl<T: Send + 'static> Partitions<T> for Union<T> {
    fn num_partitions(&self) -> usize {
        self.parents.iter().map(|p| p.num_partitions()).sum()
    }

    fn compute(&self, mut partition: usize) -> Result<PartitionIter<'_, T>> {
        for p in &self.parents {
            let n = p.num_partitions();
            if partition < n {
                return p.compute(partition);
            }
            partition -= n;
        }
        Ok(Box::new(std::iter::empty()))
    }

    /// Co-partitioned inputs (same key, same partitioner, same partition count) put a key in
    /// the same task in every parent, so a union keeps each parent's tasks.
    fn task(&self, mut partition: usize) -> Option<usize> {
        for p in &self.parents {
            let n = p.num_partitions();
            if partition < n {
                return p.task(partition);
            }
            partition -= n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_balanced_and_complete() {
        let p = VecPartitions::split((0..10).collect::<Vec<i32>>(), 3);
        let sizes: Vec<usize> = p.shared().iter().map(|v| v.len()).collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        let all: Vec<i32> = (0..3)
            .flat_map(|i| p.compute(i).unwrap().collect::<Vec<_>>())
            .collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}

//! [`Batch`]: the data of one stream for one batch time (Spark's RDD for that time).
//!
//! Transformations are lazy and fuse per partition; actions (`collect`, `count`,
//! `foreach_partition`) run one task per partition on the worker pool. Key-value operations
//! (`reduce_by_key`, joins, …) live in [`super::shuffle`].

use std::sync::Arc;

use crate::error::{BoxError, Result, StreamingError};
use crate::exec::partition::{Narrow, PartitionIter, Partitions, Union, VecPartitions};
use crate::exec::pool::Executor;
use crate::exec::Data;
use crate::time::Time;

/// The data of one stream for one batch time, split into partitions.
///
/// Handed to `foreach_batch` and `transform` closures. Cloning is cheap (shared).
pub struct Batch<T> {
    pub(crate) parts: Arc<dyn Partitions<T>>,
    pub(crate) exec: Arc<Executor>,
    pub(crate) time: Time,
}

impl<T> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Batch {
            parts: self.parts.clone(),
            exec: self.exec.clone(),
            time: self.time,
        }
    }
}

impl<T> std::fmt::Debug for Batch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("time", &self.time)
            .field("partitions", &self.parts.num_partitions())
            .finish()
    }
}

impl<T: Data> Batch<T> {
    pub(crate) fn new(parts: Arc<dyn Partitions<T>>, exec: Arc<Executor>, time: Time) -> Self {
        Batch { parts, exec, time }
    }

    /// The batch time this data belongs to.
    pub fn time(&self) -> Time {
        self.time
    }

    /// Number of partitions (tasks of the next action).
    pub fn num_partitions(&self) -> usize {
        self.parts.num_partitions()
    }

    /// The underlying partitions.
    pub fn partitions(&self) -> &Arc<dyn Partitions<T>> {
        &self.parts
    }

    /// A batch with the same executor and time over other partitions.
    pub fn with_partitions<U: Data>(&self, parts: Arc<dyn Partitions<U>>) -> Batch<U> {
        Batch::new(parts, self.exec.clone(), self.time)
    }

    /// A batch of `data` split into `num_partitions` partitions (Spark's `parallelize`).
    pub fn parallelize<U: Data>(&self, data: Vec<U>, num_partitions: usize) -> Batch<U> {
        self.with_partitions(Arc::new(VecPartitions::split(data, num_partitions)))
    }

    /// An empty batch of the same time.
    pub fn empty<U: Data>(&self) -> Batch<U> {
        self.with_partitions(Arc::new(VecPartitions::<U>::new(Vec::new())))
    }

    pub(crate) fn narrow<U: Data>(
        &self,
        f: impl for<'a> Fn(usize, PartitionIter<'a, T>) -> PartitionIter<'a, U> + Send + Sync + 'static,
    ) -> Batch<U> {
        self.with_partitions(Arc::new(Narrow {
            parent: self.parts.clone(),
            f: Arc::new(f),
        }))
    }

    /// Applies `f` to every element.
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Batch<U> {
        let f = Arc::new(f);
        self.narrow(move |_, it| {
            let f = f.clone();
            Box::new(it.map(move |x| f(x)))
        })
    }

    /// Keeps the elements for which `f` is true.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Batch<T> {
        let f = Arc::new(f);
        self.narrow(move |_, it| {
            let f = f.clone();
            Box::new(it.filter(move |x| f(x)))
        })
    }

    /// Maps each element to zero or more elements.
    pub fn flat_map<U, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Batch<U>
    where
        U: Data,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.narrow(move |_, it| {
            let f = f.clone();
            Box::new(it.flat_map(move |x| f(x)))
        })
    }

    /// Transforms a whole partition at once: `f` consumes the partition's iterator and returns
    /// an owned collection (or an iterator that owns its data).
    pub fn map_partitions<U, I>(
        &self,
        f: impl for<'a> Fn(PartitionIter<'a, T>) -> I + Send + Sync + 'static,
    ) -> Batch<U>
    where
        U: Data,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.narrow(move |_, it| Box::new(f(it).into_iter()))
    }

    /// Like [`Batch::map_partitions`], with the partition index.
    pub fn map_partitions_with_index<U, I>(
        &self,
        f: impl for<'a> Fn(usize, PartitionIter<'a, T>) -> I + Send + Sync + 'static,
    ) -> Batch<U>
    where
        U: Data,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.narrow(move |p, it| Box::new(f(p, it).into_iter()))
    }

    /// Each partition as one `Vec` element (Spark's `glom`).
    pub fn glom(&self) -> Batch<Vec<T>> {
        self.narrow(|_, it| Box::new(std::iter::once(it.collect::<Vec<T>>())))
    }

    /// The partitions of `self` followed by those of `other`.
    pub fn union(&self, other: &Batch<T>) -> Batch<T> {
        self.with_partitions(Arc::new(Union {
            parents: vec![self.parts.clone(), other.parts.clone()],
        }))
    }

    /// Union of many batches (empty input gives an empty batch).
    pub(crate) fn union_all(&self, others: &[Batch<T>]) -> Batch<T> {
        let mut parents = vec![self.parts.clone()];
        parents.extend(others.iter().map(|b| b.parts.clone()));
        self.with_partitions(Arc::new(Union { parents }))
    }

    /// Computes every partition in parallel and keeps the result in memory, so later reads do
    /// not recompute the lineage.
    pub fn materialize(&self) -> Result<Batch<T>> {
        let parts = self.collect_partitions()?;
        Ok(self.with_partitions(Arc::new(VecPartitions::new(parts))))
    }

    /// Computes every partition in parallel; one `Vec` per partition, in order.
    pub fn collect_partitions(&self) -> Result<Vec<Vec<T>>> {
        let parts = &self.parts;
        self.exec.run_tasks(self.time, parts.num_partitions(), |p| {
            Ok(parts.compute(p)?.collect::<Vec<T>>())
        })
    }

    /// All elements, partition by partition.
    pub fn collect(&self) -> Result<Vec<T>> {
        Ok(self.collect_partitions()?.into_iter().flatten().collect())
    }

    /// Number of elements.
    pub fn count(&self) -> Result<u64> {
        let parts = &self.parts;
        let counts = self
            .exec
            .run_tasks(self.time, parts.num_partitions(), |p| {
                Ok(parts.compute(p)?.count() as u64)
            })?;
        Ok(counts.into_iter().sum())
    }

    /// Whether the batch has no elements.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.count()? == 0)
    }

    /// The first `n` elements in partition order (computes partitions one at a time until it has
    /// enough, like Spark's `take`).
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(n.min(1024));
        for p in 0..self.parts.num_partitions() {
            if out.len() >= n {
                break;
            }
            let want = n - out.len();
            // One task on this thread: it still turns a `fail_task` unwind into its error.
            let got = self.exec.run_tasks(self.time, 1, |_| {
                Ok(self.parts.compute(p)?.take(want).collect::<Vec<T>>())
            })?;
            out.extend(got.into_iter().flatten());
        }
        Ok(out)
    }

    /// Runs `f` on every partition in parallel (Spark's `foreachPartition`): the place to open
    /// one connection per partition. An error or panic in any partition fails the call.
    pub fn foreach_partition<E>(
        &self,
        f: impl for<'a> Fn(usize, PartitionIter<'a, T>) -> std::result::Result<(), E> + Send + Sync,
    ) -> Result<()>
    where
        E: Into<BoxError>,
    {
        let parts = &self.parts;
        let time = self.time;
        self.exec.run_tasks(time, parts.num_partitions(), |p| {
            f(p, parts.compute(p)?).map_err(|e| {
                let e: BoxError = e.into();
                StreamingError::TaskFailed {
                    time,
                    partition: p,
                    message: e.to_string(),
                    source: Some(Arc::from(e)),
                }
            })
        })?;
        Ok(())
    }

    /// Redistributes the elements round-robin into `n` partitions (a full shuffle, like Spark's
    /// `repartition`; element order within a partition follows the source partitions).
    pub fn repartition(&self, n: usize) -> Result<Batch<T>> {
        let n = n.max(1);
        let parts = &self.parts;
        let m = parts.num_partitions().max(1);
        let buckets = self.exec.run_tasks(self.time, m, |p| {
            let mut out: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
            // Source partitions start at spread-out targets so small partitions do not all
            // land on the first few buckets.
            let start = p * n / m;
            for (i, x) in parts.compute(p)?.enumerate() {
                out[(start + i) % n].push(x);
            }
            Ok(out)
        })?;
        let mut merged: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
        for map_out in buckets {
            for (r, b) in map_out.into_iter().enumerate() {
                merged[r].extend(b);
            }
        }
        Ok(self.with_partitions(Arc::new(VecPartitions::new(merged))))
    }

    /// Reduces all elements with `f` (None when empty). Partitions reduce in parallel.
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync) -> Result<Option<T>> {
        let parts = &self.parts;
        let partials = self
            .exec
            .run_tasks(self.time, parts.num_partitions(), |p| {
                Ok(parts.compute(p)?.reduce(&f))
            })?;
        Ok(partials.into_iter().flatten().reduce(&f))
    }
}

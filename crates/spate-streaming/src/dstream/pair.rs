//! Key-value operators on `DStream<(K, V)>` (Spark's `PairDStreamFunctions`): per-batch
//! aggregation by key and joins between streams. All shuffle by key hash into
//! `spate.streaming.default.parallelism` partitions unless a `_with` variant names a number.

use std::sync::Arc;

use crate::dstream::DStream;
use crate::error::Result;
use crate::error::StreamingError;
use crate::exec::{Batch, Data, Key};
use crate::graph::BatchContext;

impl<K: Key, V: Data> DStream<(K, V)> {
    pub(crate) fn default_partitions(&self) -> usize {
        self.ctx.inner.conf.default_parallelism
    }

    /// Merges the values of each key in every batch with `f` (map-side combined).
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        let n = self.default_partitions();
        self.reduce_by_key_with(f, n)
    }

    /// [`DStream::reduce_by_key`] into `num_partitions` partitions.
    pub fn reduce_by_key_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        num_partitions: usize,
    ) -> DStream<(K, V)> {
        self.derive("reduce_by_key", move |b, _| {
            b.reduce_by_key(&f, num_partitions)
        })
    }

    /// All values of each key in every batch.
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        let n = self.default_partitions();
        self.derive("group_by_key", move |b, _| b.group_by_key(n))
    }

    /// Spark's `combineByKey` per batch (see [`Batch::combine_by_key`]).
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> DStream<(K, C)> {
        let n = self.default_partitions();
        self.derive("combine_by_key", move |b, _| {
            b.combine_by_key(&create, &merge_value, &merge_combiners, n)
        })
    }

    /// Applies `f` to each value, keeping keys.
    pub fn map_values<W: Data>(
        &self,
        f: impl Fn(V) -> W + Send + Sync + 'static,
    ) -> DStream<(K, W)> {
        let f = Arc::new(f);
        self.derive("map_values", move |b, _| {
            let f = f.clone();
            Ok(b.map_values(move |v| f(v)))
        })
    }

    /// Maps each value to zero or more values, keeping its key.
    pub fn flat_map_values<W, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> DStream<(K, W)>
    where
        W: Data,
        I: IntoIterator<Item = W> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.derive("flat_map_values", move |b, _| {
            let f = f.clone();
            Ok(b.flat_map_values(move |v| f(v)))
        })
    }

    /// Combines this stream's batch with `other`'s batch of the same time.
    fn binary<W: Data, O: Data>(
        &self,
        kind: &str,
        other: &DStream<(K, W)>,
        f: impl Fn(&Batch<(K, V)>, &Batch<(K, W)>, usize, &BatchContext) -> Result<Batch<O>>
            + Send
            + Sync
            + 'static,
    ) -> DStream<O> {
        if self.node.slide != other.node.slide {
            self.ctx.graph_error(StreamingError::operator(
                kind,
                format!(
                    "streams slide every {:?} and {:?}; {kind} needs equal slides",
                    self.slide_duration(),
                    other.slide_duration()
                ),
            ));
        }
        let n = self.default_partitions();
        let (a, b) = (self.node.clone(), other.node.clone());
        self.ctx.add_node(kind, false, self.node.slide, move |bc| {
            f(&a.get(bc)?, &b.get(bc)?, n, bc)
        })
    }

    /// For each key in either stream's batch, its values from both.
    #[allow(clippy::type_complexity)]
    pub fn cogroup<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Vec<V>, Vec<W>))> {
        self.binary("cogroup", other, |a, b, n, _| a.cogroup(b, n))
    }

    /// Inner join of the two streams' batches of the same time.
    pub fn join<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (V, W))> {
        self.binary("join", other, |a, b, n, _| a.join(b, n))
    }

    /// Left outer join.
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (V, Option<W>))> {
        self.binary("left_outer_join", other, |a, b, n, _| {
            a.left_outer_join(b, n)
        })
    }

    /// Right outer join.
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, W))> {
        self.binary("right_outer_join", other, |a, b, n, _| {
            a.right_outer_join(b, n)
        })
    }

    /// Full outer join.
    #[allow(clippy::type_complexity)]
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, Option<W>))> {
        self.binary("full_outer_join", other, |a, b, n, _| {
            a.full_outer_join(b, n)
        })
    }
}

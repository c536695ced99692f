//! [`DStream`]: a typed, lazy stream of batches — Spark's discretized stream.
//!
//! Building a DStream only adds a node to the job graph; nothing runs until the context starts.
//! Then, for every batch time, each output operation evaluates its stream, which evaluates its
//! parents: narrow operators compose per partition (fused), key operators shuffle. Operator
//! families live in sibling files: this one (element-wise and whole-batch operators),
//! [`pair`] (key-value operators), [`windowed`] (windows), and `crate::state` (stateful).

pub mod pair;
pub mod windowed;

use std::sync::Arc;
use std::time::Duration;

use crate::context::StreamingContext;
use crate::error::{BoxError, Result, StreamingError};
use crate::exec::{Batch, Data, Key, PartitionIter};
use crate::graph::{BatchContext, Node, OpId};
use crate::time::Time;

/// A stream of batches of `T`, one batch per slide (normally every batch interval).
pub struct DStream<T> {
    pub(crate) ctx: StreamingContext,
    pub(crate) node: Arc<Node<T>>,
    /// Set on the streams of stateful operators: their checkpoint id, see [`DStream::uid`].
    pub(crate) op_id: Option<OpId>,
}

impl<T> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream {
            ctx: self.ctx.clone(),
            node: self.node.clone(),
            op_id: self.op_id.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DStream")
            .field("operator", &self.node.name)
            .field("slide_batches", &self.node.slide)
            .finish()
    }
}

impl<T: Data> DStream<T> {
    /// A child stream with the same slide whose batch is computed from this stream's batch.
    pub(crate) fn derive<U: Data>(
        &self,
        kind: &str,
        f: impl Fn(Batch<T>, &BatchContext) -> Result<Batch<U>> + Send + Sync + 'static,
    ) -> DStream<U> {
        let parent = self.node.clone();
        self.ctx.add_node(kind, false, self.node.slide, move |bc| {
            f(parent.get(bc)?, bc)
        })
    }

    /// Gives the stateful operator that produced this stream (`update_state_by_key`,
    /// `map_with_state`, `window`, `reduce_by_key_and_window`, …) a stable id for checkpoints,
    /// like Flink's `uid`. Without one, ids are `kind-N` in definition order, so a new version
    /// of the job that defines another operator of the same kind earlier would shift them; with
    /// uids, operators can be added and reordered freely. Must be called before `start`; on a
    /// stateless stream it is an error reported by `start`.
    pub fn uid(self, uid: impl Into<String>) -> Self {
        let uid = uid.into();
        match &self.op_id {
            Some(id) => *id.lock() = uid,
            None => self.ctx.graph_error(StreamingError::operator(
                "uid",
                format!(
                    "`{uid}` is set on `{}`, which keeps no state",
                    self.node.name
                ),
            )),
        }
        self
    }

    /// The context this stream belongs to.
    pub fn context(&self) -> &StreamingContext {
        &self.ctx
    }

    /// How often this stream produces a batch (the batch interval, or a window's slide).
    pub fn slide_duration(&self) -> Duration {
        self.ctx.batch_interval() * self.node.slide as u32
    }

    /// Applies `f` to every element.
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.derive("map", move |b, _| {
            let f = f.clone();
            Ok(b.map(move |x| f(x)))
        })
    }

    /// Keeps the elements for which `f` is true.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.derive("filter", move |b, _| {
            let f = f.clone();
            Ok(b.filter(move |x| f(x)))
        })
    }

    /// Maps each element to zero or more elements.
    pub fn flat_map<U, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> DStream<U>
    where
        U: Data,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.derive("flat_map", move |b, _| {
            let f = f.clone();
            Ok(b.flat_map(move |x| f(x)))
        })
    }

    /// Transforms each partition at once (`f` consumes the partition's iterator and returns
    /// owned output) — e.g. to open one connection per partition.
    pub fn map_partitions<U, I>(
        &self,
        f: impl for<'a> Fn(PartitionIter<'a, T>) -> I + Send + Sync + 'static,
    ) -> DStream<U>
    where
        U: Data,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send,
    {
        let f = Arc::new(f);
        self.derive("map_partitions", move |b, _| {
            let f = f.clone();
            Ok(b.map_partitions(move |it| f(it)))
        })
    }

    /// Each partition as one `Vec`.
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.derive("glom", |b, _| Ok(b.glom()))
    }

    /// Redistributes every batch round-robin into `num_partitions` partitions.
    pub fn repartition(&self, num_partitions: usize) -> DStream<T> {
        self.derive("repartition", move |b, _| b.repartition(num_partitions))
    }

    /// Elements of both streams (same slide required; reported by `start` otherwise).
    pub fn union(&self, other: &DStream<T>) -> DStream<T> {
        if self.node.slide != other.node.slide {
            self.ctx.graph_error(StreamingError::operator(
                "union",
                format!(
                    "streams slide every {:?} and {:?}; union needs equal slides",
                    self.slide_duration(),
                    other.slide_duration()
                ),
            ));
        }
        let (a, b) = (self.node.clone(), other.node.clone());
        self.ctx
            .add_node("union", false, self.node.slide, move |bc| {
                Ok(a.get(bc)?.union(&b.get(bc)?))
            })
    }

    /// One element per batch: the number of elements (0 for an empty batch, as Spark).
    pub fn count(&self) -> DStream<u64> {
        self.derive("count", |b, _| {
            let n = b.count()?;
            Ok(b.parallelize(vec![n], 1))
        })
    }

    /// One element per non-empty batch: all elements reduced with `f`.
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T> {
        self.derive("reduce", move |b, _| {
            let r = b.reduce(&f)?;
            Ok(b.parallelize(r.into_iter().collect(), 1))
        })
    }

    /// Each distinct element with its number of occurrences in the batch.
    pub fn count_by_value(&self) -> DStream<(T, u64)>
    where
        T: Key,
    {
        let n = self.ctx.inner.conf.default_parallelism;
        self.map(|x| (x, 1u64))
            .derive("count_by_value", move |b, _| {
                b.reduce_by_key(|a, b| a + b, n)
            })
    }

    /// Any batch-to-batch function (Spark's `transform`): `f` gets the batch and its time.
    pub fn transform<U, E>(
        &self,
        f: impl Fn(Batch<T>, Time) -> std::result::Result<Batch<U>, E> + Send + Sync + 'static,
    ) -> DStream<U>
    where
        U: Data,
        E: Into<BoxError>,
    {
        self.derive("transform", move |b, bc| {
            f(b, bc.time).map_err(|e| {
                let e: BoxError = e.into();
                StreamingError::TaskFailed {
                    time: bc.time,
                    partition: 0,
                    message: format!("transform: {e}"),
                    source: Some(Arc::from(e)),
                }
            })
        })
    }

    /// Like [`DStream::transform`] over two streams (Spark's `transformWith`).
    pub fn transform_with<U, V, E>(
        &self,
        other: &DStream<U>,
        f: impl Fn(Batch<T>, Batch<U>, Time) -> std::result::Result<Batch<V>, E> + Send + Sync + 'static,
    ) -> DStream<V>
    where
        U: Data,
        V: Data,
        E: Into<BoxError>,
    {
        let (a, b) = (self.node.clone(), other.node.clone());
        self.ctx
            .add_node("transform_with", false, self.node.slide, move |bc| {
                f(a.get(bc)?, b.get(bc)?, bc.time).map_err(|e| {
                    let e: BoxError = e.into();
                    StreamingError::TaskFailed {
                        time: bc.time,
                        partition: 0,
                        message: format!("transform_with: {e}"),
                        source: Some(Arc::from(e)),
                    }
                })
            })
    }
}

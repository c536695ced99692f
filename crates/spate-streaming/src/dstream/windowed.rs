//! Window operators (Spark's window operations). Each returns `Result`: a window length or
//! slide that is not a multiple of the parent stream's slide is an error naming the operator,
//! reported where the window is defined.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dstream::DStream;
use parking_lot::Mutex;

use crate::error::Result;
use crate::exec::{Data, Key};
use crate::graph::OpId;
use crate::window::{window_spec, KeepFn, ReducedWindow, WindowBuffer};

impl<T: Data> DStream<T> {
    /// Every `slide`, the elements of the batches of the last `length` (Spark's `window`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use spate_streaming::{Config, StreamingContext};
    /// let ctx = StreamingContext::new(Config::new("w").batch_interval(Duration::from_millis(10)))?;
    /// let (_q, s) = ctx.queue_stream::<u32>(true);
    /// assert!(s.window(Duration::from_millis(30), Duration::from_millis(20)).is_ok());
    /// let err = s.window(Duration::from_millis(25), Duration::from_millis(10)).unwrap_err();
    /// assert!(err.to_string().contains("window"));
    /// # Ok::<(), spate_streaming::StreamingError>(())
    /// ```
    pub fn window(&self, length: Duration, slide: Duration) -> Result<DStream<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        let spec = window_spec(
            "window",
            self.ctx.batch_interval(),
            self.node.slide,
            length,
            slide,
        )?;
        let id = self.ctx.unique_name("window");
        let op_id: OpId = Arc::new(Mutex::new(id.clone()));
        let buf = Arc::new(WindowBuffer::<T>::new(op_id.clone(), spec.len_ms));
        self.ctx.register_stateful(buf.clone());
        let (parent, tick_buf) = (self.node.clone(), buf.clone());
        self.ctx
            .register_forced(&id, self.node.slide, move |bc| tick_buf.tick(&parent, bc));
        let mut s = self
            .ctx
            .add_node("window", false, spec.slide, move |bc| Ok(buf.window(bc)));
        s.op_id = Some(op_id);
        Ok(s)
    }

    /// Every `slide`, the number of elements in the last `length`.
    pub fn count_by_window(&self, length: Duration, slide: Duration) -> Result<DStream<u64>> {
        Ok(self.map(|_| ()).window(length, slide)?.count())
    }

    /// Every `slide`, all elements of the last `length` reduced with `f` (associative).
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        let f = Arc::new(f);
        let f2 = f.clone();
        Ok(self
            .reduce(move |a, b| f(a, b))
            .window(length, slide)?
            .reduce(move |a, b| f2(a, b)))
    }

    /// Every `slide`, each distinct element's count over the last `length`; computed
    /// incrementally, keys whose count drops to zero are removed.
    pub fn count_by_value_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(T, u64)>>
    where
        T: Key + Serialize + DeserializeOwned,
    {
        self.map(|x| (x, 1u64))
            .reduce_by_key_and_window_inv_filtered(
                |a, b| a + b,
                |a, b| a - b,
                length,
                slide,
                |(_, c): &(T, u64)| *c != 0,
            )
    }
}

impl<K, V> DStream<(K, V)>
where
    K: Key + Serialize + DeserializeOwned,
    V: Data + Serialize + DeserializeOwned,
{
    /// Every `slide`, the values of each key over the last `length` reduced with `f`
    /// (recomputed from the buffered per-batch reductions).
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>> {
        let f = Arc::new(f);
        let f2 = f.clone();
        Ok(self
            .reduce_by_key(move |a, b| f(a, b))
            .window(length, slide)?
            .reduce_by_key(move |a, b| f2(a, b)))
    }

    /// Incremental version: each slide adds the entering batches with `f` and removes the
    /// leaving ones with the inverse `inv` (`inv(f(a, b), b) == a`). Keys stay (with e.g. a
    /// zero count) until they leave; see the `_filtered` variant to drop them.
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>> {
        self.reduced_window(f, inv, length, slide, None)
    }

    /// Like [`DStream::reduce_by_key_and_window_inv`], keeping only pairs for which `keep` is
    /// true (Spark's `filterFunc`, e.g. to drop keys whose count reached zero).
    pub fn reduce_by_key_and_window_inv_filtered(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        keep: impl Fn(&(K, V)) -> bool + Send + Sync + 'static,
    ) -> Result<DStream<(K, V)>> {
        self.reduced_window(f, inv, length, slide, Some(Arc::new(keep)))
    }

    fn reduced_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        keep: Option<KeepFn<K, V>>,
    ) -> Result<DStream<(K, V)>> {
        const OP: &str = "reduce_by_key_and_window";
        let spec = window_spec(
            OP,
            self.ctx.batch_interval(),
            self.node.slide,
            length,
            slide,
        )?;
        let id = self.ctx.unique_name(OP);
        let op_id: OpId = Arc::new(Mutex::new(id.clone()));
        let rw = Arc::new(ReducedWindow::<K, V>::new(
            op_id.clone(),
            spec,
            self.default_partitions(),
        ));
        self.ctx.register_stateful(rw.clone());
        let f = Arc::new(f);
        let (parent, tick_rw, tick_f) = (self.node.clone(), rw.clone(), f.clone());
        self.ctx.register_forced(&id, self.node.slide, move |bc| {
            tick_rw.tick(&parent, &*tick_f, bc)
        });
        let mut s = self.ctx.add_node(OP, false, spec.slide, move |bc| {
            rw.slide(&*f, &inv, keep.as_ref(), bc)
        });
        s.op_id = Some(op_id);
        // Slide even when no output reads the window at this time: the state must move on.
        let node = s.node.clone();
        self.ctx
            .register_forced(&format!("{id}/slide"), spec.slide, move |bc| {
                node.get(bc).map(|_| ())
            });
        Ok(s)
    }
}

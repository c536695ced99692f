//! `reduce_by_key_and_window_by_task`: a windowed reduction whose state is held per task, so
//! instances of a job that share a topic's partitions each hold the windows of the partitions
//! they own, and a partition's windows move with it (logged to the changelog with the batch's
//! outputs and restored by the new owner, like any state partitioned by task).
//!
//! [`DStream::reduce_by_key_and_window`] keeps the window as buffered per-batch reductions in
//! the instance's memory (Spark's model: a window is recomputed from the batches it covers), so
//! a window only ever holds what its own instance computed. Here the window is a key's state:
//! its *panes* — per batch time in the window, that batch's values reduced (Flink's pane-based
//! sliding windows). Every batch adds a pane for the keys it has values for and drops the panes
//! that left the window; a key without panes is removed (a tombstone in the changelog). Every
//! slide, each key's panes are reduced into its window value. Memory per key: at most one pane
//! per batch interval of the window length.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dstream::DStream;
use crate::error::Result;
use crate::exec::{Data, Key};
use crate::time::Time;
use crate::window::window_spec;

/// The panes of one key's window: (batch time in ms, the batch's values reduced), oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WindowPanes<V> {
    panes: Vec<(u64, V)>,
}

impl<V: Clone> WindowPanes<V> {
    /// The panes still in a window of `len_ms` ending at `time`, plus the batch's `values`
    /// reduced with `f` as its pane; `None` when nothing is left.
    fn advance(
        previous: Option<Self>,
        time: Time,
        len_ms: u64,
        values: &[V],
        f: &(impl Fn(V, V) -> V + ?Sized),
    ) -> Option<Self> {
        let mut panes = previous.map_or_else(Vec::new, |p| p.panes);
        // The window ending at `time` covers (time - length, time].
        let start = time.0.saturating_sub(len_ms);
        panes.retain(|(t, _)| *t > start);
        if let Some(pane) = values.iter().cloned().reduce(f) {
            panes.push((time.0, pane));
        }
        (!panes.is_empty()).then_some(WindowPanes { panes })
    }

    /// The window's value: every pane reduced with `f`.
    fn reduce(self, f: &(impl Fn(V, V) -> V + ?Sized)) -> Option<V> {
        self.panes.into_iter().map(|(_, v)| v).reduce(f)
    }
}

impl<K, V> DStream<(K, V)>
where
    K: Key + Serialize + DeserializeOwned,
    V: Data + Serialize + DeserializeOwned,
{
    /// [`DStream::reduce_by_key_and_window`] with the window held as state partitioned by
    /// task (see [`DStream::update_state_by_key_by_task`] for what the input must be): every
    /// `slide`, the values of each key over the last `length` reduced with `f`, for the keys of
    /// the tasks the batch covers. Give it a [`DStream::uid`] and a changelog
    /// (`StreamingContext::state_changelog`) so that the windows survive a restart and move
    /// with their tasks between instances.
    pub fn reduce_by_key_and_window_by_task(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> Result<DStream<(K, V)>> {
        const OP: &str = "reduce_by_key_and_window_by_task";
        let spec = window_spec(
            OP,
            self.ctx.batch_interval(),
            self.node.slide,
            length,
            slide,
        )?;
        let f = Arc::new(f);
        let update_f = f.clone();
        let len_ms = spec.len_ms;
        let panes = self.update_state_by_key_by_task_with_time(move |time, _, values, previous| {
            WindowPanes::advance(previous, time, len_ms, values, &*update_f)
        });
        let parent = panes.node.clone();
        let mut s = self.ctx.add_node(OP, false, spec.slide, move |bc| {
            let f = f.clone();
            Ok(parent
                .get(bc)?
                .flat_map(move |(k, panes)| panes.reduce(&*f).map(|v| (k, v))))
        });
        // `uid` names the panes' state: its checkpoints and changelog topic.
        s.op_id = panes.op_id;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: u64, b: u64) -> u64 {
        a + b
    }

    #[test]
    fn panes_leave_the_window_and_an_empty_window_is_removed() {
        let len = 300;
        let p = WindowPanes::advance(None, Time(1_000), len, &[1, 2], &add);
        assert_eq!(p.clone().unwrap().reduce(&add), Some(3));
        // No values at 1,100: the pane of 1,000 stays, nothing is added.
        let p = WindowPanes::advance(p, Time(1_100), len, &[], &add);
        assert_eq!(p.as_ref().map(|p| p.panes.len()), Some(1));
        let p = WindowPanes::advance(p, Time(1_200), len, &[10], &add);
        assert_eq!(p.clone().unwrap().reduce(&add), Some(13));
        // The window ending at 1,300 covers (1,000, 1,300]: the pane of 1,000 left it.
        let p = WindowPanes::advance(p, Time(1_300), len, &[], &add);
        assert_eq!(p.clone().unwrap().reduce(&add), Some(10));
        assert_eq!(WindowPanes::advance(p, Time(1_500), len, &[], &add), None);
    }
}

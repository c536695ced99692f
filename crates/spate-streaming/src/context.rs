//! [`StreamingContext`]: the entry point. Holds the configuration, the worker pool, the job
//! graph being built, and — once started — the scheduler threads.
//!
//! Lifecycle (Spark's `StreamingContextState`): `Initialized` → `start()` → `Active` →
//! `stop()` or a failed batch → `Stopped`. A context runs once; `get_or_create` builds a new one
//! that continues from a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::{Config, StreamingConfig};
use crate::dstream::DStream;
use crate::error::{Result, StreamingError};
use crate::exec::pool::Executor;
use crate::exec::{Batch, Data};
use crate::graph::InputEntry;
use crate::graph::{BatchContext, Forced, Graph, Node, OutputOp, StatefulOp};
use crate::input::{Erased, InputStream};
use crate::listener::{ListenerBus, StreamingListener};
use crate::metrics::StreamingMetrics;
use crate::scheduler::Runtime;

/// Where a context is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextState {
    /// Created; streams and outputs can be defined.
    Initialized,
    /// Started; batches are running.
    Active,
    /// Stopped (by `stop` or by a failure).
    Stopped,
}

pub(crate) enum Lifecycle {
    Initialized,
    Active,
    Stopped(Option<Arc<StreamingError>>),
}

pub(crate) struct ContextInner {
    pub(crate) conf: StreamingConfig,
    pub(crate) exec: Arc<Executor>,
    pub(crate) graph: Mutex<Graph>,
    pub(crate) bus: Arc<ListenerBus>,
    pub(crate) metrics: Arc<StreamingMetrics>,
    pub(crate) checkpoint_dir: Mutex<Option<PathBuf>>,
    pub(crate) lifecycle: Mutex<Lifecycle>,
    pub(crate) lifecycle_changed: Condvar,
    pub(crate) runtime: Mutex<Option<Runtime>>,
    /// Set (under the `runtime` lock) by the `stop` that takes the runtime: later calls then
    /// know a stop is draining the job rather than that the context never started.
    pub(crate) stopping: AtomicBool,
    /// The `spate-job-runner` thread, set by that thread before it runs a batch (and kept
    /// after `stop` takes the runtime), so a stop from an output operation is recognised.
    pub(crate) runner_thread: Mutex<Option<ThreadId>>,
}

impl ContextInner {
    /// Moves the context to `Stopped` (first call wins) and wakes `await_termination`.
    pub(crate) fn terminate(&self, error: Option<StreamingError>) {
        let mut l = self.lifecycle.lock();
        if !matches!(*l, Lifecycle::Stopped(_)) {
            if let Some(e) = &error {
                tracing::error!(error = %e, "streaming context stopped with an error");
            }
            *l = Lifecycle::Stopped(error.map(Arc::new));
            self.lifecycle_changed.notify_all();
        }
    }

    fn on_runner_thread(&self) -> bool {
        *self.runner_thread.lock() == Some(std::thread::current().id())
    }

    /// Blocks until the context is `Stopped`.
    fn wait_stopped(&self) {
        let mut l = self.lifecycle.lock();
        while !matches!(*l, Lifecycle::Stopped(_)) {
            self.lifecycle_changed.wait(&mut l);
        }
    }
}

/// The entry point of a streaming job: define input streams, transformations and outputs on it,
/// then `start` it.
///
/// ```
/// use std::time::Duration;
/// use spate_streaming::{Config, StreamingContext};
///
/// let ctx = StreamingContext::new(Config::new("doc").batch_interval(Duration::from_millis(10)))?;
/// let (queue, lines) = ctx.queue_stream::<String>(true);
/// let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// lines
///     .flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
///     .map(|w| (w, 1u64))
///     .reduce_by_key(|a, b| a + b)
///     .foreach_batch(move |batch, _time| {
///         sink.lock().extend(batch.collect()?);
///         Ok::<_, spate_streaming::StreamingError>(())
///     });
/// queue.push(vec!["a b a".to_owned()]);
/// ctx.start()?;
/// while seen.lock().len() < 2 {
///     std::thread::sleep(Duration::from_millis(5));
/// }
/// ctx.stop(true)?;
/// let mut got = seen.lock().clone();
/// got.sort();
/// assert_eq!(got, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
/// # Ok::<(), spate_streaming::StreamingError>(())
/// ```
#[derive(Clone)]
pub struct StreamingContext {
    pub(crate) inner: Arc<ContextInner>,
}

impl std::fmt::Debug for StreamingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingContext")
            .field("app_name", &self.inner.conf.app_name)
            .field("batch_interval", &self.inner.conf.batch_interval)
            .field("state", &self.state())
            .finish()
    }
}

impl StreamingContext {
    /// A context for `config` (validated here: a bad key is an error naming it; environment
    /// overrides apply).
    pub fn new(config: Config) -> Result<Self> {
        Self::from_config(config.build()?)
    }

    /// A context for an already validated configuration.
    pub fn from_config(conf: StreamingConfig) -> Result<Self> {
        let exec = Arc::new(Executor::new(conf.executor_threads)?);
        let metrics = Arc::new(StreamingMetrics::new(conf.retained_batches));
        Ok(StreamingContext {
            inner: Arc::new(ContextInner {
                conf,
                exec,
                graph: Mutex::new(Graph::default()),
                bus: Arc::new(ListenerBus::new()),
                metrics,
                checkpoint_dir: Mutex::new(None),
                lifecycle: Mutex::new(Lifecycle::Initialized),
                lifecycle_changed: Condvar::new(),
                runtime: Mutex::new(None),
                stopping: AtomicBool::new(false),
                runner_thread: Mutex::new(None),
            }),
        })
    }

    /// Builds the job with `create` and continues from the checkpoint in `dir` if there is one
    /// (Spark's `StreamingContext.getOrCreate`).
    ///
    /// Unlike Spark, `create` always runs: the job's code is the graph, and the checkpoint holds
    /// only data (plans, commits, state), so a new build of the job can continue from an old
    /// checkpoint as long as its inputs and state still decode. At `start`, state is restored
    /// from the latest snapshot, batches since then are replayed from their recorded plans to
    /// rebuild it, planned-but-uncommitted batches re-run with their recorded plans, and then
    /// planning continues. A checkpoint this job cannot use is an error naming what differs.
    pub fn get_or_create(
        dir: impl AsRef<Path>,
        create: impl FnOnce() -> Result<StreamingContext>,
    ) -> Result<StreamingContext> {
        let ctx = create()?;
        ctx.checkpoint(dir.as_ref())?;
        Ok(ctx)
    }

    /// Enables checkpointing to `dir` (plans, commits and state snapshots). Must be called
    /// before `start`.
    pub fn checkpoint(&self, dir: impl Into<PathBuf>) -> Result<()> {
        self.ensure_initialized("checkpoint")?;
        *self.inner.checkpoint_dir.lock() = Some(dir.into());
        Ok(())
    }

    /// The validated configuration.
    pub fn config(&self) -> &StreamingConfig {
        &self.inner.conf
    }

    /// The batch interval.
    pub fn batch_interval(&self) -> Duration {
        self.inner.conf.batch_interval
    }

    /// Live counters and retained batches.
    pub fn metrics(&self) -> Arc<StreamingMetrics> {
        self.inner.metrics.clone()
    }

    /// Registers a listener (may be called at any time).
    pub fn add_streaming_listener(&self, listener: Arc<dyn StreamingListener>) {
        self.inner.bus.add(listener);
    }

    /// The current state.
    pub fn state(&self) -> ContextState {
        match *self.inner.lifecycle.lock() {
            Lifecycle::Initialized => ContextState::Initialized,
            Lifecycle::Active => ContextState::Active,
            Lifecycle::Stopped(_) => ContextState::Stopped,
        }
    }

    fn ensure_initialized(&self, what: &str) -> Result<()> {
        match *self.inner.lifecycle.lock() {
            Lifecycle::Initialized => Ok(()),
            _ => Err(StreamingError::ContextState(format!(
                "is already started or stopped; `{what}` must be called before start"
            ))),
        }
    }

    /// Records a graph-building problem, reported by `start`.
    pub(crate) fn graph_error(&self, e: StreamingError) {
        self.inner.graph.lock().errors.push(e);
    }

    /// `kind-N`: a stable id for inputs and stateful operators.
    pub(crate) fn unique_name(&self, kind: &str) -> String {
        self.inner.graph.lock().unique_name(kind)
    }

    /// Registers an operator whose state goes into checkpoint snapshots.
    pub(crate) fn register_stateful(&self, op: Arc<dyn StatefulOp>) {
        self.inner.graph.lock().stateful.push(op);
    }

    /// Backs the keyed state operator whose id is `uid` (`update_state_by_key` or
    /// `map_with_state`, named with `.uid(...)`) with `changelog`: at start its state partitions
    /// are restored from the changelog, and every batch's changed keys are recorded to it (see
    /// [`crate::state::changelog`]). A job with a changelog has no checkpoint directory.
    pub fn state_changelog(&self, uid: &str, changelog: Arc<dyn crate::state::StateChangelog>) {
        if self.ensure_initialized("state_changelog").is_err() {
            self.graph_error(StreamingError::ContextState(format!(
                "cannot attach a state changelog to `{uid}` after start"
            )));
            return;
        }
        self.inner
            .graph
            .lock()
            .changelogs
            .push((uid.to_owned(), changelog));
    }

    /// Registers work that must run in every batch where `aligned(slide)`.
    pub(crate) fn register_forced(
        &self,
        name: &str,
        slide: u64,
        run: impl Fn(&BatchContext) -> Result<()> + Send + Sync + 'static,
    ) {
        self.inner.graph.lock().forced.push(Forced {
            name: name.to_owned(),
            slide,
            run: Box::new(run),
        });
    }

    /// Registers an output operation.
    pub(crate) fn register_output(
        &self,
        name: &str,
        slide: u64,
        run: impl Fn(&BatchContext) -> Result<()> + Send + Sync + 'static,
    ) {
        if self.ensure_initialized(name).is_err() {
            self.graph_error(StreamingError::ContextState(format!(
                "cannot add output operation `{name}` after start"
            )));
            return;
        }
        self.inner.graph.lock().outputs.push(OutputOp {
            name: name.to_owned(),
            slide,
            run: Box::new(run),
        });
    }

    /// Adds a node to the graph.
    pub(crate) fn add_node<T: Data>(
        &self,
        kind: &str,
        unique: bool,
        slide: u64,
        compute: impl Fn(&BatchContext) -> Result<Batch<T>> + Send + Sync + 'static,
    ) -> DStream<T> {
        if self.ensure_initialized(kind).is_err() {
            self.graph_error(StreamingError::ContextState(format!(
                "cannot add operator `{kind}` after start"
            )));
        }
        let mut g = self.inner.graph.lock();
        let id = g.next_node_id();
        let name = if unique {
            g.unique_name(kind)
        } else {
            kind.to_owned()
        };
        drop(g);
        DStream {
            ctx: self.clone(),
            node: Arc::new(Node::new(id, name, slide, Box::new(compute))),
            op_id: None,
        }
    }

    /// A stream from a custom input (see [`crate::input`]): the way the Kafka direct stream and
    /// receiver streams plug in. `kind` names the input in ids (`kind-N`) and checkpoints.
    pub fn input_stream<T: Data, I: InputStream<T>>(&self, input: I) -> DStream<T> {
        let input = Arc::new(input);
        let kind = input.kind().to_owned();
        let id = self.inner.graph.lock().unique_name(&kind);
        self.inner.graph.lock().inputs.push(InputEntry {
            id: id.clone(),
            input: Arc::new(Erased(input.clone(), std::marker::PhantomData)),
        });
        let input_id = id.clone();
        self.add_node::<T>(&id, false, 1, move |bc| {
            let plan = bc.plans.get(&input_id).ok_or_else(|| {
                StreamingError::input(&input_id, format!("no plan recorded for batch {}", bc.time))
            })?;
            let parts = input.compute(bc.time, plan.typed::<I::Plan>(&input_id)?)?;
            Ok(Batch::new(parts, bc.exec.clone(), bc.time))
        })
    }

    /// The union of several streams of the same type and slide.
    pub fn union<T: Data>(&self, streams: &[DStream<T>]) -> Result<DStream<T>> {
        let Some(first) = streams.first() else {
            return Err(StreamingError::operator(
                "union",
                "needs at least one stream",
            ));
        };
        let slide = first.node.slide;
        if streams.iter().any(|s| s.node.slide != slide) {
            return Err(StreamingError::operator(
                "union",
                "all streams must have the same slide duration",
            ));
        }
        let nodes: Vec<_> = streams.iter().map(|s| s.node.clone()).collect();
        Ok(self.add_node("union", false, slide, move |bc| {
            let batches = nodes
                .iter()
                .map(|n| n.get(bc))
                .collect::<Result<Vec<_>>>()?;
            match batches.split_first() {
                Some((head, rest)) => Ok(head.union_all(rest)),
                None => Ok(bc.empty()),
            }
        }))
    }

    /// Starts the job: validates the graph, recovers from the checkpoint (if any), starts the
    /// inputs, the job generator and the job runner.
    pub fn start(&self) -> Result<()> {
        self.ensure_initialized("start")?;
        let graph = {
            let mut g = self.inner.graph.lock();
            if let Some(e) = g.errors.drain(..).next() {
                return Err(e);
            }
            let mut ids = std::collections::BTreeSet::new();
            for op in &g.stateful {
                if !ids.insert(op.id()) {
                    return Err(StreamingError::operator(
                        "uid",
                        format!("two stateful operators have the id `{}`", op.id()),
                    ));
                }
            }
            let checkpointed = self.inner.checkpoint_dir.lock().is_some();
            crate::state::restore::validate(&g, checkpointed)?;
            crate::state::tasks::validate(&g, checkpointed)?;
            if g.outputs.is_empty() {
                return Err(StreamingError::ContextState(
                    "has no output operations; define at least one (print, foreach_batch, save_as_text_files) before start".into(),
                ));
            }
            Arc::new(std::mem::take(&mut *g))
        };
        {
            // Held while the scheduler starts: a `stop` from another thread (the runner and the
            // listener bus do not take it) then waits for the runtime instead of finding none
            // and marking a running context stopped.
            let mut slot = self.inner.runtime.lock();
            *slot = Some(crate::scheduler::start(&self.inner, graph)?);
        }
        // The scheduler threads may already have failed (e.g. a recorded plan that cannot be
        // replayed) and terminated the context; marking it active then would make
        // `await_termination` wait forever.
        let mut l = self.inner.lifecycle.lock();
        if !matches!(*l, Lifecycle::Stopped(_)) {
            *l = Lifecycle::Active;
        }
        Ok(())
    }

    /// Stops the job. With `graceful`, stops planning new batches and waits until every
    /// planned batch has run and committed, up to `spate.streaming.graceful.stop.timeout.ms`
    /// (default 10 × batch interval); without, stops after the running output operation and
    /// leaves planned batches uncommitted (they re-run on restart from a checkpoint).
    ///
    /// May be called from inside an output operation: the stop then completes in the
    /// background once that batch has finished. Like Spark's (synchronized) `stop`, a call
    /// while another stop drains the job returns once that stop has finished; from an output
    /// operation or a listener, which that stop waits for, it returns at once.
    pub fn stop(&self, graceful: bool) -> Result<()> {
        if self.inner.on_runner_thread() {
            return self.stop_from_runner(graceful);
        }
        let runtime = {
            let mut slot = self.inner.runtime.lock();
            let rt = slot.take();
            if rt.is_some() {
                self.inner.stopping.store(true, Ordering::SeqCst);
            }
            rt
        };
        let Some(rt) = runtime else {
            return self.stop_without_runtime();
        };
        let result = rt.shutdown(graceful, self.inner.conf.graceful_stop_timeout);
        self.inner.terminate(None);
        result
    }

    /// `stop` from an output operation: the runner cannot wait for itself, so the stop runs on
    /// its own thread — unless one is already draining the job, which includes this batch.
    fn stop_from_runner(&self, graceful: bool) -> Result<()> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let ctx = self.clone();
        std::thread::Builder::new()
            .name("spate-stop".into())
            .spawn(move || {
                if let Err(e) = ctx.stop(graceful) {
                    tracing::warn!(error = %e, "stop requested from an output operation failed");
                }
            })
            .map_err(|e| StreamingError::io("spate-stop thread", e))?;
        Ok(())
    }

    /// `stop` when another call has taken the runtime (or the context never started).
    fn stop_without_runtime(&self) -> Result<()> {
        if !self.inner.stopping.load(Ordering::SeqCst) {
            // Never started: nothing runs, so the context is stopped now.
            self.inner.terminate(None);
            return Ok(());
        }
        // Another stop drains the job: ending the context here would let `await_termination`
        // return (and a process exit) in the middle of a batch. The listener bus thread must
        // not wait: that stop joins it.
        if !self.inner.bus.is_bus_thread() {
            self.inner.wait_stopped();
        }
        Ok(())
    }

    /// Blocks until the context stops; returns the error that stopped it, if any.
    pub fn await_termination(&self) -> Result<()> {
        let mut l = self.inner.lifecycle.lock();
        loop {
            if let Lifecycle::Stopped(e) = &*l {
                return match e {
                    Some(e) => Err(StreamingError::ContextFailed(e.clone())),
                    None => Ok(()),
                };
            }
            self.inner.lifecycle_changed.wait(&mut l);
        }
    }

    /// Like [`StreamingContext::await_termination`] with a timeout: `Ok(true)` if the context
    /// stopped, `Ok(false)` if the timeout passed first.
    pub fn await_termination_or_timeout(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut l = self.inner.lifecycle.lock();
        loop {
            if let Lifecycle::Stopped(e) = &*l {
                return match e {
                    Some(e) => Err(StreamingError::ContextFailed(e.clone())),
                    None => Ok(true),
                };
            }
            if self
                .inner
                .lifecycle_changed
                .wait_until(&mut l, deadline)
                .timed_out()
                && !matches!(*l, Lifecycle::Stopped(_))
            {
                return Ok(false);
            }
        }
    }
}

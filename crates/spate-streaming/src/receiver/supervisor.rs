//! The receiver API: the [`Receiver`] trait a source implements, the [`ReceiverContext`] it
//! stores records through, and the [`ReceiverSupervisor`] that runs it on its own thread,
//! restarts it with backoff when it fails, and stops it cleanly (Spark's `Receiver` +
//! `ReceiverSupervisor`).
//!
//! Spark's receivers start their own threads in `onStart` and must not block there. In Rust a
//! run loop is simpler and harder to misuse: the supervisor calls [`Receiver::run`] on a
//! dedicated thread; it receives until [`ReceiverContext::is_stopped`] turns true (stop or restart
//! requested) and returns. Returning an error, or calling [`ReceiverContext::restart`], makes the
//! supervisor call `on_stop`, wait (2 s by default, Spark's `spark.streaming.receiverRestartDelay`,
//! doubling up to a cap), and call `run` again. The block generator lives across restarts, so no
//! buffered record is lost by a restart.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::block::{Block, ReceivedBlockInfo, StreamBlockId};
use super::block_generator::{
    BlockGenerator, BlockGeneratorConfig, BlockGeneratorListener, BlockReporter, NoopListener,
    Weigher,
};
use super::handler::BlockHandler;
use crate::error::{Result, StreamingError};
use crate::rate::RateLimiter;

/// The error type a receiver's `run` may fail with: anything (a Kafka client error, I/O, ...).
pub type ReceiverError = Box<dyn std::error::Error + Send + Sync>;

/// A source of records for one input stream. `M` is the per-record metadata a reliable receiver
/// passes to its [`BlockGeneratorListener`] (e.g. a Kafka offset).
pub trait Receiver<T, M = ()>: Send + 'static {
    /// Receives records and stores them through `ctx` until `ctx.is_stopped()`. Returning
    /// `Ok(())` while not stopped means the source is exhausted: the receiver is not restarted.
    /// Returning `Err` restarts it after a backoff.
    fn run(&mut self, ctx: &ReceiverContext<T, M>) -> std::result::Result<(), ReceiverError>;

    /// Releases resources after `run` returned (every time, including before a restart).
    fn on_stop(&mut self) {}
}

#[derive(Default)]
struct Control {
    stopped: AtomicBool,
    restart_requested: Mutex<Option<String>>,
    errors: Mutex<Vec<String>>,
    restarts: AtomicU32,
    wakeup: Condvar,
    wakeup_lock: Mutex<()>,
}

impl Control {
    fn request_restart(&self, message: String) {
        let mut r = self.restart_requested.lock();
        if r.is_none() {
            *r = Some(message);
        }
    }

    fn sleep_unless_stopped(&self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut guard = self.wakeup_lock.lock();
        while !self.stopped.load(Ordering::Acquire) {
            if self.wakeup.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
    }
}

/// What a running receiver uses to hand over records and report trouble.
pub struct ReceiverContext<T, M = ()> {
    stream_id: u32,
    generator: Arc<BlockGenerator<T, M>>,
    control: Arc<Control>,
}

impl<T, M> std::fmt::Debug for ReceiverContext<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverContext")
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static, M: 'static> ReceiverContext<T, M> {
    /// The input stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Stores one record; blocks under the rate limit and while the block queue is full.
    pub fn store(&self, item: T) -> Result<()> {
        self.generator.add_data(item)
    }

    /// Stores one record with metadata for the listener (e.g. its Kafka offset).
    pub fn store_with_metadata(&self, item: T, metadata: M) -> Result<()> {
        self.generator.add_data_with_metadata(item, metadata)
    }

    /// Stores many records at once (they land in the same block).
    pub fn store_many(&self, items: Vec<T>) -> Result<()> {
        self.generator.add_multiple_data(items)
    }

    /// Stores `items` as one block now and returns once it is stored (durably, with a WAL
    /// handler) and reported — commit source offsets for exactly these items afterwards.
    pub fn store_block(&self, items: Vec<T>) -> Result<ReceivedBlockInfo> {
        self.generator.push_items(items)
    }

    /// Reports a non-fatal error (kept by the supervisor, logged).
    pub fn report_error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(stream_id = self.stream_id, %message, "receiver reported an error");
        self.control.errors.lock().push(message);
    }

    /// Asks the supervisor to restart this receiver: `is_stopped` turns true, `run` should
    /// return, and it is called again after the restart delay.
    pub fn restart(&self, message: impl Into<String>) {
        self.control.request_restart(message.into());
    }

    /// Whether `run` should return now (the receiver is stopping or restarting).
    pub fn is_stopped(&self) -> bool {
        self.control.stopped.load(Ordering::Acquire)
            || self.control.restart_requested.lock().is_some()
    }

    /// The rate limiter (records/s) applied to `store`.
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        self.generator.rate_limiter()
    }
}

/// Restart policy of a [`ReceiverSupervisor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Block generation settings.
    pub block: BlockGeneratorConfig,
    /// Delay before the first restart (Spark's `spark.streaming.receiverRestartDelay`, 2 s).
    pub restart_delay: Duration,
    /// Cap of the doubling restart delay.
    pub max_restart_delay: Duration,
    /// Give up after this many consecutive failed runs (`None`: never give up).
    pub max_restarts: Option<u32>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            block: BlockGeneratorConfig::default(),
            restart_delay: Duration::from_secs(2),
            max_restart_delay: Duration::from_secs(60),
            max_restarts: None,
        }
    }
}

/// Forwards generator callbacks to the user's listener, and turns a storage failure into a
/// receiver restart (the source must re-deliver what was not stored).
struct SupervisorListener<T, M> {
    inner: Arc<dyn BlockGeneratorListener<T, M>>,
    control: Arc<Control>,
}

impl<T, M> BlockGeneratorListener<T, M> for SupervisorListener<T, M> {
    fn on_add_data(&self, item: &T, metadata: Option<&M>) {
        self.inner.on_add_data(item, metadata);
    }
    fn on_generate_block(&self, block_id: StreamBlockId) {
        self.inner.on_generate_block(block_id);
    }
    fn on_push_block(&self, block: &Block<T>, info: &ReceivedBlockInfo) {
        self.inner.on_push_block(block, info);
    }
    fn on_error(&self, message: &str, error: &StreamingError) {
        self.inner.on_error(message, error);
        self.control
            .errors
            .lock()
            .push(format!("{message}: {error}"));
        self.control.request_restart(format!("{message}: {error}"));
    }
}

/// Builds and starts a [`ReceiverSupervisor`]; see [`ReceiverSupervisor::builder`].
pub struct ReceiverSupervisorBuilder<T, M = ()> {
    stream_id: u32,
    handler: Arc<dyn BlockHandler<T>>,
    config: ReceiverConfig,
    listener: Arc<dyn BlockGeneratorListener<T, M>>,
    reporter: Option<BlockReporter>,
    rate_limiter: Arc<RateLimiter>,
    weigher: Option<Weigher<T>>,
}

impl<T, M> std::fmt::Debug for ReceiverSupervisorBuilder<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSupervisorBuilder")
            .field("stream_id", &self.stream_id)
            .field("config", &self.config)
            .field("rate_limiter", &self.rate_limiter)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static, M: 'static> ReceiverSupervisorBuilder<T, M> {
    /// Block and restart settings.
    pub fn config(mut self, config: ReceiverConfig) -> Self {
        self.config = config;
        self
    }

    /// Block generator listener (a reliable receiver's offset bookkeeping).
    pub fn listener(mut self, listener: Arc<dyn BlockGeneratorListener<T, M>>) -> Self {
        self.listener = listener;
        self
    }

    /// Called with each stored block, e.g. `ReceivedBlockTracker::add_block`.
    pub fn reporter(mut self, reporter: BlockReporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Rate limiter for `store` (default unlimited).
    pub fn rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.rate_limiter = limiter;
        self
    }

    /// How many bytes a record holds, for the block generator's memory budget and block size
    /// cap (default: its inline size).
    pub fn weigher(mut self, weigher: Weigher<T>) -> Self {
        self.weigher = Some(weigher);
        self
    }

    /// Starts the block generator and the receiver thread.
    pub fn start<R: Receiver<T, M>>(self, receiver: R) -> Result<ReceiverSupervisor<T, M>> {
        let control = Arc::new(Control::default());
        let listener: Arc<dyn BlockGeneratorListener<T, M>> = Arc::new(SupervisorListener {
            inner: self.listener,
            control: Arc::clone(&control),
        });
        let mut builder = BlockGenerator::builder(self.stream_id, self.handler)
            .config(self.config.block.clone())
            .listener(listener)
            .rate_limiter(self.rate_limiter);
        if let Some(r) = self.reporter {
            builder = builder.reporter(r);
        }
        if let Some(w) = self.weigher {
            builder = builder.weigher(w);
        }
        let generator = Arc::new(builder.build());
        generator.start()?;
        let ctx = ReceiverContext {
            stream_id: self.stream_id,
            generator: Arc::clone(&generator),
            control: Arc::clone(&control),
        };
        let config = self.config;
        let stream_id = self.stream_id;
        let thread = std::thread::Builder::new()
            .name(format!("receiver-{stream_id}"))
            .spawn(move || run_receiver(receiver, &ctx, &config))
            .map_err(|e| StreamingError::ReceiverStopped {
                stream_id,
                reason: format!("cannot start receiver thread: {e}"),
            })?;
        Ok(ReceiverSupervisor {
            stream_id,
            generator,
            control,
            thread: Mutex::new(Some(thread)),
        })
    }
}

fn run_receiver<T, M, R>(mut receiver: R, ctx: &ReceiverContext<T, M>, config: &ReceiverConfig)
where
    T: Send + Sync + 'static,
    M: 'static,
    R: Receiver<T, M>,
{
    let control = &ctx.control;
    let mut delay = config.restart_delay;
    let mut consecutive_failures = 0u32;
    loop {
        *control.restart_requested.lock() = None;
        let started = Instant::now();
        tracing::info!(stream_id = ctx.stream_id, "starting receiver");
        let result = receiver.run(ctx);
        receiver.on_stop();
        if control.stopped.load(Ordering::Acquire) {
            break;
        }
        let reason = match (result, control.restart_requested.lock().take()) {
            (Err(e), _) => format!("receiver failed: {e}"),
            (Ok(()), Some(message)) => format!("restart requested: {message}"),
            (Ok(()), None) => {
                tracing::info!(stream_id = ctx.stream_id, "receiver finished");
                break;
            }
        };
        // A run that lasted longer than the longest backoff was healthy: start over.
        if started.elapsed() > config.max_restart_delay {
            delay = config.restart_delay;
            consecutive_failures = 0;
        }
        consecutive_failures += 1;
        control.errors.lock().push(reason.clone());
        if config
            .max_restarts
            .is_some_and(|max| consecutive_failures > max)
        {
            tracing::error!(stream_id = ctx.stream_id, %reason, "receiver failed too often; giving up");
            break;
        }
        tracing::warn!(stream_id = ctx.stream_id, %reason, ?delay, "restarting receiver");
        control.sleep_unless_stopped(delay);
        if control.stopped.load(Ordering::Acquire) {
            break;
        }
        control.restarts.fetch_add(1, Ordering::AcqRel);
        delay = (delay * 2).min(config.max_restart_delay);
    }
}

/// Runs one receiver and its block generator. See the module docs.
pub struct ReceiverSupervisor<T, M = ()> {
    stream_id: u32,
    generator: Arc<BlockGenerator<T, M>>,
    control: Arc<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<T, M> std::fmt::Debug for ReceiverSupervisor<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSupervisor")
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static, M: 'static> ReceiverSupervisor<T, M> {
    /// Starts building a supervisor for input stream `stream_id` whose blocks go to `handler`.
    pub fn builder(
        stream_id: u32,
        handler: Arc<dyn BlockHandler<T>>,
    ) -> ReceiverSupervisorBuilder<T, M> {
        ReceiverSupervisorBuilder {
            stream_id,
            handler,
            config: ReceiverConfig::default(),
            listener: Arc::new(NoopListener),
            reporter: None,
            rate_limiter: Arc::new(RateLimiter::unlimited()),
            weigher: None,
        }
    }

    /// The input stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The receiver's rate limiter: feed backpressure into it with `update_rate`.
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        self.generator.rate_limiter()
    }

    /// The block generator's counters (records added, blocks pushed, failures).
    pub fn stats(&self) -> super::block_generator::GeneratorStats {
        self.generator.stats()
    }

    /// Errors reported so far (by the receiver, by failed runs and by failed block stores).
    pub fn errors(&self) -> Vec<String> {
        self.control.errors.lock().clone()
    }

    /// How many times the receiver has been restarted.
    pub fn restarts(&self) -> u32 {
        self.control.restarts.load(Ordering::Acquire)
    }

    /// Whether the receiver thread has ended (stopped, finished, or gave up).
    pub fn is_finished(&self) -> bool {
        self.thread
            .lock()
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Stops the receiver (waits for `run` to return), then the block generator (waits until
    /// every accepted record is stored and reported). Idempotent.
    pub fn stop(&self) {
        self.control.stopped.store(true, Ordering::Release);
        self.generator.interrupt_waits();
        {
            let _g = self.control.wakeup_lock.lock();
            self.control.wakeup.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            if t.join().is_err() {
                tracing::error!(stream_id = self.stream_id, "receiver thread panicked");
            }
        }
        self.generator.stop();
    }
}

impl<T, M> Drop for ReceiverSupervisor<T, M> {
    fn drop(&mut self) {
        self.control.stopped.store(true, Ordering::Release);
        let _g = self.control.wakeup_lock.lock();
        self.control.wakeup.notify_all();
    }
}

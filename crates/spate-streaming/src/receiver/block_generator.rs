//! [`BlockGenerator`]: cuts a receiver's records into blocks every block interval and pushes them
//! to a [`BlockHandler`] (Spark's `BlockGenerator`).
//!
//! Records go into the current buffer. A timer thread wakes on every multiple of the block
//! interval (default 200 ms, `spark.streaming.blockInterval`), swaps the buffer out into a
//! [`Block`] and puts it on a bounded queue (default 10 blocks, `spark.streaming.blockQueueSize`).
//! A pusher thread takes blocks off the queue, stores them with the handler, reports them (to the
//! `ReceivedBlockTracker`) and then tells the listener.
//!
//! Backpressure falls out of the locking, exactly as in Spark: the timer puts the block on the
//! queue *while holding the buffer lock*, so when the handler is slow and the queue is full, the
//! timer blocks, and so does every `add_data` — the receiver stops pulling from its source. The
//! rate limiter is applied before the lock.
//!
//! The listener hooks mirror Spark's `BlockGeneratorListener`, which is what a reliable receiver
//! needs to commit source offsets only for stored data: `on_add_data` and `on_generate_block` run
//! under the buffer lock (so an offset snapshot taken in `on_generate_block` covers exactly the
//! records in that block), `on_push_block` runs after the block is stored and reported.
//!
//! Memory: with [`BlockGeneratorConfig::max_buffered_bytes`] the generator holds a
//! [`MemoryBudget`]: every record takes its weight (the builder's weigher: an estimate of the
//! bytes it holds) before it is buffered, and its block gives the bytes back when it is dropped,
//! so records in the buffer, the queue and stored-but-unfinished blocks never exceed the budget;
//! `add_data` waits while it is spent. [`BlockGeneratorConfig::max_block_bytes`] cuts a block
//! early when the buffer reaches that weight, so one block interval at full speed does not make
//! one huge block.
//!
//! States: Initialized → Active → StoppedAddingData → StoppedGeneratingBlocks → StoppedAll.
//! [`BlockGenerator::stop`] refuses new data, cuts a last block from what is buffered, waits
//! until the queue is drained, and only then returns — nothing accepted is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver as ChannelReceiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use super::block::{Block, ReceivedBlockInfo, StreamBlockId};
use super::budget::{BudgetPermit, MemoryBudget};
use super::handler::BlockHandler;
use crate::error::{Result, StreamingError};
use crate::rate::RateLimiter;

/// Spark's `spark.streaming.blockInterval` default.
pub const DEFAULT_BLOCK_INTERVAL: Duration = Duration::from_millis(200);
/// Spark's `spark.streaming.blockQueueSize` default.
pub const DEFAULT_BLOCK_QUEUE_SIZE: usize = 10;

/// Block generation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockGeneratorConfig {
    /// How often the buffer is cut into a block.
    pub block_interval: Duration,
    /// How many cut blocks may wait for the pusher before `add_data` blocks.
    pub block_queue_size: usize,
    /// Bytes of records (by the weigher) the buffer, the queue and stored blocks not yet dropped
    /// may hold together before `add_data` waits (`None`: unbounded, Spark's behaviour).
    pub max_buffered_bytes: Option<usize>,
    /// Cut a block as soon as the buffer holds this many bytes of records, before the block
    /// interval ends (`None`: only on the interval).
    pub max_block_bytes: Option<usize>,
}

impl Default for BlockGeneratorConfig {
    fn default() -> Self {
        BlockGeneratorConfig {
            block_interval: DEFAULT_BLOCK_INTERVAL,
            block_queue_size: DEFAULT_BLOCK_QUEUE_SIZE,
            max_buffered_bytes: None,
            max_block_bytes: None,
        }
    }
}

/// Estimates the bytes of memory one record holds (its value and what it owns on the heap).
pub type Weigher<T> = fn(&T) -> usize;

/// The default weigher: the record's inline size only.
fn inline_size<T>(_item: &T) -> usize {
    std::mem::size_of::<T>()
}

/// Callbacks from a [`BlockGenerator`] (Spark's `BlockGeneratorListener`). All default to no-ops.
///
/// `M` is per-record metadata passed to [`BlockGenerator::add_data_with_metadata`] — for a Kafka
/// receiver, the record's topic-partition and offset.
pub trait BlockGeneratorListener<T, M = ()>: Send + Sync {
    /// A record was added to the current buffer. Called under the buffer lock.
    fn on_add_data(&self, _item: &T, _metadata: Option<&M>) {}

    /// The current buffer was cut into block `block_id`. Called under the buffer lock, so no
    /// record is added between the last `on_add_data` of this block and this call.
    fn on_generate_block(&self, _block_id: StreamBlockId) {}

    /// The block was stored by the handler (durably, for a WAL handler) and reported. A reliable
    /// receiver commits its source offsets for `block` here.
    fn on_push_block(&self, _block: &Block<T>, _info: &ReceivedBlockInfo) {}

    /// Storing or reporting a block failed; the block's source offsets must not be committed.
    fn on_error(&self, _message: &str, _error: &StreamingError) {}
}

/// A listener that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopListener;

impl<T, M> BlockGeneratorListener<T, M> for NoopListener {}

/// Called with each stored block's info before the listener's `on_push_block` — typically
/// `ReceivedBlockTracker::add_block` (Spark reports to the driver's tracker here).
pub type BlockReporter = Box<dyn Fn(&ReceivedBlockInfo) -> Result<()> + Send + Sync>;

/// Lifecycle of a [`BlockGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GeneratorState {
    /// Created, not started.
    Initialized,
    /// Accepting data and cutting blocks.
    Active,
    /// No longer accepting data; the last block is being cut.
    StoppedAddingData,
    /// No more blocks will be cut; the queue is being drained.
    StoppedGeneratingBlocks,
    /// Everything pushed; threads gone.
    StoppedAll,
}

/// Counters of a [`BlockGenerator`], for monitoring (Spark's receiver info in the UI).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeneratorStats {
    /// Records accepted by `add_data` and friends.
    pub records_added: u64,
    /// Blocks stored and reported successfully.
    pub blocks_pushed: u64,
    /// Records in those blocks.
    pub records_pushed: u64,
    /// Blocks whose storing or reporting failed.
    pub push_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    records_added: AtomicU64,
    blocks_pushed: AtomicU64,
    records_pushed: AtomicU64,
    push_failures: AtomicU64,
}

struct Buffer<T> {
    state: GeneratorState,
    items: Vec<T>,
    /// Weight of `items`, taken from the budget (when there is one).
    bytes: usize,
    last_unique_id: i64,
}

struct Shared<T, M> {
    stream_id: u32,
    config: BlockGeneratorConfig,
    buffer: Mutex<Buffer<T>>,
    /// Wakes the timer early on stop.
    timer_wakeup: Condvar,
    timer_lock: Mutex<bool>,
    listener: Arc<dyn BlockGeneratorListener<T, M>>,
    handler: Arc<dyn BlockHandler<T>>,
    reporter: Option<BlockReporter>,
    rate_limiter: Arc<RateLimiter>,
    budget: Option<Arc<MemoryBudget>>,
    weigher: Weigher<T>,
    queue_tx: Sender<Arc<Block<T>>>,
    queue_rx: ChannelReceiver<Arc<Block<T>>>,
    counters: Counters,
    /// Set when the owner is stopping: rate-limit waits give up instead of sleeping out their
    /// debt (at a low rate that could be minutes).
    waits_interrupted: AtomicBool,
}

/// Cuts records into blocks and pushes them. See the module docs.
pub struct BlockGenerator<T, M = ()> {
    shared: Arc<Shared<T, M>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl<T, M> std::fmt::Debug for BlockGenerator<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockGenerator")
            .field("stream_id", &self.shared.stream_id)
            .field("config", &self.shared.config)
            .field("state", &self.shared.buffer.lock().state)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Builds a [`BlockGenerator`]; see [`BlockGenerator::builder`].
pub struct BlockGeneratorBuilder<T, M = ()> {
    stream_id: u32,
    config: BlockGeneratorConfig,
    handler: Arc<dyn BlockHandler<T>>,
    listener: Arc<dyn BlockGeneratorListener<T, M>>,
    reporter: Option<BlockReporter>,
    rate_limiter: Arc<RateLimiter>,
    weigher: Weigher<T>,
}

impl<T, M> std::fmt::Debug for BlockGeneratorBuilder<T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockGeneratorBuilder")
            .field("stream_id", &self.stream_id)
            .field("config", &self.config)
            .field("rate_limiter", &self.rate_limiter)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static, M: 'static> BlockGeneratorBuilder<T, M> {
    /// Block interval and queue size (defaults: Spark's 200 ms and 10).
    pub fn config(mut self, config: BlockGeneratorConfig) -> Self {
        self.config = config;
        self
    }

    /// The listener (default: none).
    pub fn listener(mut self, listener: Arc<dyn BlockGeneratorListener<T, M>>) -> Self {
        self.listener = listener;
        self
    }

    /// Called with each stored block before the listener's `on_push_block` (default: none).
    pub fn reporter(mut self, reporter: BlockReporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// The rate limiter applied to `add_data` (default: unlimited).
    pub fn rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.rate_limiter = limiter;
        self
    }

    /// How many bytes a record holds, for the memory budget and the block size cap (default:
    /// its inline size).
    pub fn weigher(mut self, weigher: Weigher<T>) -> Self {
        self.weigher = weigher;
        self
    }

    /// Builds the generator (not yet started).
    pub fn build(self) -> BlockGenerator<T, M> {
        let (queue_tx, queue_rx) = bounded(self.config.block_queue_size.max(1));
        let budget = self.config.max_buffered_bytes.map(MemoryBudget::new);
        BlockGenerator {
            shared: Arc::new(Shared {
                stream_id: self.stream_id,
                config: self.config,
                buffer: Mutex::new(Buffer {
                    state: GeneratorState::Initialized,
                    items: Vec::new(),
                    bytes: 0,
                    last_unique_id: i64::MIN,
                }),
                timer_wakeup: Condvar::new(),
                timer_lock: Mutex::new(false),
                listener: self.listener,
                handler: self.handler,
                reporter: self.reporter,
                rate_limiter: self.rate_limiter,
                budget,
                weigher: self.weigher,
                queue_tx,
                queue_rx,
                counters: Counters::default(),
                waits_interrupted: AtomicBool::new(false),
            }),
            threads: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Send + Sync + 'static, M: 'static> BlockGenerator<T, M> {
    /// Starts building a generator for input stream `stream_id` storing blocks with `handler`.
    pub fn builder(
        stream_id: u32,
        handler: Arc<dyn BlockHandler<T>>,
    ) -> BlockGeneratorBuilder<T, M> {
        BlockGeneratorBuilder {
            stream_id,
            config: BlockGeneratorConfig::default(),
            handler,
            listener: Arc::new(NoopListener),
            reporter: None,
            rate_limiter: Arc::new(RateLimiter::unlimited()),
            weigher: inline_size::<T>,
        }
    }

    /// The memory budget, when the config sets `max_buffered_bytes`.
    pub fn memory_budget(&self) -> Option<&Arc<MemoryBudget>> {
        self.shared.budget.as_ref()
    }

    /// The rate limiter (to feed backpressure updates into).
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.shared.rate_limiter
    }

    /// The input stream id.
    pub fn stream_id(&self) -> u32 {
        self.shared.stream_id
    }

    /// The current lifecycle state.
    pub fn state(&self) -> GeneratorState {
        self.shared.buffer.lock().state
    }

    /// Starts the timer and pusher threads. Only valid once, from `Initialized`.
    pub fn start(&self) -> Result<()> {
        {
            let mut buf = self.shared.buffer.lock();
            if buf.state != GeneratorState::Initialized {
                return Err(self.not_accepting(buf.state));
            }
            buf.state = GeneratorState::Active;
        }
        let id = self.shared.stream_id;
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| StreamingError::ReceiverStopped {
                    stream_id: id,
                    reason: format!("cannot start block generator thread: {e}"),
                })
        };
        let timer = {
            let shared = Arc::clone(&self.shared);
            spawn(
                format!("block-generator-{id}"),
                Box::new(move || run_timer(&shared)),
            )?
        };
        let pusher = {
            let shared = Arc::clone(&self.shared);
            spawn(
                format!("block-pusher-{id}"),
                Box::new(move || run_pusher(&shared)),
            )?
        };
        self.threads.lock().extend([timer, pusher]);
        tracing::info!(stream_id = id, "started block generator");
        Ok(())
    }

    fn not_accepting(&self, state: GeneratorState) -> StreamingError {
        StreamingError::ReceiverStopped {
            stream_id: self.shared.stream_id,
            reason: format!("block generator is {state:?}"),
        }
    }

    fn wait_for_rate(&self, n: u64) -> Result<()> {
        let shared = &self.shared;
        let stopped = || {
            shared.waits_interrupted.load(Ordering::Acquire)
                || shared.buffer.lock().state != GeneratorState::Active
        };
        if shared.rate_limiter.acquire_unless(n, stopped) {
            Ok(())
        } else {
            Err(StreamingError::ReceiverStopped {
                stream_id: shared.stream_id,
                reason: format!(
                    "stopping ({:?}) while waiting for the rate limit",
                    self.state()
                ),
            })
        }
    }

    /// Adds one record, blocking under the rate limit and while the block queue is full.
    pub fn add_data(&self, item: T) -> Result<()> {
        self.add(item, None)
    }

    /// Adds one record with metadata passed to the listener's `on_add_data`.
    pub fn add_data_with_metadata(&self, item: T, metadata: M) -> Result<()> {
        self.add(item, Some(metadata))
    }

    /// Takes `bytes` from the memory budget (if any), waiting while it is spent; gives up, with
    /// an error, when the generator stops meanwhile.
    fn wait_for_memory(&self, bytes: usize) -> Result<()> {
        let shared = &self.shared;
        let Some(budget) = &shared.budget else {
            return Ok(());
        };
        let stopped = || {
            shared.waits_interrupted.load(Ordering::Acquire)
                || shared.buffer.lock().state != GeneratorState::Active
        };
        if budget.acquire_unless(bytes, stopped) {
            Ok(())
        } else {
            Err(StreamingError::ReceiverStopped {
                stream_id: shared.stream_id,
                reason: format!(
                    "stopping ({:?}) while waiting for receiver memory",
                    self.state()
                ),
            })
        }
    }

    /// Returns bytes taken by [`Self::wait_for_memory`] for records that were not buffered.
    fn give_back(&self, bytes: usize) {
        if let Some(budget) = &self.shared.budget {
            budget.release(bytes);
        }
    }

    fn add(&self, item: T, metadata: Option<M>) -> Result<()> {
        self.wait_for_rate(1)?;
        let weight = (self.shared.weigher)(&item);
        self.wait_for_memory(weight)?;
        let mut buf = self.shared.buffer.lock();
        if buf.state != GeneratorState::Active {
            self.give_back(weight);
            return Err(self.not_accepting(buf.state));
        }
        self.shared.listener.on_add_data(&item, metadata.as_ref());
        buf.items.push(item);
        buf.bytes += weight;
        self.shared
            .counters
            .records_added
            .fetch_add(1, Ordering::Relaxed);
        self.cut_if_full(&mut buf);
        Ok(())
    }

    /// Cuts the buffer now when it reached the block size cap.
    fn cut_if_full(&self, buf: &mut Buffer<T>) {
        let shared = &self.shared;
        if shared
            .config
            .max_block_bytes
            .is_some_and(|max| buf.bytes >= max)
        {
            let interval_ms = shared.config.block_interval.as_millis() as i64;
            cut_locked(shared, buf, now_ms() + interval_ms);
        }
    }

    /// Adds many records at once (one rate-limiter acquisition for the whole chunk; all land in
    /// the same block).
    pub fn add_multiple_data(&self, items: Vec<T>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.wait_for_rate(items.len() as u64)?;
        let weight: usize = items.iter().map(self.shared.weigher).sum();
        self.wait_for_memory(weight)?;
        let mut buf = self.shared.buffer.lock();
        if buf.state != GeneratorState::Active {
            self.give_back(weight);
            return Err(self.not_accepting(buf.state));
        }
        for item in &items {
            self.shared.listener.on_add_data(item, None);
        }
        self.shared
            .counters
            .records_added
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        buf.items.extend(items);
        buf.bytes += weight;
        self.cut_if_full(&mut buf);
        Ok(())
    }

    /// Stores `items` as one block right now, on the caller's thread, bypassing the buffer and
    /// the queue (Spark's `store(ArrayBuffer)` / `pushArrayBuffer`): returns once the handler
    /// stored it (durably, for a WAL handler) and the reporter recorded it. The listener is not
    /// called — the caller knows exactly what it stored. The simplest reliable receiver is
    /// "poll a batch, `push_items`, commit its offsets". Empty `items` still make an (empty) block,
    /// so skip empty polls.
    pub fn push_items(&self, items: Vec<T>) -> Result<ReceivedBlockInfo> {
        self.wait_for_rate(items.len() as u64)?;
        let weight: usize = items.iter().map(self.shared.weigher).sum();
        self.wait_for_memory(weight)?;
        let id = {
            let mut buf = self.shared.buffer.lock();
            if buf.state != GeneratorState::Active {
                self.give_back(weight);
                return Err(self.not_accepting(buf.state));
            }
            let unique_id = now_ms().max(buf.last_unique_id.saturating_add(1));
            buf.last_unique_id = unique_id;
            StreamBlockId {
                stream_id: self.shared.stream_id,
                unique_id,
            }
        };
        let counters = &self.shared.counters;
        counters
            .records_added
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let block = Block {
            id,
            items,
            permit: permit(&self.shared, weight),
        };
        store_and_report(&self.shared, Arc::new(block)).map(|(_, info)| info)
    }

    /// Monitoring counters.
    pub fn stats(&self) -> GeneratorStats {
        let c = &self.shared.counters;
        GeneratorStats {
            records_added: c.records_added.load(Ordering::Relaxed),
            blocks_pushed: c.blocks_pushed.load(Ordering::Relaxed),
            records_pushed: c.records_pushed.load(Ordering::Relaxed),
            push_failures: c.push_failures.load(Ordering::Relaxed),
        }
    }

    /// Makes callers blocked on the rate limit give up (their `add_data` fails with
    /// [`StreamingError::ReceiverStopped`]) — for a prompt stop at a low rate. Data already
    /// accepted is unaffected.
    pub fn interrupt_waits(&self) {
        self.shared.waits_interrupted.store(true, Ordering::Release);
    }

    /// Stops: refuses new data, cuts the last block, pushes every queued block, joins the
    /// threads. Idempotent. Must not be called from a listener callback (it waits for them).
    pub fn stop(&self) {
        {
            let mut buf = self.shared.buffer.lock();
            match buf.state {
                GeneratorState::Initialized => {
                    buf.state = GeneratorState::StoppedAll;
                    return;
                }
                GeneratorState::Active => buf.state = GeneratorState::StoppedAddingData,
                _ => {}
            }
        }
        {
            let mut stop = self.shared.timer_lock.lock();
            *stop = true;
            self.shared.timer_wakeup.notify_all();
        }
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                tracing::error!(
                    stream_id = self.shared.stream_id,
                    "block generator thread panicked"
                );
            }
        }
        self.shared.buffer.lock().state = GeneratorState::StoppedAll;
        tracing::info!(stream_id = self.shared.stream_id, "stopped block generator");
    }
}

impl<T, M> Drop for BlockGenerator<T, M> {
    fn drop(&mut self) {
        // Threads hold their own `Arc<Shared>`; make sure they end rather than run forever.
        {
            let mut buf = self.shared.buffer.lock();
            if buf.state == GeneratorState::Active {
                buf.state = GeneratorState::StoppedAddingData;
            }
        }
        let mut stop = self.shared.timer_lock.lock();
        *stop = true;
        self.shared.timer_wakeup.notify_all();
    }
}

/// Cuts the current buffer into a block stamped `tick_ms − interval` and queues it (blocking
/// under the buffer lock when the queue is full: that is the backpressure).
fn cut_block<T, M>(shared: &Shared<T, M>, tick_ms: i64) {
    let mut buf = shared.buffer.lock();
    cut_locked(shared, &mut buf, tick_ms);
}

/// The permit for `bytes` already taken from the generator's budget.
fn permit<T, M>(shared: &Shared<T, M>, bytes: usize) -> BudgetPermit {
    match &shared.budget {
        Some(budget) => BudgetPermit::new(Arc::clone(budget), bytes),
        None => BudgetPermit::default(),
    }
}

/// [`cut_block`] with the buffer lock held.
fn cut_locked<T, M>(shared: &Shared<T, M>, buf: &mut Buffer<T>, tick_ms: i64) {
    let interval_ms = shared.config.block_interval.as_millis() as i64;
    if buf.items.is_empty() {
        return;
    }
    let unique_id = (tick_ms - interval_ms).max(buf.last_unique_id.saturating_add(1));
    buf.last_unique_id = unique_id;
    let id = StreamBlockId {
        stream_id: shared.stream_id,
        unique_id,
    };
    // The next block is likely the size of this one: reserving it spares the buffer the
    // doublings (and copies) of growing from empty.
    let next_capacity = buf.items.len();
    let items = std::mem::replace(&mut buf.items, Vec::with_capacity(next_capacity));
    let bytes = std::mem::take(&mut buf.bytes);
    shared.listener.on_generate_block(id);
    let block = Arc::new(Block {
        id,
        items,
        permit: permit(shared, bytes),
    });
    if shared.queue_tx.send(block).is_err() {
        // Only possible if the pusher is gone, which happens only after the timer ends.
        tracing::error!(stream_id = shared.stream_id, block = %id, "block queue closed; block dropped");
    }
}

fn run_timer<T, M>(shared: &Shared<T, M>) {
    let interval_ms = (shared.config.block_interval.as_millis() as i64).max(1);
    loop {
        let now = now_ms();
        let next_tick = (now / interval_ms + 1) * interval_ms;
        {
            let mut stop = shared.timer_lock.lock();
            if !*stop {
                let wait = Duration::from_millis((next_tick - now).max(0) as u64);
                shared.timer_wakeup.wait_for(&mut stop, wait);
            }
            if *stop {
                break;
            }
        }
        cut_block(shared, next_tick);
    }
    // Last block from whatever was added before data stopped being accepted.
    cut_block(shared, now_ms());
    shared.buffer.lock().state = GeneratorState::StoppedGeneratingBlocks;
}

fn run_pusher<T, M>(shared: &Shared<T, M>) {
    loop {
        match shared.queue_rx.recv_timeout(Duration::from_millis(10)) {
            Ok(block) => push_block(shared, block),
            Err(RecvTimeoutError::Timeout) => {
                if shared.buffer.lock().state >= GeneratorState::StoppedGeneratingBlocks {
                    // The timer has queued its last block; drain and finish.
                    while let Ok(block) = shared.queue_rx.try_recv() {
                        push_block(shared, block);
                    }
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Stores a block with the handler and reports it, updating the counters.
fn store_and_report<T, M>(
    shared: &Shared<T, M>,
    block: Arc<Block<T>>,
) -> Result<(Arc<Block<T>>, ReceivedBlockInfo)> {
    let stored = shared
        .handler
        .store_block(Arc::clone(&block))
        .and_then(|info| {
            if let Some(report) = &shared.reporter {
                report(&info)?;
            }
            Ok(info)
        });
    let counters = &shared.counters;
    match stored {
        Ok(info) => {
            counters.blocks_pushed.fetch_add(1, Ordering::Relaxed);
            counters
                .records_pushed
                .fetch_add(info.num_records, Ordering::Relaxed);
            Ok((block, info))
        }
        Err(e) => {
            counters.push_failures.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

fn push_block<T, M>(shared: &Shared<T, M>, block: Arc<Block<T>>) {
    let id = block.id;
    match store_and_report(shared, block) {
        Ok((block, info)) => {
            tracing::trace!(block = %id, records = info.num_records, "pushed block");
            shared.listener.on_push_block(&block, &info);
        }
        Err(e) => {
            let message = format!("error storing block {id}");
            tracing::error!(block = %id, error = %e, "{message}");
            shared.listener.on_error(&message, &e);
        }
    }
}

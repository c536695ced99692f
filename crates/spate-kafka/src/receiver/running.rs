//! [`KafkaReceiverBuilder`] and [`RunningKafkaReceiver`]: wiring a [`KafkaReceiver`] to the
//! engine's receiver machinery — the block handler (memory, or the write-ahead log under
//! `receivedData/<stream id>` under the receiver's log directory in reliable mode; the input
//! stream gives it `<checkpoint>/receivers/<input id>`), the reporter that tells the
//! `ReceivedBlockTracker` about each stored block, the rate limiter, and the supervisor that
//! restarts a failing receiver with backoff.
//!
//! This is the receiver on its own, usable without a `StreamingContext` (the crash tests run it
//! that way); the input stream builds on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_streaming::rate::RateLimiter;
use spate_streaming::receiver::{
    BlockGeneratorListener, BlockHandler, BlockReporter, BlockStore, GeneratorStats,
    InMemoryBlockHandler, ReceiverSupervisor, WalBlockHandler,
};
use spate_streaming::wal::WalConfig;

use super::block_codec::{record_weight, ConsumerRecordCodec};
use super::config::KafkaReceiverConfig;
use super::consumer::ConsumerGroupState;
use super::kafka_receiver::{KafkaReceiver, ReliableListener};
use super::offsets::OffsetBook;
use crate::error::{Result, SpateKafkaError};
use crate::keys::WRITE_AHEAD_LOG_ENABLE;
use crate::record::ConsumerRecord;
use crate::TopicPartition;

/// Builds and starts a Kafka receiver; see [`RunningKafkaReceiver::builder`].
pub struct KafkaReceiverBuilder {
    stream_id: u32,
    config: KafkaReceiverConfig,
    checkpoint_dir: Option<PathBuf>,
    store: Arc<BlockStore<ConsumerRecord>>,
    handler: Option<Arc<dyn BlockHandler<ConsumerRecord>>>,
    reporter: Option<BlockReporter>,
    wal_config: WalConfig,
    rate_limiter: Option<Arc<RateLimiter>>,
}

impl std::fmt::Debug for KafkaReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaReceiverBuilder")
            .field("stream_id", &self.stream_id)
            .field("config", &self.config)
            .field("checkpoint_dir", &self.checkpoint_dir)
            .finish_non_exhaustive()
    }
}

impl KafkaReceiverBuilder {
    /// The checkpoint directory; the write-ahead log lives under it (required in reliable mode).
    pub fn checkpoint_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.checkpoint_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Where stored blocks are kept in memory (shared with the batches that read them).
    pub fn block_store(mut self, store: Arc<BlockStore<ConsumerRecord>>) -> Self {
        self.store = store;
        self
    }

    /// Stores blocks with `handler` instead of the one the mode implies (tests, custom storage).
    pub fn block_handler(mut self, handler: Arc<dyn BlockHandler<ConsumerRecord>>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Called with each stored block before its offsets are committed — typically
    /// `ReceivedBlockTracker::add_block`.
    pub fn reporter(mut self, reporter: BlockReporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Settings of the receiver write-ahead log (default: fsync every block).
    pub fn wal_config(mut self, config: WalConfig) -> Self {
        self.wal_config = config;
        self
    }

    /// Uses `limiter` as the receiver's rate limiter (default: one from the config's max and
    /// initial rates), e.g. to share it with a rate controller created earlier.
    pub fn rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// Starts the block generator and the receiver's consumer threads.
    pub fn start(self) -> Result<RunningKafkaReceiver> {
        let reliable = self.config.write_ahead_log_enabled();
        let handler: Arc<dyn BlockHandler<ConsumerRecord>> = match (self.handler, reliable) {
            (Some(h), _) => h,
            (None, true) => {
                let dir = self.checkpoint_dir.as_deref().ok_or_else(|| {
                    SpateKafkaError::NoCheckpointDir {
                        key: WRITE_AHEAD_LOG_ENABLE.into(),
                    }
                })?;
                Arc::new(WalBlockHandler::with_codec(
                    dir,
                    self.stream_id,
                    Arc::clone(&self.store),
                    self.wal_config,
                    Arc::new(ConsumerRecordCodec),
                )?)
            }
            (None, false) => Arc::new(InMemoryBlockHandler::new(Arc::clone(&self.store))),
        };
        let book = reliable.then(|| Arc::new(OffsetBook::new()));
        let config = Arc::new(self.config);
        let state = Arc::new(ConsumerGroupState::new(
            config.group_id(),
            book.clone(),
            config.flush_timeout_value(),
        ));
        let rate_limiter = self.rate_limiter.unwrap_or_else(|| {
            Arc::new(RateLimiter::new(
                config.max_rate_limit(),
                config.initial_rate_limit(),
            ))
        });
        let mut builder = ReceiverSupervisor::builder(self.stream_id, handler)
            .config(config.receiver_config())
            .weigher(record_weight)
            .rate_limiter(rate_limiter);
        if let Some(book) = &book {
            let listener: Arc<dyn BlockGeneratorListener<ConsumerRecord>> =
                Arc::new(ReliableListener {
                    book: Arc::clone(book),
                    state: Arc::clone(&state),
                });
            builder = builder.listener(listener);
        }
        if let Some(reporter) = self.reporter {
            builder = builder.reporter(reporter);
        }
        tracing::info!(
            stream_id = self.stream_id,
            group = config.group_id(),
            topics = ?config.topics(),
            reliable,
            "starting Kafka receiver"
        );
        let receiver = KafkaReceiver::new(Arc::clone(&config), Arc::clone(&state), book.clone());
        let supervisor = builder.start(receiver)?;
        Ok(RunningKafkaReceiver {
            supervisor,
            state,
            book,
            store: self.store,
            reliable,
        })
    }
}

/// A started Kafka receiver. Dropping it stops the threads without draining; call
/// [`RunningKafkaReceiver::stop`] to store (and, in reliable mode, commit) everything received.
#[derive(Debug)]
pub struct RunningKafkaReceiver {
    supervisor: ReceiverSupervisor<ConsumerRecord>,
    state: Arc<ConsumerGroupState>,
    book: Option<Arc<OffsetBook>>,
    store: Arc<BlockStore<ConsumerRecord>>,
    reliable: bool,
}

impl RunningKafkaReceiver {
    /// Starts building a receiver for input stream `stream_id`.
    pub fn builder(stream_id: u32, config: KafkaReceiverConfig) -> KafkaReceiverBuilder {
        KafkaReceiverBuilder {
            stream_id,
            config,
            checkpoint_dir: None,
            store: Arc::new(BlockStore::new()),
            handler: None,
            reporter: None,
            wal_config: WalConfig::default(),
            rate_limiter: None,
        }
    }

    /// The input stream id.
    pub fn stream_id(&self) -> u32 {
        self.supervisor.stream_id()
    }

    /// Whether this is the reliable (write-ahead log) receiver.
    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// The in-memory block store.
    pub fn block_store(&self) -> &Arc<BlockStore<ConsumerRecord>> {
        &self.store
    }

    /// The rate limiter; backpressure feeds it with `update_rate`.
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        self.supervisor.rate_limiter()
    }

    /// Block generator counters.
    pub fn stats(&self) -> GeneratorStats {
        self.supervisor.stats()
    }

    /// Errors reported so far (failed runs, failed block stores, consumer errors).
    pub fn errors(&self) -> Vec<String> {
        self.supervisor.errors()
    }

    /// How many times the receiver restarted.
    pub fn restarts(&self) -> u32 {
        self.supervisor.restarts()
    }

    /// Partitions the receiver's consumers currently own.
    pub fn assigned_partitions(&self) -> BTreeSet<TopicPartition> {
        self.state.assigned_partitions()
    }

    /// Offsets committed successfully by this receiver (next offset per partition).
    pub fn committed_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.state.committed()
    }

    /// Durable next offsets (reliable mode; empty otherwise).
    pub fn durable_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.book.as_ref().map(|b| b.durable()).unwrap_or_default()
    }

    /// Commit failures so far.
    pub fn commit_failures(&self) -> Vec<String> {
        self.state.commit_failures()
    }

    /// Whether the receiver thread ended (stopped, or gave up).
    pub fn is_finished(&self) -> bool {
        self.supervisor.is_finished()
    }

    /// Stops consuming (reliable mode: commits what is stored when leaving the group), then
    /// stores every record already received. Idempotent.
    pub fn stop(&self) {
        self.supervisor.stop();
        tracing::debug!(stream_id = self.stream_id(), committed = ?self.committed_offsets(), "Kafka receiver stopped");
    }
}

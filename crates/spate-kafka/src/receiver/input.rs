//! [`KafkaReceiverInputStream`]: the Kafka receiver as an input of the engine, and
//! [`KafkaUtils::create_stream`] (Spark's `KafkaUtils.createStream`).
//!
//! The engine's plan → compute contract maps onto Spark's receiver scheduling:
//!
//! - `start`: the receiver starts; its blocks are reported to a [`ReceivedBlockTracker`]. With
//!   the write-ahead log, both logs live under `<checkpoint>/receivers/<input id>/`
//!   (`receivedData/0` for blocks, `receivedBlockMetadata` for the tracker).
//! - `plan(t)`: every unallocated block is allocated to batch `t` (logged first), and the batch's
//!   plan is the list of its block infos. After a restart the tracker has replayed its log:
//!   blocks received but never allocated go to the next batch, and a batch allocated just
//!   before the crash whose plan the engine never recorded is folded into the next plan too,
//!   so its blocks are not orphaned.
//! - `compute(t, plan)`: the plan's blocks, from memory or — after a restart — from the
//!   receiver write-ahead log; one partition per block (≈ batch interval / block interval
//!   partitions per receiver).
//! - `batch_completed`: backpressure (the PID estimate becomes the receiver's rate), the
//!   batch's blocks leave the in-memory store (returning their bytes to the receiver's memory
//!   budget; a replay reads them from the log), then allocations and log segments older than
//!   the retention (the state snapshot interval plus
//!   ten batch intervals: what a restart may replay) are deleted.
//!
//! The engine replays committed batches of stateful jobs *before* inputs start, and only
//! `start` tells an input its checkpoint directory, so each plan also names the input's log
//! directory (`receiver_log_dir`); a checkpoint moved to another path therefore cannot replay
//! those batches' blocks (`compute` fails and names the block).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spate_streaming::rate::{BatchCompleted, PidRateEstimator, RateController, RateLimiter};
use spate_streaming::receiver::{
    Block, BlockHandler, BlockStore, InMemoryBlockHandler, ReceivedBlockTracker, ReceiverPlan,
    StreamBlockId, WalBlockHandler,
};
use spate_streaming::wal::WalConfig;
use spate_streaming::{
    BatchInfo, DStream, InputContext, InputInfo, InputStream, PartitionIter, Partitions,
    ReceiverInfo, StreamingContext, StreamingError, Time,
};

use super::block_codec::ConsumerRecordCodec;
use super::config::KafkaReceiverConfig;
use super::running::RunningKafkaReceiver;
use crate::error::SpateKafkaError;
use crate::keys::WRITE_AHEAD_LOG_ENABLE;
use crate::record::ConsumerRecord;

const KIND: &str = "kafka_receiver";
/// Plan field naming the input's log directory (see `plan`).
const LOG_DIR_FIELD: &str = "receiver_log_dir";
/// Each receiver input has its own directory, store and tracker, so one stream id suffices.
const STREAM_ID: u32 = 0;

struct Running {
    receiver: RunningKafkaReceiver,
    tracker: Arc<ReceivedBlockTracker>,
    handler: Arc<dyn BlockHandler<ConsumerRecord>>,
    dir: Option<PathBuf>,
    ctx: InputContext,
    errors_reported: usize,
}

/// A batch's partitions: one per block, read straight from the shared block. (Copying each
/// block's records into a `VecPartitions`, which copies them again when read, cost a second
/// allocation and copy of every record.)
struct BlockPartitions {
    blocks: Vec<Arc<Block<ConsumerRecord>>>,
}

impl Partitions<ConsumerRecord> for BlockPartitions {
    fn num_partitions(&self) -> usize {
        self.blocks.len()
    }

    fn compute(
        &self,
        partition: usize,
    ) -> spate_streaming::Result<PartitionIter<'_, ConsumerRecord>> {
        Ok(match self.blocks.get(partition) {
            Some(block) => Box::new(block.items.iter().cloned()),
            None => Box::new(std::iter::empty()),
        })
    }
}

/// The receiver-based Kafka input. See the module docs.
pub struct KafkaReceiverInputStream {
    config: Mutex<Option<KafkaReceiverConfig>>,
    store: Arc<BlockStore<ConsumerRecord>>,
    rate_limiter: Arc<RateLimiter>,
    rate: Option<Arc<RateController>>,
    running: Mutex<Option<Running>>,
    /// The newest batch time whose plan the engine has (planned here or replayed after a
    /// restart); allocations after it that are older than the batch being planned are orphans.
    last_known_batch: Mutex<Option<i64>>,
    /// How far back allocations and logged blocks are kept after a batch completes.
    retention: Duration,
    /// The blocks each planned batch reads, dropped from the store when the batch completes.
    planned_blocks: Mutex<BTreeMap<i64, Vec<StreamBlockId>>>,
}

impl std::fmt::Debug for KafkaReceiverInputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaReceiverInputStream")
            .field("running", &self.running.lock().is_some())
            .finish_non_exhaustive()
    }
}

fn ms(time: Time) -> i64 {
    i64::try_from(time.as_millis()).unwrap_or(i64::MAX)
}

impl KafkaReceiverInputStream {
    /// An input for `config`; `batch_interval` seeds the backpressure estimator;
    /// `retention` is how long after a batch completes its blocks stay readable (they must
    /// outlive every batch the engine may replay after a restart).
    pub fn new(
        config: KafkaReceiverConfig,
        batch_interval: Duration,
        retention: Duration,
    ) -> Result<Self, SpateKafkaError> {
        let rate_limiter = Arc::new(RateLimiter::new(
            config.max_rate_limit(),
            config.initial_rate_limit(),
        ));
        let rate = if config.backpressure_enabled() {
            let batch_ms = i64::try_from(batch_interval.as_millis()).unwrap_or(i64::MAX);
            let pid = PidRateEstimator::with_defaults(batch_ms)?;
            let limiter = Arc::clone(&rate_limiter);
            Some(Arc::new(
                RateController::new(0, pid)
                    .with_publish(move |rate| limiter.update_rate(rate as f64)),
            ))
        } else {
            None
        };
        Ok(KafkaReceiverInputStream {
            config: Mutex::new(Some(config)),
            store: Arc::new(BlockStore::new()),
            rate_limiter,
            rate,
            running: Mutex::new(None),
            last_known_batch: Mutex::new(None),
            retention,
            planned_blocks: Mutex::new(BTreeMap::new()),
        })
    }

    /// The receiver's rate limiter (records/s), which backpressure adjusts.
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.rate_limiter
    }

    fn receiver_info(ctx: &InputContext, active: bool, error: Option<String>) -> ReceiverInfo {
        ReceiverInfo {
            input_id: ctx.input_id().to_owned(),
            name: format!("{KIND}-{}", ctx.input_id()),
            active,
            location: "spate-kafka-receiver".into(),
            last_error_time: error.as_ref().map(|_| Time::now()),
            last_error: error,
        }
    }

    /// Drops the blocks of batches up to `batch_ms` from the in-memory store: the batch is done
    /// with them (a task still reading holds its own reference), and a replay after a restart
    /// reads them from the log. Their bytes return to the receiver's memory budget when the
    /// last reference goes.
    fn release_blocks(&self, batch_ms: i64) {
        let done: Vec<Vec<StreamBlockId>> = {
            let mut planned = self.planned_blocks.lock();
            let later = planned.split_off(&batch_ms.saturating_add(1));
            std::mem::replace(&mut *planned, later)
                .into_values()
                .collect()
        };
        for id in done.iter().flatten() {
            let _ = self.store.remove(id);
        }
    }

    /// Tells listeners about receiver errors not reported yet (restarts, failed stores).
    fn report_errors(running: &mut Running) {
        let errors = running.receiver.errors();
        for e in errors.iter().skip(running.errors_reported) {
            running
                .ctx
                .receiver_error(Self::receiver_info(&running.ctx, true, Some(e.clone())));
        }
        running.errors_reported = errors.len();
    }
}

/// A Kafka receiver batch's plan: the engine's [`ReceiverPlan`] (its blocks) plus where the
/// blocks' write-ahead log is. The log directory is recorded because the engine re-runs batches
/// of stateful jobs before it starts the inputs (so before `start` tells us the checkpoint
/// directory).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KafkaReceiverPlan {
    /// The blocks of the batch.
    #[serde(flatten)]
    pub blocks: ReceiverPlan,
    /// The receiver's log directory, when it has one.
    #[serde(
        rename = "receiver_log_dir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_dir: Option<PathBuf>,
}

/// The receiver's state in state snapshots: the newest planned batch time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiverPosition {
    /// Time (ms) of the newest planned batch.
    #[serde(default)]
    pub last_planned_batch_ms: Option<i64>,
}

impl InputStream<ConsumerRecord> for KafkaReceiverInputStream {
    type Plan = KafkaReceiverPlan;
    type State = ReceiverPosition;

    fn kind(&self) -> &str {
        KIND
    }

    fn start(&self, ctx: &InputContext) -> spate_streaming::Result<()> {
        let config = self
            .config
            .lock()
            .take()
            .ok_or_else(|| StreamingError::input(ctx.input_id(), "receiver already started"))?;
        let dir = ctx.receiver_log_dir();
        let reliable = config.write_ahead_log_enabled();
        let (tracker, handler): (ReceivedBlockTracker, Arc<dyn BlockHandler<ConsumerRecord>>) =
            match (&dir, reliable) {
                (Some(d), true) => (
                    ReceivedBlockTracker::open([STREAM_ID], d, WalConfig::default())?,
                    Arc::new(WalBlockHandler::with_codec(
                        d,
                        STREAM_ID,
                        Arc::clone(&self.store),
                        WalConfig::default(),
                        Arc::new(ConsumerRecordCodec),
                    )?),
                ),
                (None, true) => {
                    return Err(SpateKafkaError::NoCheckpointDir {
                        key: WRITE_AHEAD_LOG_ENABLE.into(),
                    }
                    .into())
                }
                (_, false) => (
                    ReceivedBlockTracker::new([STREAM_ID]),
                    Arc::new(InMemoryBlockHandler::new(Arc::clone(&self.store))),
                ),
            };
        let tracker = Arc::new(tracker);
        let report_to = Arc::clone(&tracker);
        let mut builder = RunningKafkaReceiver::builder(STREAM_ID, config)
            .block_store(Arc::clone(&self.store))
            .block_handler(Arc::clone(&handler))
            .rate_limiter(Arc::clone(&self.rate_limiter))
            .reporter(Box::new(move |info| report_to.add_block(info.clone())));
        if let Some(d) = &dir {
            builder = builder.checkpoint_dir(d);
        }
        let receiver = builder.start()?;
        ctx.receiver_started(Self::receiver_info(ctx, true, None));
        *self.running.lock() = Some(Running {
            receiver,
            tracker,
            handler,
            dir,
            ctx: ctx.clone(),
            errors_reported: 0,
        });
        Ok(())
    }

    fn stop(&self) -> spate_streaming::Result<()> {
        if let Some(mut r) = self.running.lock().take() {
            r.receiver.stop();
            Self::report_errors(&mut r);
            let last_error = r.receiver.errors().last().cloned();
            r.ctx
                .receiver_stopped(Self::receiver_info(&r.ctx, false, last_error));
        }
        Ok(())
    }

    fn plan(&self, time: Time) -> spate_streaming::Result<KafkaReceiverPlan> {
        let mut running = self.running.lock();
        let r = running
            .as_mut()
            .ok_or_else(|| StreamingError::input(KIND, "planned before the receiver started"))?;
        Self::report_errors(r);
        let t = ms(time);
        r.tracker.allocate_blocks_to_batch(t)?;
        let mut known = self.last_known_batch.lock();
        // Allocations the engine never recorded a plan for (the process died between the
        // tracker's log and the engine's): newer than every plan the engine replayed.
        let last_known = known.unwrap_or(i64::MIN);
        let mut blocks = Vec::new();
        for orphan in r
            .tracker
            .allocated_batch_times()
            .into_iter()
            .filter(|o| *o > last_known && *o < t)
        {
            tracing::info!(
                orphan,
                batch = t,
                "allocated blocks without a recorded plan go to this batch"
            );
            blocks.extend(r.tracker.get_blocks_of_batch_and_stream(orphan, STREAM_ID));
        }
        blocks.extend(r.tracker.get_blocks_of_batch_and_stream(t, STREAM_ID));
        *known = Some(known.map_or(t, |k| k.max(t)));
        self.planned_blocks
            .lock()
            .insert(t, blocks.iter().map(|b| b.block_id).collect());
        Ok(KafkaReceiverPlan {
            blocks: ReceiverPlan::new(blocks),
            log_dir: r.dir.clone(),
        })
    }

    /// The version check of [`ReceiverPlan::from_json`] first, then the log directory.
    fn decode_plan(
        &self,
        recorded: serde_json::Value,
    ) -> spate_streaming::Result<KafkaReceiverPlan> {
        let log_dir = recorded
            .get(LOG_DIR_FIELD)
            .and_then(serde_json::Value::as_str)
            .map(PathBuf::from);
        Ok(KafkaReceiverPlan {
            blocks: ReceiverPlan::from_json(KIND, &recorded)?,
            log_dir,
        })
    }

    fn info(&self, _time: Time, plan: &KafkaReceiverPlan) -> InputInfo {
        let records = plan.blocks.num_records();
        let blocks = plan.blocks.blocks.len();
        InputInfo {
            num_records: records,
            description: format!("{blocks} block(s), {records} record(s)"),
            ..InputInfo::default()
        }
    }

    fn compute(
        &self,
        _time: Time,
        plan: &KafkaReceiverPlan,
    ) -> spate_streaming::Result<Arc<dyn Partitions<ConsumerRecord>>> {
        let dir = self
            .running
            .lock()
            .as_ref()
            .and_then(|r| r.dir.clone())
            .or_else(|| plan.log_dir.clone());
        let blocks = plan.blocks.read_blocks_with(
            &self.store,
            dir.as_deref(),
            Some(&ConsumerRecordCodec),
        )?;
        Ok(Arc::new(BlockPartitions { blocks }))
    }

    fn replayed(&self, time: Time, _plan: &KafkaReceiverPlan) -> spate_streaming::Result<()> {
        let mut known = self.last_known_batch.lock();
        *known = Some(known.map_or(ms(time), |k| k.max(ms(time))));
        Ok(())
    }

    /// The newest planned batch time goes into state snapshots, so that after a restart the
    /// allocations of batches that committed before the snapshot are not taken for orphans.
    fn snapshot_state(&self) -> spate_streaming::Result<Option<ReceiverPosition>> {
        Ok(self.last_known_batch.lock().map(|t| ReceiverPosition {
            last_planned_batch_ms: Some(t),
        }))
    }

    fn restore_state(&self, state: ReceiverPosition) -> spate_streaming::Result<()> {
        if let Some(t) = state.last_planned_batch_ms {
            let mut known = self.last_known_batch.lock();
            *known = Some(known.map_or(t, |k| k.max(t)));
        }
        Ok(())
    }

    fn batch_completed(&self, info: &BatchInfo) {
        self.release_blocks(ms(info.batch_time));
        let running = self.running.lock();
        let Some(r) = running.as_ref() else {
            return;
        };
        if let (Some(rate), Some(end), Some(processing), Some(scheduling)) = (
            &self.rate,
            info.processing_end_time,
            info.processing_delay(),
            info.scheduling_delay(),
        ) {
            let records = info
                .input_infos
                .get(r.ctx.input_id())
                .map_or(0, |i| i.num_records);
            let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            if let Some(new_rate) = rate.on_batch_completed(&BatchCompleted {
                processing_end_ms: ms(end),
                num_records: to_i64(records),
                processing_delay_ms: to_i64(processing),
                scheduling_delay_ms: to_i64(scheduling),
            }) {
                tracing::debug!(
                    input = r.ctx.input_id(),
                    new_rate,
                    "receiver rate updated by backpressure"
                );
            }
        }
        // Keep `retention` of history: batches the engine may replay after a restart (since its
        // last state snapshot) must still find their blocks, and blocks still in the
        // generator's queue are not known to the tracker yet.
        let keep = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let before = ms(info.batch_time).saturating_sub(keep.max(2_000));
        let oldest_waiting = r
            .tracker
            .unallocated_blocks(STREAM_ID)
            .first()
            .map_or(before, |b| b.block_id.unique_id);
        let cleaned = r
            .tracker
            .cleanup_old_batches(before)
            .and_then(|()| r.handler.cleanup_old_blocks(before.min(oldest_waiting)));
        if let Err(e) = cleaned {
            r.ctx
                .receiver_error(Self::receiver_info(&r.ctx, true, Some(e.to_string())));
        }
    }
}

/// The user's handle on a receiver stream: the [`DStream`] of records (also through `Deref`),
/// and the receiver's rate (Spark's `ReceiverInputDStream` with its rate controller).
#[derive(Clone)]
pub struct KafkaReceiverStream {
    stream: DStream<ConsumerRecord>,
    rate_limiter: Arc<RateLimiter>,
    rate: Option<Arc<RateController>>,
}

impl std::fmt::Debug for KafkaReceiverStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaReceiverStream")
            .field("current_rate", &self.rate_limiter.current_rate())
            .finish_non_exhaustive()
    }
}

impl KafkaReceiverStream {
    /// The stream of records.
    pub fn dstream(&self) -> &DStream<ConsumerRecord> {
        &self.stream
    }

    /// The receiver's rate limiter: its current rate is the max rate, or what backpressure
    /// set (records/s; infinite when unlimited).
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.rate_limiter
    }

    /// The latest backpressure estimate (records/s), −1 before the first one, `None` without
    /// backpressure.
    pub fn latest_rate(&self) -> Option<i64> {
        self.rate.as_ref().map(|r| r.latest_rate())
    }
}

impl std::ops::Deref for KafkaReceiverStream {
    type Target = DStream<ConsumerRecord>;

    fn deref(&self) -> &Self::Target {
        &self.stream
    }
}

/// Builds a receiver stream on `ctx` ([`KafkaUtils::create_stream_with`]).
pub(crate) fn create_stream(
    ctx: &StreamingContext,
    config: KafkaReceiverConfig,
) -> Result<KafkaReceiverStream, SpateKafkaError> {
    // Replay after a restart goes back to the last state snapshot: keep that many batches
    // of blocks, plus ten intervals of margin.
    let conf = ctx.config();
    let batches = u32::try_from(conf.checkpoint_interval_batches)
        .unwrap_or(u32::MAX)
        .saturating_add(10);
    let retention = conf.batch_interval.saturating_mul(batches);
    let input = KafkaReceiverInputStream::new(config, ctx.batch_interval(), retention)?;
    let rate_limiter = Arc::clone(&input.rate_limiter);
    let rate = input.rate.clone();
    Ok(KafkaReceiverStream {
        stream: ctx.input_stream(input),
        rate_limiter,
        rate,
    })
}

//! `receiver_stream`: a push-style source (a [`Receiver`]) as an input stream — the way the
//! Kafka receiver approach plugs into the engine.
//!
//! Glue between the engine's plan → compute contract and the `receiver` module: the receiver
//! runs under a [`ReceiverSupervisor`] from `start`; its blocks are reported to a
//! [`ReceivedBlockTracker`]; planning batch `t` allocates the unallocated blocks to `t` and
//! records their infos as a [`ReceiverPlan`]; computing reads the blocks back — from memory, or
//! after a restart from the receiver write-ahead log — one partition per block. With
//! `write_ahead_log` on and a checkpoint directory, received blocks and allocations are durable
//! (at-least-once: a block is durable before its source offsets are committed, so a
//! crash can only replay); without, a crash loses what was received but not yet processed.
//!
//! Each receiver input keeps its logs under `<checkpoint>/receivers/<input id>/`.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::error::{Result, StreamingError};
use crate::exec::{Data, Partitions, VecPartitions};
use crate::input::{InputContext, InputStream};
use crate::listener::{BatchInfo, InputInfo, ReceiverInfo};
use crate::rate::{RateController, RateLimiter};
use crate::receiver::{
    BlockHandler, BlockStore, InMemoryBlockHandler, ReceivedBlockTracker, Receiver, ReceiverConfig,
    ReceiverPlan, ReceiverSupervisor, WalBlockHandler,
};
use crate::time::{ms, Time};
use crate::wal::WalConfig;

/// Options of [`StreamingContext::receiver_stream`].
#[derive(Debug, Clone, Default)]
pub struct ReceiverStreamOptions {
    /// Make received blocks and their allocation to batches durable in write-ahead logs under
    /// the checkpoint directory (Spark's `spark.streaming.receiver.writeAheadLog.enable`,
    /// default false). Needs a checkpoint directory.
    pub write_ahead_log: bool,
    /// Block interval, queue size and restart policy.
    pub config: ReceiverConfig,
    /// Rate limit of `store` (backpressure updates it); default unlimited.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Backpressure: fed every completed batch of this input; publish its rate to
    /// `rate_limiter` with [`RateController::with_publish`].
    pub rate_controller: Option<Arc<RateController>>,
}

struct Running<T> {
    tracker: Arc<ReceivedBlockTracker>,
    supervisor: ReceiverSupervisor<T>,
    dir: Option<PathBuf>,
    ctx: InputContext,
    stopped: std::sync::atomic::AtomicBool,
}

struct ReceiverInput<T, R> {
    stream_id: u32,
    options: ReceiverStreamOptions,
    receiver: Mutex<Option<R>>,
    store: Arc<BlockStore<T>>,
    running: Mutex<Option<Running<T>>>,
}

impl<T, R> ReceiverInput<T, R>
where
    T: Data + Serialize + DeserializeOwned,
    R: Receiver<T>,
{
    fn info(&self, ctx: &InputContext, active: bool, error: Option<String>) -> ReceiverInfo {
        ReceiverInfo {
            input_id: ctx.input_id().to_owned(),
            name: format!("receiver-{}", self.stream_id),
            active,
            location: "spate-receiver".into(),
            last_error_time: error.as_ref().map(|_| Time::now()),
            last_error: error,
        }
    }
}

impl<T, R> InputStream<T> for ReceiverInput<T, R>
where
    T: Data + Serialize + DeserializeOwned,
    R: Receiver<T>,
{
    type Plan = ReceiverPlan;
    type State = ();

    fn kind(&self) -> &str {
        "receiver_stream"
    }

    fn start(&self, ctx: &InputContext) -> Result<()> {
        let receiver = self
            .receiver
            .lock()
            .take()
            .ok_or_else(|| StreamingError::input(ctx.input_id(), "receiver already started"))?;
        let dir = ctx.receiver_log_dir();
        let sid = self.stream_id;
        let (tracker, handler): (ReceivedBlockTracker, Arc<dyn BlockHandler<T>>) =
            match (&dir, self.options.write_ahead_log) {
                (Some(d), true) => (
                    ReceivedBlockTracker::open([sid], d, WalConfig::default())?,
                    Arc::new(WalBlockHandler::open(d, sid, self.store.clone(), WalConfig::default())?),
                ),
                (None, true) => {
                    return Err(StreamingError::input(
                        ctx.input_id(),
                        "write_ahead_log needs a checkpoint directory (StreamingContext::checkpoint or get_or_create)",
                    ))
                }
                (_, false) => (
                    ReceivedBlockTracker::new([sid]),
                    Arc::new(InMemoryBlockHandler::new(self.store.clone())),
                ),
            };
        let tracker = Arc::new(tracker);
        let report_to = tracker.clone();
        let mut builder = ReceiverSupervisor::builder(sid, handler)
            .config(self.options.config.clone())
            .reporter(Box::new(move |info| report_to.add_block(info.clone())));
        if let Some(l) = &self.options.rate_limiter {
            builder = builder.rate_limiter(l.clone());
        }
        let supervisor = builder.start(receiver)?;
        ctx.receiver_started(self.info(ctx, true, None));
        *self.running.lock() = Some(Running {
            tracker,
            supervisor,
            dir,
            ctx: ctx.clone(),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(())
    }

    fn stop(&self) -> Result<()> {
        // The tracker stays: a graceful stop plans one more batch after this to allocate the
        // blocks the receiver stored while draining.
        let running = self.running.lock();
        if let Some(r) = running.as_ref() {
            if !r.stopped.swap(true, std::sync::atomic::Ordering::SeqCst) {
                r.supervisor.stop();
                let last_error = r.supervisor.errors().last().cloned();
                r.ctx.receiver_stopped(self.info(&r.ctx, false, last_error));
            }
        }
        Ok(())
    }

    fn plan(&self, time: Time) -> Result<ReceiverPlan> {
        let running = self.running.lock();
        let r = running.as_ref().ok_or_else(|| {
            StreamingError::input("receiver_stream", "planned before the receiver started")
        })?;
        let t = time.as_millis() as i64;
        r.tracker.allocate_blocks_to_batch(t)?;
        Ok(ReceiverPlan::new(
            r.tracker.get_blocks_of_batch_and_stream(t, self.stream_id),
        ))
    }

    fn decode_plan(&self, recorded: serde_json::Value) -> Result<ReceiverPlan> {
        ReceiverPlan::from_json("receiver_stream", &recorded)
    }

    fn info(&self, _time: Time, p: &ReceiverPlan) -> InputInfo {
        let n = p.num_records();
        InputInfo {
            num_records: n,
            description: format!("{} block(s), {n} record(s)", p.blocks.len()),
            metadata: p.to_json().unwrap_or_default(),
            ..InputInfo::default()
        }
    }

    fn compute(&self, _time: Time, p: &ReceiverPlan) -> Result<Arc<dyn Partitions<T>>> {
        let dir = self.running.lock().as_ref().and_then(|r| r.dir.clone());
        let blocks = p.read_blocks(&self.store, dir.as_deref())?;
        Ok(Arc::new(VecPartitions::new(
            blocks.iter().map(|b| b.items.clone()).collect(),
        )))
    }

    fn batch_completed(&self, info: &BatchInfo) {
        // Keep ten batch intervals of history, as a margin for batches still being written.
        let running = self.running.lock();
        let Some(r) = running.as_ref() else { return };
        if let (Some(rc), Some(sample)) = (
            &self.options.rate_controller,
            info.rate_sample(r.ctx.input_id()),
        ) {
            rc.on_batch_completed(&sample);
        }
        // The batch is done with its blocks: drop them from memory now (a task still reading
        // holds its own reference; a replay reads the log), returning their bytes to the
        // receiver's memory budget.
        let t = info.batch_time.as_millis() as i64;
        for b in r.tracker.get_blocks_of_batch_and_stream(t, self.stream_id) {
            let _ = self.store.remove(&b.block_id);
        }
        let keep = 10 * ms(r.ctx.batch_interval()) as i64;
        let before = t - keep;
        if let Err(e) = r.tracker.cleanup_old_batches(before) {
            r.ctx
                .receiver_error(self.info(&r.ctx, true, Some(e.to_string())));
        }
        self.store.remove_older_than(before);
    }
}

impl StreamingContext {
    /// A stream fed by `receiver` (Spark's `receiverStream`); see [`crate::input::receiver`].
    pub fn receiver_stream<T, R>(&self, receiver: R, options: ReceiverStreamOptions) -> DStream<T>
    where
        T: Data + Serialize + DeserializeOwned,
        R: Receiver<T>,
    {
        let stream_id = self.inner.graph.lock().inputs.len() as u32;
        self.input_stream(ReceiverInput {
            stream_id,
            options,
            receiver: Mutex::new(Some(receiver)),
            store: Arc::new(BlockStore::new()),
            running: Mutex::new(None),
        })
    }
}

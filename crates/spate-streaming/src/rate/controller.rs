//! [`RateController`]: Spark's `RateController` — the latest estimated rate, fed by
//! batch-completed events.
//!
//! Spark runs the estimator on a dedicated single thread because it is a `StreamingListener`
//! callback; here the estimate is a few float operations, so it runs inline on the caller's
//! thread, under a lock that keeps updates in batch order. The latest rate is an atomic that
//! planners and receivers can read without locking.

use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;

use super::pid::RateEstimator;

/// What the controller needs from a completed batch (Spark reads these from `BatchInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchCompleted {
    /// Processing end time, ms since the epoch.
    pub processing_end_ms: i64,
    /// Records of this controller's input stream in the batch.
    pub num_records: i64,
    /// Processing delay (end − start), ms.
    pub processing_delay_ms: i64,
    /// Scheduling delay (start − submission), ms.
    pub scheduling_delay_ms: i64,
}

type Publish = Box<dyn Fn(i64) + Send + Sync>;

/// Holds the latest rate limit for one input stream and updates it after every batch.
pub struct RateController {
    stream_id: u32,
    estimator: Mutex<Box<dyn RateEstimator>>,
    /// Records/s; −1 until the estimator has produced a rate (Spark's `AtomicLong(-1L)`).
    rate_limit: AtomicI64,
    publish: Option<Publish>,
}

impl std::fmt::Debug for RateController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateController")
            .field("stream_id", &self.stream_id)
            .field("rate_limit", &self.latest_rate())
            .finish_non_exhaustive()
    }
}

impl RateController {
    /// A controller for input stream `stream_id` using `estimator`.
    pub fn new(stream_id: u32, estimator: impl RateEstimator + 'static) -> Self {
        RateController {
            stream_id,
            estimator: Mutex::new(Box::new(estimator)),
            rate_limit: AtomicI64::new(-1),
            publish: None,
        }
    }

    /// Calls `publish(new_rate)` whenever the rate changes — e.g. to forward it to the stream's
    /// receivers' [`super::RateLimiter::update_rate`] (Spark's `ReceiverRateController`).
    pub fn with_publish(mut self, publish: impl Fn(i64) + Send + Sync + 'static) -> Self {
        self.publish = Some(Box::new(publish));
        self
    }

    /// The input stream this controller is for.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The latest rate in records/s, or −1 if there is no estimate yet.
    pub fn latest_rate(&self) -> i64 {
        self.rate_limit.load(Ordering::Acquire)
    }

    /// Feeds a completed batch to the estimator; stores and publishes a new rate if it produced
    /// one (truncated to whole records/s, as Spark's `newRate.toLong`). Returns the new rate.
    pub fn on_batch_completed(&self, batch: &BatchCompleted) -> Option<i64> {
        let new_rate = self.estimator.lock().compute(
            batch.processing_end_ms,
            batch.num_records,
            batch.processing_delay_ms,
            batch.scheduling_delay_ms,
        )?;
        let rate = new_rate as i64;
        self.rate_limit.store(rate, Ordering::Release);
        tracing::debug!(stream_id = self.stream_id, rate, "new ingestion rate");
        if let Some(publish) = &self.publish {
            publish(rate);
        }
        Some(rate)
    }
}

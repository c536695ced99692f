//! Rate control: how fast inputs may ingest (Spark's backpressure and its receiver
//! rate limit).
//!
//! - [`PidRateEstimator`] turns each completed batch's size and delays into a new ingestion rate,
//!   exactly as Spark's `PIDRateEstimator` does, so a job tuned for Spark
//!   ingests at the same rates here.
//! - [`RateController`] holds the latest estimate (records/s, −1 until there is one) and feeds the
//!   estimator from batch-completed events; inputs read it when planning or publish it to their
//!   receivers.
//! - [`RateLimiter`] is the receiver side: a token bucket that blocks `store` so a receiver never
//!   pushes faster than the current rate.
//!
//! The Kafka direct stream's per-partition clamp lives in the Kafka crate, not here.
//!
//! # Example: backpressure for a receiver
//!
//! ```
//! use std::sync::Arc;
//! use spate_streaming::rate::{BatchCompleted, PidRateEstimator, RateController, RateLimiter};
//!
//! let limiter = Arc::new(RateLimiter::new(Some(10_000.0), None)); // receiver.maxRate
//! let for_receiver = Arc::clone(&limiter);
//! let controller = RateController::new(0, PidRateEstimator::with_defaults(1_000)?)
//!     .with_publish(move |rate| for_receiver.update_rate(rate as f64));
//! let batch = |end, n| BatchCompleted {
//!     processing_end_ms: end, num_records: n, processing_delay_ms: 500, scheduling_delay_ms: 0,
//! };
//! assert_eq!(controller.on_batch_completed(&batch(1_000, 1_000)), None); // first run only seeds
//! assert_eq!(controller.on_batch_completed(&batch(2_000, 1_000)), Some(2_000));
//! assert_eq!(limiter.current_rate(), 2_000.0);
//! # Ok::<(), spate_streaming::StreamingError>(())
//! ```

mod controller;
mod limiter;
mod pid;

pub use controller::{BatchCompleted, RateController};
pub use limiter::RateLimiter;
pub use pid::{PidRateEstimator, RateEstimator};

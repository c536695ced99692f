//! Rate control: how fast inputs may ingest (Spark's backpressure, C18, and receiver rate limit,
//! R7).
//!
//! - [`PidRateEstimator`] turns each completed batch's size and delays into a new ingestion rate,
//!   exactly as Spark's `PIDRateEstimator` does (reference §3.2).
//! - [`RateController`] holds the latest estimate (records/s, −1 until there is one) and feeds the
//!   estimator from batch-completed events; inputs read it when planning or publish it to their
//!   receivers.
//! - [`RateLimiter`] is the receiver side: a token bucket that blocks `store` so a receiver never
//!   pushes faster than the current rate.
//!
//! The Kafka direct stream's per-partition clamp lives in the Kafka crate, not here.

mod controller;
mod limiter;
mod pid;

pub use controller::{BatchCompleted, RateController};
pub use limiter::RateLimiter;
pub use pid::{PidRateEstimator, RateEstimator};

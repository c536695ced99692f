//! The Yahoo Streaming Benchmark (YSB) on spate: the ad events and their encodings
//! ([`events`], [`json`], [`view`]), the seeded set-up ([`setup`]), the load generator writing them to Kafka ([`generator`]), the job as a direct
//! stream pipeline ([`job`]), and the checker that recomputes the counts from the input topic
//! and compares them with the job's output topic ([`checker`]).
//!
//! The job is YSB's, as defined in `yahoo/streaming-benchmarks`: parse the JSON event, keep
//! views, project `(ad_id, event_time)`, join the ad to its campaign through an in-process map
//! (YSB's Redis lookup, which every engine caches), and count per campaign per 10-second
//! event-time window. Each batch writes the updated running counts, with the time of the update,
//! to a Kafka topic (as the Databricks harness did instead of Redis); the last update of a window
//! is its count, and `time_updated − window end` is YSB's latency.

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod checker;
mod error;
pub mod events;
pub mod generator;
pub mod job;
pub mod json;
pub mod setup;
pub mod view;

pub use checker::{CheckReport, Mismatch, WindowCount};
pub use error::YsbError;
pub use events::{window_start, AdEvent, AdType, Encoding, EventType, WINDOW_MS};
pub use generator::{EventClock, GeneratorConfig, LiveLoad};
pub use job::{JobStats, YsbJob, YsbJobConfig};
pub use json::AdEventRef;
pub use setup::{CampaignMap, EventGenerator, SplitMix64, YsbSetup};
pub use view::view_of;

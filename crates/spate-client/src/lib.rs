//! Client plumbing shared by the `spate` command line, the benchmarks, the Yahoo Streaming
//! Benchmark and the quickstart: connection options turned into rdkafka clients with a deadline
//! on the first request ([`config`]), producing with backpressure and counted delivery reports
//! ([`delivery`]), throughput settings ([`tuning`]), measurement arithmetic ([`measure`]) and,
//! with the `embedded` feature, the embedded broker as a target ([`embedded`]); what fails is a
//! [`ClientError`].
//!
//! It sits below every crate that talks to Kafka through plain rdkafka clients, so none of them
//! imports another's internals: the CLI, the benchmarks and YSB all depend on it, it depends on
//! none of them. The clap flags of [`config::ClientArgs`] are behind the `cli` feature, so the
//! YSB library does not pull in a command-line parser.

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod config;
pub mod delivery;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod error;
pub mod measure;
pub mod tuning;

pub use config::{CliContext, ClientArgs};
pub use delivery::{send_with_backpressure, DeliveryCounter};
#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedBroker, Storage};
pub use error::ClientError;
pub use measure::{fmt_count, LoadResult, Percentiles, Throughput};

//! The `spate` crate: the command line's subcommands as a library, so that integration tests and
//! user programs can drive them (benchmarks, jobs, the web UI) without spawning the binary, and
//! re-exports of the engine and the Kafka integration for users who depend on `spate` alone.

pub mod bench;
pub mod cli;
pub mod quickstart;
pub mod ui;
pub mod ysb;

pub use spate_kafka as kafka;
pub use spate_streaming as streaming;

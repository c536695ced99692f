//! The `spate` command line as a library, so that its integration tests and unit tests reach
//! the subcommands without spawning the binary: the Kafka-tool look-alikes ([`cli`]: broker,
//! topics, produce, consume, groups) and the whole-pipeline demo ([`quickstart`]). `main.rs`
//! parses the flags and dispatches; `spate bench` is the `spate-bench` crate.

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod allocator;
pub mod cli;
pub mod logging;
pub mod quickstart;

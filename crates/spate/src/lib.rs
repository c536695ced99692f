//! The `spate` library: what a streaming job depends on, the engine ([`streaming`]) and its
//! Kafka integration ([`kafka`]), re-exported under one name. It pulls in no command-line,
//! web or plotting dependency: the `spate` binary is the `spate-cli` package, the web UI is
//! `spate-ui`, the benchmarks are `spate-bench` and `spate-ysb`.

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub use spate_kafka as kafka;
pub use spate_streaming as streaming;

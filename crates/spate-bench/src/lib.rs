//! `spate bench`: benchmarks of the broker, its log cleaner, the engine, the Kafka streams and the Yahoo
//! Streaming Benchmark, and the pieces they share: a plain-text table, the JSON report (with the
//! raw librdkafka consumer `ceiling` every engine number is compared against), and readers for
//! peak RSS and CPU time. Throughput and percentile arithmetic is in `spate_client::measure`.
//!
//! A benchmark is not a test: it prints numbers, it does not judge them. Each one adds a variant
//! to [`Benchmark`] and a module beside `broker.rs`. SVG plots of the YSB sweep (plotters) are
//! behind the `plots` feature, which the `spate` binary turns on.

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod broker;
pub mod compaction;
pub mod direct;
pub mod engine;
pub mod error;
pub mod job_result;
pub mod kafka_io;
pub mod kafka_to_kafka;
pub mod many_partitions;
pub mod receiver;
pub mod report;
pub mod resources;
pub mod scale;
pub mod scale_instance;
pub mod session_fetcher;
pub mod stream_job;
pub mod stream_topic;
pub mod target;
pub mod ysb;
pub mod ysb_generate;
#[cfg(feature = "plots")]
pub mod ysb_plot;
pub mod ysb_run;

use crate::error::Result;
use clap::{Args, Subcommand};

pub use error::BenchError;
pub use report::{Ceiling, Report, Table};
pub use resources::{CpuTime, ResourceUsage};

/// Options of `spate bench`: which benchmark to run, with its own options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The benchmark to run.
    #[command(subcommand)]
    pub benchmark: Benchmark,
}

/// The benchmarks `spate bench` runs, one subcommand each.
#[derive(Subcommand, Debug)]
pub enum Benchmark {
    /// Produce then consume N records through the broker with rdkafka: the raw client ceiling.
    Broker(broker::BrokerBenchArgs),
    /// Log compaction: produce N keyed records over K keys, clean them, read them back.
    Compaction(compaction::CompactionBenchArgs),
    /// Engine throughput (pass-through, word count, window) and fixed per-batch overhead, no Kafka.
    Engine(engine::EngineBenchArgs),
    /// The Yahoo Streaming Benchmark on the direct stream: catch-up, live, sweep, checker.
    Ysb(ysb::YsbBenchArgs),
    /// Direct Kafka stream (pass-through, word count) on a preloaded topic vs the raw consumer.
    Direct(direct::DirectBenchArgs),
    /// Receiver Kafka stream with the write-ahead log off and on, vs the direct stream.
    Receiver(receiver::ReceiverBenchArgs),
    /// Kafka→Kafka pass-through with the at-least-once and the exactly-once output, vs the raw consumer.
    KafkaToKafka(kafka_to_kafka::KafkaToKafkaBenchArgs),
    /// Word count as 1, 2 and 3 group-managed instances (child processes) on the same threads,
    /// and the time until a killed instance's partitions are processed again.
    Scale(scale::ScaleBenchArgs),
    /// One instance of `bench scale` (started by it).
    #[command(hide = true)]
    ScaleInstance(scale_instance::ScaleInstanceArgs),
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.benchmark {
        Benchmark::Broker(a) => broker::run(a),
        Benchmark::Compaction(a) => compaction::run(a),
        Benchmark::Engine(a) => engine::run(a),
        Benchmark::Ysb(a) => ysb::run(a),
        Benchmark::Direct(a) => direct::run(a),
        Benchmark::Receiver(a) => receiver::run(a),
        Benchmark::KafkaToKafka(a) => kafka_to_kafka::run(a),
        Benchmark::Scale(a) => scale::run(a),
        Benchmark::ScaleInstance(a) => scale_instance::run(a),
    }
}

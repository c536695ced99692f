//! The engine benchmark (`spate bench engine`) as an example of this crate, for quick runs:
//! `cargo run --release -p spate-streaming --example bench_engine -- --records 2000000`.
//! The code is `spate-bench`'s, included from its source file (the engine benchmark depends on
//! nothing but the engine).

#[allow(dead_code)]
#[path = "../../spate-bench/src/engine.rs"]
mod engine;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Throughput and per-batch overhead of the spate micro-batch engine")]
struct Cli {
    #[command(flatten)]
    args: engine::EngineBenchArgs,
}

fn main() -> anyhow::Result<()> {
    engine::run(Cli::parse().args)
}

//! The `spate` command line: broker, topic and client tools, jobs and benchmarks.
//!
//! Each subcommand lives in its own `cli/<name>.rs`; this file only declares the variants and
//! dispatches.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spate",
    version,
    about = "Spark Streaming's Kafka integration, in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
    /// Run the embedded Kafka-compatible broker.
    Broker(cli::broker::BrokerArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Version => println!("spate {}", env!("CARGO_PKG_VERSION")),
        Command::Broker(args) => cli::broker::run(args)?,
    }
    Ok(())
}

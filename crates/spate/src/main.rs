//! The `spate` command line: broker, topic and client tools, jobs and benchmarks.

use clap::{Parser, Subcommand};

mod bench;
mod cli;

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
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(cli::topics::TopicsArgs),
    /// Send stdin lines as records to a topic (like kafka-console-producer.sh).
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic to stdout (like kafka-console-consumer.sh).
    Consume(cli::consume::ConsumeArgs),
    /// Run a benchmark and print (and optionally write as JSON) its report.
    Bench(bench::BenchArgs),
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
        Command::Topics(args) => cli::topics::run(args)?,
        Command::Produce(args) => cli::produce::run(args)?,
        Command::Consume(args) => cli::consume::run(args)?,
        Command::Bench(args) => bench::run(args)?,
    }
    Ok(())
}

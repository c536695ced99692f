//! The `spate` command line: broker, topic and client tools, jobs and benchmarks.
//!
//! Each subcommand lives in its own `cli/<name>.rs` of the `spate_cli` library (`spate bench`
//! in the `spate-bench` crate); this file only declares the variants, sets up logging
//! (`logging.rs`) and dispatches.

use clap::{ArgAction, Parser, Subcommand};
use spate_bench as bench;
use spate_cli::{allocator, cli, logging, quickstart};

/// With the `mimalloc` feature the binary allocates with mimalloc instead of the system
/// allocator; docs/benchmarks.md has the measurements behind the default.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "spate",
    version,
    about = "Spark Streaming's Kafka integration, in Rust"
)]
struct Cli {
    /// More log lines on stderr: -v info, -vv debug (default: warnings only; without -v,
    /// RUST_LOG applies).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
    /// Run the embedded Kafka-compatible broker.
    Broker(cli::broker::BrokerArgs),
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(cli::topics::TopicsArgs),
    /// Send stdin lines as records to a topic (like kafka-console-producer.sh).
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic to stdout (like kafka-console-consumer.sh).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets (kafka-consumer-groups).
    Groups(cli::groups::GroupsArgs),
    /// Describe and alter topic, broker and group configs (like kafka-configs.sh).
    Configs(cli::configs::ConfigsArgs),
    /// List, describe and abort transactions, and a partition's producers (like kafka-transactions.sh).
    Transactions(cli::transactions::TransactionsArgs),
    /// Add, list and delete SCRAM users (like kafka-configs.sh --entity-type users).
    Users(cli::users::UsersArgs),
    /// Add, list and remove ACLs (like kafka-acls.sh).
    Acls(cli::acls::AclsArgs),
    /// Run a benchmark and print (and optionally write as JSON) its report.
    Bench(bench::BenchArgs),
    /// YSB's live load generator alone (what `bench ysb --generator-process` runs in its own
    /// process): offers events at a fixed rate, prints what it achieved as JSON.
    YsbGenerate(bench::ysb_generate::YsbGenerateArgs),
    /// Run a whole pipeline: embedded broker, generated ad events, a checkpointed direct-stream
    /// job counting views per campaign into SQLite, and the web UI.
    Quickstart(quickstart::QuickstartArgs),
}

fn main() -> anyhow::Result<()> {
    allocator::fix_mmap_threshold();
    let args = Cli::parse();
    logging::init(args.verbose);
    match args.command {
        Command::Version => println!("spate {}", env!("CARGO_PKG_VERSION")),
        Command::Broker(args) => cli::broker::run(args)?,
        Command::Topics(a) => cli::topics::run(a, args.verbose > 0)?,
        Command::Produce(args) => cli::produce::run(args)?,
        Command::Consume(args) => cli::consume::run(args)?,
        Command::Groups(args) => cli::groups::run(args)?,
        Command::Configs(args) => cli::configs::run(args)?,
        Command::Transactions(args) => cli::transactions::run(args)?,
        Command::Users(args) => cli::users::run(args)?,
        Command::Acls(args) => cli::acls::run(args)?,
        Command::Bench(args) => bench::run(args)?,
        Command::YsbGenerate(args) => bench::ysb_generate::run(args)?,
        Command::Quickstart(args) => quickstart::run(args)?,
    }
    Ok(())
}

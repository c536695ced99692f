//! The broker a benchmark runs against, chosen the same way by every benchmark: the embedded
//! broker in this process (segment files in a fresh temp dir by default, `--in-memory`, or
//! `--data-dir DIR`), or an external broker with `--bootstrap-server`.

use crate::error::Result;
use std::path::PathBuf;

use clap::Args;

use spate_client::embedded::{EmbeddedBroker, Storage};

/// Flags that pick the broker under test; `#[command(flatten)]` them into a benchmark's args.
#[derive(Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Benchmark an external broker at HOST:PORT instead of starting one in-process.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// Use the embedded broker's in-memory storage instead of segment files in a temp dir.
    #[arg(long, conflicts_with = "bootstrap_server")]
    pub in_memory: bool,
    /// Keep the embedded broker's data here instead of a fresh temp dir (deleted afterwards).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bootstrap_server", "in_memory"])]
    pub data_dir: Option<PathBuf>,
}

/// The broker under test; an embedded one stops when this is dropped.
#[derive(Debug)]
pub struct BrokerTarget {
    /// Its `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
    /// For the report, e.g. "embedded broker, in-memory storage".
    pub description: String,
    _embedded: Option<EmbeddedBroker>,
}

impl BrokerTarget {
    /// Connects to `--bootstrap-server`, or starts the embedded broker with the storage the
    /// flags ask for.
    pub fn start(args: &TargetArgs) -> Result<Self> {
        Self::start_with(args, &[])
    }

    /// [`BrokerTarget::start`], an embedded broker getting `settings` (Kafka's broker setting
    /// names, e.g. `group.min.session.timeout.ms`); an external broker is used as it is.
    pub fn start_with(args: &TargetArgs, settings: &[(&str, String)]) -> Result<Self> {
        if let Some(bootstrap) = &args.bootstrap_server {
            return Ok(BrokerTarget {
                bootstrap: bootstrap.clone(),
                description: "external broker".to_owned(),
                _embedded: None,
            });
        }
        let storage = if args.in_memory {
            Storage::Memory
        } else {
            Storage::Disk(args.data_dir.clone())
        };
        let embedded = EmbeddedBroker::start_with(storage, settings)?;
        Ok(BrokerTarget {
            bootstrap: embedded.bootstrap(),
            description: embedded.description(),
            _embedded: Some(embedded),
        })
    }
}

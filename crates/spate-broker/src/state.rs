//! [`BrokerState`]: everything a request handler can reach — configuration, the topic registry
//! (and through it every partition), the producer id allocator and the group and transaction
//! coordinators. Each
//! subsystem is a typed field, built before the state is shared, so no handler can run against a
//! subsystem that was never opened. (The handler registry is not here: the server owns it.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::cleaner::LogCleaner;
use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessionCache;
use crate::group::GroupCoordinator;
use crate::producer_state::ProducerIdAllocator;
use crate::topics::TopicRegistry;
use crate::txn::TransactionCoordinator;

/// Where clients are told to connect (Metadata, DescribeCluster, FindCoordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// The broker id (`node.id`).
    pub node_id: i32,
    /// The host clients are told to connect to.
    pub host: String,
    /// The port clients are told to connect to.
    pub port: i32,
}

/// State shared by every connection and handler.
pub struct BrokerState {
    /// The configuration the broker started with.
    pub config: BrokerConfig,
    /// The endpoint Metadata and FindCoordinator advertise.
    pub advertised: Advertised,
    /// Every topic and its partitions.
    pub topics: TopicRegistry,
    /// Hands out producer ids for InitProducerId.
    pub producer_ids: ProducerIdAllocator,
    /// Broker configs changed at runtime (AlterConfigs on the BROKER resource).
    pub dynamic: crate::dynamic_config::DynamicBrokerConfig,
    /// Per-group configs (the GROUP config resource).
    pub group_configs: crate::group::group_configs::GroupConfigStore,
    /// The coordinator of every consumer group (committed offsets under `<meta dir>`).
    pub groups: Arc<GroupCoordinator>,
    /// The log cleaner of compacted topics (its threads start once the state is shared).
    pub cleaner: Arc<LogCleaner>,
    /// Request counts and latencies per API (the metrics endpoint).
    pub request_metrics: crate::metrics::RequestMetrics,
    /// Where the metrics endpoint listens, once bound (`metrics_listen`).
    pub metrics_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The coordinator of every transactional id (its log under `<meta dir>/transactions`).
    pub txn: Arc<TransactionCoordinator>,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessionCache,
    /// Cancelled when the broker shuts down; long waits (Fetch long-polls) and background
    /// tasks of subsystems watch it.
    pub shutdown: CancellationToken,
    /// SASL settings and SCRAM credentials (under `<meta dir>/scram_credentials.json`).
    pub security: crate::security::Security,
    /// Run once on clean shutdown, after the last request finished and before the partition
    /// logs are flushed and closed (in registration order).
    pub(crate) shutdown_hooks: Mutex<Vec<ShutdownHook>>,
}

impl std::fmt::Debug for BrokerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerState")
            .field("config", &self.config)
            .field("advertised", &self.advertised)
            .finish_non_exhaustive()
    }
}

/// Work a subsystem needs done on clean shutdown (e.g. the group coordinator flushing its
/// offsets log).
pub type ShutdownHook = Box<dyn FnOnce() -> crate::error::Result<()> + Send>;

impl BrokerState {
    /// The directory the broker keeps its logs and metadata in; `None` when it keeps them in memory.
    pub fn data_dir(&self) -> Option<&Path> {
        self.config.data_dir.as_deref()
    }

    /// Registers work to run on clean shutdown (see [`ShutdownHook`]).
    pub fn on_shutdown(&self, hook: impl FnOnce() -> crate::error::Result<()> + Send + 'static) {
        self.shutdown_hooks.lock().push(Box::new(hook));
    }

    /// Takes the registered shutdown hooks (each runs once).
    pub(crate) fn take_shutdown_hooks(&self) -> Vec<ShutdownHook> {
        std::mem::take(&mut *self.shutdown_hooks.lock())
    }

    /// Directory for broker metadata files (`<data dir>/meta`), if the broker persists.
    pub fn meta_dir(&self) -> Option<PathBuf> {
        self.data_dir().map(|d| d.join("meta"))
    }
}

//! Starting and stopping a broker: open storage and metadata, bind the listener, run the
//! acceptor and the log maintenance task (retention, time-based flushes), and shut all of it
//! down cleanly — stop accepting, let in-flight requests finish, flush every log.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, StorageKind};
use crate::dynamic_config::DynamicBrokerConfig;
use crate::error::{BrokerError, Result};
use crate::fetch_session::FetchSessionCache;
use crate::group::group_configs::GroupConfigStore;
use crate::group::{ticker, GroupCoordinator};
use crate::handlers::HandlerRegistry;
use crate::producer_state::ProducerIdAllocator;
use crate::state::{Advertised, BrokerState};
use crate::storage::memory::MemoryStorage;
use crate::storage::{DiskOptions, DiskStorage, LogStorage};
use crate::topics::TopicRegistry;

/// Entry point: `Broker::start(config).await`.
#[derive(Debug)]
pub struct Broker;

/// A running broker. Dropping it without [`shutdown`](BrokerHandle::shutdown) cancels the
/// broker's tasks but does not wait for them or flush.
pub struct BrokerHandle {
    local_addr: SocketAddr,
    state: Arc<BrokerState>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
    maintenance: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn open_storage(config: &BrokerConfig) -> Result<Arc<dyn LogStorage>> {
    match config.storage {
        StorageKind::Memory => Ok(Arc::new(MemoryStorage::new())),
        StorageKind::Disk => {
            let Some(dir) = &config.data_dir else {
                return Err(BrokerError::invalid_config(
                    "log.dirs",
                    "",
                    "the disk log needs a data directory (or choose the in-memory storage)",
                ));
            };
            Ok(Arc::new(DiskStorage::open(dir, DiskOptions::default())?))
        }
    }
}

impl Broker {
    /// Opens storage and metadata, binds `config.listen` and starts serving. Must be called
    /// inside a tokio runtime.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle> {
        Self::start_with(config, HandlerRegistry::standard()).await
    }

    /// Like [`start`](Self::start) with a custom handler registry (tests, extra APIs).
    pub async fn start_with(config: BrokerConfig, apis: HandlerRegistry) -> Result<BrokerHandle> {
        check_config(&config)?;
        // Listener settings and certificates are checked before recovery; binding waits for it.
        let listeners = crate::listener::bind::prepare(&config)?;
        let meta_dir = config.data_dir.as_ref().map(|d| d.join("meta"));
        let blocking_config = config.clone();
        let Recovered {
            topics,
            producer_ids,
            groups,
            txn,
            dynamic,
            group_configs,
            security,
        } = tokio::task::spawn_blocking(move || recover(&blocking_config, meta_dir.as_deref()))
            .await
            .map_err(|e| BrokerError::Runtime(format!("opening storage and offsets: {e}")))??;

        // Bind only now that storage is recovered and the offsets replayed: a port that
        // accepts connections is a broker that can serve them (a client that connected during
        // a long recovery would otherwise time out, or see partitions missing).
        let bound = crate::listener::bind::bind(listeners, &config).await?;
        let local_addr = bound[0].local_addr;
        let advertised = Advertised::clone(&bound[0].info.advertised);

        let shutdown = CancellationToken::new();
        let fetch_sessions =
            FetchSessionCache::new(config.max_incremental_fetch_session_cache_slots);
        // Dynamic `log.cleaner.*` changes persisted by an earlier run stay in force.
        let cleaner_config = dynamic.layers().cleaner_config(&config.cleaner);
        let state = Arc::new(BrokerState {
            config,
            fetch_sessions,
            advertised,
            topics,
            producer_ids,
            groups,
            cleaner: crate::cleaner::LogCleaner::new(cleaner_config),
            request_metrics: Default::default(),
            metrics_addr: Default::default(),
            txn,
            group_configs,
            dynamic,
            shutdown: shutdown.clone(),
            security,
            shutdown_hooks: Default::default(),
        });
        ticker::spawn(&state.groups, shutdown.clone());
        crate::cleaner::manager::install(&state)?;
        if let Some(addr) = state.config.metrics_listen {
            let bound = crate::metrics::serve(state.clone(), addr, shutdown.clone()).await?;
            let _ = state.metrics_addr.set(bound);
            tracing::info!(address = %bound, "metrics endpoint listening");
        }
        crate::txn::start(&state).await?;
        let routes = Arc::new(crate::server::connection::Routes::new(apis));
        let server = tokio::spawn(crate::server::run_all(
            bound,
            state.clone(),
            routes,
            shutdown.clone(),
        ));
        let maintenance = tokio::spawn(maintenance_loop(state.clone(), shutdown.clone()));
        tracing::info!(
            address = %local_addr,
            advertised = %format!("{}:{}", state.advertised.host, state.advertised.port),
            topics = state.topics.list().len(),
            "broker started"
        );
        Ok(BrokerHandle {
            local_addr,
            state,
            shutdown,
            server: Some(server),
            maintenance: Some(maintenance),
        })
    }
}

/// Validates what a typo could break, before anything touches the disk.
fn check_config(config: &BrokerConfig) -> Result<()> {
    config.default_log_config()?;
    if config.num_partitions < 1 {
        return Err(BrokerError::invalid_config(
            "num.partitions",
            config.num_partitions.to_string(),
            "must be at least 1",
        ));
    }
    Ok(())
}

/// What the broker recovers from its data directory before it binds: the partition logs, the
/// metadata stores, the committed offsets and the transaction log.
struct Recovered {
    topics: TopicRegistry,
    producer_ids: ProducerIdAllocator,
    groups: Arc<GroupCoordinator>,
    txn: Arc<crate::txn::TransactionCoordinator>,
    dynamic: DynamicBrokerConfig,
    group_configs: GroupConfigStore,
    security: crate::security::Security,
}

/// Opens storage (recovering each partition's log) and every metadata store under `meta_dir`,
/// and replays the committed offsets from `<meta dir>/consumer_offsets/`. Blocking: file I/O
/// from start to end, run on a blocking thread.
fn recover(config: &BrokerConfig, meta_dir: Option<&Path>) -> Result<Recovered> {
    let storage = open_storage(config)?;
    let dynamic = DynamicBrokerConfig::open(meta_dir.map(|d| d.join("broker_configs.json")))?;
    let topics = TopicRegistry::open(
        storage,
        dynamic.layers().log_defaults(&config.log_defaults),
        meta_dir.map(|d| d.join("topics.json")),
    )?;
    let producer_ids = ProducerIdAllocator::open(meta_dir.map(|d| d.join("producer_ids.json")))?;
    for p in topics.all_partitions() {
        if let Some(id) = p.max_producer_id() {
            producer_ids.observe(id);
        }
    }
    let group_config = config.group.clone();
    group_config.check()?;
    let groups = match meta_dir {
        Some(d) => GroupCoordinator::open(
            group_config,
            &d.join("consumer_offsets"),
            crate::time::now_ms(),
        )?,
        None => GroupCoordinator::in_memory(group_config),
    };
    let txn = crate::txn::open(config, meta_dir, &producer_ids)?;
    let group_configs = GroupConfigStore::open(meta_dir.map(|d| d.join("group_configs.json")))?;
    let security = crate::security::Security::open(config, meta_dir)?;
    Ok(Recovered {
        topics,
        producer_ids,
        groups: Arc::new(groups),
        txn,
        dynamic,
        group_configs,
        security,
    })
}

/// Every `log.retention.check.interval.ms`: retention (`retention.ms`, `retention.bytes`),
/// rolling idle segments past `segment.ms`, and `flush.ms` for partitions that stopped
/// receiving appends — all done by [`PartitionLog::enforce_retention`](crate::PartitionLog).
async fn maintenance_loop(state: Arc<BrokerState>, shutdown: CancellationToken) {
    let every = Duration::from_millis(state.config.log_retention_check_interval_ms.max(1));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let st = state.clone();
        let work = tokio::task::spawn_blocking(move || {
            let now_ms = crate::time::now_ms();
            let expiration_ms = st.dynamic.producer_id_expiration_ms(&st.config);
            for p in st.topics.all_partitions() {
                match p.log().enforce_retention(now_ms) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        partition = %p.tp,
                        segments = n,
                        log_start_offset = p.log().log_start_offset(),
                        "retention deleted segments"
                    ),
                    Err(e) => tracing::warn!(partition = %p.tp, error = %e, "retention failed"),
                }
                if let Err(e) = p.snapshot_producers() {
                    tracing::warn!(partition = %p.tp, error = %e, "producer state snapshot failed");
                }
                let expired = p.expire_producers(now_ms, expiration_ms);
                if expired > 0 {
                    tracing::debug!(partition = %p.tp, producers = expired, "expired idle producer state");
                }
            }
        });
        if let Err(e) = work.await {
            tracing::warn!(error = %e, "log maintenance task failed");
        }
    }
}

impl BrokerHandle {
    /// The address the broker is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` for clients' `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!(
            "{}:{}",
            self.state.advertised.host, self.state.advertised.port
        )
    }

    /// The broker's shared state (topics, partitions, config).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Resolves when the broker has been asked to stop.
    pub async fn cancelled(&self) {
        self.shutdown.cancelled().await
    }

    /// Stops the broker within `shutdown.timeout.ms`: stop accepting; answer what is parked
    /// (long-poll Fetches return what they have, JoinGroup/SyncGroup get NOT_COORDINATOR); let
    /// every connection finish its in-flight request, closing those still busy when half the
    /// bound is up; stop maintenance; then flush every partition log and write the
    /// clean-shutdown markers.
    pub async fn shutdown(mut self) -> Result<()> {
        let bound = Duration::from_millis(self.state.config.shutdown_timeout_ms.max(1));
        // Half the bound for requests in flight, half for closing connections, flushing and
        // writing the markers (the flush of a busy broker's page cache can take a while).
        let drain_until = tokio::time::Instant::now() + bound / 2;
        self.shutdown.cancel();
        let parked = self.state.groups.shutdown();
        tracing::debug!(parked, "answered parked group requests");
        if let Some(server) = self.server.take() {
            stop_task("server", server, drain_until).await?;
        }
        if let Some(m) = self.maintenance.take() {
            stop_task("maintenance", m, drain_until).await?;
        }
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || close_logs(&state))
            .await
            .map_err(|e| BrokerError::Runtime(format!("flush on shutdown: {e}")))??;
        tracing::info!(address = %self.local_addr, "broker stopped");
        Ok(())
    }
}

/// Waits for `task` until `deadline`, then aborts it (dropping the server task aborts every
/// connection it still holds).
async fn stop_task(
    name: &str,
    mut task: JoinHandle<()>,
    deadline: tokio::time::Instant,
) -> Result<()> {
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(joined) => joined.map_err(|e| BrokerError::Runtime(format!("{name} task: {e}"))),
        Err(_) => {
            tracing::warn!(
                task = name,
                "still busy at the shutdown deadline; stopping it"
            );
            task.abort();
            // An aborted task ends at its next await point; a panic is still worth reporting.
            match task.await {
                Err(e) if e.is_panic() => Err(BrokerError::Runtime(format!("{name} task: {e}"))),
                _ => Ok(()),
            }
        }
    }
}

/// Runs the shutdown hooks, flushes every partition and closes the storage (which writes the
/// clean-shutdown markers). Every step runs even if an earlier one failed; the first error is
/// returned.
fn close_logs(state: &BrokerState) -> Result<()> {
    let mut first_err = None;
    for hook in state.take_shutdown_hooks() {
        if let Err(e) = hook() {
            tracing::warn!(error = %e, "shutdown hook failed");
            first_err.get_or_insert(e);
        }
    }
    for p in state.topics.all_partitions() {
        if let Err(e) = p.flush() {
            tracing::warn!(partition = %p.tp, error = %e, "flush on shutdown failed");
            first_err.get_or_insert(e);
        }
    }
    if let Err(e) = state.topics.close_storage() {
        tracing::warn!(error = %e, "closing storage failed");
        first_err.get_or_insert(e);
    }
    first_err.map_or(Ok(()), Err)
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

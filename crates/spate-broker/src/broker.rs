//! Starting and stopping a broker: open storage and metadata, bind the listener, run the
//! acceptor and the log maintenance task (retention, time-based flushes), and shut all of it
//! down cleanly — stop accepting, let in-flight requests finish, flush every log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, StorageKind};
use crate::dynamic_config::DynamicBrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group::group_configs::GroupConfigStore;
use crate::group::{ticker, GroupCoordinator};
use crate::handlers::HandlerRegistry;
use crate::producer_state::ProducerIdAllocator;
use crate::state::{Advertised, BrokerState};
use crate::storage::memory::MemoryStorage;
use crate::storage::{DiskOptions, DiskStorage, LogStorage};
use crate::topics::TopicRegistry;

/// Entry point: `Broker::start(config).await`.
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
        // Validate what a typo could break before anything touches the disk.
        config.default_log_config()?;
        if config.num_partitions < 1 {
            return Err(BrokerError::invalid_config(
                "num.partitions",
                config.num_partitions.to_string(),
                "must be at least 1",
            ));
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| BrokerError::Listen {
                    addr: config.listen.to_string(),
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| BrokerError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
        let advertised = Advertised {
            node_id: config.node_id,
            host: config
                .advertised_host
                .clone()
                .unwrap_or_else(|| advertised_ip(local_addr)),
            port: config.advertised_port.unwrap_or(local_addr.port()) as i32,
        };

        let meta_dir = config.data_dir.as_ref().map(|d| d.join("meta"));
        let blocking_config = config.clone();
        let (topics, producer_ids, groups, txn, dynamic, group_configs) =
            tokio::task::spawn_blocking(move || -> Result<_> {
                let storage = open_storage(&blocking_config)?;
                let dynamic = DynamicBrokerConfig::open(
                    meta_dir.as_ref().map(|d| d.join("broker_configs.json")),
                )?;
                let topics = TopicRegistry::open(
                    storage,
                    dynamic.layers().log_defaults(&blocking_config.log_defaults),
                    meta_dir.as_ref().map(|d| d.join("topics.json")),
                )?;
                let producer_ids = ProducerIdAllocator::open(
                    meta_dir.as_ref().map(|d| d.join("producer_ids.json")),
                )?;
                for p in topics.all_partitions() {
                    if let Some(id) = p.max_producer_id() {
                        producer_ids.observe(id);
                    }
                }
                // Committed offsets are replayed from `<meta dir>/consumer_offsets/`.
                let group_config = blocking_config.group.clone();
                let groups = match &meta_dir {
                    Some(d) => GroupCoordinator::open(
                        group_config,
                        &d.join("consumer_offsets"),
                        crate::time::now_ms(),
                    )?,
                    None => GroupCoordinator::in_memory(group_config),
                };
                let txn = crate::txn::open(&blocking_config, meta_dir.as_deref(), &producer_ids)?;
                let group_configs = GroupConfigStore::open(
                    meta_dir.as_ref().map(|d| d.join("group_configs.json")),
                )?;
                Ok((
                    topics,
                    producer_ids,
                    Arc::new(groups),
                    txn,
                    dynamic,
                    group_configs,
                ))
            })
            .await
            .map_err(|e| BrokerError::Runtime(format!("opening storage and offsets: {e}")))??;

        let shutdown = CancellationToken::new();
        let cleaner_config = config.cleaner.clone();
        let state = Arc::new(BrokerState {
            config,
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
        let server = tokio::spawn(crate::server::run(
            listener,
            state.clone(),
            apis,
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

/// The IP to advertise for a bound address: the address itself, or loopback when bound to the
/// unspecified address (0.0.0.0 is not connectable).
fn advertised_ip(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    }
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
    /// every connection finish its in-flight request, closing those still busy when three
    /// quarters of the bound are up; stop maintenance; then flush every partition log and
    /// write the clean-shutdown markers.
    pub async fn shutdown(mut self) -> Result<()> {
        let bound = Duration::from_millis(self.state.config.shutdown_timeout_ms.max(1));
        let drain_until = tokio::time::Instant::now() + bound - bound / 4;
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

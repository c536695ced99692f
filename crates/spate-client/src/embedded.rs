//! The embedded broker as a benchmark target: started in this process on `127.0.0.1:0` (its own
//! thread and runtime, so it competes for the same 2 cores as the clients, as it would in a
//! one-machine pipeline), with segment files in a temp dir or given dir, or in-memory storage.
//! Stopped, and the temp dir removed, on drop.

use std::net::SocketAddr;
use std::path::PathBuf;

use spate_broker::{BackgroundBroker, Broker, BrokerConfig, StorageKind};
use tempfile::TempDir;

use crate::error::{ClientError, Result};

/// Where the embedded broker keeps partition logs.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Segment files under the given dir, or a fresh temp dir deleted on drop.
    Disk(Option<PathBuf>),
    /// In-memory partition logs, lost when the broker stops (no disk I/O in the measurement).
    Memory,
}

/// spate's broker running on its own thread in this process, listening on `127.0.0.1:<port>`;
/// stopped (and its temp dir, if any, removed) when dropped.
pub struct EmbeddedBroker {
    broker: Option<BackgroundBroker>,
    description: String,
    _temp_dir: Option<TempDir>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap())
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBroker {
    /// Starts a broker on an ephemeral loopback port with `storage`, creating a temp dir for
    /// `Storage::Disk(None)`; fails if the temp dir or the broker's listener cannot be created.
    pub fn start(storage: Storage) -> Result<Self> {
        Self::start_with(storage, &[])
    }

    /// [`Self::start`] with broker settings by Kafka's names (e.g. `log.cleaner.enable`).
    pub fn start_with(storage: Storage, settings: &[(&str, String)]) -> Result<Self> {
        let mut config = BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..BrokerConfig::default()
        };
        for (key, value) in settings {
            config
                .set(key, value)
                .map_err(|source| ClientError::BrokerSetting {
                    key: (*key).to_owned(),
                    value: value.clone(),
                    source: Box::new(source),
                })?;
        }
        let mut temp_dir = None;
        let description = match storage {
            Storage::Memory => {
                config.storage = StorageKind::Memory;
                config.data_dir = None;
                "embedded broker, in-memory storage".to_owned()
            }
            Storage::Disk(dir) => {
                let dir = match dir {
                    Some(dir) => dir,
                    None => {
                        let t = tempfile::Builder::new()
                            .prefix("spate-bench-broker-")
                            .tempdir()
                            .map_err(ClientError::BrokerDataDir)?;
                        let path = t.path().to_path_buf();
                        temp_dir = Some(t);
                        path
                    }
                };
                config.storage = StorageKind::Disk;
                config.data_dir = Some(dir.clone());
                format!("embedded broker, disk storage in {}", dir.display())
            }
        };
        let broker =
            Broker::start_blocking(config).map_err(|e| ClientError::StartBroker(Box::new(e)))?;
        Ok(EmbeddedBroker {
            broker: Some(broker),
            description,
            _temp_dir: temp_dir,
        })
    }

    /// The broker's `host:port` for `bootstrap.servers` (empty once it has been stopped).
    pub fn bootstrap(&self) -> String {
        self.broker
            .as_ref()
            .map(BackgroundBroker::bootstrap_servers)
            .unwrap_or_default()
    }

    /// A one-line description of the target for reports, e.g. "embedded broker, in-memory
    /// storage".
    pub fn description(&self) -> String {
        self.description.clone()
    }

    /// The running broker's state (topics, log cleaner), for benchmarks that measure inside it.
    pub fn state(&self) -> Option<&std::sync::Arc<spate_broker::state::BrokerState>> {
        self.broker.as_ref().map(BackgroundBroker::state)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // Stop before the temp dir goes, so the broker never writes into a deleted directory.
        if let Some(broker) = self.broker.take() {
            if let Err(e) = broker.shutdown() {
                tracing::warn!("embedded broker did not stop cleanly: {e}");
            }
        }
    }
}

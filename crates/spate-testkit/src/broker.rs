//! [`TestBroker`]: an embedded broker for tests, on its own thread and runtime so that plain
//! `#[test]` functions (and rdkafka's blocking clients) can use it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use spate_broker::topics::NewTopic;
use spate_broker::{BackgroundBroker, Broker, BrokerConfig, BrokerState, StorageKind};
use tempfile::TempDir;

/// A broker listening on `127.0.0.1:<free port>` with a temporary data directory that lives as
/// long as the `TestBroker`.
pub struct TestBroker {
    broker: Option<BackgroundBroker>,
    config: BrokerConfig,
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("running", &self.broker.is_some())
            .field("listen", &self.config.listen)
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl TestBroker {
    /// A broker with default settings.
    pub fn start() -> Self {
        Self::start_with(BrokerConfig::default())
    }

    /// A broker whose partition logs live in memory (faster; nothing survives `restart`).
    pub fn in_memory() -> Self {
        Self::start_with(BrokerConfig::default().storage(StorageKind::Memory))
    }

    /// A broker with `config`, except that it listens on `127.0.0.1:0` and, unless `config`
    /// names a data directory, uses a fresh temporary one.
    ///
    /// Groups rebalance without Kafka's 3 s initial delay (`group.initial.rebalance.delay.ms`
    /// 0, as Kafka's development `server.properties`) unless `config` sets another value.
    pub fn start_with(mut config: BrokerConfig) -> Self {
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let kafka_default = spate_broker::group::GroupConfig::default().initial_rebalance_delay_ms;
        if config.group.initial_rebalance_delay_ms == kafka_default {
            config.group.initial_rebalance_delay_ms = 0;
        }
        let dir = if config.data_dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("spate-test-broker-")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a temp dir for the test broker: {e}"));
            config.data_dir = Some(dir.path().to_path_buf());
            Some(dir)
        } else {
            None
        };
        let broker = Broker::start_blocking(config.clone())
            .unwrap_or_else(|e| panic!("test broker failed to start: {e}"));
        // Restarts reuse the port so that clients created before a restart reconnect.
        config.listen = broker.local_addr();
        TestBroker {
            broker: Some(broker),
            config,
            _dir: dir,
        }
    }

    fn running(&self) -> &BackgroundBroker {
        match &self.broker {
            Some(b) => b,
            None => panic!("test broker is not running"),
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.running().bootstrap_servers()
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.running().local_addr()
    }

    /// The broker's state (topics, partitions), for assertions.
    pub fn state(&self) -> &Arc<BrokerState> {
        self.running().state()
    }

    /// The configuration the broker runs with (its real listen address included).
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        match &self.config.data_dir {
            Some(d) => d,
            None => panic!("test broker has no data dir"),
        }
    }

    /// Creates `topic` with `partitions` partitions directly in the broker (no client needed).
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.create_topic_with(topic, partitions, &[]);
    }

    /// Creates `topic` with `partitions` partitions and the topic configs `configs`
    /// (`cleanup.policy=compact`, …) directly in the broker.
    pub fn create_topic_with(&self, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
        let new = NewTopic {
            name: topic.to_string(),
            partitions,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.state()
            .topics
            .create(new, false)
            .unwrap_or_else(|e| panic!("cannot create topic {topic}: {e}"));
    }

    /// Stops the broker cleanly and starts it again on the same data directory (and, if it is
    /// still free, the same port).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the broker cleanly but keeps its data directory and address, so that
    /// [`TestBroker::start_again`] brings the same broker back: an outage as clients see it.
    pub fn stop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown()
                .unwrap_or_else(|e| panic!("test broker failed to stop: {e}"));
        }
    }

    /// Starts a stopped broker on its data directory, on the same port when it is still free
    /// (clients created before the outage then reconnect on their own).
    pub fn start_again(&mut self) {
        assert!(self.broker.is_none(), "test broker is already running");
        let broker = match Broker::start_blocking(self.config.clone()) {
            Ok(b) => b,
            Err(_) => {
                let mut any_port = self.config.clone();
                any_port.listen = SocketAddr::from(([127, 0, 0, 1], 0));
                Broker::start_blocking(any_port)
                    .unwrap_or_else(|e| panic!("test broker failed to restart: {e}"))
            }
        };
        self.config.listen = broker.local_addr();
        self.broker = Some(broker);
    }

    /// Stops the broker cleanly (also done on drop).
    pub fn shutdown(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown()
                .unwrap_or_else(|e| panic!("test broker failed to stop: {e}"));
        }
    }
}

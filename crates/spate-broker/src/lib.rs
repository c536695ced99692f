//! spate-broker: an embedded, Kafka-compatible broker.
//!
//! It speaks the Kafka wire protocol so that real clients (librdkafka, the Java client, and
//! independent implementations) can produce to and fetch from it over a socket, and keeps each
//! partition in a segmented on-disk log. The streaming engine never depends on this crate; it
//! exists so that a whole pipeline, and every test, runs on one machine with no JVM.
//!
//! # Usage
//!
//! ```no_run
//! # async fn run() -> spate_broker::Result<()> {
//! use spate_broker::{Broker, BrokerConfig};
//!
//! let mut config = BrokerConfig::default()
//!     .listen("127.0.0.1:0".parse().expect("address"))
//!     .data_dir("data/");
//! config.set("num.partitions", "4")?; // Kafka's broker setting names
//! let broker = Broker::start(config).await?;
//! println!("bootstrap.servers={}", broker.bootstrap_servers());
//! // ... clients produce and consume ...
//! broker.shutdown().await?; // stop accepting, finish in-flight requests, flush logs
//! # Ok(())
//! # }
//! ```
//!
//! Non-async callers use [`Broker::start_blocking`], which runs the broker on its own thread.
//!
//! # Layout
//!
//! - [`broker`] / [`background`]: start and stop a broker ([`Broker::start`]); [`signals`]:
//!   stop it on SIGTERM/Ctrl-C.
//! - [`server`]: connections, framing, routing by API key.
//! - [`handlers`]: the registry of supported APIs and one module per API.
//! - [`group`]: the group coordinator and its APIs.
//! - [`topics`]: the topic registry, names and topic configs; [`partition`]: a live partition.
//! - [`producer_state`]: idempotent producer ids and sequence checks.
//! - [`group`]: the group coordinator; [`txn`]: the transaction coordinator.
//! - [`storage`]: the partition log trait and its backends; [`record_batch`]: batch headers.
//! - [`acl`]: ACLs and the authorizer checked on every request.
//! - [`validate`]: record-level checks of produced batches and the bounded decompressor.
//! - [`cleaner`]: log compaction (`cleanup.policy=compact`).

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod acl;
pub mod authorized_operations;
pub mod background;
pub mod broker;
pub mod cleaner;
pub mod config;
pub mod dynamic_config;
pub mod error;
pub mod fetch_session;
pub mod group;
pub mod handlers;
pub mod listener;
pub mod metrics;
pub mod partition;
pub mod persist;
pub mod produce_validation;
pub mod producer_state;
pub mod record_batch;
pub mod record_scan;
pub mod security;
pub mod server;
pub mod signals;
pub mod state;
pub mod storage;
pub(crate) mod strings;
pub mod time;
pub mod topics;
pub mod txn;
pub mod validate;

pub use background::BackgroundBroker;
pub use broker::{Broker, BrokerHandle};
pub use config::{BrokerConfig, StorageKind};
pub use error::{BrokerError, Result};
pub use handlers::{HandlerRegistry, RequestContext};
pub use state::BrokerState;
pub use storage::{LogConfig, LogStorage, PartitionLog, TopicPartition};

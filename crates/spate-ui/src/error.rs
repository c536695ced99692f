//! [`UiError`]: why the web UI could not start.

use std::net::SocketAddr;

/// Why the UI server could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The listen address is taken or not ours (Spark would try the next port; spate reports it,
    /// so the printed address is always the real one — use port 0 for any free port).
    #[error("cannot bind the UI to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Bound beyond loopback without credentials: anyone who can reach the address could read
    /// the job's topics, offsets and configuration.
    #[error(
        "the UI on {addr} would be reachable from other machines without authentication: \
         give it a token or a user and password (UiConfig::auth), or bind it to 127.0.0.1"
    )]
    Unauthenticated {
        /// The non-loopback address asked for.
        addr: SocketAddr,
    },
    /// The UI's thread or runtime could not be created.
    #[error("cannot start the UI server thread: {0}")]
    Runtime(std::io::Error),
    /// The Kafka client used to read latest offsets (for lag) could not be created.
    #[error("cannot create the Kafka client for lag metrics: {0}")]
    KafkaClient(Box<spate_kafka::SpateKafkaError>),
}

/// Result of the UI's fallible calls.
pub type Result<T> = std::result::Result<T, UiError>;

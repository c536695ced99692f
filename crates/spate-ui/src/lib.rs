//! The web UI of a running job: Spark's Streaming tab, its REST API, and Prometheus metrics.
//! It depends on the engine and on spate-kafka (for the direct stream's offset ranges and
//! partition lag), and on nothing of the command line, so a job embeds it alone.
//!
//! [`UiServer::start`] registers a listener on a [`StreamingContext`] and serves, from the job's
//! own process:
//!
//! * `/` — summary, timelines and histograms of input rate, scheduling delay, processing time
//!   and total delay, Kafka partitions, receivers, input faults, active and completed batches (the page
//!   refreshes itself every two seconds); `/batch?id=<batch time ms>` — one batch's offset
//!   ranges and output operations. Everything the pages use is embedded in the binary: no
//!   network resource outside the job is loaded.
//! * `/api/v1/streaming/{statistics, batches[?status=], batches/{time}[/operations],
//!   receivers, inputs, kafka/partitions}` — JSON with Spark's field names ([`api`]), and
//!   `/api/v1/streaming/{ownership, state/restores}` for a job run as several instances: the
//!   partitions this instance owns, its rebalances, state restore progress ([`membership`]); the same under
//!   Spark's prefix `/api/v1/applications/{app id}/streaming/...` (any id; the list is at
//!   `/api/v1/applications`), so Spark scripts work unchanged.
//! * `/metrics` — Prometheus text format ([`prometheus`]).
//!
//! It listens on 127.0.0.1 by default. Bound to any other address it needs credentials
//! ([`UiAuth`]: a bearer token or basic auth) and refuses to start without them.
//!
//! ```no_run
//! use spate_ui::{UiConfig, UiServer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = spate_streaming::StreamingContext::new(spate_streaming::Config::new("job"))?;
//! // ... define streams and outputs ...
//! let ui = UiServer::start(&ctx, UiConfig::default())?; // http://127.0.0.1:4040
//! println!("UI at {}", ui.url());
//! ctx.start()?;
//! ctx.await_termination()?;
//! ui.shutdown();
//! # Ok(()) }
//! ```

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod api;
mod auth;
mod error;
pub mod lag;
pub mod membership;
pub mod prometheus;
mod server;
pub mod store;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use spate_kafka::KafkaParams;
use spate_streaming::StreamingContext;

pub use auth::UiAuth;
pub use error::{Result, UiError};
pub use lag::{KafkaLatestOffsets, LatestOffsets};
pub use store::BatchStore;

/// Spark's default UI port.
pub const DEFAULT_PORT: u16 = 4040;

/// Where the UI listens and what it keeps.
#[derive(Clone)]
pub struct UiConfig {
    /// Listen address; default `127.0.0.1:4040` (local only, as the UI has no authentication).
    /// Port 0 picks a free port: read it back with [`UiServer::local_addr`].
    pub bind: SocketAddr,
    /// Completed batches kept; `None` (default) takes the context's
    /// `spate.streaming.ui.retained.batches` (default 1000, Spark's
    /// `spark.streaming.ui.retainedBatches`).
    pub retained_batches: Option<usize>,
    /// Where Kafka partitions' latest offsets come from, for consumer lag; `None` exposes only
    /// the job's position (the direct stream's batches record their ranges, not the log end).
    pub latest_offsets: Option<Arc<dyn LatestOffsets>>,
    /// Credentials every request must carry; [`UiAuth::None`] (default) is only accepted on a
    /// loopback address.
    pub auth: UiAuth,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            retained_batches: None,
            latest_offsets: None,
            auth: UiAuth::None,
        }
    }
}

impl std::fmt::Debug for UiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiConfig")
            .field("bind", &self.bind)
            .field("retained_batches", &self.retained_batches)
            .field("latest_offsets", &self.latest_offsets.is_some())
            .field("auth", &self.auth)
            .finish()
    }
}

impl UiConfig {
    /// Listens on `addr`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Listens on `port` of the current bind address (0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// Keeps `n` completed batches (overrides the context's setting).
    pub fn retained_batches(mut self, n: usize) -> Self {
        self.retained_batches = Some(n);
        self
    }

    /// Reads latest offsets for lag from the Kafka cluster in `params` (the job's own Kafka
    /// parameters: `bootstrap.servers` and security settings).
    pub fn kafka_lag(self, params: &KafkaParams) -> Result<Self> {
        Ok(self.latest_offsets(Arc::new(KafkaLatestOffsets::new(params)?)))
    }

    /// Asks every request for `auth` (required when [`UiConfig::bind`] is not a loopback
    /// address).
    pub fn auth(mut self, auth: UiAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Reads latest offsets for lag from `source`.
    pub fn latest_offsets(mut self, source: Arc<dyn LatestOffsets>) -> Self {
        self.latest_offsets = Some(source);
        self
    }
}

/// The UI of one streaming context, served until [`UiServer::shutdown`] or drop.
pub struct UiServer {
    thread: server::ServerThread,
    store: Arc<BatchStore>,
}

impl std::fmt::Debug for UiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiServer")
            .field("local_addr", &self.thread.local_addr)
            .finish_non_exhaustive()
    }
}

impl UiServer {
    /// Registers the UI's listener on `ctx` and serves on `config.bind`. Call it before
    /// `ctx.start()` to see every batch; started later, it shows the completed batches the
    /// context retained and everything after.
    ///
    /// Fails with [`UiError::Unauthenticated`] when `config.bind` is not a loopback address and
    /// `config.auth` is [`UiAuth::None`].
    pub fn start(ctx: &StreamingContext, config: UiConfig) -> Result<UiServer> {
        if !config.bind.ip().is_loopback() && !config.auth.is_required() {
            return Err(UiError::Unauthenticated { addr: config.bind });
        }
        let conf = ctx.config();
        let retained = config.retained_batches.unwrap_or(conf.retained_batches);
        let store = Arc::new(BatchStore::new(
            retained,
            ctx.batch_interval().as_millis() as u64,
        ));
        let state = Arc::new(server::AppState {
            app_name: conf.app_name.clone(),
            store: store.clone(),
            metrics: ctx.metrics(),
            latest: config.latest_offsets.clone(),
        });
        let thread = server::ServerThread::spawn(config.bind, state, config.auth.clone())?;
        store.seed(&ctx.metrics().retained_batches());
        ctx.add_streaming_listener(store.clone());
        tracing::info!(url = %format!("http://{}", thread.local_addr), "streaming UI started");
        Ok(UiServer { thread, store })
    }

    /// The address the UI listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.thread.local_addr
    }

    /// `http://<address>/`, ready to print.
    pub fn url(&self) -> String {
        format!("http://{}/", self.thread.local_addr)
    }

    /// The UI's view of the job (also what the REST API serves).
    pub fn store(&self) -> &Arc<BatchStore> {
        &self.store
    }

    /// Stops serving: no new connections, open requests get a moment to finish.
    pub fn shutdown(mut self) {
        self.thread.stop();
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        self.thread.stop();
    }
}

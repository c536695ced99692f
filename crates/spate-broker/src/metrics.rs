//! Broker metrics in the Prometheus text format, served on the optional `metrics_listen` address
//! (`--metrics-listen` / `metrics.listen`): request counts, latencies and bytes on the wire per
//! API, and the log cleaner's totals and per-partition dirty ratios.
//!
//! Request latencies go into a fixed-bucket histogram per API key (lock-free counters), so the
//! request path pays a few atomic adds. The exposition is rendered on each scrape; the HTTP side
//! is the minimum a scraper needs (any `GET` gets the text), with no dependency on a web stack.
//!
//! The same listener answers `GET /cleaner/TOPIC` with the cleaner's state of each partition of
//! TOPIC as JSON ([`crate::cleaner::TopicCleanerReport`]): dirty ratio, clean and dirty bytes,
//! the last cleaning. Kafka has no admin request that carries this (its `kafka-log-dirs.sh` and
//! JMX are where it shows), so `spate topics describe --verbose --metrics-address` reads it here.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{BrokerError, Result};
use crate::state::BrokerState;

/// Upper bounds (seconds) of the request latency buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// API keys go up to ~80; one slot each.
const API_SLOTS: usize = 96;

#[derive(Default)]
struct ApiStats {
    count: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
}

/// What [`RequestMetrics`] counted of one API so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiTotals {
    /// Requests handled.
    pub requests: u64,
    /// Request frames received, size prefix included.
    pub request_bytes: u64,
    /// Response frames sent, size prefix included.
    pub response_bytes: u64,
}

/// Request counters and latency histograms, per API key.
pub struct RequestMetrics {
    apis: Vec<ApiStats>,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics").finish_non_exhaustive()
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            apis: (0..API_SLOTS).map(|_| ApiStats::default()).collect(),
        }
    }
}

impl RequestMetrics {
    /// Records one request of `api_key` that took `elapsed` (`ok = false` when it failed), with
    /// the sizes of its request and response frames (`response_bytes` 0 when none was sent).
    pub fn record(
        &self,
        api_key: i16,
        elapsed: Duration,
        ok: bool,
        request_bytes: usize,
        response_bytes: usize,
    ) {
        let Some(s) = usize::try_from(api_key).ok().and_then(|i| self.apis.get(i)) else {
            return;
        };
        s.count.fetch_add(1, Ordering::Relaxed);
        s.request_bytes
            .fetch_add(request_bytes as u64, Ordering::Relaxed);
        s.response_bytes
            .fetch_add(response_bytes as u64, Ordering::Relaxed);
        if !ok {
            s.errors.fetch_add(1, Ordering::Relaxed);
        }
        s.micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The totals of `api_key` so far (all zero for a key out of range).
    pub fn totals(&self, api_key: i16) -> ApiTotals {
        let Some(s) = usize::try_from(api_key).ok().and_then(|i| self.apis.get(i)) else {
            return ApiTotals::default();
        };
        ApiTotals {
            requests: s.count.load(Ordering::Relaxed),
            request_bytes: s.request_bytes.load(Ordering::Relaxed),
            response_bytes: s.response_bytes.load(Ordering::Relaxed),
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP spate_broker_requests_total Requests handled, by API.\n");
        out.push_str("# TYPE spate_broker_requests_total counter\n");
        for (key, s) in self.used() {
            let _ = writeln!(
                out,
                "spate_broker_requests_total{{api=\"{key}\"}} {}",
                s.count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP spate_broker_request_errors_total Requests that failed, by API.\n");
        out.push_str("# TYPE spate_broker_request_errors_total counter\n");
        for (key, s) in self.used() {
            let _ = writeln!(
                out,
                "spate_broker_request_errors_total{{api=\"{key}\"}} {}",
                s.errors.load(Ordering::Relaxed)
            );
        }
        for (name, help, pick) in [
            (
                "spate_broker_request_bytes_total",
                "Bytes of request frames received, by API.",
                (|s: &ApiStats| &s.request_bytes) as fn(&ApiStats) -> &AtomicU64,
            ),
            (
                "spate_broker_response_bytes_total",
                "Bytes of response frames sent, by API.",
                |s: &ApiStats| &s.response_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (key, s) in self.used() {
                let _ = writeln!(
                    out,
                    "{name}{{api=\"{key}\"}} {}",
                    pick(s).load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP spate_broker_request_seconds Request handling time, by API.\n");
        out.push_str("# TYPE spate_broker_request_seconds histogram\n");
        for (key, s) in self.used() {
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "spate_broker_request_seconds_bucket{{api=\"{key}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "spate_broker_request_seconds_bucket{{api=\"{key}\",le=\"+Inf\"}} {count}"
            );
            let sum = s.micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "spate_broker_request_seconds_sum{{api=\"{key}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "spate_broker_request_seconds_count{{api=\"{key}\"}} {count}"
            );
        }
    }

    fn used(&self) -> impl Iterator<Item = (String, &ApiStats)> {
        self.apis
            .iter()
            .enumerate()
            .filter(|(_, s)| s.count.load(Ordering::Relaxed) > 0)
            .map(|(i, s)| {
                let name = ApiKey::try_from(i as i16)
                    .map(|k| format!("{k:?}"))
                    .unwrap_or_else(|_| i.to_string());
                (name, s)
            })
    }
}

/// The whole exposition: requests, cleaner totals, per-partition cleaner state.
pub fn render(state: &BrokerState) -> String {
    let mut out = String::new();
    state.request_metrics.render(&mut out);
    let t = &state.cleaner.totals;
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        &mut out,
        "spate_log_cleaner_cleanings_total",
        "Finished log cleanings.",
        t.cleanings.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "spate_log_cleaner_bytes_read_total",
        "Bytes the cleaner read from segments.",
        t.bytes_read.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "spate_log_cleaner_bytes_written_total",
        "Bytes of cleaned segments written.",
        t.bytes_written.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "spate_log_cleaner_records_read_total",
        "Records the cleaner read.",
        t.records_read.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "spate_log_cleaner_records_kept_total",
        "Records kept by cleanings.",
        t.records_kept.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "spate_log_cleaner_failures_total",
        "Cleanings that failed.",
        t.failures.load(Ordering::Relaxed),
    );
    let secs = t.cleaning_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "# HELP spate_log_cleaner_seconds_total Time spent cleaning.\n# TYPE spate_log_cleaner_seconds_total counter\nspate_log_cleaner_seconds_total {secs}"
    );
    out.push_str("# HELP spate_log_cleaner_dirty_ratio Dirty bytes / cleanable bytes of a compacted partition.\n");
    out.push_str("# TYPE spate_log_cleaner_dirty_ratio gauge\n");
    let now = crate::time::now_ms();
    for p in state.topics.all_partitions() {
        if !p.config().compact() {
            continue;
        }
        if let Ok(Some(s)) = state.cleaner.status(&p, now) {
            let _ = writeln!(
                out,
                "spate_log_cleaner_dirty_ratio{{topic=\"{}\",partition=\"{}\"}} {}",
                p.tp.topic, p.tp.partition, s.dirty_ratio
            );
        }
    }
    out
}

/// The path of an HTTP request's first line (`GET /path HTTP/1.1`).
fn request_path(request: &[u8]) -> Option<&str> {
    let line = request.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    let _method = parts.next()?;
    parts.next()
}

/// Status, content type and body for `path`: the cleaner's JSON report of a topic under
/// `/cleaner/TOPIC` (404 with the reason for an unknown topic), the metrics everywhere else.
fn answer(state: &BrokerState, path: Option<&str>) -> (u16, &'static str, String) {
    let Some(topic) = path.and_then(|p| p.strip_prefix("/cleaner/")) else {
        return (200, "text/plain; version=0.0.4", render(state));
    };
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    match crate::cleaner::topic_report(state, topic) {
        Ok(report) => (
            200,
            "application/json",
            serde_json::to_string(&report).unwrap_or_default(),
        ),
        Err(e) => (
            404,
            "application/json",
            json(&serde_json::json!({ "error": e.to_string() })),
        ),
    }
}

/// Serves [`render`] over HTTP on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    state: Arc<BrokerState>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BrokerError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BrokerError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = listener.accept() => c,
            };
            let Ok((mut socket, _)) = conn else { continue };
            let st = state.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .unwrap_or(0);
                let path = request_path(&buf[..n]).map(str::to_string);
                let (status, content_type, body) =
                    tokio::task::spawn_blocking(move || answer(&st, path.as_deref()))
                        .await
                        .unwrap_or((500, "text/plain", String::new()));
                let head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    if status == 200 { "OK" } else { "Not Found" },
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(bound)
}

//! The HTTP side: routes, handlers, and the small tokio runtime the server runs on.
//!
//! The server has its own current-thread runtime on its own thread, so a job that has no
//! runtime (the engine uses threads) can serve a UI, and a busy job cannot starve it. Requests
//! only copy the store under a short lock; the one blocking call (latest offsets for lag) runs
//! on the runtime's blocking pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use spate_streaming::{StreamingMetrics, Time};
use tokio::sync::watch;

use crate::api;
use crate::auth::{self, UiAuth};
use crate::error::{Result, UiError};
use crate::lag::{self, LatestOffsets};
use crate::membership;
use crate::prometheus;
use crate::store::{BatchStatus, BatchStore};

/// How long a shutdown waits for open requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct AppState {
    pub(crate) app_name: String,
    pub(crate) store: Arc<BatchStore>,
    pub(crate) metrics: Arc<StreamingMetrics>,
    pub(crate) latest: Option<Arc<dyn LatestOffsets>>,
}

type Shared = Arc<AppState>;

fn router(state: Shared, auth: UiAuth) -> Router {
    // Served at spate's short prefix and at Spark's own (any application id), so scripts
    // written against Spark's REST API work unchanged.
    let streaming = Router::new()
        .route("/statistics", get(statistics))
        .route("/batches", get(batches))
        .route("/batches/{batch_time}", get(batch))
        .route("/batches/{batch_time}/operations", get(operations))
        .route("/receivers", get(receivers))
        .route("/inputs", get(inputs))
        .route("/kafka/partitions", get(partitions))
        .route("/ownership", get(ownership))
        .route("/state/restores", get(restores));
    let app = Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/batch",
            get(|| asset("text/html; charset=utf-8", BATCH_HTML)),
        )
        .route(
            "/static/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/static/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .nest("/api/v1/streaming", streaming.clone())
        .nest("/api/v1/applications/{app_id}/streaming", streaming)
        .route("/api/v1/applications", get(applications))
        .route("/metrics", get(metrics))
        .fallback(|| async { not_found("no such page") })
        .with_state(state);
    if auth.is_required() {
        // Layered last, so it wraps every route and the fallback alike.
        app.layer(middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        ))
    } else {
        app
    }
}

/// Spark's application list: this process runs one, named after the job.
async fn applications(State(s): State<Shared>) -> Response {
    let snap = s.store.snapshot();
    Json(serde_json::json!([{
        "id": s.app_name,
        "name": s.app_name,
        "attempts": [{
            "startTime": api::format_time(snap.start_time.as_millis()),
            "completed": snap.stop_time.is_some(),
        }],
    }]))
    .into_response()
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const BATCH_HTML: &str = include_str!("assets/batch.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": what })),
    )
        .into_response()
}

fn bad_request(what: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": what })),
    )
        .into_response()
}

async fn statistics(State(s): State<Shared>) -> Response {
    Json(api::statistics(
        &s.app_name,
        &s.store.snapshot(),
        &s.metrics,
    ))
    .into_response()
}

#[derive(Deserialize)]
struct BatchesQuery {
    status: Option<String>,
}

async fn batches(State(s): State<Shared>, Query(q): Query<BatchesQuery>) -> Response {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(v) => match BatchStatus::parse(v) {
            Some(st) => Some(st),
            None => {
                return bad_request(format!(
                    "unknown status {v:?}: expected QUEUED, PROCESSING or COMPLETED"
                ))
            }
        },
    };
    Json(api::batches(&s.store.snapshot(), status)).into_response()
}

/// Why a batch lookup found nothing: a malformed time (400) or an unknown batch (404).
enum Lookup {
    BadTime(String),
    NotFound,
}

impl IntoResponse for Lookup {
    fn into_response(self) -> Response {
        match self {
            Lookup::BadTime(raw) => bad_request(format!("batch time {raw:?} is not milliseconds")),
            Lookup::NotFound => not_found("no such batch (not retained, or not planned yet)"),
        }
    }
}

fn find_batch(s: &AppState, raw: &str) -> std::result::Result<api::BatchDetail, Lookup> {
    let t: u64 = raw.parse().map_err(|_| Lookup::BadTime(raw.to_owned()))?;
    let entry = s.store.batch(Time(t)).ok_or(Lookup::NotFound)?;
    Ok(api::batch_detail(&entry, s.store.batch_interval_ms()))
}

/// The `{batch_time}` of a batch route (the Spark-prefixed routes also carry `{app_id}`).
fn batch_time(params: &HashMap<String, String>) -> &str {
    params.get("batch_time").map(String::as_str).unwrap_or("")
}

async fn batch(State(s): State<Shared>, Path(p): Path<HashMap<String, String>>) -> Response {
    match find_batch(&s, batch_time(&p)) {
        Ok(d) => Json(d).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn operations(State(s): State<Shared>, Path(p): Path<HashMap<String, String>>) -> Response {
    match find_batch(&s, batch_time(&p)) {
        Ok(d) => Json(d.output_op_ids).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn receivers(State(s): State<Shared>) -> Response {
    Json(api::receivers(&s.store.snapshot())).into_response()
}

async fn inputs(State(s): State<Shared>) -> Response {
    Json(api::inputs(&s.store.snapshot())).into_response()
}

async fn ownership(State(s): State<Shared>) -> Response {
    Json(membership::ownership(&s.metrics)).into_response()
}

async fn restores(State(s): State<Shared>) -> Response {
    Json(membership::restores(&s.metrics)).into_response()
}

/// Positions (and lag, with a source) of every Kafka partition; the source is a blocking
/// network call, so it runs on the blocking pool.
async fn positions(s: &Shared) -> (crate::store::Snapshot, Vec<lag::PartitionPosition>) {
    let snap = s.store.snapshot();
    let mut pos = lag::positions(&snap);
    if let (Some(source), false) = (s.latest.clone(), pos.is_empty()) {
        let filled = tokio::task::spawn_blocking(move || {
            lag::fill_latest(&mut pos, source.as_ref());
            pos
        })
        .await;
        match filled {
            Ok(p) => pos = p,
            Err(e) => {
                tracing::warn!(error = %e, "reading latest offsets failed");
                pos = lag::positions(&snap);
            }
        }
    }
    (snap, pos)
}

async fn partitions(State(s): State<Shared>) -> Response {
    let (_, pos) = positions(&s).await;
    let docs: Vec<serde_json::Value> = pos
        .iter()
        .map(|p| {
            serde_json::json!({
                "inputId": p.input_id,
                "topic": p.partition.topic,
                "partition": p.partition.partition,
                "untilOffset": p.until_offset,
                "latestOffset": p.latest_offset,
                "lag": p.lag(),
            })
        })
        .collect();
    Json(docs).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    let (snap, pos) = positions(&s).await;
    let stats = api::statistics(&s.app_name, &snap, &s.metrics);
    let body = prometheus::render(&s.app_name, &s.metrics, &stats, &snap, &pos);
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], body).into_response()
}

/// A running HTTP server thread.
pub(crate) struct ServerThread {
    pub(crate) local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `addr` now (so a taken port is an error here, not in a log) and serves on a new
    /// thread.
    pub(crate) fn spawn(addr: SocketAddr, state: Shared, auth: UiAuth) -> Result<Self> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| UiError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| UiError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| UiError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let app = router(state, auth);
        // The runtime is built and dropped on the server thread: dropping a runtime inside a
        // caller's async context would panic.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("spate-ui".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(2)
                    .thread_name("spate-ui-blocking")
                    .build();
                match runtime {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(()));
                        rt.block_on(serve(listener, app, stopped));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(UiError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(UiError::Runtime(e));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(UiError::Runtime(std::io::Error::other(
                    "the UI server thread ended while starting",
                )));
            }
        }
        Ok(ServerThread {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets open requests finish for a moment, and joins the thread.
    pub(crate) fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the UI server thread panicked");
            }
        }
    }
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone: the server is being dropped, which is a stop too.
    let _ = stopped.wait_for(|s| *s).await;
}

async fn serve(listener: std::net::TcpListener, app: Router, stopped: watch::Receiver<bool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the UI cannot use its socket; not serving");
            return;
        }
    };
    let graceful =
        axum::serve(listener, app).with_graceful_shutdown(wait_for_stop(stopped.clone()));
    let deadline = async {
        wait_for_stop(stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        r = graceful => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "the UI server stopped with an error");
            }
        }
        () = deadline => tracing::debug!("UI connections still open at shutdown were dropped"),
    }
}

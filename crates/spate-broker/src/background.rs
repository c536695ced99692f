//! A broker on its own thread and tokio runtime, for callers that are not async (synchronous
//! tests, the test kit, tools). Stopping it — explicitly or by dropping the handle — performs the
//! same clean shutdown as [`BrokerHandle::shutdown`](crate::BrokerHandle::shutdown).

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::state::BrokerState;

/// A broker running on a background thread.
pub struct BackgroundBroker {
    local_addr: SocketAddr,
    bootstrap_servers: String,
    state: Arc<BrokerState>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for BackgroundBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundBroker")
            .field("local_addr", &self.local_addr)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Starts a broker on a new thread with its own multi-threaded tokio runtime and returns once
    /// it is listening.
    pub fn start_blocking(config: BrokerConfig) -> Result<BackgroundBroker> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("spate-broker".into())
            .spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("spate-broker-worker")
                    .enable_all()
                    .build()
                    .map_err(|e| BrokerError::Runtime(format!("building runtime: {e}")))?;
                runtime.block_on(async move {
                    let handle = match Broker::start(config).await {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(Ok((
                        handle.local_addr(),
                        handle.bootstrap_servers(),
                        handle.state().clone(),
                    )));
                    // A dropped sender (the handle was dropped) also means stop.
                    let _ = stop_rx.await;
                    handle.shutdown().await
                })
            })
            .map_err(|e| BrokerError::Runtime(format!("spawning broker thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok((local_addr, bootstrap_servers, state))) => Ok(BackgroundBroker {
                local_addr,
                bootstrap_servers,
                state,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let outcome = thread.join();
                Err(BrokerError::Runtime(match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "broker thread exited before the broker started".into(),
                }))
            }
        }
    }
}

impl BackgroundBroker {
    /// The address the broker listens on (with the port it was given for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap_servers.clone()
    }

    /// The broker's shared state, for in-process inspection (tests, tools).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Stops the broker cleanly and waits for it.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| BrokerError::Runtime("broker thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundBroker {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            tracing::warn!(error = %e, "broker shutdown failed");
        }
    }
}

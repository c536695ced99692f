//! Stopping a broker process on a signal, as `kafka-server-stop.sh` stops Kafka: the first
//! SIGTERM (or Ctrl-C) starts a clean shutdown, bounded by `shutdown.timeout.ms`; a second one
//! exits the process at once (the logs then recover on the next start, as after a crash).
//!
//! For binaries that embed the broker (`spate broker`); library users call
//! [`BrokerHandle::shutdown`] themselves.

use crate::broker::BrokerHandle;
use crate::error::{BrokerError, Result};

/// The exit status of a process stopped by a second signal: 128 + SIGINT, as shells report.
pub const FORCED_EXIT_STATUS: i32 = 130;

/// Serves until SIGTERM or Ctrl-C, then shuts the broker down cleanly. A second signal during
/// the shutdown ends the process immediately with [`FORCED_EXIT_STATUS`].
pub async fn run_until_signal(broker: BrokerHandle) -> Result<()> {
    let mut signals = Signals::new()?;
    tokio::select! {
        _ = signals.next() => {}
        // Something else stopped the broker (tests, an embedding application).
        _ = broker.cancelled() => {}
    }
    tracing::info!("shutting down");
    let stopping = broker.shutdown();
    tokio::select! {
        result = stopping => result,
        _ = signals.next() => {
            tracing::warn!("second signal: exiting without a clean shutdown");
            std::process::exit(FORCED_EXIT_STATUS);
        }
    }
}

/// SIGTERM and Ctrl-C, as one stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate()).map_err(|e| {
                BrokerError::Runtime(format!("installing the SIGTERM handler: {e}"))
            })?;
            Ok(Signals { term })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

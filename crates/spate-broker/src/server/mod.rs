//! The network side: accept connections and run one task per connection
//! ([`connection::serve`]), until shutdown. On shutdown the listener stops accepting first, then
//! every connection finishes the request it is processing and closes; [`run`] returns once all
//! connection tasks have ended.

pub mod connection;
pub mod frame;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handlers::HandlerRegistry;
use crate::state::BrokerState;

/// Accepts connections on `listener` until `shutdown` is cancelled, then waits for the
/// connections to finish. Requests are routed by `apis`.
pub async fn run(
    listener: TcpListener,
    state: Arc<BrokerState>,
    apis: HandlerRegistry,
    shutdown: CancellationToken,
) {
    let apis = Arc::new(connection::Routes::new(apis));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::debug!(%peer, "accepted connection");
                tracker.spawn(connection::serve(
                    stream,
                    peer,
                    state.clone(),
                    apis.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning on a listener that cannot
                // accept, as Kafka's acceptor does.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

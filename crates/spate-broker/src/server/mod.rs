//! The network side: accept connections and run one task per connection
//! ([`connection::serve`]), until shutdown. On shutdown the listener stops accepting first, then
//! every connection finishes the request it is processing and closes; [`run`] returns once all
//! connection tasks have ended. Connections live in a `JoinSet`, so dropping the server task
//! (the broker's shutdown does once its time bound is up) aborts every connection still open.

pub mod connection;
pub mod frame;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            // Reap finished connections so the set stays as large as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::debug!(%peer, "accepted connection");
                connections.spawn(connection::serve(
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
    while connections.join_next().await.is_some() {}
}

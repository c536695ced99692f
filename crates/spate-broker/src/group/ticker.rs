//! The background task that drives the coordinator's timers (session expiry, rebalance and
//! sync timeouts, the initial rebalance delay, offset expiry). It ends when the broker shuts
//! down, and holds only a weak reference, so it also ends once the coordinator is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::coordinator::GroupCoordinator;

/// How often timers are checked: the resolution of every group timeout.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Spawns the timer task on the current tokio runtime; it stops when `shutdown` is cancelled.
pub fn spawn(
    coordinator: &Arc<GroupCoordinator>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<GroupCoordinator> = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let Some(coordinator) = weak.upgrade() else {
                return;
            };
            coordinator.tick(super::now_ms());
        }
    })
}

//! The background task that drives the coordinator's timers (session expiry, rebalance and
//! sync timeouts, the initial rebalance delay, offset expiry). It holds only a weak reference,
//! so it ends by itself when the broker drops the coordinator.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::coordinator::GroupCoordinator;

/// How often timers are checked: the resolution of every group timeout.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Spawns the timer task on the current tokio runtime.
pub fn spawn(coordinator: &Arc<GroupCoordinator>) -> tokio::task::JoinHandle<()> {
    let weak: Weak<GroupCoordinator> = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(coordinator) = weak.upgrade() else {
                return;
            };
            coordinator.tick(super::now_ms());
        }
    })
}

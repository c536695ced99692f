//! The group coordinator: classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup)
//! and committed offsets (OffsetCommit/OffsetFetch/OffsetDelete), plus the group admin APIs
//! (ListGroups, DescribeGroups, DeleteGroups) and FindCoordinator.
//!
//! It is split the way Kafka splits it:
//! - [`classic_group`] — one group's rebalance state machine (sans I/O, time passed in);
//! - [`member`] — a member and its parked JoinGroup/SyncGroup response;
//! - [`coordinator`] — the map of groups and the per-request validation rules;
//! - [`commits`] — OffsetCommit/OffsetFetch/OffsetDelete and offset expiry;
//! - [`offsets`] / [`offsets_log`] — committed offsets in memory and their durable log;
//! - [`consumer_protocol`] — reading the "consumer" protocol's subscriptions;
//! - [`api`] — the Kafka requests and responses of every version, mapped onto the above;
//! - [`ticker`] — the background task that runs session, rebalance and expiry timers.

pub mod api;
pub mod classic_group;
pub mod commits;
pub mod config;
pub mod consumer_protocol;
pub mod coordinator;
#[cfg(test)]
mod coordinator_tests;
#[cfg(test)]
mod liveness_tests;
pub mod member;
pub mod offsets;
pub mod offsets_log;
pub mod ticker;
pub mod types;

pub use classic_group::GroupState;
pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;

/// The coordinator's clock: wall-clock milliseconds (commit timestamps are wall-clock, as
/// Kafka's; sessions are measured on the same clock).
pub use crate::time::now_ms;

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
//! - [`ticker`] — the background task that runs session, rebalance and expiry timers;
//! - [`group_configs`] — per-group configs (the GROUP config resource).
//!
//! What a user can rely on, and where it differs from a Kafka cluster:
//! - This broker is the coordinator of every group and every transactional id.
//! - Only the classic protocol (KIP-848's ConsumerGroupHeartbeat is not served; Java 4.x
//!   clients use `group.protocol=classic`, their default). Client-side assignors (range,
//!   roundrobin, sticky, cooperative-sticky) all work; cooperative rebalances are driven by the
//!   client rejoining after it revoked, which is just a second classic rebalance here.
//! - Committed offsets are durable: each OffsetCommit is appended and fsynced to
//!   `<data dir>/meta/consumer_offsets/offsets.log` before it is acknowledged, replayed on start,
//!   and compacted atomically once the log holds twice the live set. Group membership is not
//!   persisted: after a restart groups come back Empty (with their offsets), and members rejoin
//!   (static members included, with one rebalance).
//! - Broker configs keep Kafka's names and defaults (`group.min.session.timeout.ms` 6000,
//!   `group.max.session.timeout.ms` 1800000, `offsets.retention.minutes` 10080, ...), except
//!   `group.initial.rebalance.delay.ms`, which defaults to 0 as in the `server.properties` Kafka
//!   ships for development (see [`GroupConfig`]).

pub mod api;
pub mod classic_group;
pub mod commits;
pub mod config;
pub mod consumer_protocol;
pub mod coordinator;
#[cfg(test)]
mod coordinator_tests;
pub mod group_configs;
#[cfg(test)]
mod liveness_tests;
pub mod member;
pub mod offsets;
pub mod offsets_log;
pub mod ticker;
pub mod txn_offsets;
pub mod types;

pub use classic_group::GroupState;
pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;

/// The coordinator's clock: wall-clock milliseconds (commit timestamps are wall-clock, as
/// Kafka's; sessions are measured on the same clock).
pub use crate::time::now_ms;

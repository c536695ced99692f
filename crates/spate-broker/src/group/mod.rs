//! The group coordinator: classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup),
//! consumer-protocol groups (KIP-848's ConsumerGroupHeartbeat/ConsumerGroupDescribe) and
//! committed offsets (OffsetCommit/OffsetFetch/OffsetDelete), plus the group admin APIs
//! (ListGroups, DescribeGroups, DeleteGroups) and FindCoordinator.
//!
//! It is split the way Kafka splits it:
//! - [`classic_group`] — one group's rebalance state machine (sans I/O, time passed in);
//! - [`member`] — a member and its parked JoinGroup/SyncGroup response;
//! - [`coordinator`] — the map of groups and the per-request validation rules;
//! - [`commit_rules`] — whether an OffsetCommit or TxnOffsetCommit is accepted, by group
//!   state, generation, member id and group instance id;
//! - [`commits`] — OffsetCommit/OffsetFetch/OffsetDelete and offset expiry;
//! - [`offsets`] / [`offsets_log`] — committed offsets in memory and their durable log;
//! - [`durable_membership`] — storing and loading a group's members with its offsets;
//! - [`consumer_protocol`] — reading the classic "consumer" protocol type's subscriptions;
//! - [`consumer_group`], [`reconcile`], [`assignors`], [`consumer_coordinator`] — the
//!   consumer group protocol (KIP-848): a group's epochs and heartbeat, the revoke-before-
//!   reassign reconciliation of one member, the server-side assignors, and the coordinator's
//!   request validation and group type rules;
//! - [`api`] — the Kafka requests and responses of every version, mapped onto the above;
//! - [`ticker`] — the background task that runs session, rebalance and expiry timers;
//! - [`group_configs`] — per-group configs (the GROUP config resource).
//!
//! What a user can rely on, and where it differs from a Kafka cluster:
//! - This broker is the coordinator of every group and every transactional id.
//! - Both group protocols. Classic members (JoinGroup/SyncGroup) use client-side assignors
//!   (range, roundrobin, sticky, cooperative-sticky; cooperative rebalances are driven by the
//!   client rejoining after it revoked). Consumer-protocol members (KIP-848,
//!   `group.protocol=consumer`; ConsumerGroupHeartbeat and ConsumerGroupDescribe, APIs 68/69)
//!   are assigned by the broker ([`consumer_group`], [`reconcile`], [`assignors`]:
//!   `uniform` and `range`, `group.consumer.*` settings with Kafka's defaults). A group id is
//!   one or the other; an empty group changes type when a member of the other protocol
//!   arrives, a non-empty one refuses it ([`consumer_coordinator`] says which error). Mixed
//!   groups (Kafka 4's online migration) are not supported.
//! - Consumer-protocol groups are durable too ([`durable_consumer_group`]): after a restart
//!   members carry on with their epochs and partitions. Their offsets do not expire while
//!   the group is empty (`offsets.retention.minutes` applies to classic groups only).
//!   Topic regex subscriptions (`SubscribedTopicRegex`) are resolved on every heartbeat
//!   ([`topic_regex`]), so topics created later that match are assigned.
//! - Committed offsets are durable: each OffsetCommit is appended and fsynced to
//!   `<data dir>/meta/consumer_offsets/offsets.log` before it is acknowledged, replayed on start,
//!   and compacted atomically once the log holds twice the live set. Group membership
//!   (generation, protocol, leader, members and their assignments) is stored in the same log
//!   whenever a group settles ([`durable_membership`]), so after a restart a Stable group is
//!   Stable again and its members carry on without a rebalance.
//! - Offset commits are accepted or refused by Kafka's rules ([`commit_rules`]); a member of
//!   the current generation may commit while the group is PreparingRebalance (KIP-429).
//! - Broker configs keep Kafka's names and defaults (`group.min.session.timeout.ms` 6000,
//!   `group.max.session.timeout.ms` 1800000, `group.initial.rebalance.delay.ms` 3000,
//!   `offsets.retention.minutes` 10080, ...; see [`GroupConfig`]).

pub mod api;
pub mod assignors;
pub mod classic_group;
pub mod commit_rules;
#[cfg(test)]
mod commit_rules_tests;
pub mod commits;
pub mod config;
pub mod consumer_coordinator;
pub mod consumer_group;
#[cfg(test)]
mod consumer_group_tests;
pub mod consumer_protocol;
pub mod coordinator;
#[cfg(test)]
mod coordinator_tests;
pub mod durable_consumer_group;
pub mod durable_membership;
pub mod group_configs;
#[cfg(test)]
mod liveness_tests;
pub mod member;
pub mod offsets;
pub mod offsets_log;
pub mod reconcile;
pub mod ticker;
pub mod topic_regex;
pub mod txn_offsets;
pub mod types;

pub use classic_group::GroupState;
pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;

/// The coordinator's clock: wall-clock milliseconds (commit timestamps are wall-clock, as
/// Kafka's; sessions are measured on the same clock).
pub use crate::time::now_ms;

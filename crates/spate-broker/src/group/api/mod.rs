//! The coordinator's Kafka APIs: each handler maps one request of any supported version onto
//! the coordinator's plain operations and builds the response for that same version, leaving
//! out fields the version does not have (kafka-protocol refuses to encode them).
//!
//! [`register`] adds them to the broker's handler registry (the one table of the versions
//! served); the functions in [`admin`], [`membership`] and [`offsets`] need only the
//! coordinator, so tests drive them without a broker.

pub mod admin;
pub mod authorize;
pub mod consumer;
pub mod membership;
pub mod offsets;
pub mod register;

pub use admin::{
    handle_delete_groups, handle_describe_groups, handle_find_coordinator, handle_list_groups,
    CoordinatorNode,
};
pub use consumer::{handle_consumer_group_describe, handle_consumer_group_heartbeat};
pub use membership::{handle_heartbeat, handle_join_group, handle_leave_group, handle_sync_group};
pub use offsets::{handle_offset_commit, handle_offset_delete, handle_offset_fetch};
pub use register::register;

#[cfg(test)]
mod tests;

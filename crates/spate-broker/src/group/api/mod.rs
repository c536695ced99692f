//! The coordinator's Kafka APIs: each handler maps one request of any supported version onto
//! the coordinator's plain operations and builds the response for that same version, leaving
//! out fields the version does not have (kafka-protocol refuses to encode them).
//!
//! The server's handler registry calls these; they need only the coordinator, the request's
//! API version, and who sent it ([`RequestContext`]).

pub mod admin;
pub mod broker;
pub mod membership;
pub mod offsets;

use kafka_protocol::protocol::StrBytes;

pub use admin::{
    handle_delete_groups, handle_describe_groups, handle_find_coordinator, handle_list_groups,
    CoordinatorNode,
};
pub use membership::{handle_heartbeat, handle_join_group, handle_leave_group, handle_sync_group};
pub use offsets::{handle_offset_commit, handle_offset_delete, handle_offset_fetch};

/// API version ranges this broker serves for the group APIs: what kafka-protocol 0.18
/// implements, which covers librdkafka 2.x and the Java 3.x/4.x classic-protocol clients.
pub mod versions {
    /// `(api key, min, max)` of each group API.
    pub const FIND_COORDINATOR: (i16, i16, i16) = (10, 0, 6);
    pub const OFFSET_COMMIT: (i16, i16, i16) = (8, 2, 9);
    pub const OFFSET_FETCH: (i16, i16, i16) = (9, 1, 9);
    pub const JOIN_GROUP: (i16, i16, i16) = (11, 0, 9);
    pub const HEARTBEAT: (i16, i16, i16) = (12, 0, 4);
    pub const LEAVE_GROUP: (i16, i16, i16) = (13, 0, 5);
    pub const SYNC_GROUP: (i16, i16, i16) = (14, 0, 5);
    pub const DESCRIBE_GROUPS: (i16, i16, i16) = (15, 0, 6);
    pub const LIST_GROUPS: (i16, i16, i16) = (16, 0, 5);
    pub const DELETE_GROUPS: (i16, i16, i16) = (42, 0, 2);
    pub const OFFSET_DELETE: (i16, i16, i16) = (47, 0, 0);
}

/// Who sent a request: the request header's version and client id, and the peer address.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    pub api_version: i16,
    pub client_id: &'a str,
    /// The client's address as Kafka shows it in DescribeGroups (`/127.0.0.1`).
    pub client_host: &'a str,
}

pub(crate) fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub(crate) fn opt_s(value: Option<impl Into<String>>) -> Option<StrBytes> {
    value.map(s)
}

pub(crate) fn opt_string(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(|v| v.as_str().to_owned())
}

#[cfg(test)]
mod tests;

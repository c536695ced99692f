//! Conversions between Rust strings and kafka-protocol's `StrBytes`, used by every request
//! handler (the broker's own and the group coordinator's) to build responses and read requests.

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// `StrBytes` from anything string-like.
pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// `Some(StrBytes)` from a string (a response's nullable string that is set).
pub(crate) fn str_opt(s: impl Into<String>) -> Option<StrBytes> {
    Some(str_bytes(s))
}

/// A nullable response string from an optional string.
pub(crate) fn opt_str_bytes(value: Option<impl Into<String>>) -> Option<StrBytes> {
    value.map(str_bytes)
}

/// An optional owned string from a request's nullable string.
pub(crate) fn opt_string(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(|v| v.as_str().to_owned())
}

/// A `TopicName` from a string.
pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

//! Reading the embedded "consumer" protocol's subscription metadata, which the coordinator
//! otherwise treats as opaque bytes: OffsetDelete must refuse to delete offsets of a topic that
//! an active member is subscribed to (GROUP_SUBSCRIBED_TO_TOPIC).

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

use super::classic_group::ClassicGroup;

/// Highest ConsumerProtocolSubscription version kafka-protocol decodes; newer versions only
/// append fields, so decoding their prefix as this version yields the topics correctly.
const MAX_SUBSCRIPTION_VERSION: i16 = 3;

/// The topics in one member's subscription metadata, or `None` if it does not parse.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    let version = version.clamp(0, MAX_SUBSCRIPTION_VERSION);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(sub.topics.iter().map(|t| t.as_str().to_owned()).collect())
}

/// Highest ConsumerProtocolAssignment version kafka-protocol decodes.
const MAX_ASSIGNMENT_VERSION: i16 = 3;

/// The partitions in a member's assignment (as the leader encoded it), sorted, or `None` if it
/// does not parse. An empty assignment is `Some(vec![])`.
pub fn assignment_partitions(assignment: &[u8]) -> Option<Vec<(String, i32)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut buf = Bytes::copy_from_slice(assignment);
    if buf.len() < 2 {
        return None;
    }
    let version = bytes::Buf::get_i16(&mut buf).clamp(0, MAX_ASSIGNMENT_VERSION);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    let mut out: Vec<(String, i32)> = a
        .assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| (tp.topic.0.as_str().to_owned(), *p))
        })
        .collect();
    out.sort();
    Some(out)
}

/// Topics any member of `group` is subscribed to under the group's selected protocol.
pub fn subscribed_topics(group: &ClassicGroup) -> Vec<String> {
    let Some(protocol) = group.protocol_name.as_deref() else {
        return Vec::new();
    };
    let mut topics: Vec<String> = group
        .members
        .values()
        .filter_map(|m| m.metadata_for(protocol))
        .filter_map(subscription_topics)
        .flatten()
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn reads_topics_of_each_version() {
        for version in 0..=3i16 {
            let sub = ConsumerProtocolSubscription::default().with_topics(vec![
                StrBytes::from_static_str("a"),
                StrBytes::from_static_str("b"),
            ]);
            let mut buf = bytes::BytesMut::new();
            buf.put_i16(version);
            sub.encode(&mut buf, version).unwrap();
            assert_eq!(
                subscription_topics(&buf.freeze()),
                Some(vec!["a".to_owned(), "b".to_owned()]),
                "version {version}"
            );
        }
        assert_eq!(subscription_topics(&Bytes::from_static(&[0, 1, 0])), None);
    }
}

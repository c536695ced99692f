//! [`ConsumerRecord`]: one Kafka record as a stream hands it to the job — it can be cloned,
//! shuffled and kept in windows (Spark's `ConsumerRecord` is not serializable and users must map
//! fields out first; complaint under D1) — and [`RecordArena`], where a consumer puts the
//! records' keys and values.
//!
//! Key and value are [`Bytes`]: slices of a chunk the consumer shares between consecutive
//! records, not an allocation each (see [`arena`] for why, and for what a kept record costs
//! in memory). Cloning a record shares its key and value too.

pub mod arena;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use rdkafka::message::{BorrowedMessage, Headers, Message};

pub use arena::RecordArena;

/// A record read from `topic`-`partition` at `offset`.
///
/// Serialized (serde) with key and value as byte strings; in postcard that is the same encoding
/// as the `Vec<u8>` fields of earlier versions, so receiver logs written then still read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerRecord {
    /// Shared by every record a consumer delivers from the topic: one allocation per consumer,
    /// not one per record (it was a sixth of a pass-through job's allocations).
    pub topic: Arc<str>,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Create or log-append time, ms since the epoch, when the broker reports one.
    pub timestamp: Option<i64>,
    /// The record key (`None`: a null key). Shares its consumer's chunk (see [`arena`]).
    pub key: Option<Bytes>,
    /// The record value (`None`: a null value, a tombstone on compacted topics). Shares its
    /// consumer's chunk (see [`arena`]).
    pub value: Option<Bytes>,
    /// Record headers in order, each a name and an optional value (empty, and then not
    /// allocated, for records without headers).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ConsumerRecord {
    /// The key's bytes, if there is a key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value's bytes, if there is a value.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The key as UTF-8 (lossy), if there is one.
    pub fn key_str(&self) -> Option<String> {
        self.key().map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The value as UTF-8 (lossy), if there is one.
    pub fn value_str(&self) -> Option<String> {
        self.value()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// A record from `m`, its key and value copied into `arena`, naming its topic with `topic`
    /// when that is the same name (the consumer's shared copy), else a fresh one.
    pub(crate) fn from_message(
        m: &BorrowedMessage<'_>,
        topic: &Arc<str>,
        arena: &mut RecordArena,
    ) -> Self {
        let topic = if &**topic == m.topic() {
            Arc::clone(topic)
        } else {
            Arc::from(m.topic())
        };
        ConsumerRecord {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: arena.copy_opt(m.key()),
            value: arena.copy_opt(m.payload()),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as versions before the arena declared it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct VecRecord {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Option<Vec<u8>>)>,
    }

    #[test]
    fn postcard_encoding_is_the_one_of_vec_fields() {
        let old = VecRecord {
            topic: Arc::from("t"),
            partition: 3,
            offset: 42,
            timestamp: Some(1_765_000_000_000),
            key: Some(b"key".to_vec()),
            value: Some(vec![b'v'; 300]),
            headers: vec![("h".into(), Some(b"x".to_vec())), ("n".into(), None)],
        };
        let mut arena = RecordArena::new();
        let new = ConsumerRecord {
            topic: Arc::clone(&old.topic),
            partition: 3,
            offset: 42,
            timestamp: old.timestamp,
            key: arena.copy_opt(old.key.as_deref()),
            value: arena.copy_opt(old.value.as_deref()),
            headers: old.headers.clone(),
        };
        let old_bytes = postcard::to_allocvec(&old).unwrap();
        assert_eq!(postcard::to_allocvec(&new).unwrap(), old_bytes);
        let read: ConsumerRecord = postcard::from_bytes(&old_bytes).unwrap();
        assert_eq!(read, new);
        let tombstone = VecRecord {
            key: Some(Vec::new()),
            value: None,
            ..old
        };
        let read: ConsumerRecord =
            postcard::from_bytes(&postcard::to_allocvec(&tombstone).unwrap()).unwrap();
        assert_eq!(read.key(), Some(&[][..]));
        assert_eq!(read.value(), None);
    }

    #[test]
    fn json_encoding_is_the_one_of_vec_fields() {
        let record = ConsumerRecord {
            topic: Arc::from("t"),
            partition: 0,
            offset: 1,
            timestamp: None,
            key: None,
            value: Some(Bytes::from_static(b"ab")),
            headers: Vec::new(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""value":[97,98]"#), "{json}");
        assert_eq!(
            serde_json::from_str::<ConsumerRecord>(&json).unwrap(),
            record
        );
        assert_eq!(record.value_str().as_deref(), Some("ab"));
        assert_eq!(record.key_str(), None);
    }
}

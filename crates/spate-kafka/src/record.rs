//! [`ConsumerRecord`]: one Kafka record as a direct stream hands it to the job — owned bytes,
//! so it can be cloned, shuffled and kept in windows (Spark's `ConsumerRecord` is not
//! serializable and users must map fields out first; complaint under D1).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use rdkafka::message::{BorrowedMessage, Headers, Message};

/// A record read from `topic`-`partition` at `offset`.
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
    /// The record key (`None`: a null key).
    pub key: Option<Vec<u8>>,
    /// The record value (`None`: a null value, a tombstone on compacted topics).
    pub value: Option<Vec<u8>>,
    /// Record headers in order, each a name and an optional value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ConsumerRecord {
    /// The key as UTF-8 (lossy), if there is one.
    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The value as UTF-8 (lossy), if there is one.
    pub fn value_str(&self) -> Option<String> {
        self.value
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// A record from `m`, naming its topic with `topic` when that is the same name (the
    /// consumer's shared copy), else a fresh one.
    pub(crate) fn from_message(m: &BorrowedMessage<'_>, topic: &Arc<str>) -> Self {
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
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
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

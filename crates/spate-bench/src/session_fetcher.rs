//! A minimal Fetch client that asks for incremental fetch sessions (KIP-227), as the Java
//! client and kafka-python do, for the many-partitions benchmark: librdkafka (2.12) never opens
//! a session (every Fetch carries session id 0 and epoch -1), so it cannot show what sessions
//! save.
//!
//! One blocking connection, Fetch v12 (topics by name), one topic, every partition from a given
//! offset. The first request opens a session (epoch 0) with every partition; later ones name only
//! the partitions whose fetch offset moved since the broker last heard it. When the broker
//! declines the session (its answer carries session id 0, e.g. with
//! `max.incremental.fetch.session.cache.slots=0`) every request is a full one, which is what a
//! session-less client sends. Records are counted from the record batch headers; they are not
//! decoded.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::error::{BenchError, Result};
use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::ResponseError;

/// The Fetch version spoken: the last one that names topics.
const VERSION: i16 = 12;
/// Kafka's consumer defaults: `fetch.max.bytes` and `max.partition.fetch.bytes`.
const MAX_BYTES: i32 = 52_428_800;
const PARTITION_MAX_BYTES: i32 = 1_048_576;
/// Bytes of a record batch header up to and including its record count.
const BATCH_HEADER: usize = 61;

/// A session-using consumer of all partitions of one topic.
#[derive(Debug)]
pub struct SessionFetcher {
    stream: TcpStream,
    topic: String,
    correlation_id: i32,
    session_id: i32,
    /// The epoch of the next request: 0 opens a session, -1 means none (session-less).
    epoch: i32,
    /// The next offset to fetch, per partition.
    next: BTreeMap<i32, i64>,
    /// The fetch offsets the broker's session holds (what was last sent).
    sent: BTreeMap<i32, i64>,
}

/// What one Fetch returned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetched {
    /// Records in the returned batches at or past the fetch offsets.
    pub records: u64,
    /// Partitions the response carried.
    pub partitions: usize,
}

impl SessionFetcher {
    /// Connects to `addr` to read `partitions` partitions of `topic` from offset 0.
    pub fn connect(addr: &str, topic: &str, partitions: i32) -> Result<Self> {
        let stream =
            TcpStream::connect(addr).map_err(BenchError::io(format!("connecting to {addr}")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(BenchError::io("socket timeout"))?;
        stream
            .set_nodelay(true)
            .map_err(BenchError::io("TCP_NODELAY"))?;
        let next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
        Ok(SessionFetcher {
            stream,
            topic: topic.to_owned(),
            correlation_id: 0,
            session_id: 0,
            epoch: 0,
            next,
            sent: BTreeMap::new(),
        })
    }

    /// Whether the broker granted a session (the last answer carried a session id).
    pub fn in_session(&self) -> bool {
        self.session_id != 0
    }

    /// One Fetch that waits at most `max_wait_ms` for data.
    pub fn fetch(&mut self, max_wait_ms: i32) -> Result<Fetched> {
        let request = self.request(max_wait_ms);
        let response = self.round_trip(&request)?;
        self.absorb(response)
    }

    fn request(&mut self, max_wait_ms: i32) -> FetchRequest {
        let incremental = self.session_id != 0;
        let partitions: Vec<FetchPartition> = self
            .next
            .iter()
            .filter(|(p, offset)| !incremental || self.sent.get(p) != Some(offset))
            .map(|(p, offset)| {
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*offset)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES)
            })
            .collect();
        for p in &partitions {
            self.sent.insert(p.partition, p.fetch_offset);
        }
        let topics = if partitions.is_empty() {
            Vec::new()
        } else {
            vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(partitions)]
        };
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(MAX_BYTES)
            .with_session_id(self.session_id)
            .with_session_epoch(self.epoch)
            .with_topics(topics)
    }

    fn round_trip(&mut self, request: &FetchRequest) -> Result<FetchResponse> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(VERSION)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("spate-bench-sessions")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, FetchRequest::header_version(VERSION))
            .map_err(|e| BenchError::FetchExchange(format!("encoding the request header: {e}")))?;
        request
            .encode(&mut body, VERSION)
            .map_err(|e| BenchError::FetchExchange(format!("encoding the Fetch request: {e}")))?;
        let len = u32::try_from(body.len())
            .map_err(|_| BenchError::FetchExchange("request too large".into()))?;
        self.stream
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.stream.write_all(&body))
            .map_err(BenchError::io("sending a Fetch request"))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(BenchError::io("reading a Fetch response"))?;
        let len = usize::try_from(u32::from_be_bytes(len))
            .map_err(|_| BenchError::FetchExchange("frame length".into()))?;
        if len > 256 << 20 {
            return Err(BenchError::FetchExchange(format!(
                "a {len}-byte Fetch response frame"
            )));
        }
        let mut frame = vec![0u8; len];
        self.stream
            .read_exact(&mut frame)
            .map_err(BenchError::io("reading a Fetch response"))?;
        let mut buf = bytes::Bytes::from(frame);
        let header = ResponseHeader::decode(&mut buf, FetchResponse::header_version(VERSION))
            .map_err(|e| BenchError::FetchExchange(format!("decoding the response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(BenchError::FetchExchange(format!(
                "response {} to request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        FetchResponse::decode(&mut buf, VERSION)
            .map_err(|e| BenchError::FetchExchange(format!("decoding Fetch: {e}")))
    }

    /// Takes a response in: session bookkeeping, then each partition's new fetch offset.
    fn absorb(&mut self, response: FetchResponse) -> Result<Fetched> {
        let error = response.error_code;
        if error == ResponseError::FetchSessionIdNotFound.code()
            || error == ResponseError::InvalidFetchSessionEpoch.code()
        {
            // Start over with a full fetch that opens a new session.
            self.session_id = 0;
            self.epoch = 0;
            self.sent.clear();
            return Ok(Fetched::default());
        }
        if error != 0 {
            return Err(BenchError::FetchExchange(format!(
                "Fetch failed with error code {error}"
            )));
        }
        if response.session_id == 0 {
            // Declined (or no session asked for): stay session-less; full fetches from now on.
            self.session_id = 0;
            self.epoch = 0;
            self.sent.clear();
        } else {
            self.session_id = response.session_id;
            self.epoch = self.epoch.checked_add(1).unwrap_or(1);
        }
        let mut fetched = Fetched::default();
        for topic in response.responses {
            for p in topic.partitions {
                fetched.partitions += 1;
                if p.error_code != 0 {
                    return Err(BenchError::FetchExchange(format!(
                        "partition {} answered error {}",
                        p.partition_index, p.error_code
                    )));
                }
                let from = self.next.get(&p.partition_index).copied().unwrap_or(0);
                let (records, next) = count_records(p.records.as_deref().unwrap_or_default(), from);
                fetched.records += records;
                self.next.insert(p.partition_index, next);
            }
        }
        Ok(fetched)
    }
}

/// Records at or past `from` in `batches`, and the offset after the last complete batch (or
/// `from` when there is none). A truncated batch at the end (KIP-74 allows it) is skipped.
fn count_records(batches: &[u8], from: i64) -> (u64, i64) {
    let mut at = 0usize;
    let (mut records, mut next) = (0u64, from);
    while let Some(header) = batches.get(at..at + BATCH_HEADER) {
        let base = i64::from_be_bytes(header[0..8].try_into().unwrap_or_default());
        let length = i32::from_be_bytes(header[8..12].try_into().unwrap_or_default());
        let last_delta = i32::from_be_bytes(header[23..27].try_into().unwrap_or_default());
        let count = i32::from_be_bytes(header[57..61].try_into().unwrap_or_default());
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let end = at + 12 + length;
        if end > batches.len() || length < BATCH_HEADER - 12 {
            break;
        }
        let last = base + i64::from(last_delta);
        if last >= from {
            // Records before `from` in the first batch were read already.
            let skipped = (from - base).max(0);
            records += u64::try_from(i64::from(count) - skipped).unwrap_or(0);
            next = last + 1;
        }
        at = end;
    }
    (records, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, count: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base.to_be_bytes());
        b.extend_from_slice(&((BATCH_HEADER - 12) as i32).to_be_bytes());
        b.extend_from_slice(&[0u8; 11]); // leader epoch, magic, crc, attributes
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&[0u8; 30]); // timestamps, producer id, epoch, sequence
        b.extend_from_slice(&count.to_be_bytes());
        b
    }

    #[test]
    fn batches_are_counted_from_the_fetch_offset() {
        let mut bytes = batch(0, 10);
        bytes.extend(batch(10, 5));
        assert_eq!(count_records(&bytes, 0), (15, 15));
        assert_eq!(count_records(&bytes, 4), (11, 15));
        // A truncated last batch is left for the next fetch.
        assert_eq!(count_records(&bytes[..bytes.len() - 1], 0), (10, 10));
        assert_eq!(count_records(&[], 7), (0, 7));
    }
}

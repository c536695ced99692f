//! [`ConsumerRecordCodec`]: how the reliable receiver stores a block of Kafka records in its
//! write-ahead log, and [`record_weight`], what one record costs in memory.
//!
//! The first block format (`postcard(Block<ConsumerRecord>)`) repeated the topic name, the
//! partition and full-width offset and timestamp in every record: for 100-byte values the log
//! was 1.5 times the data. This format (id [`FORMAT`] in the versioned block payload of
//! `spate_streaming::receiver::handler`) stores the block's topic names once, and per record only
//! what differs from the record before it:
//!
//! ```text
//! block    varint stream id, zigzag-varint block time (unique id),
//!          varint topic count, per topic: varint length + UTF-8 name,
//!          varint record count, then the records
//! record   1 byte flags: 0x01 timestamp present, 0x02 key present, 0x04 value present,
//!                        0x08 headers present, 0x10 new topic-partition follows
//!          [0x10]  varint topic index, zigzag-varint partition, zigzag-varint offset
//!          [else]  zigzag-varint offset − (previous offset + 1)   (0 for consecutive offsets)
//!          [0x01]  zigzag-varint timestamp − previous timestamp   (previous: 0 at block start)
//!          [0x02]  varint length + key bytes
//!          [0x04]  varint length + value bytes
//!          [0x08]  varint count, per header: varint length + UTF-8 name,
//!                  1 byte (1: value follows, 0: null), [varint length + value bytes]
//! ```
//!
//! A 100-byte record without key or headers from the same partition as the one before costs
//! 100 + 4 or 5 bytes. Decoding reads untrusted bytes: every length is checked against what is
//! left before anything is allocated. A decoded block's keys and values are slices of one copy
//! of the block's bytes, as a consumer's are of its chunks (`crate::record::arena`): one
//! allocation per block, not two per record.

use std::sync::Arc;

use bytes::Bytes;
use spate_streaming::receiver::{Block, BlockCodec, StreamBlockId};

use crate::record::ConsumerRecord;

/// A record's headers, as [`ConsumerRecord::headers`](crate::ConsumerRecord) holds them.
type Headers = Vec<(String, Option<Vec<u8>>)>;

/// This codec's format id in the versioned block payload.
pub const FORMAT: u8 = 2;

const HAS_TIMESTAMP: u8 = 0x01;
const HAS_KEY: u8 = 0x02;
const HAS_VALUE: u8 = 0x04;
const HAS_HEADERS: u8 = 0x08;
const NEW_PARTITION: u8 = 0x10;

/// Heap bookkeeping per allocation, roughly what glibc malloc adds to each block.
const ALLOCATION_OVERHEAD: usize = 16;

/// The bytes one record holds in memory: the struct, its key and value bytes (slices of a
/// shared chunk, so no allocation of their own), and each header allocation with the
/// allocator's overhead. The receiver's memory budget counts records with this.
pub fn record_weight(r: &ConsumerRecord) -> usize {
    let shared = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    let owned = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, |v| v.len() + ALLOCATION_OVERHEAD);
    let headers: usize = r
        .headers
        .iter()
        .map(|(name, value)| {
            std::mem::size_of::<(String, Option<Vec<u8>>)>()
                + name.len()
                + ALLOCATION_OVERHEAD
                + owned(value)
        })
        .sum();
    std::mem::size_of::<ConsumerRecord>() + shared(&r.key) + shared(&r.value) + headers
}

/// The receiver's block codec. See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConsumerRecordCodec;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encoder state: what the next record is compared with.
struct Previous {
    topic: Option<Arc<str>>,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

fn encode_record(out: &mut Vec<u8>, topics: &[Arc<str>], prev: &mut Previous, r: &ConsumerRecord) {
    let same_partition = prev.partition == r.partition
        && prev
            .topic
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &r.topic) || **t == *r.topic);
    let mut flags = 0u8;
    if r.timestamp.is_some() {
        flags |= HAS_TIMESTAMP;
    }
    if r.key.is_some() {
        flags |= HAS_KEY;
    }
    if r.value.is_some() {
        flags |= HAS_VALUE;
    }
    if !r.headers.is_empty() {
        flags |= HAS_HEADERS;
    }
    if !same_partition {
        flags |= NEW_PARTITION;
    }
    out.push(flags);
    if same_partition {
        put_varint(
            out,
            zigzag(r.offset.wrapping_sub(prev.offset.wrapping_add(1))),
        );
    } else {
        let index = topics.iter().position(|t| **t == *r.topic).unwrap_or(0);
        put_varint(out, index as u64);
        put_varint(out, zigzag(i64::from(r.partition)));
        put_varint(out, zigzag(r.offset));
        prev.topic = Some(Arc::clone(&r.topic));
        prev.partition = r.partition;
    }
    prev.offset = r.offset;
    if let Some(ts) = r.timestamp {
        put_varint(out, zigzag(ts.wrapping_sub(prev.timestamp)));
        prev.timestamp = ts;
    }
    if let Some(k) = &r.key {
        put_bytes(out, k);
    }
    if let Some(v) = &r.value {
        put_bytes(out, v);
    }
    if !r.headers.is_empty() {
        put_varint(out, r.headers.len() as u64);
        for (name, value) in &r.headers {
            put_bytes(out, name.as_bytes());
            match value {
                Some(v) => {
                    out.push(1);
                    put_bytes(out, v);
                }
                None => out.push(0),
            }
        }
    }
}

impl BlockCodec<ConsumerRecord> for ConsumerRecordCodec {
    fn format(&self) -> u8 {
        FORMAT
    }

    fn encode(
        &self,
        block: &Block<ConsumerRecord>,
        out: &mut Vec<u8>,
    ) -> spate_streaming::Result<()> {
        put_varint(out, u64::from(block.id.stream_id));
        put_varint(out, zigzag(block.id.unique_id));
        let mut topics: Vec<Arc<str>> = Vec::new();
        for r in &block.items {
            let known = topics
                .last()
                .is_some_and(|t| Arc::ptr_eq(t, &r.topic) || **t == *r.topic)
                || topics.iter().any(|t| **t == *r.topic);
            if !known {
                topics.push(Arc::clone(&r.topic));
            }
        }
        put_varint(out, topics.len() as u64);
        for t in &topics {
            put_bytes(out, t.as_bytes());
        }
        put_varint(out, block.items.len() as u64);
        let mut prev = Previous {
            topic: None,
            partition: 0,
            offset: 0,
            timestamp: 0,
        };
        for r in &block.items {
            encode_record(out, &topics, &mut prev, r);
        }
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Block<ConsumerRecord>, String> {
        // One copy that the records' keys and values share (see the module docs).
        let mut r = Reader {
            bytes: Bytes::copy_from_slice(bytes),
            pos: 0,
        };
        let stream_id = u32::try_from(r.varint()?).map_err(|_| "stream id out of range")?;
        let unique_id = unzigzag(r.varint()?);
        let topic_count = r.count(1)?;
        let mut topics: Vec<Arc<str>> = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let name = std::str::from_utf8(r.bytes()?).map_err(|_| "topic name is not UTF-8")?;
            topics.push(Arc::from(name));
        }
        let record_count = r.count(2)?;
        let mut items = Vec::with_capacity(record_count);
        let mut prev = (None::<Arc<str>>, 0i32, 0i64, 0i64);
        for _ in 0..record_count {
            items.push(r.record(&topics, &mut prev)?);
        }
        if r.pos != bytes.len() {
            return Err(format!(
                "{} bytes after the last record of the block",
                bytes.len() - r.pos
            ));
        }
        Ok(Block::new(
            StreamBlockId {
                stream_id,
                unique_id,
            },
            items,
        ))
    }
}

/// A cursor over untrusted block bytes.
struct Reader {
    bytes: Bytes,
    pos: usize,
}

type PreviousRecord = (Option<Arc<str>>, i32, i64, i64);

impl Reader {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| format!("block ends early at byte {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    /// A count of items each at least `min_item_len` bytes long: larger than the bytes left
    /// allow is malformed (and must not size an allocation).
    fn count(&mut self, min_item_len: usize) -> Result<usize, String> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.pos) / min_item_len.max(1);
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or_else(|| format!("count {n} exceeds what the block's remaining bytes hold"))
    }

    /// The range of the next length-prefixed field.
    fn field(&mut self) -> Result<std::ops::Range<usize>, String> {
        let len = self.varint()?;
        let left = self.bytes.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= left)
            .ok_or_else(|| format!("length {len} runs past the end of the block"))?;
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    fn bytes(&mut self) -> Result<&[u8], String> {
        let range = self.field()?;
        Ok(&self.bytes[range])
    }

    /// The next field as a slice sharing the block's bytes (no copy).
    fn shared(&mut self) -> Result<Bytes, String> {
        let range = self.field()?;
        Ok(self.bytes.slice(range))
    }

    fn record(
        &mut self,
        topics: &[Arc<str>],
        prev: &mut PreviousRecord,
    ) -> Result<ConsumerRecord, String> {
        let flags = self.byte()?;
        if flags & !(HAS_TIMESTAMP | HAS_KEY | HAS_VALUE | HAS_HEADERS | NEW_PARTITION) != 0 {
            return Err(format!("unknown record flags {flags:#04x}"));
        }
        if flags & NEW_PARTITION != 0 {
            let index = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
            let topic = topics
                .get(index)
                .ok_or_else(|| format!("topic index {index} out of {} topics", topics.len()))?;
            let partition = i32::try_from(unzigzag(self.varint()?))
                .map_err(|_| "partition out of range".to_owned())?;
            let offset = unzigzag(self.varint()?);
            *prev = (Some(Arc::clone(topic)), partition, offset, prev.3);
        } else {
            let delta = unzigzag(self.varint()?);
            prev.2 = prev.2.wrapping_add(1).wrapping_add(delta);
        }
        let topic = prev
            .0
            .clone()
            .ok_or("first record of the block names no topic-partition")?;
        let timestamp = if flags & HAS_TIMESTAMP != 0 {
            prev.3 = prev.3.wrapping_add(unzigzag(self.varint()?));
            Some(prev.3)
        } else {
            None
        };
        let key = (flags & HAS_KEY != 0).then(|| self.shared()).transpose()?;
        let value = (flags & HAS_VALUE != 0)
            .then(|| self.shared())
            .transpose()?;
        let headers = if flags & HAS_HEADERS != 0 {
            self.headers()?
        } else {
            Vec::new()
        };
        Ok(ConsumerRecord {
            topic,
            partition: prev.1,
            offset: prev.2,
            timestamp,
            key,
            value,
            headers,
        })
    }

    fn headers(&mut self) -> Result<Headers, String> {
        let n = self.count(2)?;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let name = std::str::from_utf8(self.bytes()?)
                .map_err(|_| "header name is not UTF-8".to_owned())?
                .to_owned();
            let value = match self.byte()? {
                0 => None,
                1 => Some(self.bytes()?.to_vec()),
                other => return Err(format!("bad header value marker {other}")),
            };
            headers.push((name, value));
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &Arc<str>, partition: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::clone(topic),
            partition,
            offset,
            timestamp: Some(1_765_000_000_000_i64.wrapping_add(offset)),
            key: None,
            value: Some(vec![b'x'; 100].into()),
            headers: Vec::new(),
        }
    }

    fn round_trip(items: Vec<ConsumerRecord>) -> (Block<ConsumerRecord>, usize) {
        let block = Block::new(
            StreamBlockId {
                stream_id: 3,
                unique_id: 1_765_000_000_000,
            },
            items,
        );
        let mut out = Vec::new();
        ConsumerRecordCodec.encode(&block, &mut out).unwrap();
        let back = ConsumerRecordCodec.decode(&out).unwrap();
        assert_eq!(back, block);
        (back, out.len())
    }

    #[test]
    fn hundred_byte_records_cost_at_most_five_bytes_more() {
        let topic: Arc<str> = Arc::from("a-topic-with-a-long-name-of-35-bytes");
        let items: Vec<_> = (0..1_000)
            .map(|o| record(&topic, o % 2, i64::from(o / 2)))
            .collect();
        let (_, mixed) = round_trip(items);
        let items: Vec<_> = (0..1_000).map(|o| record(&topic, 1, o)).collect();
        let (back, len) = round_trip(items);
        // The decoded values are slices of one copy of the block, not a copy each.
        let starts: Vec<usize> = back
            .items
            .iter()
            .map(|r| r.value.as_ref().unwrap().as_ptr() as usize)
            .collect();
        let (low, high) = (starts.iter().min().unwrap(), starts.iter().max().unwrap());
        assert!(
            high + 100 - low <= len,
            "values span {} bytes",
            high + 100 - low
        );
        assert!(len <= 1_000 * 105 + 64, "{len} bytes");
        assert!(mixed <= 1_000 * 110 + 64, "{mixed} bytes");
    }

    #[test]
    fn every_field_and_odd_values_round_trip() {
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let mut items = vec![
            record(&a, 0, i64::MAX),
            record(&b, -1, -5),
            record(&a, i32::MAX, 0),
            record(&a, i32::MAX, 7),
        ];
        items[1].timestamp = None;
        items[1].key = Some(Bytes::new());
        items[2].value = None;
        items[2].timestamp = Some(i64::MIN);
        items[3].headers = vec![("h".into(), Some(b"v".to_vec())), (String::new(), None)];
        items[3].key = Some(Bytes::from_static(b"key"));
        round_trip(items);
        round_trip(Vec::new());
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let topic: Arc<str> = Arc::from("t");
        let block = Block::new(
            StreamBlockId {
                stream_id: 0,
                unique_id: 1,
            },
            (0..10).map(|o| record(&topic, 0, o)).collect(),
        );
        let mut out = Vec::new();
        ConsumerRecordCodec.encode(&block, &mut out).unwrap();
        for cut in 0..out.len() {
            assert!(
                ConsumerRecordCodec.decode(&out[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = out.clone();
        longer.push(0);
        assert!(ConsumerRecordCodec.decode(&longer).is_err());
        // A huge record count must fail, not allocate.
        assert!(ConsumerRecordCodec
            .decode(&[0, 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
            .is_err());
    }
}

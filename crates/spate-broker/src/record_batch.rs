//! The fixed 61-byte header of a Kafka RecordBatch (magic v2), parsed without copying.
//!
//! The broker stores batches exactly as producers sent them: it only rewrites `baseOffset` and
//! `partitionLeaderEpoch`, which sit before the CRC and are not covered by it. Everything the log
//! and the produce path need (offsets, timestamps, producer id and sequence, transactional and
//! control flags) is read from this header; records themselves are never decoded on the hot path.

use crate::error::{BrokerError, Result};

/// Byte offsets of the v2 header fields.
pub mod layout {
    /// `baseOffset` (int64): the offset of the batch's first record.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength` (int32): the bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch` (int32): set by the broker on append.
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// `magic` (int8): the format version, 2.
    pub const MAGIC: usize = 16;
    /// `crc` (uint32): CRC-32C of everything from `attributes` on.
    pub const CRC: usize = 17;
    /// `attributes` (int16): compression, timestamp type, transactional and control bits.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta` (int32): the last record's offset minus `baseOffset`.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp` (int64): the first record's timestamp.
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp` (int64): the largest timestamp in the batch.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId` (int64): the idempotent or transactional producer, -1 if none.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch` (int16): the producer's epoch.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence` (int32): the first record's sequence number, -1 if none.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordsCount` (int32): how many records follow the header.
    pub const RECORDS_COUNT: usize = 57;
    /// Size of the header; records follow.
    pub const HEADER_LEN: usize = 61;
    /// `baseOffset` + `batchLength`: the part of the header not counted in `batchLength`.
    pub const LOG_OVERHEAD: usize = 12;
}

/// Compression codec, from attribute bits 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Codec 0: records stored as they are.
    None,
    /// Codec 1: gzip.
    Gzip,
    /// Codec 2: Snappy (xerial framing).
    Snappy,
    /// Codec 3: LZ4 frames.
    Lz4,
    /// Codec 4: Zstandard.
    Zstd,
    /// Codec ids 5–7: no Kafka client can read them, so the broker must never store them.
    Unsupported(u8),
}

/// A parsed RecordBatch v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// The offset of the batch's first record (rewritten by the broker on append).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    /// The leader epoch the broker appended the batch in.
    pub partition_leader_epoch: i32,
    /// The record format version; 2 for every batch this broker stores.
    pub magic: i8,
    /// CRC-32C over `attributes` to the batch's end, as the producer computed it.
    pub crc: u32,
    /// Attribute bits: compression (0–2), timestamp type (3), transactional (4), control (5).
    pub attributes: i16,
    /// The last record's offset minus `base_offset`.
    pub last_offset_delta: i32,
    /// The first record's timestamp (ms).
    pub base_timestamp: i64,
    /// The largest record timestamp in the batch (ms), or the append time for `LogAppendTime`.
    pub max_timestamp: i64,
    /// The idempotent or transactional producer's id, -1 for a plain producer.
    pub producer_id: i64,
    /// The producer's epoch, -1 for a plain producer.
    pub producer_epoch: i16,
    /// The first record's sequence number, -1 for a plain producer.
    pub base_sequence: i32,
    /// How many records the batch holds.
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only what the header itself says (length,
    /// magic); use [`validate_crc`] to check the body.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        use layout::*;
        if buf.len() < HEADER_LEN {
            return Err(BrokerError::CorruptBatch(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte batch header",
                buf.len()
            )));
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BrokerError::CorruptBatch(format!(
                "unsupported record batch magic {magic} (only v2 is accepted)"
            )));
        }
        let batch_length = be_i32(buf, BATCH_LENGTH);
        if (batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BrokerError::CorruptBatch(format!(
                "batchLength {batch_length} is smaller than the header"
            )));
        }
        let last_offset_delta = be_i32(buf, LAST_OFFSET_DELTA);
        if last_offset_delta < 0 {
            return Err(BrokerError::CorruptBatch(format!(
                "negative lastOffsetDelta {last_offset_delta}"
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH),
            magic,
            crc: u32::from_be_bytes([buf[CRC], buf[CRC + 1], buf[CRC + 2], buf[CRC + 3]]),
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta,
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            producer_id: be_i64(buf, PRODUCER_ID),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH),
            base_sequence: be_i32(buf, BASE_SEQUENCE),
            records_count: be_i32(buf, RECORDS_COUNT),
        })
    }

    /// Total size of the batch on the wire and on disk.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + layout::LOG_OVERHEAD
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// The compression codec of attribute bits 0–2.
    pub fn compression(&self) -> Compression {
        match self.attributes & 0x07 {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            0 => Compression::None,
            other => Compression::Unsupported(other as u8),
        }
    }

    /// Timestamp type bit: true for LogAppendTime, false for CreateTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    /// Whether a transactional producer wrote the batch (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// Control batches carry transaction markers (commit/abort), not user records.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// True when a producer id is set, i.e. the producer is idempotent or transactional.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Checks the CRC-32C that covers the batch from `attributes` to its end.
pub fn validate_crc(batch: &[u8], header: &BatchHeader) -> Result<()> {
    let end = header.total_len();
    if batch.len() < end {
        return Err(BrokerError::CorruptBatch(format!(
            "batch declares {end} bytes but only {} are present",
            batch.len()
        )));
    }
    let computed = crc32c::crc32c(&batch[layout::ATTRIBUTES..end]);
    if computed != header.crc {
        return Err(BrokerError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Rewrites `baseOffset` in place; the CRC does not cover it, so the batch stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[layout::BASE_OFFSET..layout::BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` in place (not covered by the CRC either).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[layout::PARTITION_LEADER_EPOCH..layout::PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Iterates over the whole batches in a buffer of concatenated batches (a produce request's
/// records, or a segment read). Stops with an error at the first batch that is cut short or
/// does not parse; callers decide whether that means "truncate here" or "reject the request".
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl std::fmt::Debug for BatchIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIter")
            .field("pos", &self.pos)
            .field("len", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<'a> BatchIter<'a> {
    /// Iterates the batches laid out back to back in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }

    /// Byte position of the next batch to be returned.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    /// `(byte position, header, whole batch bytes)`.
    type Item = Result<(usize, BatchHeader, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.pos = self.buf.len();
                return Some(Err(e));
            }
        };
        let len = header.total_len();
        if rest.len() < len {
            self.pos = self.buf.len();
            return Some(Err(BrokerError::CorruptBatch(format!(
                "batch at byte {} declares {len} bytes but only {} remain",
                self.pos,
                rest.len()
            ))));
        }
        let at = self.pos;
        self.pos += len;
        Some(Ok((at, header, &rest[..len])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal valid v2 batch with `n` empty-bodied records (the record bytes are not
    /// parsed by this module, so an opaque body is enough for header tests).
    pub(crate) fn batch(base: i64, n: i32, ts: i64, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; layout::HEADER_LEN];
        b.extend_from_slice(body);
        let len = (b.len() - layout::LOG_OVERHEAD) as i32;
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[27..35].copy_from_slice(&ts.to_be_bytes());
        b[35..43].copy_from_slice(&ts.to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parses_and_validates() {
        let b = batch(0, 3, 1000, b"abc");
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_len(), b.len());
        validate_crc(&b, &h).unwrap();
    }

    #[test]
    fn base_offset_rewrite_keeps_crc() {
        let mut b = batch(0, 1, 5, b"x");
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 42);
        validate_crc(&b, &h).unwrap();
    }

    #[test]
    fn detects_corruption() {
        let mut b = batch(0, 1, 5, b"hello");
        let last = b.len() - 1;
        b[last] ^= 0xff;
        let h = BatchHeader::parse(&b).unwrap();
        assert!(matches!(
            validate_crc(&b, &h),
            Err(BrokerError::CrcMismatch { .. })
        ));
        assert!(BatchHeader::parse(&b[..20]).is_err());
    }

    #[test]
    fn iterates_and_stops_at_torn_tail() {
        let mut buf = batch(0, 2, 1, b"aa");
        buf.extend(batch(2, 1, 2, b"b"));
        let full = buf.len();
        buf.extend(&batch(3, 1, 3, b"ccc")[..30]);
        let mut it = BatchIter::new(&buf);
        assert!(it.next().unwrap().is_ok());
        let (_, h, _) = it.next().unwrap().unwrap();
        assert_eq!(h.base_offset, 2);
        assert_eq!(it.position(), full);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}

//! Records inside a RecordBatch v2, as the cleaner needs them: each record's offset, timestamp,
//! key and whether it has a value, and the bytes to copy when it is kept.
//!
//! Only the fields before the key are decoded into numbers; the key, value and headers are
//! borrowed as they are. A rewritten batch keeps its base offset, its last offset delta (the
//! producer's last sequence depends on it), producer fields, codec and leader epoch, as Kafka's
//! cleaner does; its records keep their offsets and timestamps, so a compacted batch has gaps
//! (`records_count < last_offset_delta + 1`). When the batch's base timestamp is replaced by a
//! delete horizon (KIP-534) each record's timestamp delta is re-encoded so that its absolute
//! timestamp stays the same; otherwise kept records are copied byte for byte.

use bytes::BytesMut;

use super::codec;
use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, BatchHeader, Compression};

/// Attribute bit 6: the batch's base timestamp is the delete horizon of its tombstones and
/// transaction markers (KIP-534).
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

fn corrupt(reason: &str) -> BrokerError {
    BrokerError::CorruptBatch(reason.to_string())
}

pub(crate) use crate::record_scan::read_varlong;

/// Appends a zigzag varint.
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The delete horizon of a batch, if the cleaner set one.
pub fn delete_horizon(h: &BatchHeader) -> Option<i64> {
    (h.attributes & DELETE_HORIZON_FLAG != 0).then_some(h.base_timestamp)
}

/// One record of a batch, borrowed from the decompressed record bytes.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// The record's absolute offset.
    pub offset: i64,
    /// The record's absolute timestamp (ms).
    pub timestamp: i64,
    /// The record's timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The record's key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Whether the record has a value (`false`: a tombstone).
    pub has_value: bool,
    /// The record as stored, length prefix included.
    raw: &'a [u8],
    /// The record's attributes byte.
    attributes: u8,
    /// From the key length to the end of the record (key, value, headers).
    tail: &'a [u8],
    offset_delta: i64,
}

/// Reads a length-prefixed byte field; `None` for length -1.
fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>> {
    let len = read_varlong(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|e| *e <= buf.len())
        .ok_or_else(|| corrupt("record field runs past the record"))?;
    let v = &buf[*pos..end];
    *pos = end;
    Ok(Some(v))
}

/// Parses every record of `records` (a batch's decompressed record bytes).
pub fn parse<'a>(
    records: &'a [u8],
    header: &BatchHeader,
    out: &mut Vec<RecordView<'a>>,
) -> Result<()> {
    out.clear();
    let mut pos = 0usize;
    for _ in 0..header.records_count.max(0) {
        let start = pos;
        let len = read_varlong(records, &mut pos)?;
        let len = usize::try_from(len).map_err(|_| corrupt("negative record length"))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= records.len())
            .ok_or_else(|| corrupt("record runs past the batch"))?;
        let rec = &records[..end];
        let attributes = *rec.get(pos).ok_or_else(|| corrupt("record cut short"))?;
        pos += 1;
        let timestamp_delta = read_varlong(rec, &mut pos)?;
        let offset_delta = read_varlong(rec, &mut pos)?;
        let tail_start = pos;
        let key = read_bytes(rec, &mut pos)?;
        let value_len = read_varlong(rec, &mut pos)?;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(timestamp_delta)
        };
        out.push(RecordView {
            offset: header.base_offset + offset_delta,
            timestamp,
            timestamp_delta,
            key,
            has_value: value_len >= 0,
            raw: &records[start..end],
            attributes,
            tail: &records[tail_start..end],
            offset_delta,
        });
        pos = end;
    }
    Ok(())
}

/// The records payload of a batch: its bytes after the header, decompressed into `scratch`
/// when the batch is compressed (at most `limit` bytes).
pub fn payload<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    let body = batch
        .get(layout::HEADER_LEN..header.total_len())
        .ok_or_else(|| corrupt("batch shorter than its header"))?;
    match header.compression() {
        Compression::None => Ok(body),
        codec => {
            codec::decompress(codec, body, limit, scratch)?;
            Ok(scratch.as_slice())
        }
    }
}

/// The control record type of a control batch (0 = ABORT, 1 = COMMIT), from its first
/// record's key (`version: int16, type: int16`).
pub fn control_type(records: &[RecordView<'_>]) -> Option<i16> {
    let key = records.first()?.key?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]))
}

/// The attribute bits of a codec.
pub fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
        Compression::Unsupported(id) => i16::from(id),
    }
}

/// Reusable buffers for writing rewritten batches.
#[derive(Default)]
pub struct BatchWriter {
    records: Vec<u8>,
    packed: BytesMut,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter").finish_non_exhaustive()
    }
}

impl BatchWriter {
    /// Appends to `out` a copy of the batch `header` holding only `kept` (in order), with the
    /// base timestamp replaced by `delete_horizon` when given. An empty `kept` writes Kafka's
    /// empty batch (header only), kept to preserve a producer's last sequence.
    pub fn write(
        &mut self,
        header: &BatchHeader,
        kept: &[RecordView<'_>],
        delete_horizon: Option<i64>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.write_with_codec(header, kept, delete_horizon, header.compression(), out)
    }

    /// Like [`Self::write`], compressing with `codec` instead of the batch's own codec
    /// (`compression.type` on produce).
    pub fn write_with_codec(
        &mut self,
        header: &BatchHeader,
        kept: &[RecordView<'_>],
        delete_horizon: Option<i64>,
        codec: Compression,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let base_timestamp = delete_horizon.unwrap_or(header.base_timestamp);
        self.records.clear();
        for r in kept {
            if base_timestamp == header.base_timestamp {
                self.records.extend_from_slice(r.raw);
            } else {
                self.reencode(
                    r,
                    r.timestamp_delta + header.base_timestamp - base_timestamp,
                );
            }
        }
        let max_timestamp = if header.is_log_append_time() || kept.is_empty() {
            header.max_timestamp
        } else {
            kept.iter()
                .map(|r| r.timestamp)
                .max()
                .unwrap_or(header.max_timestamp)
        };
        let codec = if kept.is_empty() {
            Compression::None // an empty batch is never compressed
        } else {
            codec
        };
        let mut attributes = (header.attributes & !0x07) | codec_bits(codec);
        if delete_horizon.is_some() {
            attributes |= DELETE_HORIZON_FLAG;
        }
        self.packed.clear();
        let payload: &[u8] = match codec {
            Compression::None => &self.records,
            c => {
                codec::compress(c, &self.records, &mut self.packed)?;
                &self.packed
            }
        };
        let start = out.len();
        let batch_length = i32::try_from(layout::HEADER_LEN - layout::LOG_OVERHEAD + payload.len())
            .map_err(|_| corrupt("rewritten batch exceeds 2 GiB"))?;
        out.extend_from_slice(&header.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]); // CRC, filled below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&header.producer_id.to_be_bytes());
        out.extend_from_slice(&header.producer_epoch.to_be_bytes());
        out.extend_from_slice(&header.base_sequence.to_be_bytes());
        out.extend_from_slice(&(kept.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
        let crc = crc32c::crc32c(&out[start + layout::ATTRIBUTES..]);
        out[start + layout::CRC..start + layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }

    fn reencode(&mut self, r: &RecordView<'_>, timestamp_delta: i64) {
        let mut body = Vec::with_capacity(r.tail.len() + 16);
        body.push(r.attributes);
        write_varlong(&mut body, timestamp_delta);
        write_varlong(&mut body, r.offset_delta);
        body.extend_from_slice(r.tail);
        write_varlong(&mut self.records, body.len() as i64);
        self.records.extend_from_slice(&body);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    /// A batch of `(key, value)` records at offsets `base..`, timestamps `ts + i`.
    pub(crate) fn batch(
        codec: Codec,
        base: i64,
        ts: i64,
        recs: &[(&str, Option<&str>)],
    ) -> Vec<u8> {
        let recs: Vec<Record> = recs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: i as i32 - 1,
                timestamp: ts + i as i64,
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn rewrites_keeping_offsets_timestamps_and_codec() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let b = batch(
                codec,
                100,
                5_000,
                &[("a", Some("1")), ("b", None), ("c", Some("3"))],
            );
            let h = BatchHeader::parse(&b).unwrap();
            let mut scratch = Vec::new();
            let body = payload(&b, &h, 1 << 20, &mut scratch).unwrap();
            let mut recs = Vec::new();
            parse(body, &h, &mut recs).unwrap();
            assert_eq!(recs.len(), 3);
            assert!(!recs[1].has_value);
            let kept: Vec<_> = [recs[1], recs[2]].to_vec();
            for horizon in [None, Some(99_999)] {
                let mut out = Vec::new();
                BatchWriter::default()
                    .write(&h, &kept, horizon, &mut out)
                    .unwrap();
                let nh = BatchHeader::parse(&out).unwrap();
                crate::record_batch::validate_crc(&out, &nh).unwrap();
                assert_eq!((nh.base_offset, nh.last_offset()), (100, 102));
                assert_eq!(nh.records_count, 2);
                assert_eq!(delete_horizon(&nh), horizon);
                let mut bytes = Bytes::from(out);
                let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
                let got: Vec<_> = decoded
                    .records
                    .iter()
                    .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.is_some()))
                    .collect();
                assert_eq!(
                    got,
                    vec![
                        (101, 5_001, Some(Bytes::from_static(b"b")), false),
                        (102, 5_002, Some(Bytes::from_static(b"c")), true)
                    ],
                    "{codec:?} {horizon:?}"
                );
            }
        }
    }
}

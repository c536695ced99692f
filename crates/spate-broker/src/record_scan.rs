//! Reading individual records' offsets and timestamps inside one stored batch, for the rare
//! lookups that need record precision (ListOffsets by timestamp). The produce and fetch paths
//! never look inside batches.
//!
//! Only the fields before the key are parsed — each record's length, timestamp delta and offset
//! delta — and the rest is skipped by the record's length. Compressed batches are decompressed
//! with kafka-protocol's codecs.

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, BatchHeader, Compression};

fn corrupt(reason: &str) -> BrokerError {
    BrokerError::CorruptBatch(reason.to_string())
}

/// Reads a zigzag varint (Kafka's record field encoding) at `*pos`.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| corrupt("record cut short"))?;
        *pos += 1;
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err(corrupt("varint longer than 10 bytes"))
}

/// `(offset, timestamp)` of every record in `records` (the uncompressed record bytes of a batch).
fn scan(records: &[u8], header: &BatchHeader, mut f: impl FnMut(i64, i64) -> bool) -> Result<()> {
    let mut pos = 0usize;
    for _ in 0..header.records_count.max(0) {
        let len = read_varlong(records, &mut pos)?;
        let start = pos;
        let len = usize::try_from(len).map_err(|_| corrupt("negative record length"))?;
        pos += 1; // attributes
        let ts_delta = read_varlong(records, &mut pos)?;
        let offset_delta = read_varlong(records, &mut pos)?;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(ts_delta)
        };
        if !f(header.base_offset + offset_delta, timestamp) {
            return Ok(());
        }
        pos = start
            .checked_add(len)
            .filter(|end| *end <= records.len())
            .ok_or_else(|| corrupt("record runs past the batch"))?;
    }
    Ok(())
}

fn decompress(codec: Compression, body: &[u8]) -> Result<Bytes> {
    let mut input = Bytes::copy_from_slice(body);
    let out = match codec {
        Compression::None => Ok(input),
        Compression::Gzip => Gzip::decompress(&mut input, |b: &mut Bytes| Ok(b.clone())),
        Compression::Snappy => Snappy::decompress(&mut input, |b: &mut Bytes| Ok(b.clone())),
        Compression::Lz4 => Lz4::decompress(&mut input, |b: &mut Bytes| Ok(b.clone())),
        Compression::Zstd => Zstd::decompress(&mut input, |b: &mut Bytes| Ok(b.clone())),
    };
    out.map_err(|e| BrokerError::CorruptBatch(format!("cannot decompress {codec:?} batch: {e}")))
}

/// The first record of `batch` with offset ≥ `min_offset` and timestamp ≥ `timestamp`, as
/// `(offset, timestamp)`.
pub fn first_record_at_or_after(
    batch: &[u8],
    min_offset: i64,
    timestamp: i64,
) -> Result<Option<(i64, i64)>> {
    let header = BatchHeader::parse(batch)?;
    let end = header.total_len().min(batch.len());
    let body = batch
        .get(layout::HEADER_LEN..end)
        .ok_or_else(|| corrupt("batch shorter than its header"))?;
    let records = decompress(header.compression(), body)?;
    let mut found = None;
    scan(&records, &header, |offset, ts| {
        if offset >= min_offset && ts >= timestamp {
            found = Some((offset, ts));
            return false;
        }
        true
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(codec: Codec, timestamps: &[i64]) -> Vec<u8> {
        let recs: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 10 + i as i64,
                sequence: -1 + i as i32,
                timestamp: *ts,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100 * i])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
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
    fn finds_records_by_time_in_every_codec() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let b = batch(codec, &[100, 300, 200, 400]);
            assert_eq!(first_record_at_or_after(&b, 0, 0).unwrap(), Some((10, 100)));
            assert_eq!(
                first_record_at_or_after(&b, 0, 150).unwrap(),
                Some((11, 300))
            );
            assert_eq!(
                first_record_at_or_after(&b, 12, 150).unwrap(),
                Some((12, 200))
            );
            assert_eq!(
                first_record_at_or_after(&b, 0, 350).unwrap(),
                Some((13, 400))
            );
            assert_eq!(first_record_at_or_after(&b, 0, 401).unwrap(), None);
        }
    }

    #[test]
    fn rejects_truncated_records() {
        let mut b = batch(Codec::None, &[1, 2, 3]);
        b.truncate(b.len() - 50);
        // The header still claims the full length: the body is cut inside a record.
        assert!(first_record_at_or_after(&b, 0, 4).is_err());
    }
}

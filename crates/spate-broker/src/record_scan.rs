//! Reading individual records' offsets and timestamps inside one stored batch, for the rare
//! lookups that need record precision (ListOffsets by timestamp). The produce and fetch paths
//! never look inside batches.
//!
//! Records are read with the same streaming, bounded reader that validates produced batches, so
//! a lookup costs a fixed amount of memory whatever the batch expands to.

use crate::error::{BrokerError, Result};
use crate::record_batch::BatchHeader;
use crate::validate::RecordReader;

fn corrupt(reason: &str) -> BrokerError {
    BrokerError::CorruptBatch(reason.to_string())
}

/// Reads a zigzag varint (Kafka's record field encoding) at `*pos` (control records of
/// transaction markers are parsed with it).
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

/// The first record of `batch` with offset ≥ `min_offset` and timestamp ≥ `timestamp`, as
/// `(offset, timestamp)`. A compressed batch is streamed, never expanded past `limit` bytes
/// (see [`crate::validate::uncompressed_limit`]).
pub fn first_record_at_or_after(
    batch: &[u8],
    min_offset: i64,
    timestamp: i64,
    limit: u64,
) -> Result<Option<(i64, i64)>> {
    let header = BatchHeader::parse(batch)?;
    let mut records = RecordReader::open(batch, &header, limit)?;
    while let Some(record) = records.next_record()? {
        let offset = header.base_offset + i64::from(record.offset_delta);
        let ts = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(record.timestamp_delta)
        };
        if offset >= min_offset && ts >= timestamp {
            return Ok(Some((offset, ts)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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

    const L: u64 = 16 << 20;

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
            assert_eq!(
                first_record_at_or_after(&b, 0, 0, L).unwrap(),
                Some((10, 100))
            );
            assert_eq!(
                first_record_at_or_after(&b, 0, 150, L).unwrap(),
                Some((11, 300))
            );
            assert_eq!(
                first_record_at_or_after(&b, 12, 150, L).unwrap(),
                Some((12, 200))
            );
            assert_eq!(
                first_record_at_or_after(&b, 0, 350, L).unwrap(),
                Some((13, 400))
            );
            assert_eq!(first_record_at_or_after(&b, 0, 401, L).unwrap(), None);
        }
    }

    #[test]
    fn rejects_truncated_records() {
        let mut b = batch(Codec::None, &[1, 2, 3]);
        b.truncate(b.len() - 50);
        // The header still claims the full length: the body is cut inside a record.
        assert!(first_record_at_or_after(&b, 0, 4, L).is_err());
    }

    #[test]
    fn lookups_stay_within_the_bound() {
        // Record 3 carries 300 bytes; a 250-byte bound stops the scan before it.
        let b = batch(Codec::Gzip, &[100, 200, 300, 400]);
        let err = first_record_at_or_after(&b, 0, 350, 250).unwrap_err();
        assert!(
            matches!(
                err,
                crate::error::BrokerError::UncompressedTooLarge { limit: 250 }
            ),
            "{err}"
        );
    }
}

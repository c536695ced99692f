//! Transaction markers: the control batches (attributes transactional | control) that end a
//! transaction in each of its partitions. One record whose key is `(version 0, type)` — type 0
//! ABORT, 1 COMMIT — and whose value is `(version 0, coordinator epoch)`, as Kafka's
//! `EndTransactionMarker`. Consumers skip control batches; read_committed consumers use the
//! ABORT markers' ranges (the fetch response's aborted transactions) to drop aborted records.

use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, BatchHeader};
use crate::record_scan::read_varlong;

/// Attribute bits of a marker batch: transactional (0x10) and control (0x20).
const MARKER_ATTRIBUTES: i16 = 0x30;
const TYPE_ABORT: i16 = 0;
const TYPE_COMMIT: i16 = 1;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// The transaction committed: its records become readable to read_committed consumers.
    Commit,
    /// The transaction aborted: read_committed consumers skip its records.
    Abort,
}

/// The record of a marker, after its length varint: attributes, timestamp delta 0, offset
/// delta 0, a 4-byte key, a 6-byte value, no headers (varints zigzag-encoded).
fn marker_record(kind: MarkerKind, coordinator_epoch: i32) -> Vec<u8> {
    let kind = match kind {
        MarkerKind::Abort => TYPE_ABORT,
        MarkerKind::Commit => TYPE_COMMIT,
    };
    let mut r = vec![0u8, 0, 0, 8];
    r.extend_from_slice(&0i16.to_be_bytes());
    r.extend_from_slice(&kind.to_be_bytes());
    r.push(12);
    r.extend_from_slice(&0i16.to_be_bytes());
    r.extend_from_slice(&coordinator_epoch.to_be_bytes());
    r.push(0);
    r
}

/// A complete marker batch (base offset 0; the log assigns the real one).
pub fn build(
    kind: MarkerKind,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let record = marker_record(kind, coordinator_epoch);
    let mut b = vec![0u8; layout::HEADER_LEN];
    // Record length as a zigzag varint: every marker record is 16 bytes, one varint byte.
    b.push((record.len() as u8) << 1);
    b.extend_from_slice(&record);
    let batch_length = (b.len() - layout::LOG_OVERHEAD) as i32;
    b[layout::BATCH_LENGTH..layout::BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    b[layout::MAGIC] = 2;
    b[layout::ATTRIBUTES..layout::ATTRIBUTES + 2].copy_from_slice(&MARKER_ATTRIBUTES.to_be_bytes());
    b[layout::BASE_TIMESTAMP..layout::BASE_TIMESTAMP + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    b[layout::MAX_TIMESTAMP..layout::MAX_TIMESTAMP + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    b[layout::PRODUCER_ID..layout::PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[layout::PRODUCER_EPOCH..layout::PRODUCER_EPOCH + 2]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    b[layout::BASE_SEQUENCE..layout::BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[layout::RECORDS_COUNT..layout::RECORDS_COUNT + 4].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
    b[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The kind of the marker in `batch` (a whole control batch as stored); `None` for a control
/// batch of another type (Kafka has others, e.g. leader change).
pub fn parse(batch: &[u8], header: &BatchHeader) -> Result<Option<MarkerKind>> {
    let corrupt = |r: &str| BrokerError::CorruptBatch(format!("control batch: {r}"));
    if !header.is_control() || header.compression() != crate::record_batch::Compression::None {
        return Err(corrupt("not an uncompressed control batch"));
    }
    let body = batch
        .get(layout::HEADER_LEN..)
        .ok_or_else(|| corrupt("cut short"))?;
    let mut pos = 0;
    let _len = read_varlong(body, &mut pos)?;
    pos += 1; // attributes
    let _ts = read_varlong(body, &mut pos)?;
    let _od = read_varlong(body, &mut pos)?;
    let key_len = read_varlong(body, &mut pos)?;
    if key_len < 4 {
        return Err(corrupt("key shorter than 4 bytes"));
    }
    let key = body
        .get(pos..pos + 4)
        .ok_or_else(|| corrupt("key cut short"))?;
    Ok(match i16::from_be_bytes([key[2], key[3]]) {
        TYPE_ABORT => Some(MarkerKind::Abort),
        TYPE_COMMIT => Some(MarkerKind::Commit),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::validate_crc;

    #[test]
    fn markers_round_trip_and_carry_the_producer() {
        for kind in [MarkerKind::Commit, MarkerKind::Abort] {
            let b = build(kind, 42, 3, 0, 1_000);
            let h = BatchHeader::parse(&b).unwrap();
            validate_crc(&b, &h).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.records_count),
                (42, 3, 1)
            );
            assert_eq!(h.total_len(), b.len());
            assert_eq!(parse(&b, &h).unwrap(), Some(kind));
        }
    }

    #[test]
    fn rejects_cut_batches() {
        let b = build(MarkerKind::Commit, 1, 0, 0, 0);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(parse(&b[..layout::HEADER_LEN + 3], &h).is_err());
    }
}

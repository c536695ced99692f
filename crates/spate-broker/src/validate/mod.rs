//! Record batch validation on produce, as Kafka's log validator does it: before a batch is
//! acknowledged, its records are read (decompressed as a stream, within a bound derived from
//! `max.message.bytes`) and checked, so that the broker never stores a batch its consumers
//! cannot read. The log itself only ever looks at batch headers.
//!
//! What is checked, and the error a producer gets:
//! - the codec is one Kafka defines, and zstd only from Produce v7 (UNSUPPORTED_COMPRESSION_TYPE);
//! - the records decompress, and every record's length, varints, key, value and headers fit
//!   together, and the batch holds exactly `recordsCount` records (CORRUPT_MESSAGE);
//! - the uncompressed records stay within the bound (MESSAGE_TOO_LARGE);
//! - offset deltas run 0, 1, 2, … and end at `lastOffsetDelta`; header keys are not null;
//!   a compacted topic's records have keys (INVALID_RECORD);
//! - producers use CreateTime and record timestamps do not overflow (INVALID_TIMESTAMP).
//!
//! A batch whose `maxTimestamp` disagrees with its records is corrected in place (and its CRC
//! recomputed), as Kafka does, because the time index is built from that field.

mod decompress;
mod records;

pub use decompress::{records_reader, uncompressed_limit, EXPANSION_FACTOR};
pub use records::{RecordFields, RecordReader};

use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, BatchHeader, Compression};
use crate::storage::{CleanupPolicy, LogConfig};

/// What validation depends on besides the batch itself.
#[derive(Debug, Clone, Copy)]
pub struct ProduceRules {
    /// The topic's `max.message.bytes`.
    pub max_message_bytes: usize,
    /// True when the topic's `cleanup.policy` includes `compact`.
    pub compacted: bool,
    /// The Produce request version (zstd needs v7).
    pub produce_version: i16,
}

impl ProduceRules {
    /// The rules for a partition with `config`, for a Produce request of `produce_version`.
    pub fn new(config: &LogConfig, produce_version: i16) -> Self {
        ProduceRules {
            max_message_bytes: config.max_message_bytes,
            compacted: config.cleanup_policy != CleanupPolicy::Delete,
            produce_version,
        }
    }
}

/// First Produce version whose clients can read zstd batches.
const ZSTD_MIN_PRODUCE_VERSION: i16 = 7;

/// Checks every record of a produced `batch` (whole, header included; its CRC already checked)
/// and fixes its `maxTimestamp` if the producer got it wrong.
pub fn validate_produce_batch(batch: &mut [u8], rules: &ProduceRules) -> Result<()> {
    if batch.len() > rules.max_message_bytes {
        // Checked again on append; here it keeps an oversized batch from being decompressed.
        return Err(BrokerError::RecordBatchTooLarge {
            size: batch.len(),
            max: rules.max_message_bytes,
        });
    }
    let header = BatchHeader::parse(batch)?;
    // The CRC is checked here too: `maxTimestamp` may be rewritten below, and re-signing a
    // corrupt batch would hide the corruption.
    crate::record_batch::validate_crc(batch, &header)?;
    check_header(&header, rules)?;
    let limit = uncompressed_limit(rules.max_message_bytes);
    let mut reader = RecordReader::open(batch, &header, limit)?;
    let mut max_timestamp = None::<i64>;
    while let Some(record) = reader.next_record()? {
        check_record(&header, &record, rules)?;
        let ts = header
            .base_timestamp
            .checked_add(record.timestamp_delta)
            .ok_or_else(|| {
                BrokerError::InvalidTimestamp(format!(
                    "record {}: base timestamp {} plus delta {} overflows",
                    record.index, header.base_timestamp, record.timestamp_delta
                ))
            })?;
        max_timestamp = Some(max_timestamp.map_or(ts, |m| m.max(ts)));
    }
    reader.expect_end()?;
    drop(reader);
    if let Some(max) = max_timestamp.filter(|m| *m != header.max_timestamp) {
        set_max_timestamp(&mut batch[..header.total_len()], max);
    }
    Ok(())
}

fn check_header(header: &BatchHeader, rules: &ProduceRules) -> Result<()> {
    match header.compression() {
        Compression::Zstd if rules.produce_version < ZSTD_MIN_PRODUCE_VERSION => {
            return Err(BrokerError::UnsupportedCompression(format!(
                "zstd batches need Produce v{ZSTD_MIN_PRODUCE_VERSION} or later, got v{}",
                rules.produce_version
            )))
        }
        Compression::Unsupported(id) => {
            return Err(BrokerError::UnsupportedCompression(format!(
                "compression codec id {id} is not one Kafka defines"
            )))
        }
        _ => {}
    }
    if header.records_count <= 0 {
        return Err(BrokerError::InvalidRecord(format!(
            "a produced batch must hold at least one record, this one declares {}",
            header.records_count
        )));
    }
    if header.records_count != header.last_offset_delta.saturating_add(1) {
        return Err(BrokerError::InvalidRecord(format!(
            "record count {} does not match lastOffsetDelta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    if header.is_log_append_time() {
        return Err(BrokerError::InvalidTimestamp(
            "producers may not set the LogAppendTime timestamp type".into(),
        ));
    }
    Ok(())
}

fn check_record(header: &BatchHeader, record: &RecordFields, rules: &ProduceRules) -> Result<()> {
    if record.offset_delta != record.index {
        return Err(BrokerError::InvalidRecord(format!(
            "record {} has offset delta {}, expected {} (offsets in a batch are consecutive)",
            record.index, record.offset_delta, record.index
        )));
    }
    if rules.compacted && record.null_key && !header.is_control() {
        // Kafka names the record in the Produce response's record errors (v8+).
        return Err(BrokerError::InvalidRecords {
            reason: format!(
                "record {}: compacted topic cannot accept message without key",
                record.index
            ),
            record_indexes: vec![record.index],
        });
    }
    Ok(())
}

/// Rewrites `maxTimestamp` and the CRC that covers it.
fn set_max_timestamp(batch: &mut [u8], max: i64) {
    batch[layout::MAX_TIMESTAMP..layout::MAX_TIMESTAMP + 8].copy_from_slice(&max.to_be_bytes());
    let crc = crc32c::crc32c(&batch[layout::ATTRIBUTES..]);
    batch[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests;

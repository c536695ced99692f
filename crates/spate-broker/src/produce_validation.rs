//! What a topic's configs demand of a produced batch beyond its header, applied before the
//! append: a compacted topic accepts only records with keys (Kafka answers INVALID_RECORD with
//! the index of every keyless record), and `compression.type` other than `producer` recompresses
//! the batch with the topic's codec (`uncompressed` stores it uncompressed), as Kafka's broker
//! does. Batches are decoded only when one of these applies; the common case stays zero-copy.

use crate::cleaner::records::{self, BatchWriter, RecordView};
use crate::error::{BrokerError, Result};
use crate::record_batch::{BatchHeader, Compression};
use crate::storage::LogConfig;

/// Upper bound on a produced batch's decompressed size while validating it.
const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// What to store instead of the batch as sent.
#[derive(Debug)]
pub enum Validated {
    /// Store the producer's bytes.
    AsSent,
    /// Store these bytes (the batch recompressed).
    Rewritten(Vec<u8>),
}

/// Applies the topic's record-level rules to `batch` (whose header is `h`).
pub fn validate(
    batch: &[u8],
    h: &BatchHeader,
    config: &LogConfig,
    partition: &str,
) -> Result<Validated> {
    let recompress = config
        .compression_type
        .filter(|target| *target != h.compression() && h.records_count > 0);
    if !config.compact() && recompress.is_none() {
        return Ok(Validated::AsSent);
    }
    let mut scratch = Vec::new();
    let payload = records::payload(batch, h, MAX_DECOMPRESSED_BYTES, &mut scratch)?;
    let mut views: Vec<RecordView<'_>> = Vec::new();
    records::parse(payload, h, &mut views)?;
    if config.compact() {
        let keyless: Vec<i32> = views
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(i, _)| i as i32)
            .collect();
        if !keyless.is_empty() {
            return Err(BrokerError::InvalidRecords {
                reason: format!(
                    "Compacted topic cannot accept message without key in topic partition {partition}."
                ),
                record_indexes: keyless,
            });
        }
    }
    let Some(codec) = recompress else {
        return Ok(Validated::AsSent);
    };
    let mut out = Vec::with_capacity(batch.len());
    BatchWriter::default().write_with_codec(h, &views, None, codec, &mut out)?;
    Ok(Validated::Rewritten(out))
}

/// Parses a `compression.type` value: `None` for `producer` (keep the producer's codec).
pub fn compression_type(value: &str) -> Option<Compression> {
    match value {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

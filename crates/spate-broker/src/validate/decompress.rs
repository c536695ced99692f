//! The broker's one way to read the records inside a (possibly compressed) batch: a streaming
//! decoder per codec behind a byte budget.
//!
//! Every place that looks inside stored or produced batches (produce validation, ListOffsets by
//! timestamp, and later compaction) goes through [`records_reader`], so no request can make the
//! broker hold a whole decompressed batch: decoders stream into a small buffer, and reading
//! fails once the output passes [`uncompressed_limit`]. Without the budget a 254 KiB gzip batch
//! of zeros expands to 254 MiB, and a 1 MiB one to about 1 GiB.

use std::io::{self, Read};

use crate::error::{BrokerError, Result};
use crate::record_batch::Compression;

/// How far a batch may expand, as a multiple of `max.message.bytes`. Producers size batches by
/// their uncompressed bytes (librdkafka's `batch.size`, the Java client's `batch.size`), which
/// stay at or below about `max.message.bytes`; 16 leaves room for raised producer limits
/// without letting one request cost the broker unbounded CPU.
pub const EXPANSION_FACTOR: u64 = 16;

/// The floor of the bound, so topics with a tiny `max.message.bytes` still take ordinary
/// compressed batches.
pub(crate) const MIN_UNCOMPRESSED_LIMIT: u64 = 16 * 1024 * 1024;

/// zstd frames may ask for a window of up to 2^27 bytes (128 MiB) that the decoder allocates
/// up front; 2^23 (8 MiB) covers what Kafka clients write at every level for batches this size.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The most uncompressed record bytes one batch may expand to.
pub fn uncompressed_limit(max_message_bytes: usize) -> u64 {
    (max_message_bytes as u64)
        .saturating_mul(EXPANSION_FACTOR)
        .max(MIN_UNCOMPRESSED_LIMIT)
}

/// A reader of the uncompressed records of a batch whose record section is `body`. Reads fail
/// with [`budget_error`]'s marker once more than `limit` bytes come out.
pub fn records_reader<'a>(
    codec: Compression,
    body: &'a [u8],
    limit: u64,
) -> Result<Box<dyn Read + 'a>> {
    let inner: Box<dyn Read + 'a> = match codec {
        Compression::None => Box::new(body),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Compression::Snappy => Box::new(SnappyReader::new(body, limit)),
        Compression::Lz4 => Box::new(
            lz4::Decoder::new(body).map_err(|e| decode_error(codec, &e.to_string()))?,
        ),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(body).map_err(|e| decode_error(codec, &e.to_string()))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| decode_error(codec, &e.to_string()))?;
            Box::new(decoder)
        }
        Compression::Unsupported(id) => {
            return Err(BrokerError::UnsupportedCompression(format!(
                "compression codec id {id} is not one Kafka defines (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)"
            )))
        }
    };
    Ok(Box::new(Budget {
        inner,
        left: limit,
        limit,
    }))
}

/// Marks an I/O error raised because the output passed the budget.
#[derive(Debug)]
struct OverBudget(u64);

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "records expand past {} bytes", self.0)
    }
}

impl std::error::Error for OverBudget {}

/// Turns an error from a [`records_reader`] into the broker error it stands for: the budget
/// ([`BrokerError::UncompressedTooLarge`]), a premature end, or a codec failure (both corrupt).
pub(crate) fn budget_error(codec: Compression, e: &io::Error) -> BrokerError {
    if let Some(OverBudget(limit)) = e.get_ref().and_then(|inner| inner.downcast_ref()) {
        return BrokerError::UncompressedTooLarge { limit: *limit };
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return BrokerError::CorruptBatch("records end before the batch's record count".into());
    }
    decode_error(codec, &e.to_string())
}

fn decode_error(codec: Compression, reason: &str) -> BrokerError {
    BrokerError::CorruptBatch(format!("cannot decompress {codec:?} records: {reason}"))
}

/// Counts bytes out of a decoder and fails past the limit.
struct Budget<'a> {
    inner: Box<dyn Read + 'a>,
    left: u64,
    limit: u64,
}

impl Read for Budget<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte past the budget so that "exactly at the limit" and "over" differ.
        let want = buf
            .len()
            .min(usize::try_from(self.left + 1).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::other(OverBudget(self.limit)));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Snappy as Kafka clients write it: the Java client's xerial framing (a magic header, then
/// length-prefixed raw blocks of at most 32 KiB) or, from librdkafka, one raw block. Each raw
/// block states its uncompressed length up front, which is checked against the budget before
/// anything is allocated.
struct SnappyReader<'a> {
    input: &'a [u8],
    framed: bool,
    started: bool,
    limit: u64,
    block: Vec<u8>,
    at: usize,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic, then the framing's version and compatible-version words.
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], limit: u64) -> Self {
        let framed = input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC);
        SnappyReader {
            input: if framed {
                &input[XERIAL_HEADER_LEN..]
            } else {
                input
            },
            framed,
            started: false,
            limit,
            block: Vec::new(),
            at: 0,
        }
    }

    /// Decodes the next raw block into `self.block`; false at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        let raw = if self.framed {
            if self.input.is_empty() {
                return Ok(false);
            }
            let (len, rest) = self
                .input
                .split_first_chunk::<4>()
                .ok_or_else(|| io::Error::other("snappy block length cut short"))?;
            let len = u32::from_be_bytes(*len) as usize;
            let block = rest
                .get(..len)
                .ok_or_else(|| io::Error::other("snappy block runs past the batch"))?;
            self.input = &rest[len..];
            block
        } else {
            if self.started {
                return Ok(false);
            }
            self.input
        };
        self.started = true;
        let len = snap::raw::decompress_len(raw).map_err(io::Error::other)?;
        if len as u64 > self.limit {
            return Err(io::Error::other(OverBudget(self.limit)));
        }
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut self.block)
            .map_err(io::Error::other)?;
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

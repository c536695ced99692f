//! Decompressing and recompressing batch bodies for the cleaner.
//!
//! Decompression is bounded: a batch that was small on the wire can expand without limit (a
//! "zip bomb"), so every codec decodes through a reader capped at `limit` bytes and fails past
//! it; the cleaner then keeps that batch as it is instead of cleaning inside it. Compression
//! uses kafka-protocol's encoders, which write exactly the framings Kafka clients read (xerial
//! snappy, LZ4 frames, gzip, zstd).

use std::io::Read;

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::error::{BrokerError, Result};
use crate::record_batch::Compression;

/// The xerial framing header Kafka's snappy batches start with.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

fn too_large(codec: Compression, limit: usize) -> BrokerError {
    BrokerError::CorruptBatch(format!(
        "{codec:?} batch decompresses to more than {limit} bytes"
    ))
}

fn failed(codec: Compression, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::CorruptBatch(format!("cannot decompress {codec:?} batch: {e}"))
}

/// Reads all of `reader` into `out`, failing past `limit` bytes.
fn read_capped(
    codec: Compression,
    reader: impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    let mut capped = reader.take(limit as u64 + 1);
    capped.read_to_end(out).map_err(|e| failed(codec, e))?;
    if out.len() > limit {
        return Err(too_large(codec, limit));
    }
    Ok(())
}

/// Decompresses a batch body into `out` (replacing its contents), at most `limit` bytes.
pub fn decompress(codec: Compression, body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    match codec {
        Compression::None => {
            if body.len() > limit {
                return Err(too_large(codec, limit));
            }
            out.clear();
            out.extend_from_slice(body);
            Ok(())
        }
        Compression::Gzip => read_capped(codec, flate2::read::GzDecoder::new(body), limit, out),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| failed(codec, e))?;
            read_capped(codec, decoder, limit, out)
        }
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(body).map_err(|e| failed(codec, e))?;
            read_capped(codec, decoder, limit, out)
        }
        Compression::Snappy => snappy(body, limit, out),
        Compression::Unsupported(id) => Err(BrokerError::CorruptBatch(format!(
            "compression codec {id} is not supported"
        ))),
    }
}

/// Snappy in Kafka's xerial framing (blocks prefixed by their compressed length), or raw snappy
/// when the framing header is absent, as Kafka's reader accepts both. Each block declares its
/// decompressed length up front, so the bound is checked before allocating.
fn snappy(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    let codec = Compression::Snappy;
    out.clear();
    let decode_block = |block: &[u8], out: &mut Vec<u8>| -> Result<()> {
        let n = snap::raw::decompress_len(block).map_err(|e| failed(codec, e))?;
        if out.len().saturating_add(n) > limit {
            return Err(too_large(codec, limit));
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| failed(codec, e))?;
        Ok(())
    };
    let Some(mut rest) = body.strip_prefix(&XERIAL_MAGIC[..]) else {
        return decode_block(body, out);
    };
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(failed(codec, "block length cut short"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| failed(codec, "block cut short"))?;
        decode_block(block, out)?;
        rest = &tail[len..];
    }
    Ok(())
}

/// Compresses `records` with `codec`, appending to `out`.
pub fn compress(codec: Compression, records: &[u8], out: &mut BytesMut) -> Result<()> {
    // Each codec calls back for the uncompressed bytes; the callback's error type is the
    // codec library's, inferred here.
    macro_rules! with {
        ($codec:ty) => {
            <$codec>::compress(out, |buf: &mut BytesMut| {
                buf.extend_from_slice(records);
                Ok(())
            })
        };
    }
    let res = match codec {
        Compression::None => {
            out.extend_from_slice(records);
            return Ok(());
        }
        Compression::Gzip => with!(Gzip),
        Compression::Snappy => with!(Snappy),
        Compression::Lz4 => with!(Lz4),
        Compression::Zstd => with!(Zstd),
        Compression::Unsupported(id) => {
            return Err(BrokerError::CorruptBatch(format!(
                "compression codec {id} is not supported"
            )))
        }
    };
    res.map_err(|e| BrokerError::CorruptBatch(format!("cannot compress {codec:?} batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_codec_and_enforces_the_bound() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_be_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut packed = BytesMut::new();
            compress(codec, &data, &mut packed).unwrap();
            let mut out = Vec::new();
            decompress(codec, &packed, data.len(), &mut out).unwrap();
            assert_eq!(out, data, "{codec:?}");
            let err = decompress(codec, &packed, data.len() - 1, &mut out).unwrap_err();
            assert!(err.to_string().contains("more than"), "{codec:?}: {err}");
        }
    }
}

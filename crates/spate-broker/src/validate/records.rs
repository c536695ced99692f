//! A streaming reader of the records of one v2 batch: each record's length, timestamp and
//! offset deltas, key, value and headers, checked for structure (varint widths, lengths that fit
//! the record, a record's fields that add up to its declared length) while keys, values and
//! header bodies are skipped rather than kept. Memory use is a fixed buffer whatever the batch
//! holds, so it runs on untrusted and decompressed input alike.

use std::io::{self, BufRead, BufReader, Read};

use crate::error::{BrokerError, Result};
use crate::record_batch::{layout, BatchHeader, Compression};

use super::decompress::{budget_error, records_reader};

/// What the broker needs from one record; the payload itself is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFields {
    /// Index of the record in its batch.
    pub index: i32,
    /// The record's timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The record's offset minus the batch's base offset.
    pub offset_delta: i32,
    /// True when the key is null (length -1).
    pub null_key: bool,
}

/// Reads the records of one batch in order.
pub struct RecordReader<'a> {
    input: BufReader<Box<dyn Read + 'a>>,
    codec: Compression,
    /// Bytes read so far from the uncompressed record stream.
    pos: u64,
    next_index: i32,
    count: i32,
}

impl std::fmt::Debug for RecordReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("codec", &self.codec)
            .field("pos", &self.pos)
            .field("next_index", &self.next_index)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

fn corrupt(reason: String) -> BrokerError {
    BrokerError::CorruptBatch(reason)
}

impl<'a> RecordReader<'a> {
    /// Opens the records of `batch` (whole, header included), expanding at most `limit` bytes.
    pub fn open(batch: &'a [u8], header: &BatchHeader, limit: u64) -> Result<Self> {
        let end = header.total_len().min(batch.len());
        let body = batch
            .get(layout::HEADER_LEN..end)
            .ok_or_else(|| corrupt("batch shorter than its header".into()))?;
        let codec = header.compression();
        if header.records_count < 0 {
            return Err(corrupt(format!(
                "negative record count {}",
                header.records_count
            )));
        }
        Ok(RecordReader {
            input: BufReader::with_capacity(8 * 1024, records_reader(codec, body, limit)?),
            codec,
            pos: 0,
            next_index: 0,
            count: header.records_count,
        })
    }

    fn io(&self, e: io::Error) -> BrokerError {
        budget_error(self.codec, &e)
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        match self.input.read_exact(&mut b) {
            Ok(()) => {
                self.pos += 1;
                Ok(b[0])
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(corrupt(format!(
                "record {} is cut short (the records end after {} bytes)",
                self.next_index, self.pos
            ))),
            Err(e) => Err(self.io(e)),
        }
    }

    /// A zigzag varint of at most `max_bytes` bytes (5 for Kafka's varint, 10 for varlong).
    fn zigzag(&mut self, max_bytes: u32, field: &str) -> Result<i64> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(corrupt(format!(
            "record {}: {field} is a varint longer than {max_bytes} bytes",
            self.next_index
        )))
    }

    fn varint(&mut self, field: &str) -> Result<i32> {
        let v = self.zigzag(5, field)?;
        i32::try_from(v).map_err(|_| {
            corrupt(format!(
                "record {}: {field} {v} does not fit a 32-bit varint",
                self.next_index
            ))
        })
    }

    /// Skips `n` bytes of a field that must end within the record (`record_end`).
    fn skip(&mut self, n: i32, record_end: u64, field: &str) -> Result<()> {
        let n = n as u64;
        if self.pos + n > record_end {
            return Err(corrupt(format!(
                "record {}: {field} of {n} bytes runs past the record's declared length",
                self.next_index
            )));
        }
        let copied =
            io::copy(&mut (&mut self.input).take(n), &mut io::sink()).map_err(|e| self.io(e))?;
        self.pos += copied;
        if copied < n {
            return Err(corrupt(format!(
                "record {}: {field} is cut short ({copied} of {n} bytes)",
                self.next_index
            )));
        }
        Ok(())
    }

    /// A length field that may be -1 (null) or a byte count.
    fn nullable_len(&mut self, field: &str) -> Result<i32> {
        let len = self.varint(field)?;
        if len < -1 {
            return Err(corrupt(format!(
                "record {}: {field} has invalid length {len}",
                self.next_index
            )));
        }
        Ok(len)
    }

    /// The next record, or `None` after the batch's declared count.
    pub fn next_record(&mut self) -> Result<Option<RecordFields>> {
        if self.next_index >= self.count {
            return Ok(None);
        }
        let length = self.varint("length")?;
        if length < 0 {
            return Err(corrupt(format!(
                "record {} has negative length {length}",
                self.next_index
            )));
        }
        let end = self.pos + length as u64;
        let _attributes = self.byte()?;
        let timestamp_delta = self.zigzag(10, "timestamp delta")?;
        let offset_delta = self.varint("offset delta")?;
        let key_len = self.nullable_len("key")?;
        self.skip(key_len.max(0), end, "key")?;
        let value_len = self.nullable_len("value")?;
        self.skip(value_len.max(0), end, "value")?;
        self.headers(end)?;
        if self.pos != end {
            return Err(corrupt(format!(
                "record {} declares {length} bytes but its fields take {}",
                self.next_index,
                length as u64 - (end - self.pos)
            )));
        }
        let fields = RecordFields {
            index: self.next_index,
            timestamp_delta,
            offset_delta,
            null_key: key_len < 0,
        };
        self.next_index += 1;
        Ok(Some(fields))
    }

    fn headers(&mut self, record_end: u64) -> Result<()> {
        let count = self.varint("header count")?;
        if count < 0 {
            return Err(corrupt(format!(
                "record {} has invalid header count {count}",
                self.next_index
            )));
        }
        for _ in 0..count {
            let key_len = self.varint("header key length")?;
            if key_len < 0 {
                return Err(BrokerError::InvalidRecord(format!(
                    "record {} has a header with a null key",
                    self.next_index
                )));
            }
            self.skip(key_len, record_end, "header key")?;
            let value_len = self.nullable_len("header value")?;
            self.skip(value_len.max(0), record_end, "header value")?;
            // Every header takes at least two bytes, so a count past the record's length
            // ends here rather than after `count` iterations.
            if self.pos > record_end {
                break;
            }
        }
        Ok(())
    }

    /// Fails when bytes remain after the declared records (a wrong record count).
    pub fn expect_end(&mut self) -> Result<()> {
        let rest = self
            .input
            .fill_buf()
            .map_err(|e| budget_error(self.codec, &e))?;
        if !rest.is_empty() {
            return Err(corrupt(format!(
                "bytes remain after the declared {} records (wrong record count)",
                self.count
            )));
        }
        Ok(())
    }
}

//! Segment files and record framing: how bytes on disk become records and back.
//!
//! ```text
//! segment file  log-<sequence, 20 digits>.wal
//!   header      8  magic b"SPATEWAL"
//!               4  format version, u32 LE (currently 1)
//!               4  reserved, zero
//!   records     4  payload length n, u32 LE
//!               4  CRC-32C over (time bytes ++ payload), u32 LE
//!               8  record time in ms, i64 LE
//!               n  payload
//! ```
//!
//! The CRC covers the time as well as the payload, so a torn or bit-flipped record is detected
//! whichever part was damaged. The length is outside the CRC (it must be read first); a damaged
//! length shows up as a CRC mismatch or as a record running past the end of the file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Result, StreamingError};

pub(crate) const MAGIC: &[u8; 8] = b"SPATEWAL";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
pub(crate) const RECORD_HEADER_LEN: u64 = 16;

/// File name of segment `seq`. Zero-padded so that a directory listing sorts in log order.
pub(crate) fn segment_file_name(seq: u64) -> String {
    format!("log-{seq:020}.wal")
}

/// Parses a segment file name back to its sequence number.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("log-")?
        .strip_suffix(".wal")?
        .parse()
        .ok()
}

pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

fn record_crc(time_ms: i64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&time_ms.to_le_bytes()), payload)
}

/// The header of one record frame: the payload's length and CRC and the record's time. The
/// payload follows it on disk; callers write the two without copying the payload into a frame
/// (a receiver block is megabytes, and a transient copy of that size is what made glibc keep
/// freed blocks in its heap instead of returning them).
pub(crate) fn encode_record_header(
    time_ms: i64,
    payload: &[u8],
) -> Result<[u8; RECORD_HEADER_LEN as usize]> {
    let len = u32::try_from(payload.len()).map_err(|_| StreamingError::InvalidConfig {
        name: "write-ahead log record size".into(),
        value: payload.len().to_string(),
        reason: "a record payload must be smaller than 4 GiB".into(),
    })?;
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&record_crc(time_ms, payload).to_le_bytes());
    h[8..16].copy_from_slice(&time_ms.to_le_bytes());
    Ok(h)
}

/// Writes a frame (header, then payload) with as few system calls as the kernel allows.
pub(crate) fn write_frame(
    mut out: impl std::io::Write,
    header: &[u8],
    payload: &[u8],
) -> std::io::Result<()> {
    let mut bufs = [
        std::io::IoSlice::new(header),
        std::io::IoSlice::new(payload),
    ];
    let mut slices: &mut [std::io::IoSlice<'_>] = &mut bufs;
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write a whole write-ahead log record",
                ))
            }
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A record header as read from disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordHeader {
    pub len: u32,
    pub crc: u32,
    pub time_ms: i64,
}

pub(crate) fn decode_record_header(h: &[u8; RECORD_HEADER_LEN as usize]) -> RecordHeader {
    let mut a = [0u8; 4];
    a.copy_from_slice(&h[0..4]);
    let len = u32::from_le_bytes(a);
    a.copy_from_slice(&h[4..8]);
    let crc = u32::from_le_bytes(a);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[8..16]);
    RecordHeader {
        len,
        crc,
        time_ms: i64::from_le_bytes(b),
    }
}

/// Checks a payload against its header's CRC.
pub(crate) fn crc_matches(header: &RecordHeader, payload: &[u8]) -> bool {
    record_crc(header.time_ms, payload) == header.crc
}

/// One valid record found by a scan.
#[derive(Debug, Clone)]
pub(crate) struct ScannedRecord {
    pub offset: u64,
    pub time_ms: i64,
    /// The payload, when the scan verified CRCs (otherwise empty).
    pub payload: Vec<u8>,
    pub len: u32,
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone)]
pub(crate) struct TornTail {
    pub offset: u64,
    pub reason: String,
}

/// What scanning one segment found.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub records: Vec<ScannedRecord>,
    /// End of the last valid record (where appends would continue).
    pub valid_end: u64,
    pub file_len: u64,
    /// Set when the file ends in an incomplete or damaged record (a torn write).
    pub torn: Option<TornTail>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StreamingError + '_ {
    move |source| StreamingError::WalIo {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StreamingError {
    StreamingError::WalCorrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Reads a segment file from the start.
///
/// With `verify`, payloads are read and CRC-checked (and returned); otherwise only headers are
/// read (cheap: used to index record times on open). A damaged record is a *torn tail* — reported
/// in [`SegmentScan::torn`], not an error — when nothing valid can follow it: it runs past the end
/// of the file, the file ends inside its header, or (with `verify`) its CRC fails and it is the
/// last thing in the file or everything after it is zero bytes (unwritten pages after a crash).
/// A bad CRC with data after it is corruption, an error: silently dropping acknowledged records
/// that follow would be data loss.
///
/// `limit` caps how much of the file is considered: the active segment is scanned only up to the
/// last completely appended record, so a concurrent append in progress is not mistaken for a tear.
pub(crate) fn scan_segment(path: &Path, verify: bool, limit: Option<u64>) -> Result<SegmentScan> {
    let file = File::open(path).map_err(io_err(path))?;
    let actual_len = file.metadata().map_err(io_err(path))?.len();
    let file_len = limit.map_or(actual_len, |l| l.min(actual_len));
    let mut reader = BufReader::with_capacity(64 * 1024, file);

    if file_len < SEGMENT_HEADER_LEN {
        return Ok(SegmentScan {
            records: Vec::new(),
            valid_end: 0,
            file_len,
            torn: Some(TornTail {
                offset: 0,
                reason: format!("segment header incomplete ({file_len} bytes)"),
            }),
        });
    }
    check_segment_header(&mut reader, path)?;

    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    let mut torn_tail = None;
    while pos < file_len {
        match scan_record(&mut reader, path, pos, file_len, verify)? {
            Scanned::Record(record) => {
                pos = record.offset + RECORD_HEADER_LEN + u64::from(record.len);
                records.push(record);
            }
            Scanned::Torn(tail) => {
                torn_tail = Some(tail);
                break;
            }
        }
    }
    let valid_end = torn_tail.as_ref().map_or(pos, |t| t.offset);
    Ok(SegmentScan {
        records,
        valid_end,
        file_len,
        torn: torn_tail,
    })
}

/// Reads the segment header: the magic, and a format version this build can read.
fn check_segment_header(reader: &mut BufReader<File>, path: &Path) -> Result<()> {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    reader.read_exact(&mut header).map_err(io_err(path))?;
    if &header[..8] != MAGIC {
        return Err(corrupt(
            path,
            0,
            "bad magic, not a spate write-ahead log segment",
        ));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&header[8..12]);
    let version = u32::from_le_bytes(v);
    if version > FORMAT_VERSION {
        return Err(corrupt(
            path,
            0,
            format!(
                "segment format version {version} is newer than the supported {FORMAT_VERSION}"
            ),
        ));
    }
    Ok(())
}

/// What reading the record at one position found.
enum Scanned {
    Record(ScannedRecord),
    Torn(TornTail),
}

/// Reads the record at `pos` (the reader is positioned there): its header, and its payload
/// with `verify` (CRC-checked) or a skip past it otherwise. See [`scan_segment`] for when a
/// damaged record is a torn tail and when it is corruption.
fn scan_record(
    reader: &mut BufReader<File>,
    path: &Path,
    pos: u64,
    file_len: u64,
    verify: bool,
) -> Result<Scanned> {
    let torn = |reason: String| {
        Ok(Scanned::Torn(TornTail {
            offset: pos,
            reason,
        }))
    };
    if file_len - pos < RECORD_HEADER_LEN {
        return torn(format!(
            "record header cut short at end of file ({} of {RECORD_HEADER_LEN} bytes)",
            file_len - pos
        ));
    }
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    reader.read_exact(&mut h).map_err(io_err(path))?;
    let rh = decode_record_header(&h);
    let end = pos + RECORD_HEADER_LEN + u64::from(rh.len);
    if end > file_len {
        return torn(format!(
            "record of {} bytes runs past the end of the file ({file_len} bytes)",
            rh.len
        ));
    }
    let mut payload = Vec::new();
    if verify {
        payload = vec![0u8; rh.len as usize];
        reader.read_exact(&mut payload).map_err(io_err(path))?;
        if !crc_matches(&rh, &payload) {
            if end == file_len || rest_is_zero(reader, path, file_len - end)? {
                return torn("CRC-32C mismatch in the last record".into());
            }
            return Err(corrupt(
                path,
                pos,
                "CRC-32C mismatch with valid-looking data after it",
            ));
        }
    } else {
        reader
            .seek_relative(i64::from(rh.len))
            .map_err(io_err(path))?;
    }
    Ok(Scanned::Record(ScannedRecord {
        offset: pos,
        time_ms: rh.time_ms,
        payload,
        len: rh.len,
    }))
}

fn rest_is_zero(reader: &mut BufReader<File>, path: &Path, mut remaining: u64) -> Result<bool> {
    let mut buf = [0u8; 8192];
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = reader.read(&mut buf[..want]).map_err(io_err(path))?;
        if n == 0 {
            return Ok(true);
        }
        remaining -= n as u64;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads and verifies the single record at `offset` in `path`, which must have `len` payload
/// bytes. Returns (time, payload).
pub(crate) fn read_record(path: &PathBuf, offset: u64, len: u32) -> Result<(i64, Vec<u8>)> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    // Check against the file size before allocating: a damaged handle must not make us allocate
    // gigabytes.
    if offset < SEGMENT_HEADER_LEN || offset + RECORD_HEADER_LEN + u64::from(len) > file_len {
        return Err(corrupt(
            path,
            offset,
            format!(
                "a {len}-byte record at this offset does not fit in the {file_len}-byte segment"
            ),
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    file.read_exact(&mut h)
        .map_err(|e| corrupt(path, offset, format!("cannot read record header: {e}")))?;
    let rh = decode_record_header(&h);
    if rh.len != len {
        return Err(corrupt(
            path,
            offset,
            format!(
                "handle says {len} bytes but the record header says {}",
                rh.len
            ),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload)
        .map_err(|e| corrupt(path, offset, format!("cannot read record payload: {e}")))?;
    if !crc_matches(&rh, &payload) {
        return Err(corrupt(path, offset, "CRC-32C mismatch"));
    }
    Ok((rh.time_ms, payload))
}

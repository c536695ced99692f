//! Partition logs written straight to disk, for tests of what a broker does while it opens
//! them: [`write_unclean_log`] leaves a log the next start must recover in full (every batch's
//! CRC checked, indexes rebuilt), as after a crash.

use std::io::Write;
use std::path::Path;

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A v2 batch at `offset` with one record whose value is `value`.
pub fn one_record_batch(offset: i64, timestamp: i64, value: &[u8]) -> Vec<u8> {
    let mut rec = vec![0u8, 0, 0, 1]; // attributes, timestamp delta, offset delta, null key
    put_varint(&mut rec, value.len() as i64);
    rec.extend_from_slice(value);
    rec.push(0); // no headers
    let mut b = vec![0u8; 61];
    put_varint(&mut b, rec.len() as i64);
    b.extend(rec);
    let len = (b.len() - 12) as i32;
    b[0..8].copy_from_slice(&offset.to_be_bytes());
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[27..35].copy_from_slice(&timestamp.to_be_bytes());
    b[35..43].copy_from_slice(&timestamp.to_be_bytes());
    b[43..57].fill(0xff); // no producer id, epoch or sequence
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Replaces the log of each of `topic`'s `partitions` under `data_dir` (a broker's data
/// directory where the topic already exists) with one segment of `batches` single-record
/// batches, without indexes or a clean-shutdown marker, so the next open checks and indexes
/// every batch.
pub fn write_unclean_log(data_dir: &Path, topic: &str, partitions: i32, batches: i64) {
    for p in 0..partitions {
        let dir = data_dir.join(format!("{topic}-{p}"));
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let log = dir.join(format!("{:020}.log", 0));
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut out = std::io::BufWriter::new(file);
        for offset in 0..batches {
            let value = format!("value-{offset}");
            out.write_all(&one_record_batch(offset, 1_000 + offset, value.as_bytes()))
                .expect("write batch");
        }
        out.flush().expect("flush log");
    }
}

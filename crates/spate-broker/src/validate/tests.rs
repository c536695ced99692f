//! Unit tests of produce validation: one valid batch per codec and one batch per kind of
//! damage, each rejected with the error a Kafka producer would get.

use std::io::Write;

use bytes::Bytes;
use kafka_protocol::records::{
    Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::record_batch::layout;

const RULES: ProduceRules = ProduceRules {
    max_message_bytes: 1_048_588,
    compacted: false,
    produce_version: 9,
};

fn encoded(codec: Codec, n: usize) -> Vec<u8> {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Offset minus sequence stays constant, so the encoder writes one batch.
            sequence: i as i32 - 1,
            timestamp: 1000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; 50 * i])),
            headers: [("h".into(), Some(Bytes::from_static(b"hv")))]
                .into_iter()
                .collect(),
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
    .expect("encode");
    buf.to_vec()
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// One record's bytes (length prefix included).
fn record(
    offset_delta: i64,
    key: Option<&[u8]>,
    value_len: usize,
    header_key: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varint(&mut body, 0);
    put_varint(&mut body, offset_delta);
    match key {
        Some(k) => {
            put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
        }
        None => put_varint(&mut body, -1),
    }
    put_varint(&mut body, value_len as i64);
    body.resize(body.len() + value_len, 0);
    match header_key {
        Some(k) => {
            put_varint(&mut body, 1);
            put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
            put_varint(&mut body, -1);
        }
        None => put_varint(&mut body, 0),
    }
    let mut out = Vec::new();
    put_varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A batch with a correct CRC around whatever `records` holds.
fn raw_batch(codec_bits: i16, count: i32, records: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; layout::HEADER_LEN];
    b.extend_from_slice(records);
    let len = (b.len() - layout::LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&codec_bits.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&1000i64.to_be_bytes());
    b[35..43].copy_from_slice(&1000i64.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn check(mut batch: Vec<u8>) -> Result<()> {
    validate_produce_batch(&mut batch, &RULES)
}

#[test]
fn accepts_valid_batches_in_every_codec() {
    for codec in [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ] {
        let b = encoded(codec, 5);
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!((h.total_len(), h.records_count), (b.len(), 5));
        check(b).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
    }
}

#[test]
fn rejects_unknown_codec_with_valid_crc() {
    let err = check(raw_batch(7, 1, &record(0, Some(b"k"), 3, None))).unwrap_err();
    assert!(
        matches!(err, BrokerError::UnsupportedCompression(_)),
        "{err}"
    );
    assert_eq!(err.code(), 76);
}

#[test]
fn rejects_zstd_before_produce_v7() {
    let mut b = encoded(Codec::Zstd, 2);
    let rules = ProduceRules {
        produce_version: 3,
        ..RULES
    };
    let err = validate_produce_batch(&mut b, &rules).unwrap_err();
    assert!(
        matches!(err, BrokerError::UnsupportedCompression(_)),
        "{err}"
    );
}

#[test]
fn rejects_gzip_flag_over_garbage() {
    let err = check(raw_batch(1, 1, b"this is not gzip at all")).unwrap_err();
    assert!(matches!(err, BrokerError::CorruptBatch(_)), "{err}");
    assert_eq!(err.code(), 2);
}

#[test]
fn rejects_overlong_varint() {
    let mut recs = vec![0xffu8; 11];
    recs.push(0);
    let err = check(raw_batch(0, 1, &recs)).unwrap_err();
    assert!(err.to_string().contains("varint longer"), "{err}");
}

#[test]
fn rejects_wrong_record_counts() {
    let mut two = record(0, Some(b"a"), 1, None);
    two.extend(record(1, Some(b"b"), 1, None));
    let err = check(raw_batch(0, 3, &two)).unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");
    let err = check(raw_batch(0, 1, &two)).unwrap_err();
    assert!(err.to_string().contains("wrong record count"), "{err}");
}

#[test]
fn rejects_record_length_mismatch_and_gaps() {
    let mut r = record(0, Some(b"a"), 4, None);
    r[0] += 4; // declares two bytes more than its fields take (zigzag doubles)
    r.extend([0, 0]);
    let err = check(raw_batch(0, 1, &r)).unwrap_err();
    assert!(err.to_string().contains("declares"), "{err}");
    let mut gap = record(0, Some(b"a"), 1, None);
    gap.extend(record(5, Some(b"b"), 1, None));
    let err = check(raw_batch(0, 2, &gap)).unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRecord(_)), "{err}");
}

#[test]
fn rejects_null_header_key_and_keyless_compacted_record() {
    let mut r = record(0, Some(b"a"), 1, Some(b"h"));
    // Turn the header key length 1 into -1 (zigzag 1).
    let at = r.len() - 3;
    assert_eq!(r[at], 2);
    r[at] = 1;
    r.remove(at + 1);
    r[0] -= 2; // one byte shorter (zigzag doubles)
    let err = check(raw_batch(0, 1, &r)).unwrap_err();
    assert!(err.to_string().contains("null key"), "{err}");
    let mut b = raw_batch(0, 1, &record(0, None, 1, None));
    let rules = ProduceRules {
        compacted: true,
        ..RULES
    };
    let err = validate_produce_batch(&mut b, &rules).unwrap_err();
    assert!(err.to_string().contains("compacted"), "{err}");
}

#[test]
fn rejects_a_decompression_bomb_within_the_bound() {
    let value = 20 * 1024 * 1024; // more than the 16 MiB floor of the bound
    let bomb = gzip(&record(0, Some(b"k"), value, None));
    assert!(bomb.len() < 256 * 1024, "{} compressed bytes", bomb.len());
    let err = check(raw_batch(1, 1, &bomb)).unwrap_err();
    assert!(
        matches!(err, BrokerError::UncompressedTooLarge { .. }),
        "{err}"
    );
    // A raw snappy block announces its length: refused before anything is allocated.
    let mut claim = Vec::new();
    let mut n: u64 = 1 << 31;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.extend([0u8; 8]);
    let err = check(raw_batch(2, 1, &claim)).unwrap_err();
    assert!(
        matches!(err, BrokerError::UncompressedTooLarge { .. }),
        "{err}"
    );
}

#[test]
fn fixes_a_wrong_max_timestamp_and_its_crc() {
    let mut b = encoded(Codec::None, 3);
    b[layout::MAX_TIMESTAMP..layout::MAX_TIMESTAMP + 8].copy_from_slice(&5i64.to_be_bytes());
    let crc = crc32c::crc32c(&b[layout::ATTRIBUTES..]);
    b[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    validate_produce_batch(&mut b, &RULES).expect("valid");
    let h = BatchHeader::parse(&b).expect("header");
    assert_eq!(h.max_timestamp, 1002);
    crate::record_batch::validate_crc(&b, &h).expect("crc recomputed");
}

#[test]
fn rejects_log_append_time_from_producers() {
    let mut r = raw_batch(0x08, 1, &record(0, Some(b"k"), 1, None));
    let err = validate_produce_batch(&mut r, &RULES).unwrap_err();
    assert_eq!(err.code(), 32, "{err}");
}

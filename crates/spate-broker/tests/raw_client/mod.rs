//! A minimal blocking Kafka client over a raw socket, built from kafka-protocol's encoders, for
//! tests that need exact control over requests (versions, malformed frames, error codes).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

pub struct RawClient {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        RawClient {
            stream,
            correlation_id: 0,
        }
    }

    /// Wraps an already connected socket.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        RawClient {
            stream,
            correlation_id: 0,
        }
    }

    /// Encodes `req` at `version` as a full frame (length prefix included).
    pub fn frame<R: Request + Encodable>(&mut self, req: &R, version: i16) -> (i32, Vec<u8>) {
        self.correlation_id += 1;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("raw-test"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut out = Vec::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.extend_from_slice(&body);
        (self.correlation_id, out)
    }

    pub fn send<R: Request + Encodable>(&mut self, req: &R, version: i16) -> i32 {
        let (cid, frame) = self.frame(req, version);
        self.stream.write_all(&frame).unwrap();
        cid
    }

    /// Reads one response frame's bytes (without the length prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    pub fn receive<R: Request>(&mut self, version: i16, expected_cid: i32) -> R::Response {
        let mut frame = self.read_frame().expect("response frame");
        let key = ApiKey::try_from(R::KEY).unwrap();
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, expected_cid, "correlation id");
        R::Response::decode(&mut frame, version).unwrap()
    }

    pub fn call<R: Request + Encodable>(&mut self, req: &R, version: i16) -> R::Response {
        let cid = self.send(req, version);
        self.receive::<R>(version, cid)
    }

    /// Sends raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// True if the broker closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Reads the correlation id and first i16 of a response frame (what a broker sends for an
/// unsupported API: header v0 + error code).
pub fn correlation_and_error(mut frame: Bytes) -> (i32, i16) {
    let cid = frame.get_i32();
    let code = frame.get_i16();
    (cid, code)
}

/// A RecordBatch v2 with uncompressed records, built by kafka-protocol's encoder.
pub fn record_batch(
    records: &[(Option<&str>, Option<&str>, i64)],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant, and
            // writes the first record's sequence as the base (-1 without idempotence).
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: *ts,
            key: k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

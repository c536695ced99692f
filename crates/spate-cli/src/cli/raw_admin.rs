//! A blocking admin connection that speaks the Kafka protocol itself (kafka-protocol over one TCP
//! connection), for the admin commands whose requests the Rust librdkafka wrapper cannot send or
//! whose answers it cannot read (`spate configs`, `spate transactions`). Plaintext only.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// One blocking connection to the broker: one request at a time.
pub struct Connection {
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    /// Connects to the first bootstrap address, with `timeout_ms` for connecting and each
    /// read and write.
    pub fn open(bootstrap: &str, timeout_ms: u64) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let first = bootstrap.split(',').next().unwrap_or_default().trim();
        let addr = first
            .to_socket_addrs()
            .with_context(|| format!("resolving {first}"))?
            .next()
            .ok_or_else(|| anyhow!("{first} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `req` at `version` and waits for its response.
    pub fn call<R: Request + Encodable>(
        &mut self,
        req: &R,
        version: i16,
    ) -> anyhow::Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown API key {}", R::KEY))?;
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("spate-admin")));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(i32::try_from(body.len())?);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .context("sending the request")?;

        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .context("reading the response")?;
        let len = usize::try_from(i32::from_be_bytes(len))
            .map_err(|_| anyhow!("negative response length"))?;
        let mut buf = vec![0u8; len];
        self.stream
            .read_exact(&mut buf)
            .context("reading the response")?;
        let mut bytes = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut bytes, key.response_header_version(version))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "response to another request (correlation id {})",
                header.correlation_id
            );
        }
        let resp = R::Response::decode(&mut bytes, version)?;
        if bytes.has_remaining() {
            tracing::debug!(extra = bytes.remaining(), "response has trailing bytes");
        }
        Ok(resp)
    }
}

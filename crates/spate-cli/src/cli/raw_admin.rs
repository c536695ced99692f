//! A blocking admin connection that speaks the Kafka protocol itself (kafka-protocol over one TCP
//! connection), for the admin commands whose requests the Rust librdkafka wrapper cannot send or
//! whose answers it cannot read (`spate configs`, `spate transactions`, `spate users`). It
//! honours the same security settings as every other command ([`security`]): TLS ([`tls`]) and
//! SASL PLAIN / SCRAM ([`sasl`]), from `--command-config FILE` and `-X key=value`.

pub mod sasl;
pub mod security;
pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use spate_client::config::{parse_key_value, parse_properties_file, ClientArgs, PropertiesFile};

/// The connection flags of the commands built on [`Connection`], the same as every client
/// command's and accepted before or after a subcommand (`spate users add … --command-config F`).
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// The broker to connect to (host:port; the first of a comma-separated list is used).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// A client setting (e.g. -X security.protocol=SASL_SSL), repeatable; overrides
    /// --command-config.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value, global = true)]
    pub config: Vec<(String, String)>,
    /// A properties file of client settings (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, …), like Kafka's tools take.
    #[arg(long, value_name = "FILE", value_parser = parse_properties_file, global = true)]
    pub command_config: Option<PropertiesFile>,
    /// How long to wait for the broker, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000, global = true)]
    pub request_timeout_ms: u64,
}

impl AdminArgs {
    /// The same settings as a [`ClientArgs`].
    pub fn client(&self) -> ClientArgs {
        let mut client = ClientArgs::new(self.bootstrap_server.clone());
        client.config = self.config.clone();
        client.command_config = self.command_config.clone();
        client.request_timeout_ms = self.request_timeout_ms;
        client
    }

    /// Connects (and authenticates) as these flags say.
    pub fn connect(&self) -> anyhow::Result<Connection> {
        Connection::connect(&self.client())
    }
}

/// One blocking connection to the broker: one request at a time.
pub struct Connection {
    stream: tls::Transport,
    correlation_id: i32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("stream", &self.stream)
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl Connection {
    /// Connects to the first bootstrap address over PLAINTEXT, with `timeout_ms` for connecting
    /// and each read and write.
    pub fn open(bootstrap: &str, timeout_ms: u64) -> anyhow::Result<Self> {
        let mut client = ClientArgs::new(bootstrap);
        client.request_timeout_ms = timeout_ms;
        Connection::connect(&client)
    }

    /// Connects to the first bootstrap address with the client's security settings: TLS for
    /// `SSL`/`SASL_SSL`, then SASL for `SASL_*`, before any other request is sent.
    pub fn connect(client: &ClientArgs) -> anyhow::Result<Self> {
        let security = security::Security::from_settings(client.overrides())?;
        let timeout = Duration::from_millis(client.request_timeout_ms.max(1));
        let first = client
            .bootstrap_server
            .split(',')
            .next()
            .unwrap_or_default()
            .trim();
        let addr = first
            .to_socket_addrs()
            .with_context(|| format!("resolving {first}"))?
            .next()
            .ok_or_else(|| anyhow!("{first} resolves to no address"))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let stream = match &security.tls {
            Some(settings) => {
                let host = host_of(first);
                tls::Transport::Tls(Box::new(tls::connect(tcp, host, settings)?))
            }
            None => tls::Transport::Plain(tcp),
        };
        let mut conn = Connection {
            stream,
            correlation_id: 0,
        };
        if let Some(settings) = &security.sasl {
            sasl::authenticate(&mut conn, settings)?;
        }
        Ok(conn)
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

/// The host of `host:port` (`[v6]:port` too), for the TLS server name.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

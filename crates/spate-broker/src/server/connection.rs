//! One client connection: read a frame, decode its request header, route it by API key, write
//! the response — strictly one request at a time, so responses leave in request order, as Kafka
//! does (it mutes a channel while a request is in flight). Pipelined requests wait in the socket
//! and the read buffer; responses are flushed once no further request is already buffered, so a
//! burst of pipelined requests is answered with few syscalls.
//!
//! Anything malformed (oversized, truncated or undecodable frames) closes this connection only,
//! with a warning naming the peer; a request for an API or version the broker does not serve is
//! answered with UNSUPPORTED_VERSION instead.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::decode_request_header_from_buffer;
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::frame::FrameReader;
use crate::error::{BrokerError, Result};
use crate::handlers::{encode_response_frame, HandlerOutput, HandlerRegistry, RequestContext};
use crate::listener::ListenerInfo;
use crate::security::ConnectionAuth;
use crate::state::BrokerState;

/// The handler registry with its ApiVersions list computed once (every request's context
/// shares it).
pub struct Routes {
    registry: HandlerRegistry,
    supported: Arc<[ApiVersion]>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// The routes of the APIs in `registry`.
    pub fn new(registry: HandlerRegistry) -> Self {
        let supported = registry.api_versions().into();
        Routes {
            registry,
            supported,
        }
    }
}

/// Smallest request header: api key (2), api version (2), correlation id (4).
const MIN_HEADER: usize = 8;

/// Kafka's default `connection.failed.authentication.delay.ms`.
const FAILED_AUTHENTICATION_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a client may take to complete the TLS handshake before its connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one connection accepted on `listener` until the client closes it, it sends something
/// malformed, or the broker shuts down (after finishing the request in progress). On a TLS
/// listener the handshake comes first; a client that fails it (untrusted or expired
/// certificate, plaintext bytes) is closed before any request is read.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerInfo>,
    state: Arc<BrokerState>,
    apis: Arc<Routes>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = listener.tls.clone() else {
        let (rd, wr) = stream.into_split();
        return serve_stream(rd, wr, peer, listener, state, apis, shutdown).await;
    };
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        h = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => h,
    };
    match handshake {
        Ok(Ok(tls)) => {
            let (rd, wr) = tokio::io::split(tls);
            serve_stream(rd, wr, peer, listener, state, apis, shutdown).await
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, listener = %listener.name, error = %e, "TLS handshake failed")
        }
        Err(_) => tracing::warn!(%peer, listener = %listener.name, "TLS handshake timed out"),
    }
}

/// The request loop over a connection's read and write halves (plain TCP or TLS).
async fn serve_stream<R, W>(
    rd: R,
    wr: W,
    peer: SocketAddr,
    listener: Arc<ListenerInfo>,
    state: Arc<BrokerState>,
    apis: Arc<Routes>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = FrameReader::new(rd, state.config.socket_request_max_bytes);
    let auth = Arc::new(ConnectionAuth::new(
        listener.name.clone(),
        listener.protocol,
    ));
    let mut writer = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            f = reader.read_frame() => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(BrokerError::ConnectionIo(e)) => {
                tracing::debug!(%peer, error = %e, "connection read failed");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        match handle_frame(&state, &apis, &listener, &auth, peer, frame).await {
            Ok(Some(response)) => {
                if let Err(e) = writer.write_all(&response).await {
                    tracing::debug!(%peer, error = %e, "connection write failed");
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        }
        if auth.has_failed() {
            // Kafka closes a connection whose SASL exchange failed once the client has the
            // response that says why, after `connection.failed.authentication.delay.ms`: a
            // client reading the response and the close in one go may otherwise see only the
            // close, and a password guesser gets no faster than one try per delay.
            let _ = writer.flush().await;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(FAILED_AUTHENTICATION_DELAY) => {}
            }
            break;
        }
        if !reader.has_buffered_frame() {
            if let Err(e) = writer.flush().await {
                tracing::debug!(%peer, error = %e, "connection write failed");
                break;
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

/// Handles one request frame; returns the whole response frame (length prefix included), or
/// `None` when the request gets no response (acks=0).
async fn handle_frame(
    state: &Arc<BrokerState>,
    apis: &Routes,
    listener: &ListenerInfo,
    auth: &Arc<ConnectionAuth>,
    peer: SocketAddr,
    mut frame: Bytes,
) -> Result<Option<BytesMut>> {
    if auth.expects_raw_token() {
        let token = crate::security::sasl::raw_token(state, auth, peer, &frame)?;
        return Ok(Some(raw_token_frame(&token)?));
    }
    if frame.len() < MIN_HEADER {
        return Err(BrokerError::MalformedFrame(format!(
            "{} bytes cannot hold a request header",
            frame.len()
        )));
    }
    let request_bytes = frame.len() + 4;
    let api_key = be_i16(&frame[0..2]);
    let api_version = be_i16(&frame[2..4]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);

    let Some(entry) = apis
        .registry
        .get(api_key)
        .filter(|e| e.supports(api_version))
    else {
        tracing::debug!(%peer, api_key, api_version, "unsupported API or version");
        return Ok(Some(unsupported_version_response(
            apis,
            api_key,
            correlation_id,
        )?));
    };
    let key = entry.key;
    if !auth.may_serve(api_key) {
        return Err(BrokerError::SaslRequired {
            api: format!("{key:?}"),
        });
    }
    let header =
        decode_request_header_from_buffer(&mut frame).map_err(|e| BrokerError::DecodeRequest {
            api: format!("{key:?} header"),
            version: api_version,
            reason: e.to_string(),
        })?;
    let ctx = RequestContext {
        api_key: key,
        api_version,
        correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
        peer,
        supported_apis: apis.supported.clone(),
        advertised: listener.advertised.clone(),
        auth: auth.clone(),
    };
    tracing::trace!(%peer, api = ?key, version = api_version, correlation_id, "request");
    let started = std::time::Instant::now();
    let output = entry.call(state.clone(), ctx, frame).await;
    let response_bytes = match &output {
        Ok(HandlerOutput::Response(frame)) => frame.len(),
        _ => 0,
    };
    state.request_metrics.record(
        api_key,
        started.elapsed(),
        output.is_ok(),
        request_bytes,
        response_bytes,
    );
    match output? {
        HandlerOutput::Response(frame) => Ok(Some(frame)),
        HandlerOutput::NoResponse => Ok(None),
    }
}

/// A bare SASL token as the v0 flow sends it: a length prefix and the token, no header.
fn raw_token_frame(token: &[u8]) -> Result<BytesMut> {
    let len = i32::try_from(token.len())
        .map_err(|_| BrokerError::IllegalSaslState("SASL token too large".into()))?;
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.put_i32(len);
    out.put_slice(token);
    Ok(out)
}

/// The answer to a request for an API or version this broker does not serve.
///
/// ApiVersions gets what Kafka sends (KIP-511): a v0 response with UNSUPPORTED_VERSION and the
/// full list of supported APIs, so the client can pick a version it shares and retry. Any other
/// API gets the response header and an UNSUPPORTED_VERSION error code — the first field a client
/// can read without knowing the response schema.
fn unsupported_version_response(
    apis: &Routes,
    api_key: i16,
    correlation_id: i32,
) -> Result<BytesMut> {
    let code = ResponseError::UnsupportedVersion.code();
    if api_key == ApiKey::ApiVersions as i16 {
        let mut resp = ApiVersionsResponse::default();
        resp.error_code = code;
        resp.api_keys = apis.supported.to_vec();
        return encode_response_frame(ApiKey::ApiVersions, 0, correlation_id, &resp);
    }
    let mut out = BytesMut::with_capacity(10);
    out.put_i32(6);
    out.put_i32(correlation_id);
    out.put_i16(code);
    Ok(out)
}

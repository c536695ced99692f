//! The handler registry: the one list of the APIs this broker serves, each with the versions it
//! implements and the function that handles it. `ApiVersions` is answered from this list, so
//! what the broker advertises cannot drift from what it handles.
//!
//! Adding an API is a handler file plus one line in [`HandlerRegistry::standard`]:
//!
//! ```text
//! .register::<ListOffsetsRequest, _, _>(1, 8, list_offsets::handle)
//! ```
//!
//! A subsystem with its own APIs (the group coordinator; later a transaction coordinator, ACLs,
//! SASL) has a `register(&mut HandlerRegistry)` that adds them, called from `standard`, so its
//! handlers and their versions stay in its own module. The registry is handed to the server
//! (not kept in [`BrokerState`]): it routes requests, the state is what handlers act on.
//!
//! A handler is an async function `(Arc<BrokerState>, RequestContext, Req) -> Result<Resp>`
//! with the typed request and response of `kafka-protocol`; the registry decodes the body at the
//! client's version and encodes the response at the same version, behind the right response
//! header (a field the version cannot carry fails the encode, so leave such fields at their
//! defaults; the `version_sweep` test exercises every advertised version). Version ranges are clamped to what `kafka-protocol` can decode and encode.
//! A handler that returns `Err` makes the connection log a warning and close (the client
//! reconnects and retries); errors a client should see are put in the response's error codes.

pub mod api_versions;
pub mod configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_topic_partitions;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request};

use crate::error::{BrokerError, Result};
use crate::state::BrokerState;

/// What a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The API the request calls (Produce, Fetch, …).
    pub api_key: ApiKey,
    /// The request's API version, which decides its wire layout.
    pub api_version: i16,
    /// The client's correlation id, echoed in the response header.
    pub correlation_id: i32,
    /// The client's `client.id` from the request header, if it sent one.
    pub client_id: Option<String>,
    /// The client's address (logs; a group member's host).
    pub peer: SocketAddr,
    /// Every API the server routes, with its versions (what ApiVersions answers).
    pub supported_apis: Arc<[api_versions_response::ApiVersion]>,
    /// The endpoint of the listener this request came in on: Metadata, DescribeCluster and
    /// FindCoordinator send clients back to the listener they used, as Kafka does.
    pub advertised: Arc<crate::state::Advertised>,
    /// The connection's identity: its principal, and where its SASL exchange stands.
    pub auth: Arc<crate::security::ConnectionAuth>,
}

impl RequestContext {
    /// The request header's client id, empty when the client sent none.
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or_default()
    }

    /// The client's host as Kafka shows it (DescribeGroups' `client_host`): `/<ip>`.
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// A handler's result, erased: the encoded response frame, or no response at all (Produce with
/// acks=0 is the one request Kafka does not answer).
#[derive(Debug)]
pub enum HandlerOutput {
    /// The encoded response frame to send.
    Response(BytesMut),
    /// Nothing is sent back (Produce with acks=0).
    NoResponse,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type ErasedHandler = Arc<
    dyn Fn(Arc<BrokerState>, RequestContext, Bytes) -> BoxFuture<Result<HandlerOutput>>
        + Send
        + Sync,
>;

/// One registered API.
#[derive(Clone)]
pub struct ApiEntry {
    /// The API's key.
    pub key: ApiKey,
    /// The lowest version this broker serves (ApiVersions' `MinVersion`).
    pub min_version: i16,
    /// The highest version this broker serves (ApiVersions' `MaxVersion`).
    pub max_version: i16,
    handler: ErasedHandler,
}

impl std::fmt::Debug for ApiEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEntry")
            .field("key", &self.key)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .finish_non_exhaustive()
    }
}

impl ApiEntry {
    /// Whether this broker serves `version` of the API.
    pub fn supports(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }

    /// Decodes `body` at `ctx.api_version`, runs the handler, encodes its response.
    pub async fn call(
        &self,
        state: Arc<BrokerState>,
        ctx: RequestContext,
        body: Bytes,
    ) -> Result<HandlerOutput> {
        (self.handler)(state, ctx, body).await
    }
}

/// The APIs this broker serves, by API key.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    entries: BTreeMap<i16, ApiEntry>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerRegistry")
            .field("apis", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Encodes a whole response frame — length prefix, response header (at the version the API and
/// request version call for; ApiVersions always uses v0) and body — into one buffer, so the
/// records of a Fetch response are copied once.
pub fn encode_response_frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<BytesMut> {
    let err = |reason: String| BrokerError::EncodeResponse {
        api: format!("{key:?}"),
        version,
        reason,
    };
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let header_version = key.response_header_version(version);
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| err(e.to_string()))?;
    let body_size = response
        .compute_size(version)
        .map_err(|e| err(e.to_string()))?;
    let size = i32::try_from(header_size + body_size).map_err(|_| {
        err(format!(
            "{} bytes do not fit a frame",
            header_size + body_size
        ))
    })?;
    let mut buf = BytesMut::with_capacity(4 + header_size + body_size);
    buf.put_i32(size);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| err(e.to_string()))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| err(e.to_string()))?;
    Ok(buf)
}

fn decode_body<Req: Decodable>(key: ApiKey, ctx: &RequestContext, mut body: Bytes) -> Result<Req> {
    Req::decode(&mut body, ctx.api_version).map_err(|e| BrokerError::DecodeRequest {
        api: format!("{key:?}"),
        version: ctx.api_version,
        reason: e.to_string(),
    })
}

impl HandlerRegistry {
    /// A registry with no APIs; `with` adds them.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, key: ApiKey, min: i16, max: i16, handler: ErasedHandler, req: (i16, i16)) {
        let min_version = min.max(req.0);
        let max_version = max.min(req.1);
        debug_assert!(
            !self.entries.contains_key(&(key as i16)),
            "{key:?} registered twice"
        );
        if min_version > max_version {
            tracing::error!(api = ?key, "no version both implemented and supported by kafka-protocol; not registered");
            return;
        }
        self.entries.insert(
            key as i16,
            ApiEntry {
                key,
                min_version,
                max_version,
                handler,
            },
        );
    }

    /// Registers the handler of `Req` for versions `min..=max` (clamped to what
    /// `kafka-protocol` supports).
    pub fn register<Req, F, Fut>(&mut self, min: i16, max: i16, handler: F) -> &mut Self
    where
        Req: Request + Send + 'static,
        Req::Response: Send,
        F: Fn(Arc<BrokerState>, RequestContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Req::Response>> + Send + 'static,
    {
        self.register_optional::<Req, _, _>(min, max, move |state, ctx, req| {
            let fut = handler(state, ctx, req);
            async move { fut.await.map(Some) }
        })
    }

    /// Like [`register`](Self::register) for a handler that may decide not to respond.
    pub fn register_optional<Req, F, Fut>(&mut self, min: i16, max: i16, handler: F) -> &mut Self
    where
        Req: Request + Send + 'static,
        Req::Response: Send,
        F: Fn(Arc<BrokerState>, RequestContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Req::Response>>> + Send + 'static,
    {
        let Ok(key) = ApiKey::try_from(Req::KEY) else {
            tracing::error!(key = Req::KEY, "unknown API key; not registered");
            return self;
        };
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |state, ctx: RequestContext, body| {
            let handler = handler.clone();
            Box::pin(async move {
                let (version, correlation_id) = (ctx.api_version, ctx.correlation_id);
                let req: Req = decode_body(key, &ctx, body)?;
                match handler(state, ctx, req).await? {
                    Some(resp) => Ok(HandlerOutput::Response(encode_response_frame(
                        key,
                        version,
                        correlation_id,
                        &resp,
                    )?)),
                    None => Ok(HandlerOutput::NoResponse),
                }
            })
        });
        let versions = <Req as kafka_protocol::protocol::Message>::VERSIONS;
        self.insert(key, min, max, erased, (versions.min, versions.max));
        self
    }

    /// The entry of API key `api_key`, if this broker serves it.
    pub fn get(&self, api_key: i16) -> Option<&ApiEntry> {
        self.entries.get(&api_key)
    }

    /// Every registered API with its version range, by key (what ApiVersions reports).
    pub fn api_versions(&self) -> Vec<api_versions_response::ApiVersion> {
        self.entries
            .values()
            .map(|e| {
                let mut v = api_versions_response::ApiVersion::default();
                v.api_key = e.key as i16;
                v.min_version = e.min_version;
                v.max_version = e.max_version;
                v
            })
            .collect()
    }

    /// Every API this broker serves: its own, then each subsystem's.
    pub fn standard() -> Self {
        let mut r = HandlerRegistry::new();
        r.register::<ApiVersionsRequest, _, _>(0, 3, api_versions::handle)
            .register::<MetadataRequest, _, _>(0, 12, metadata::handle)
            .register_optional::<ProduceRequest, _, _>(3, 11, produce::handle)
            .register::<FetchRequest, _, _>(4, 16, fetch::handle)
            .register::<ListOffsetsRequest, _, _>(1, 8, list_offsets::handle)
            .register::<OffsetForLeaderEpochRequest, _, _>(2, 4, offset_for_leader_epoch::handle)
            .register::<CreateTopicsRequest, _, _>(2, 7, create_topics::handle)
            .register::<DeleteTopicsRequest, _, _>(1, 6, delete_topics::handle)
            .register::<CreatePartitionsRequest, _, _>(0, 3, create_partitions::handle)
            .register::<DescribeConfigsRequest, _, _>(1, 4, configs::describe)
            .register::<AlterConfigsRequest, _, _>(0, 2, configs::alter)
            .register::<IncrementalAlterConfigsRequest, _, _>(0, 1, configs::incremental_alter)
            .register::<InitProducerIdRequest, _, _>(0, 5, init_producer_id::handle)
            .register::<DeleteRecordsRequest, _, _>(0, 2, delete_records::handle)
            .register::<DescribeClusterRequest, _, _>(0, 1, describe_cluster::handle)
            .register::<DescribeTopicPartitionsRequest, _, _>(
                0,
                0,
                describe_topic_partitions::handle,
            );
        crate::group::api::register(&mut r);
        crate::security::sasl::register(&mut r);
        crate::security::scram_api::register(&mut r);
        crate::acl::api::register(&mut r);
        crate::txn::register(&mut r);
        r
    }
}

/// Checks a client's `current_leader_epoch` against this broker's only epoch, 0. A client that
/// knows no epoch sends -1. A newer epoch than ours is UNKNOWN_LEADER_EPOCH (the client has
/// metadata the broker lacks); there is no older epoch than 0.
pub(crate) fn check_leader_epoch(
    current_leader_epoch: i32,
) -> Option<kafka_protocol::ResponseError> {
    (current_leader_epoch > 0).then_some(kafka_protocol::ResponseError::UnknownLeaderEpoch)
}

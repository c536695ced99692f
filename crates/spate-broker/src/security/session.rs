//! What a connection knows about its client's identity: on a PLAINTEXT or SSL listener the
//! client is `User:ANONYMOUS` from the start; on a SASL listener it is nobody until a SASL
//! exchange succeeds, and until then the connection serves only ApiVersions, SaslHandshake and
//! SaslAuthenticate (Kafka's `SaslServerAuthenticator` states, reduced to what a server needs).

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use rsasl::prelude::Session;

use super::sasl::AuthenticatedUser;
use crate::listener::SecurityProtocol;

/// The principal of a client that did not (or need not) authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Where a connection's SASL exchange stands.
pub(crate) enum AuthState {
    /// A listener without SASL: nothing to do.
    NotRequired,
    /// A SASL listener before SaslHandshake.
    AwaitingHandshake,
    /// A mechanism was chosen; `raw_tokens` when the handshake was v0 (tokens then come as
    /// bare length-prefixed frames, without Kafka request headers).
    Handshaken {
        mechanism: String,
        raw_tokens: bool,
    },
    /// The mechanism needs more tokens from the client.
    Exchanging {
        mechanism: String,
        raw_tokens: bool,
        session: Box<Session<AuthenticatedUser>>,
    },
    Authenticated {
        user: String,
    },
    /// Authentication failed or the client broke the exchange: the connection closes once
    /// the response is written.
    Failed,
}

/// The identity state of one connection, shared with every request's context.
pub struct ConnectionAuth {
    /// The name of the listener the connection came in on.
    pub listener: String,
    /// The security protocol of that listener.
    pub protocol: SecurityProtocol,
    pub(crate) state: Mutex<AuthState>,
}

impl std::fmt::Debug for ConnectionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionAuth")
            .field("listener", &self.listener)
            .field("principal", &self.principal())
            .finish()
    }
}

impl ConnectionAuth {
    /// A connection on `listener` speaking `protocol`, not yet authenticated.
    pub fn new(listener: impl Into<String>, protocol: SecurityProtocol) -> Self {
        let state = match protocol.uses_sasl() {
            true => AuthState::AwaitingHandshake,
            false => AuthState::NotRequired,
        };
        ConnectionAuth {
            listener: listener.into(),
            protocol,
            state: Mutex::new(state),
        }
    }

    /// A plaintext connection's identity (tests and in-process callers).
    pub fn anonymous() -> Self {
        Self::new("PLAINTEXT", SecurityProtocol::Plaintext)
    }

    /// Kafka's principal string: `User:<name>` once authenticated, `User:ANONYMOUS` otherwise.
    pub fn principal(&self) -> String {
        match &*self.state.lock() {
            AuthState::Authenticated { user } => format!("User:{user}"),
            _ => ANONYMOUS.to_string(),
        }
    }

    /// True once the connection may serve any request.
    pub fn is_authenticated(&self) -> bool {
        matches!(
            &*self.state.lock(),
            AuthState::NotRequired | AuthState::Authenticated { .. }
        )
    }

    /// Whether a request with `api_key` may be served now. Before authentication only the
    /// APIs of the handshake itself are.
    pub fn may_serve(&self, api_key: i16) -> bool {
        self.is_authenticated()
            || [
                ApiKey::ApiVersions,
                ApiKey::SaslHandshake,
                ApiKey::SaslAuthenticate,
            ]
            .iter()
            .any(|k| *k as i16 == api_key)
    }

    /// True when the next frame is a bare SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            &*self.state.lock(),
            AuthState::Handshaken {
                raw_tokens: true,
                ..
            } | AuthState::Exchanging {
                raw_tokens: true,
                ..
            }
        )
    }

    /// True when the connection must close after its current response.
    pub fn has_failed(&self) -> bool {
        matches!(&*self.state.lock(), AuthState::Failed)
    }
}

//! The SASL exchange on the broker side: SaslHandshake (API 17, v0–1) picks a mechanism,
//! SaslAuthenticate (API 36, v0–2) carries its tokens; after a v0 handshake the tokens come as
//! bare length-prefixed frames instead (Kafka's original flow, still used by old clients).
//!
//! The mechanisms themselves (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) are `rsasl`'s server side;
//! this module gives it the credentials ([`CredentialLookup`]: PLAIN users from the listener's
//! JAAS config, SCRAM credentials from the [`ScramStore`]) and maps its outcome onto Kafka's
//! errors: a failed exchange is SASL_AUTHENTICATION_FAILED with Kafka's message, a rate-limited
//! log line naming the peer (never a secret), and the connection closed after the response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::prelude::{Mechname, SASLConfig, SASLServer, SessionError, State, Validation};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, ValidationError};
use sha2::{Digest, Sha256};

use super::config::PlainUsers;
use super::scram::{ScramMechanism, ScramStore};
use super::session::{AuthState, ConnectionAuth};
use crate::error::{BrokerError, Result};
use crate::handlers::{HandlerRegistry, RequestContext};
use crate::state::BrokerState;

/// What a successful exchange yields: the authenticated user name.
#[derive(Debug)]
pub struct AuthenticatedUser;

impl Validation for AuthenticatedUser {
    type Value = String;
}

/// Answers `rsasl`'s questions about users for one listener.
pub(crate) struct CredentialLookup {
    pub scram: Arc<ScramStore>,
    pub plain: PlainUsers,
}

/// Compares secrets without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl SessionCallback for CredentialLookup {
    fn callback(
        &self,
        session_data: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> std::result::Result<(), SessionError> {
        let mechanism = ScramMechanism::parse(session_data.mechanism().mechanism.as_str());
        if let (Some(m), Some(user)) = (mechanism, context.get_ref::<AuthId>()) {
            if let Some((iterations, (salt, stored, server))) = self
                .scram
                .get(user, m)
                .and_then(|c| Some((c.iterations, c.decoded()?)))
            {
                request.satisfy::<ScramStoredPassword<'_>>(&ScramStoredPassword::new(
                    iterations, &salt, &stored, &server,
                ))?;
            }
        }
        Ok(())
    }

    fn validate(
        &self,
        session_data: &SessionData,
        context: &Context<'_>,
        validate: &mut Validate<'_>,
    ) -> std::result::Result<(), ValidationError> {
        let Some(user) = context.get_ref::<AuthId>() else {
            return Ok(());
        };
        // Kafka refuses an authorization id other than the authenticated user.
        if context
            .get_ref::<AuthzId>()
            .is_some_and(|z| !z.is_empty() && z != user)
        {
            return Ok(());
        }
        let accepted = match session_data.mechanism().mechanism.as_str() {
            "PLAIN" => match (self.plain.0.get(user), context.get_ref::<Password>()) {
                (Some(expected), Some(given)) => same_secret(expected.as_bytes(), given),
                _ => false,
            },
            // rsasl validates SCRAM only after the client's proof matched StoredKey.
            m => ScramMechanism::parse(m).is_some(),
        };
        if accepted {
            validate.with::<AuthenticatedUser, _>(|| Ok(user.to_string()))?;
        }
        Ok(())
    }
}

/// Builds the `rsasl` configuration of one SASL listener.
pub(crate) fn listener_config(
    scram: Arc<ScramStore>,
    plain: PlainUsers,
) -> Result<Arc<SASLConfig>> {
    SASLConfig::builder()
        .with_defaults()
        .with_callback(CredentialLookup { scram, plain })
        .map_err(|e| BrokerError::Runtime(format!("SASL configuration: {e}")))
}

/// At most this many failed-authentication lines per window; the rest are counted and the
/// count logged with the next line, so a password-guessing client cannot flood the log.
const FAILURE_LINES_PER_WINDOW: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Rate limit of the failed-authentication log line.
#[derive(Debug)]
pub struct FailureLog {
    window: Mutex<(Instant, u32, u64)>,
}

impl Default for FailureLog {
    fn default() -> Self {
        FailureLog {
            window: Mutex::new((Instant::now(), 0, 0)),
        }
    }
}

impl FailureLog {
    fn record(&self, peer: SocketAddr, listener: &str, mechanism: &str, reason: &str) {
        let suppressed = {
            let mut w = self.window.lock();
            if w.0.elapsed() >= FAILURE_WINDOW {
                *w = (Instant::now(), 0, w.2);
            }
            if w.1 >= FAILURE_LINES_PER_WINDOW {
                w.2 += 1;
                return;
            }
            w.1 += 1;
            std::mem::take(&mut w.2)
        };
        tracing::warn!(
            %peer, listener, mechanism, reason, suppressed,
            "failed authentication"
        );
    }
}

/// How one token moved the exchange along.
enum Step {
    /// More tokens are needed; send this one back.
    Continue(Vec<u8>),
    /// Authenticated; send this last token (SCRAM's server-final, empty for PLAIN).
    Done(Vec<u8>),
    /// Refused, with the message for the client.
    Failed(String),
}

fn failure_message(mechanism: &str) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism {mechanism}"
    )
}

/// Feeds one client token to the connection's exchange.
fn step(state: &BrokerState, auth: &ConnectionAuth, peer: SocketAddr, token: &[u8]) -> Step {
    let mut guard = auth.state.lock();
    let (mechanism, raw_tokens, session) = match std::mem::replace(&mut *guard, AuthState::Failed) {
        AuthState::Exchanging {
            mechanism,
            raw_tokens,
            session,
        } => (mechanism, raw_tokens, Ok(session)),
        AuthState::Handshaken {
            mechanism,
            raw_tokens,
        } => {
            let session = start_session(state, &auth.listener, &mechanism);
            (mechanism, raw_tokens, session)
        }
        other => {
            *guard = other;
            return Step::Failed("SaslAuthenticate before SaslHandshake".into());
        }
    };
    let mut session = match session {
        Ok(s) => s,
        Err(reason) => return fail(state, auth, peer, &mechanism, reason),
    };
    let mut out = Vec::new();
    match session.step(Some(token), &mut out) {
        Ok(State::Running) => {
            *guard = AuthState::Exchanging {
                mechanism,
                raw_tokens,
                session,
            };
            Step::Continue(out)
        }
        Ok(State::Finished(_)) => match session.validation() {
            Some(user) => {
                tracing::debug!(%peer, listener = %auth.listener, %mechanism, %user, "authenticated");
                *guard = AuthState::Authenticated { user };
                Step::Done(out)
            }
            None => fail(state, auth, peer, &mechanism, "invalid credentials".into()),
        },
        Err(e) => fail(
            state,
            auth,
            peer,
            &mechanism,
            format!("malformed token: {e}"),
        ),
    }
}

fn start_session(
    state: &BrokerState,
    listener: &str,
    mechanism: &str,
) -> std::result::Result<Box<rsasl::prelude::Session<AuthenticatedUser>>, String> {
    let config = state
        .security
        .sasl_config(listener)
        .ok_or_else(|| format!("listener {listener} has no SASL configuration"))?;
    let name = Mechname::parse(mechanism.as_bytes()).map_err(|e| e.to_string())?;
    SASLServer::<AuthenticatedUser>::new(config)
        .start_suggested(name)
        .map(Box::new)
        .map_err(|e| e.to_string())
}

/// Logs a failure (rate-limited) and yields the client's message; the state stays `Failed`.
fn fail(
    state: &BrokerState,
    auth: &ConnectionAuth,
    peer: SocketAddr,
    mechanism: &str,
    reason: String,
) -> Step {
    state
        .security
        .failures
        .record(peer, &auth.listener, mechanism, &reason);
    Step::Failed(failure_message(mechanism))
}

/// SaslHandshake: on a SASL connection that has not started an exchange, picks the mechanism.
/// Anywhere else it is ILLEGAL_SASL_STATE, as Kafka answers it outside the authenticator.
pub async fn handshake(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: SaslHandshakeRequest,
) -> Result<SaslHandshakeResponse> {
    let enabled = &state.security.settings.enabled_mechanisms;
    let mut resp = SaslHandshakeResponse::default();
    resp.mechanisms = enabled.iter().map(|m| StrBytes::from(m.clone())).collect();
    let mut guard = ctx.auth.state.lock();
    if !matches!(&*guard, AuthState::AwaitingHandshake) {
        resp.error_code = ResponseError::IllegalSaslState.code();
        resp.mechanisms.clear();
        return Ok(resp);
    }
    let mechanism = req.mechanism.to_string();
    if !enabled.contains(&mechanism) {
        tracing::info!(peer = %ctx.peer, %mechanism, "unsupported SASL mechanism requested");
        resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
        *guard = AuthState::Failed;
        return Ok(resp);
    }
    *guard = AuthState::Handshaken {
        mechanism,
        raw_tokens: ctx.api_version == 0,
    };
    Ok(resp)
}

/// SaslAuthenticate: one token of the exchange the handshake started.
pub async fn authenticate(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: SaslAuthenticateRequest,
) -> Result<SaslAuthenticateResponse> {
    if ctx.auth.expects_raw_token() || !ctx.auth.protocol.uses_sasl() || ctx.auth.is_authenticated()
    {
        let mut resp = SaslAuthenticateResponse::default();
        resp.error_code = ResponseError::IllegalSaslState.code();
        resp.error_message = Some(StrBytes::from_static_str(
            "SaslAuthenticate is not expected on this connection now",
        ));
        return Ok(resp);
    }
    let mut resp = SaslAuthenticateResponse::default();
    match step(&state, &ctx.auth, ctx.peer, &req.auth_bytes) {
        Step::Continue(token) | Step::Done(token) => resp.auth_bytes = Bytes::from(token),
        Step::Failed(message) => {
            resp.error_code = ResponseError::SaslAuthenticationFailed.code();
            resp.error_message = Some(StrBytes::from(message));
        }
    }
    Ok(resp)
}

/// A bare token after a v0 handshake: the bare token to send back, or an error that closes
/// the connection (the v0 flow has no way to carry an error message).
pub fn raw_token(
    state: &BrokerState,
    auth: &ConnectionAuth,
    peer: SocketAddr,
    token: &[u8],
) -> Result<Vec<u8>> {
    match step(state, auth, peer, token) {
        Step::Continue(t) | Step::Done(t) => Ok(t),
        Step::Failed(message) => Err(BrokerError::IllegalSaslState(message)),
    }
}

/// Registers SaslHandshake and SaslAuthenticate.
pub fn register(r: &mut HandlerRegistry) {
    r.register::<SaslHandshakeRequest, _, _>(0, 1, handshake)
        .register::<SaslAuthenticateRequest, _, _>(0, 2, authenticate);
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use rsasl::prelude::SASLClient;

    use super::*;
    use crate::security::scram::ScramCredential;

    /// Runs a whole exchange between `rsasl`'s client and the broker's server side.
    fn exchange(
        config: Arc<SASLConfig>,
        mechanism: &str,
        user: &str,
        password: &str,
    ) -> Option<String> {
        let client_config =
            SASLConfig::with_credentials(None, user.to_string(), password.to_string()).unwrap();
        let name = Mechname::parse(mechanism.as_bytes()).unwrap();
        let mut client = SASLClient::new(client_config)
            .start_suggested(&[name])
            .unwrap();
        let mut server = SASLServer::<AuthenticatedUser>::new(config)
            .start_suggested(name)
            .unwrap();
        let mut to_server = Vec::new();
        client.step(None, &mut to_server).unwrap();
        loop {
            let mut to_client = Cursor::new(Vec::new());
            let state = server.step(Some(&to_server), &mut to_client).ok()?;
            if !state.is_running() {
                return server.validation();
            }
            to_server.clear();
            client
                .step(Some(to_client.get_ref()), &mut to_server)
                .unwrap();
        }
    }

    #[test]
    fn scram_and_plain_accept_the_right_password_only() {
        let store = Arc::new(ScramStore::open(None).unwrap());
        for m in ScramMechanism::ALL {
            let salted = m.salted_password(b"pw", b"NaCl", 4096);
            let cred = ScramCredential::new(m, b"NaCl", &salted, 4096);
            store
                .update(|u| u.entry("alice".into()).or_default().insert(m, cred))
                .unwrap();
        }
        let mut plain = PlainUsers::default();
        plain.0.insert("paula".into(), "ppw".into());
        let config = listener_config(store, plain).unwrap();
        for m in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            assert_eq!(
                exchange(config.clone(), m, "alice", "pw"),
                Some("alice".into()),
                "{m}"
            );
            assert_eq!(exchange(config.clone(), m, "alice", "nope"), None, "{m}");
            assert_eq!(exchange(config.clone(), m, "bob", "pw"), None, "{m}");
        }
        assert_eq!(
            exchange(config.clone(), "PLAIN", "paula", "ppw"),
            Some("paula".into())
        );
        assert_eq!(exchange(config.clone(), "PLAIN", "paula", "pw"), None);
        assert_eq!(exchange(config, "PLAIN", "alice", "pw"), None);
    }
}

//! Who may read the UI, the REST API and `/metrics`.
//!
//! The UI shows topic names, offsets, lag and the job's configuration, and its REST API is as
//! open as its pages, so it listens on 127.0.0.1 unless told otherwise. Bound anywhere else it
//! must be given credentials ([`UiAuth`]) and refuses to start without them: a job moved from a
//! laptop to a server must not publish its internals on every interface by accident.
//!
//! Two schemes, both plain HTTP `Authorization` headers so browsers, `curl` and Prometheus
//! (`bearer_token` / `basic_auth` in a scrape config) speak them without plugins:
//! - a bearer token (`Authorization: Bearer <token>`), for scripts and scrapers;
//! - basic auth (`Authorization: Basic base64(user:password)`), which browsers prompt for
//!   after the `WWW-Authenticate: Basic` challenge of a 401.
//!
//! Either credential is compared in constant time. Put a TLS-terminating proxy in front of a
//! UI reached over an untrusted network: the UI serves plain HTTP, so these headers travel in
//! clear text.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// Credentials the UI asks for.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum UiAuth {
    /// No credentials: only allowed on a loopback address.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// `Authorization: Basic …` with this user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for UiAuth {
    // Never prints a secret: a config dumped into a log must not leak the UI's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UiAuth::None => f.write_str("None"),
            UiAuth::Token(_) => f.write_str("Token(<redacted>)"),
            UiAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl UiAuth {
    /// Whether requests must carry credentials.
    pub fn is_required(&self) -> bool {
        !matches!(self, UiAuth::None)
    }

    /// Whether `headers` carry the credentials this UI asks for.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match self {
            UiAuth::None => true,
            UiAuth::Token(token) => given
                .strip_prefix("Bearer ")
                .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes())),
            UiAuth::Basic { user, password } => given
                .strip_prefix("Basic ")
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .is_some_and(|pair| {
                    let expected = format!("{user}:{password}");
                    constant_time_eq(&pair, expected.as_bytes())
                }),
        }
    }

    /// The challenge sent with a 401, so a browser knows to prompt.
    fn challenge(&self) -> &'static str {
        match self {
            UiAuth::Basic { .. } => "Basic realm=\"spate\", charset=\"UTF-8\"",
            _ => "Bearer realm=\"spate\"",
        }
    }
}

/// Compares without an early exit, so the time taken does not say how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: lets a request through when it carries the credentials, answers 401 otherwise.
pub(crate) async fn require(State(auth): State<Arc<UiAuth>>, req: Request, next: Next) -> Response {
    if auth.admits(req.headers()) {
        return next.run(req).await;
    }
    let body = "authentication required: send the UI's token (Authorization: Bearer …) or its \
                user and password (basic auth)\n";
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, auth.challenge())],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    #[test]
    fn token_and_basic_credentials_are_checked() {
        let token = UiAuth::Token("s3cret".into());
        assert!(token.admits(&headers("Bearer s3cret")));
        assert!(!token.admits(&headers("Bearer s3cre")));
        assert!(!token.admits(&headers("Bearer s3cret2")));
        assert!(!token.admits(&headers("Basic czNjcmV0")));
        assert!(!token.admits(&HeaderMap::new()));

        let basic = UiAuth::Basic {
            user: "ops".into(),
            password: "pw:with:colons".into(),
        };
        let good = base64::engine::general_purpose::STANDARD.encode("ops:pw:with:colons");
        let bad = base64::engine::general_purpose::STANDARD.encode("ops:pw");
        assert!(basic.admits(&headers(&format!("Basic {good}"))));
        assert!(!basic.admits(&headers(&format!("Basic {bad}"))));
        assert!(!basic.admits(&headers("Basic !!not-base64!!")));
        assert!(!basic.admits(&headers(&format!("Bearer {good}"))));
        assert!(UiAuth::None.admits(&HeaderMap::new()));
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let shown = format!(
            "{:?} {:?}",
            UiAuth::Token("tok-123".into()),
            UiAuth::Basic {
                user: "ops".into(),
                password: "pw-456".into()
            }
        );
        assert!(
            !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
        assert!(shown.contains("ops"));
    }
}

//! The UI beyond loopback: refused without credentials; with a bearer token or basic auth every
//! page, REST route and `/metrics` answers 401 (with the challenge a browser or scraper needs)
//! until the request carries them.

mod ui_support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use spate_streaming::{Config, StreamingContext};
use spate_ui::{UiAuth, UiConfig, UiError, UiServer};

use ui_support::*;

fn context() -> StreamingContext {
    StreamingContext::new(Config::new("ui-auth-test").batch_interval(Duration::from_millis(100)))
        .unwrap()
}

fn all_interfaces() -> SocketAddr {
    "0.0.0.0:0".parse().unwrap()
}

/// The server bound to 0.0.0.0 answers on loopback too.
fn loopback(ui: &UiServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], ui.local_addr().port()))
}

const ROUTES: [&str; 4] = [
    "/",
    "/api/v1/streaming/statistics",
    "/api/v1/applications",
    "/metrics",
];

#[test]
fn a_ui_beyond_loopback_without_credentials_does_not_start() {
    let ctx = context();
    let err = UiServer::start(&ctx, UiConfig::default().bind(all_interfaces())).unwrap_err();
    assert!(matches!(err, UiError::Unauthenticated { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("0.0.0.0") && text.contains("authentication"),
        "{text}"
    );
}

#[test]
fn bearer_token_guards_every_route() {
    let ctx = context();
    let config = UiConfig::default()
        .bind(all_interfaces())
        .auth(UiAuth::Token("tok-7f3a".into()));
    let ui = UiServer::start(&ctx, config).unwrap();
    let addr = loopback(&ui);
    for route in ROUTES {
        let none = get_with(addr, route, None);
        assert_eq!(none.status, 401, "{route} without a token");
        assert!(
            none.challenge
                .as_deref()
                .unwrap_or("")
                .starts_with("Bearer"),
            "{route}: {:?}",
            none.challenge
        );
        assert!(
            !none.body.contains("ui-auth-test"),
            "{route} leaked the job"
        );
        let wrong = get_with(addr, route, Some("Bearer tok-7f3b"));
        assert_eq!(wrong.status, 401, "{route} with a wrong token");
        let right = get_with(addr, route, Some("Bearer tok-7f3a"));
        assert_eq!(right.status, 200, "{route} with the token: {}", right.body);
    }
    ui.shutdown();
}

#[test]
fn basic_auth_guards_every_route_and_prompts_browsers() {
    let ctx = context();
    let config = UiConfig::default()
        .bind(all_interfaces())
        .auth(UiAuth::Basic {
            user: "ops".into(),
            password: "correct horse".into(),
        });
    let ui = UiServer::start(&ctx, config).unwrap();
    let addr = loopback(&ui);
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for route in ROUTES {
        let none = get_with(addr, route, None);
        assert_eq!(none.status, 401, "{route} without credentials");
        assert!(
            none.challenge.as_deref().unwrap_or("").starts_with("Basic"),
            "{route}: {:?}",
            none.challenge
        );
        let wrong = format!("Basic {}", encode("ops:wrong horse"));
        assert_eq!(get_with(addr, route, Some(&wrong)).status, 401, "{route}");
        let right = format!("Basic {}", encode("ops:correct horse"));
        let ok = get_with(addr, route, Some(&right));
        assert_eq!(ok.status, 200, "{route} with the password: {}", ok.body);
    }
    let stats = get_with(
        addr,
        "/api/v1/streaming/statistics",
        Some(&format!("Basic {}", encode("ops:correct horse"))),
    );
    assert!(stats.json().is_object());
    ui.shutdown();
}

#[test]
fn credentials_given_on_loopback_are_still_required() {
    let ctx = context();
    let config = UiConfig::default()
        .port(0)
        .auth(UiAuth::Token("local-token".into()));
    let ui = UiServer::start(&ctx, config).unwrap();
    assert_eq!(get(ui.local_addr(), "/metrics").status, 401);
    let ok = get_with(ui.local_addr(), "/metrics", Some("Bearer local-token"));
    assert_eq!(ok.status, 200);
    ui.shutdown();
}

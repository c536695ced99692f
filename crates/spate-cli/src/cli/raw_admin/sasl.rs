//! The client side of SASL for the admin connection, as Kafka's clients run it (KIP-152):
//! SaslHandshake names the mechanism, then SaslAuthenticate requests carry the mechanism's
//! messages until it finishes. rsasl (the crate the broker's server side uses) runs PLAIN and
//! SCRAM-SHA-256/512, so the salted-challenge arithmetic is not written twice.

use std::io::Cursor;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};

use super::security::SaslSettings;
use super::Connection;

/// SaslHandshake v1: SaslAuthenticate requests follow (v0 would send bare tokens).
const HANDSHAKE_VERSION: i16 = 1;
/// SaslAuthenticate v2 (flexible), which every broker since Kafka 2.4 answers.
const AUTHENTICATE_VERSION: i16 = 2;

/// Authenticates `conn` as `sasl.username`; an error names the mechanism and the broker's
/// reason (a wrong password is "SASL_AUTHENTICATION_FAILED: …").
pub fn authenticate(conn: &mut Connection, sasl: &SaslSettings) -> anyhow::Result<()> {
    handshake(conn, &sasl.mechanism)?;
    let config = SASLConfig::with_credentials(None, sasl.username.clone(), sasl.password.clone())
        .map_err(|e| anyhow!("SASL configuration: {e}"))?;
    let mechname = Mechname::parse(sasl.mechanism.as_bytes())
        .map_err(|e| anyhow!("sasl.mechanism {}: {e}", sasl.mechanism))?;
    let mut session = SASLClient::new(config)
        .start_suggested(&[mechname])
        .map_err(|e| anyhow!("starting SASL {}: {e}", sasl.mechanism))?;
    let mut from_broker: Option<Bytes> = None;
    loop {
        let mut out = Cursor::new(Vec::new());
        let state = session
            .step(from_broker.as_deref(), &mut out)
            .map_err(|e| anyhow!("SASL {} with the broker: {e}", sasl.mechanism))?;
        if state.has_sent_message() {
            from_broker = Some(send(conn, out.into_inner(), &sasl.mechanism)?);
        }
        if let State::Finished(_) = state {
            return Ok(());
        }
    }
}

fn handshake(conn: &mut Connection, mechanism: &str) -> anyhow::Result<()> {
    let mut req = SaslHandshakeRequest::default();
    req.mechanism = StrBytes::from(mechanism.to_owned());
    let resp = conn
        .call(&req, HANDSHAKE_VERSION)
        .context("SaslHandshake")?;
    if resp.error_code != 0 {
        let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
        bail!(
            "the broker refused SASL mechanism {mechanism} ({}); it offers: {}",
            code_name(resp.error_code),
            offered.join(", ")
        );
    }
    Ok(())
}

fn send(conn: &mut Connection, message: Vec<u8>, mechanism: &str) -> anyhow::Result<Bytes> {
    let mut req = SaslAuthenticateRequest::default();
    req.auth_bytes = Bytes::from(message);
    let resp = conn
        .call(&req, AUTHENTICATE_VERSION)
        .context("SaslAuthenticate")?;
    if resp.error_code != 0 {
        let reason = resp
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        bail!(
            "SASL {mechanism} authentication failed: {}: {reason}",
            code_name(resp.error_code)
        );
    }
    Ok(resp.auth_bytes)
}

fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error {code}"),
    }
}

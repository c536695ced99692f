//! The SASL settings of a broker, under Kafka's names: `sasl.enabled.mechanisms` (which
//! mechanisms SaslHandshake accepts) and `listener.name.<listener>.plain.sasl.jaas.config`
//! (the PLAIN users of one listener, as Kafka's `PlainLoginModule` lists them:
//! `user_<name>="<password>"`). SCRAM users are not configured here: they are managed with
//! AlterUserScramCredentials and stored salted and hashed ([`super::scram`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// The SASL mechanisms this broker implements, by Kafka name.
pub const SUPPORTED_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The login module Kafka names for PLAIN users in a JAAS entry.
const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// PLAIN users of one listener: user name to password. Debug output never shows passwords.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainUsers(pub BTreeMap<String, String>);

impl std::fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// `sasl.*` and the per-listener PLAIN users, as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`; default: every mechanism spate implements (Kafka's default,
    /// GSSAPI, is not one of them).
    pub enabled_mechanisms: Vec<String>,
    /// `listener.name.<listener>.plain.sasl.jaas.config`, parsed; keyed by the listener name
    /// in upper case.
    pub plain_users: BTreeMap<String, PlainUsers>,
}

impl Default for SaslSettings {
    fn default() -> Self {
        SaslSettings {
            enabled_mechanisms: SUPPORTED_MECHANISMS.iter().map(|m| m.to_string()).collect(),
            plain_users: BTreeMap::new(),
        }
    }
}

/// The listener name in `listener.name.<listener>.plain.sasl.jaas.config`.
fn plain_jaas_listener(key: &str) -> Option<&str> {
    key.strip_prefix("listener.name.")?
        .strip_suffix(".plain.sasl.jaas.config")
        .filter(|l| !l.is_empty() && !l.contains('.'))
}

impl SaslSettings {
    /// True for the keys this module owns.
    pub fn handles(key: &str) -> bool {
        key == "sasl.enabled.mechanisms" || plain_jaas_listener(key).is_some()
    }

    /// Sets one key. A JAAS value is never echoed into errors (it holds passwords).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if key == "sasl.enabled.mechanisms" {
            let mut mechanisms = Vec::new();
            for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let m = m.to_ascii_uppercase();
                if !SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                    return Err(BrokerError::invalid_config(
                        key,
                        value,
                        format!("{m} is not supported (supported: {SUPPORTED_MECHANISMS:?})"),
                    ));
                }
                if !mechanisms.contains(&m) {
                    mechanisms.push(m);
                }
            }
            if mechanisms.is_empty() {
                return Err(BrokerError::invalid_config(
                    key,
                    value,
                    "names no mechanism",
                ));
            }
            self.enabled_mechanisms = mechanisms;
            return Ok(());
        }
        let Some(listener) = plain_jaas_listener(key) else {
            return Err(BrokerError::invalid_config(key, "", "not a SASL setting"));
        };
        let users = parse_plain_jaas(value)
            .map_err(|reason| BrokerError::invalid_config(key, "<JAAS config>", reason))?;
        self.plain_users
            .insert(listener.to_ascii_uppercase(), PlainUsers(users));
        Ok(())
    }

    /// Whether `sasl.enabled.mechanisms` includes `mechanism`.
    pub fn is_enabled(&self, mechanism: &str) -> bool {
        self.enabled_mechanisms.iter().any(|m| m == mechanism)
    }
}

/// The `user_<name>="<password>"` options of a `PlainLoginModule` JAAS entry:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="secret";`.
/// `username`/`password` (the broker's own client login in Kafka) are accepted and unused:
/// spate brokers do not talk to each other.
pub fn parse_plain_jaas(text: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let body = text.trim().strip_suffix(';').unwrap_or(text.trim());
    let mut words = body.splitn(3, char::is_whitespace);
    let module = words.next().unwrap_or_default();
    if module != PLAIN_LOGIN_MODULE {
        return Err(format!("expected {PLAIN_LOGIN_MODULE}, found {module:?}"));
    }
    match words.next() {
        Some("required" | "requisite" | "sufficient" | "optional") => {}
        other => return Err(format!("expected a control flag, found {other:?}")),
    }
    let mut users = BTreeMap::new();
    for (name, value) in jaas_options(words.next().unwrap_or_default())? {
        if let Some(user) = name.strip_prefix("user_") {
            if user.is_empty() {
                return Err("user_ with an empty user name".into());
            }
            users.insert(user.to_string(), value);
        } else if name != "username" && name != "password" {
            return Err(format!("unknown option {name:?}"));
        }
    }
    if users.is_empty() {
        return Err("names no user (user_<name>=\"<password>\")".into());
    }
    Ok(users)
}

/// `name=value` pairs separated by whitespace; values may be double-quoted (with `\"`).
fn jaas_options(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next() != Some('=') {
            return Err(format!("option {:?} has no value", name.trim()));
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in option {name:?}")),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        out.push((name.trim().to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_plain_jaas() {
        let users = parse_plain_jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
             user_alice=\"a \\\"quoted\\\" pw\" user_bob=bare;",
        )
        .unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users["alice"], "a \"quoted\" pw");
        assert_eq!(users["bob"], "bare");
        assert!(parse_plain_jaas("Other required user_a=\"b\";").is_err());
        assert!(parse_plain_jaas(&format!("{PLAIN_LOGIN_MODULE} required user_a=\"b")).is_err());
        assert!(parse_plain_jaas(&format!("{PLAIN_LOGIN_MODULE} required;")).is_err());
    }

    #[test]
    fn settings_take_kafka_keys() {
        let mut s = SaslSettings::default();
        assert!(SaslSettings::handles(
            "listener.name.sasl_ssl.plain.sasl.jaas.config"
        ));
        assert!(!SaslSettings::handles(
            "listener.name.x.y.plain.sasl.jaas.config"
        ));
        s.set(
            "listener.name.sasl_ssl.plain.sasl.jaas.config",
            &format!("{PLAIN_LOGIN_MODULE} required user_alice=\"pw\";"),
        )
        .unwrap();
        assert!(s.plain_users["SASL_SSL"].0.contains_key("alice"));
        assert!(!format!("{s:?}").contains("pw\""), "Debug hides passwords");
        s.set("sasl.enabled.mechanisms", "scram-sha-512, PLAIN")
            .unwrap();
        assert_eq!(s.enabled_mechanisms, ["SCRAM-SHA-512", "PLAIN"]);
        assert!(s.set("sasl.enabled.mechanisms", "GSSAPI").is_err());
        let err = s
            .set(
                "listener.name.x.plain.sasl.jaas.config",
                "bad user_a=\"secret\"",
            )
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}

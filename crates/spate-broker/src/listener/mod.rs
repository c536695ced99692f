//! Listeners the Kafka way: `listeners=PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093`, with
//! `advertised.listeners` (what Metadata tells clients connected on each listener) and
//! `listener.security.protocol.map` (listener name to security protocol), and the `ssl.*`
//! settings of TLS listeners ([`tls`]).
//!
//! Without `listeners` the broker keeps its single plaintext `listen` address, as before.

pub mod bind;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

pub use tls::SslSettings;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::state::Advertised;

/// A bound listener as connections see it: its name and protocol, the endpoint Metadata
/// advertises to its clients, and its TLS acceptor when the protocol uses TLS.
pub struct ListenerInfo {
    /// The listener's name (`PLAINTEXT`, `SASL_SSL`, …).
    pub name: String,
    /// The security protocol its connections speak.
    pub protocol: SecurityProtocol,
    /// The endpoint Metadata advertises to this listener's clients.
    pub advertised: Arc<Advertised>,
    /// The TLS acceptor, when the protocol is SSL or SASL_SSL.
    pub tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for ListenerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerInfo")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("advertised", &self.advertised)
            .finish_non_exhaustive()
    }
}

/// Kafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityProtocol {
    /// `PLAINTEXT`: no TLS, no authentication.
    Plaintext,
    /// `SSL`: TLS, with client certificates when `ssl.client.auth` asks for them.
    Ssl,
    /// `SASL_PLAINTEXT`: SASL authentication without TLS.
    SaslPlaintext,
    /// `SASL_SSL`: SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// True when connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// True when clients must authenticate with SASL first.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The listener settings as given (Kafka's spelling), resolved by [`ListenerSettings::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenerSettings {
    /// `listeners`.
    pub listeners: Option<String>,
    /// `advertised.listeners`.
    pub advertised_listeners: Option<String>,
    /// `listener.security.protocol.map`.
    pub security_protocol_map: Option<String>,
    /// `ssl.*`.
    pub ssl: SslSettings,
}

/// One listener, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, or a custom name from the protocol map).
    pub name: String,
    /// The address to bind.
    pub bind: SocketAddr,
    /// The security protocol of the listener (`listener.security.protocol.map`).
    pub protocol: SecurityProtocol,
    /// Host and port advertised to clients of this listener, if `advertised.listeners` names it.
    pub advertised: Option<(String, u16)>,
}

fn bad(key: &str, value: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::invalid_config(key, value, reason)
}

/// `NAME://host:port` items of a comma-separated list.
fn parse_endpoints(key: &str, value: &str) -> Result<Vec<(String, String, u16)>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = item
            .split_once("://")
            .ok_or_else(|| bad(key, value, format!("{item:?} is not NAME://HOST:PORT")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad(key, value, format!("{item:?} has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(key, value, format!("{item:?} has an invalid port")))?;
        let name = name.trim().to_ascii_uppercase();
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err(bad(key, value, format!("listener {name} is named twice")));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        out.push((name, host, port));
    }
    if out.is_empty() {
        return Err(bad(key, value, "names no listener"));
    }
    Ok(out)
}

impl ListenerSettings {
    /// True for the keys this module owns.
    pub fn handles(key: &str) -> bool {
        matches!(
            key,
            "listeners" | "advertised.listeners" | "listener.security.protocol.map"
        ) || SslSettings::handles(key)
    }

    /// Sets one key (checked again, in context, by [`resolve`](Self::resolve)).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let v = value.trim().to_string();
        match key {
            "listeners" => {
                parse_endpoints(key, &v)?;
                self.listeners = Some(v);
            }
            "advertised.listeners" => {
                parse_endpoints(key, &v)?;
                self.advertised_listeners = Some(v);
            }
            "listener.security.protocol.map" => {
                self.protocol_map_of(&v)?;
                self.security_protocol_map = Some(v);
            }
            _ => self.ssl.set(key, &v)?,
        }
        Ok(())
    }

    fn protocol_map_of(&self, value: &str) -> Result<BTreeMap<String, SecurityProtocol>> {
        let key = "listener.security.protocol.map";
        let mut map = BTreeMap::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, proto) = item
                .split_once(':')
                .ok_or_else(|| bad(key, value, format!("{item:?} is not NAME:PROTOCOL")))?;
            let proto = SecurityProtocol::parse(proto)
                .ok_or_else(|| bad(key, value, format!("unknown security protocol in {item:?}")))?;
            map.insert(name.trim().to_ascii_uppercase(), proto);
        }
        Ok(map)
    }

    /// The listeners to bind, or `None` when `listeners` is not set (the plain `listen` address
    /// is used then).
    pub fn resolve(&self) -> Result<Option<Vec<ListenerSpec>>> {
        let Some(listeners) = &self.listeners else {
            return Ok(None);
        };
        let map = match &self.security_protocol_map {
            Some(m) => self.protocol_map_of(m)?,
            None => BTreeMap::new(),
        };
        let advertised = match &self.advertised_listeners {
            Some(a) => parse_endpoints("advertised.listeners", a)?,
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for (name, host, port) in parse_endpoints("listeners", listeners)? {
            // Kafka's default map names each protocol after itself.
            let protocol = map
                .get(&name)
                .copied()
                .or_else(|| SecurityProtocol::parse(&name))
                .ok_or_else(|| {
                    bad(
                        "listener.security.protocol.map",
                        self.security_protocol_map.as_deref().unwrap_or(""),
                        format!("no security protocol for listener {name}"),
                    )
                })?;
            let bind_host = if host.is_empty() { "0.0.0.0" } else { &host };
            let bind = (bind_host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| bad("listeners", listeners, format!("cannot resolve {host}")))?;
            let adv = advertised
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, h, p)| (h.clone(), *p));
            out.push(ListenerSpec {
                name,
                bind,
                protocol,
                advertised: adv,
            });
        }
        if let Some((n, _, _)) = advertised
            .iter()
            .find(|(n, _, _)| !out.iter().any(|l| l.name == *n))
        {
            return Err(bad(
                "advertised.listeners",
                self.advertised_listeners.as_deref().unwrap_or(""),
                format!("{n} is not in listeners"),
            ));
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_kafka_style_listeners() {
        let mut s = ListenerSettings::default();
        s.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,SECURE://0.0.0.0:9093",
        )
        .unwrap();
        s.set("advertised.listeners", "SECURE://broker.example:19093")
            .unwrap();
        assert!(s.resolve().is_err(), "SECURE has no protocol yet");
        s.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SECURE:SSL",
        )
        .unwrap();
        let l = s.resolve().unwrap().unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].advertised, None);
        assert_eq!(l[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(l[1].bind.port(), 9093);
        assert_eq!(l[1].advertised, Some(("broker.example".into(), 19093)));
        assert!(s.set("listeners", "PLAINTEXT:/x").is_err());
        assert!(s.set("listener.security.protocol.map", "A:TLS").is_err());
    }
}

//! The security settings of the admin connection, read from the same client settings that
//! librdkafka takes (`--command-config FILE`, `-X key=value`), so one properties file serves
//! every `spate` command: `security.protocol` (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`,
//! `SASL_SSL`), `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`), `sasl.username`,
//! `sasl.password`, `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location` and
//! `ssl.endpoint.identification.algorithm` (`https`, the default, or `none`).
//!
//! Settings this connection cannot honour (another SASL mechanism, an encrypted key) are an
//! error naming the setting, never silently dropped: a command that quietly fell back to
//! plaintext would send credentials in the clear.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL inside TLS.
    SaslSsl,
}

impl Protocol {
    fn parse(value: &str) -> anyhow::Result<Self> {
        Ok(match value.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => bail!(
                "security.protocol={value} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            ),
        })
    }

    fn uses_tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// What TLS needs: whom to trust, and optionally our own certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `ssl.ca.location`: PEM CA certificates; the system's bundle when absent.
    pub ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`: our PEM certificate chain, for brokers that ask for one.
    pub certificate_location: Option<PathBuf>,
    /// `ssl.key.location`: the PEM private key of that certificate.
    pub key_location: Option<PathBuf>,
    /// `ssl.endpoint.identification.algorithm=https` (the default): the broker's certificate
    /// must name the host we connected to.
    pub verify_hostname: bool,
}

/// What SASL needs.
#[derive(Clone)]
pub struct SaslSettings {
    /// `sasl.mechanism`.
    pub mechanism: String,
    /// `sasl.username`.
    pub username: String,
    /// `sasl.password`.
    pub password: String,
}

impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// The connection's security, from the client settings.
#[derive(Debug, Clone)]
pub struct Security {
    /// `security.protocol`.
    pub protocol: Protocol,
    /// Set for `SSL` and `SASL_SSL`.
    pub tls: Option<TlsSettings>,
    /// Set for `SASL_PLAINTEXT` and `SASL_SSL`.
    pub sasl: Option<SaslSettings>,
}

const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl Security {
    /// Reads `settings` (later pairs win, as librdkafka applies them).
    pub fn from_settings<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<Self> {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in settings {
            map.insert(k, v);
        }
        let get = |k: &str| map.get(k).copied();
        let protocol = match get("security.protocol") {
            Some(v) => Protocol::parse(v)?,
            None => Protocol::Plaintext,
        };
        let tls = protocol
            .uses_tls()
            .then(|| tls_settings(&get))
            .transpose()?;
        let sasl = protocol
            .uses_sasl()
            .then(|| sasl_settings(&get))
            .transpose()?;
        Ok(Security {
            protocol,
            tls,
            sasl,
        })
    }
}

fn tls_settings<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> anyhow::Result<TlsSettings> {
    if get("ssl.key.password").is_some() {
        bail!(
            "ssl.key.password: encrypted private keys are not supported by spate's admin \
             commands; give ssl.key.location an unencrypted PEM key"
        );
    }
    let verify_hostname = match get("ssl.endpoint.identification.algorithm") {
        None | Some("https") => true,
        Some("none") | Some("") => false,
        Some(other) => {
            bail!("ssl.endpoint.identification.algorithm={other} is not one of https, none")
        }
    };
    let settings = TlsSettings {
        ca_location: get("ssl.ca.location").map(PathBuf::from),
        certificate_location: get("ssl.certificate.location").map(PathBuf::from),
        key_location: get("ssl.key.location").map(PathBuf::from),
        verify_hostname,
    };
    if settings.certificate_location.is_some() != settings.key_location.is_some() {
        bail!("ssl.certificate.location and ssl.key.location go together: give both or neither");
    }
    Ok(settings)
}

fn sasl_settings<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> anyhow::Result<SaslSettings> {
    // librdkafka spells it `sasl.mechanisms` too; Kafka's Java clients `sasl.mechanism`.
    let mechanism = get("sasl.mechanism")
        .or_else(|| get("sasl.mechanisms"))
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    if !SASL_MECHANISMS.contains(&mechanism.as_str()) {
        bail!(
            "sasl.mechanism={mechanism} is not supported by spate's admin commands (use one of {})",
            SASL_MECHANISMS.join(", ")
        );
    }
    let username = get("sasl.username").context("SASL needs sasl.username")?;
    let password = get("sasl.password").context("SASL needs sasl.password")?;
    Ok(SaslSettings {
        mechanism,
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_their_settings() {
        let plain = Security::from_settings([]).unwrap();
        assert_eq!(plain.protocol, Protocol::Plaintext);
        assert!(plain.tls.is_none() && plain.sasl.is_none());

        let s = Security::from_settings([
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "scram-sha-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "pw"),
            ("ssl.ca.location", "/tmp/ca.pem"),
        ])
        .unwrap();
        assert_eq!(s.protocol, Protocol::SaslSsl);
        assert_eq!(s.sasl.as_ref().unwrap().mechanism, "SCRAM-SHA-512");
        let tls = s.tls.unwrap();
        assert!(tls.verify_hostname);
        assert_eq!(tls.ca_location.unwrap(), PathBuf::from("/tmp/ca.pem"));
        assert!(!format!("{:?}", s.sasl).contains("\"pw\""));
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_naming_the_setting() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("security.protocol", "TLS")], "security.protocol"),
            (
                &[
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "GSSAPI"),
                ],
                "sasl.mechanism=GSSAPI",
            ),
            (
                &[
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "PLAIN"),
                ],
                "sasl.username",
            ),
            (
                &[("security.protocol", "SSL"), ("ssl.key.password", "x")],
                "ssl.key.password",
            ),
            (
                &[
                    ("security.protocol", "SSL"),
                    ("ssl.certificate.location", "/c.pem"),
                ],
                "ssl.key.location",
            ),
        ];
        for (settings, named) in cases {
            let err = Security::from_settings(settings.iter().copied()).unwrap_err();
            assert!(
                format!("{err:#}").contains(named),
                "{err:#} should name {named}"
            );
        }
    }
}

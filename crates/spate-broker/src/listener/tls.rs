//! TLS for `SSL` and `SASL_SSL` listeners, configured with Kafka's PEM settings (KIP-651):
//! `ssl.keystore.type=PEM` with either `ssl.keystore.location` (a file holding the private key
//! and the certificate chain) or `ssl.keystore.certificate.chain` + `ssl.keystore.key` (the PEM
//! text itself); `ssl.truststore.type=PEM` with `ssl.truststore.location` or
//! `ssl.truststore.certificates` (CAs that sign client certificates); and `ssl.client.auth`
//! (`none`, `requested`, `required`).
//!
//! rustls does the TLS; certificates are checked with webpki (expiry included), so an expired
//! client certificate fails the handshake and the connection never reaches a request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
// rustls 0.23.48 deprecates the ring provider only because it lacks post-quantum key exchange;
// it is used here because aws-lc (the alternative) needs cmake and a long C build.
#[allow(deprecated)]
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::error::{BrokerError, Result};

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientAuth {
    /// `none`: clients are not asked for a certificate.
    #[default]
    None,
    /// `requested`: a client certificate is asked for and checked when given.
    Requested,
    /// `required`: a client without a valid certificate is refused.
    Required,
}

/// The `ssl.*` settings, as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SslSettings {
    /// `ssl.keystore.location`: a PEM file with the broker's certificate chain and key.
    pub keystore_location: Option<String>,
    /// `ssl.keystore.certificate.chain`: the broker's certificate chain as PEM text.
    pub keystore_certificate_chain: Option<String>,
    /// `ssl.keystore.key`: the broker's private key as PEM text.
    pub keystore_key: Option<String>,
    /// `ssl.truststore.location`: a PEM file of CA certificates that sign client certificates.
    pub truststore_location: Option<String>,
    /// `ssl.truststore.certificates`: those CA certificates as PEM text.
    pub truststore_certificates: Option<String>,
    /// `ssl.client.auth`: whether clients must present a certificate.
    pub client_auth: ClientAuth,
}

fn bad(key: &str, value: &str, reason: impl Into<String>) -> BrokerError {
    // Never echo PEM text (it may hold a private key) into an error message.
    let shown = if value.contains("-----BEGIN") {
        "<PEM>"
    } else {
        value
    };
    BrokerError::invalid_config(key, shown, reason)
}

impl SslSettings {
    /// Whether `key` is one of these settings (`ssl.*`).
    pub fn handles(key: &str) -> bool {
        key.starts_with("ssl.")
    }

    /// Sets `key` to `v`; an unknown `ssl.*` key or a bad value is an error.
    pub fn set(&mut self, key: &str, v: &str) -> Result<()> {
        let some = Some(v.to_string());
        match key {
            "ssl.keystore.type" | "ssl.truststore.type" => {
                if !v.eq_ignore_ascii_case("PEM") {
                    return Err(bad(key, v, "only PEM stores are supported (KIP-651)"));
                }
            }
            "ssl.keystore.location" => self.keystore_location = some,
            "ssl.keystore.certificate.chain" => self.keystore_certificate_chain = some,
            "ssl.keystore.key" => self.keystore_key = some,
            "ssl.truststore.location" => self.truststore_location = some,
            "ssl.truststore.certificates" => self.truststore_certificates = some,
            "ssl.client.auth" => {
                self.client_auth = match v.to_ascii_lowercase().as_str() {
                    "none" => ClientAuth::None,
                    "requested" => ClientAuth::Requested,
                    "required" => ClientAuth::Required,
                    _ => return Err(bad(key, v, "expected none, requested or required")),
                }
            }
            "ssl.key.password" | "ssl.keystore.password" => {
                return Err(bad(
                    key,
                    "<hidden>",
                    "encrypted private keys are not supported; give an unencrypted PKCS#8 key",
                ))
            }
            _ => return Err(bad(key, v, "unknown ssl setting")),
        }
        Ok(())
    }

    /// The PEM text of the key store: `(certificate chain, private key)`.
    fn keystore_pem(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        match (
            &self.keystore_location,
            &self.keystore_certificate_chain,
            &self.keystore_key,
        ) {
            (Some(path), None, None) => {
                let pem = std::fs::read(path)
                    .map_err(|e| bad("ssl.keystore.location", path, e.to_string()))?;
                Ok((pem.clone(), pem))
            }
            (None, Some(chain), Some(key)) => Ok((chain.clone().into(), key.clone().into())),
            (None, None, None) => Err(bad(
                "ssl.keystore.location",
                "",
                "a TLS listener needs ssl.keystore.location or ssl.keystore.certificate.chain \
                 and ssl.keystore.key",
            )),
            _ => Err(bad(
                "ssl.keystore.location",
                "",
                "give either ssl.keystore.location or ssl.keystore.certificate.chain with \
                 ssl.keystore.key, not both",
            )),
        }
    }

    fn trust_roots(&self) -> Result<Option<RootCertStore>> {
        let pem: Vec<u8> = match (&self.truststore_location, &self.truststore_certificates) {
            (Some(path), _) => std::fs::read(path)
                .map_err(|e| bad("ssl.truststore.location", path, e.to_string()))?,
            (None, Some(text)) => text.clone().into(),
            (None, None) => return Ok(None),
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad("ssl.truststore.location", "", e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| bad("ssl.truststore.location", "", e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("ssl.truststore.location", "", "holds no certificate"));
        }
        Ok(Some(roots))
    }

    /// The TLS acceptor of a listener with these settings.
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        let (chain_pem, key_pem) = self.keystore_pem()?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad("ssl.keystore.certificate.chain", "", e.to_string()))?;
        if chain.is_empty() {
            return Err(bad("ssl.keystore.certificate.chain", "", "no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            bad(
                "ssl.keystore.key",
                "",
                format!("no usable private key: {e}"),
            )
        })?;
        #[allow(deprecated)]
        let provider = Arc::new(default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("ssl.enabled.protocols", "", e.to_string()))?;
        let builder = match (self.client_auth, self.trust_roots()?) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (auth, Some(roots)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| bad("ssl.truststore.location", "", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            (_, None) => {
                return Err(bad(
                    "ssl.client.auth",
                    "",
                    "client authentication needs ssl.truststore.location or \
                     ssl.truststore.certificates",
                ))
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| bad("ssl.keystore.key", "", e.to_string()))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

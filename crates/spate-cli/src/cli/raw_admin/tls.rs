//! The client side of TLS for the admin connection: rustls (the broker's own TLS library, with
//! the same ring provider) over a blocking `TcpStream`. Trust comes from `ssl.ca.location`, or
//! the system's CA bundle as librdkafka does by default; the broker's certificate must name the
//! host we dialled unless `ssl.endpoint.identification.algorithm=none`.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
// rustls deprecates the ring provider only because it lacks post-quantum key exchange; ring is
// used because aws-lc (the alternative) needs cmake and a long C build (see the broker's TLS).
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
#[allow(deprecated)]
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};

use super::security::TlsSettings;

/// Debian's (and most distributions') bundle of the system's trusted CAs.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS session over a blocking socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Wraps `tcp` in TLS to `host` and completes the handshake, so a certificate problem is
/// reported here ("invalid peer certificate: Expired") and not as a failed first request.
pub fn connect(tcp: TcpStream, host: &str, settings: &TlsSettings) -> anyhow::Result<TlsStream> {
    let config = client_config(settings)?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| anyhow!("{host} is not a valid TLS server name"))?;
    let conn =
        ClientConnection::new(Arc::new(config), name).context("setting up the TLS session")?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .with_context(|| format!("TLS handshake with {host}"))?;
    }
    stream.flush().context("TLS handshake")?;
    Ok(stream)
}

#[allow(deprecated)] // ring's provider: see the import above
fn client_config(settings: &TlsSettings) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(default_provider());
    let roots = Arc::new(trust_roots(settings)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .context("building the TLS certificate verifier")?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?;
    let builder = if settings.verify_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
    };
    match (&settings.certificate_location, &settings.key_location) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .context("ssl.certificate.location / ssl.key.location"),
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn trust_roots(settings: &TlsSettings) -> anyhow::Result<RootCertStore> {
    let path = match &settings.ca_location {
        Some(p) => p.clone(),
        None if Path::new(SYSTEM_CA_BUNDLE).exists() => SYSTEM_CA_BUNDLE.into(),
        None => bail!("ssl.ca.location is needed: no system CA bundle at {SYSTEM_CA_BUNDLE}"),
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(&path)? {
        roots
            .add(cert)
            .with_context(|| format!("ssl.ca.location {}: a bad CA certificate", path.display()))?;
    }
    Ok(roots)
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow!(
            "ssl.key.location {}: no PEM private key ({e})",
            path.display()
        )
    })
}

/// `ssl.endpoint.identification.algorithm=none`: the chain must still lead to a trusted CA and
/// be in date; only the host name check is skipped, as librdkafka does.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        use tokio_rustls::rustls::Error::InvalidCertificate;
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(InvalidCertificate(CertificateError::NotValidForName))
            | Err(InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The admin connection's byte stream: plain TCP or TLS.
pub enum Transport {
    /// `PLAINTEXT` and `SASL_PLAINTEXT`.
    Plain(TcpStream),
    /// `SSL` and `SASL_SSL`.
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            Transport::Tls(_) => f.write_str("Tls"),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

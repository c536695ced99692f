//! Certificates for TLS tests: a CA, a server certificate for `127.0.0.1`/`localhost` (and an
//! expired one), and client certificates (one valid, one expired in 2001), written as PEM files
//! into a temporary directory. Made with rcgen, so no test depends on openssl's command line.
//!
//! Files: `ca.pem`; for each leaf `<name>.crt`, `<name>.key` and `<name>.pem` (key and chain
//! together: Kafka's `ssl.keystore.type=PEM` key store file). Leaves: `server`,
//! `expired-server`, `client`, `expired`.

use std::path::PathBuf;

use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A throw-away public key infrastructure in a temporary directory.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates the CA and every leaf.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for certificates");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: a leaf whose subject equals its issuer's looks self-signed to OpenSSL.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "spate test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str, sans: Vec<String>, expired: bool| {
            let mut p = CertificateParams::new(sans).expect("leaf params");
            p.distinguished_name.push(DnType::CommonName, name);
            if expired {
                p.not_before = date_time_ymd(2000, 1, 1);
                p.not_after = date_time_ymd(2001, 1, 1);
            }
            let key = KeyPair::generate().expect("leaf key");
            let cert = p.signed_by(&key, &issuer).expect("leaf certificate");
            let write = |file: String, text: String| {
                std::fs::write(dir.path().join(file), text).expect("write a PEM file")
            };
            write(format!("{name}.crt"), cert.pem());
            write(format!("{name}.key"), key.serialize_pem());
            write(
                format!("{name}.pem"),
                format!("{}{}", key.serialize_pem(), cert.pem()),
            );
        };
        let server_names = || vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        leaf("server", server_names(), false);
        leaf("expired-server", server_names(), true);
        leaf("client", vec!["client".into()], false);
        leaf("expired", vec!["client".into()], true);
        Pki { dir }
    }

    /// The path of one of the files (`ca.pem`, `server.pem`, `client.key`, …).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The path of `file` as a `&str`-able string, for config values.
    pub fn location(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

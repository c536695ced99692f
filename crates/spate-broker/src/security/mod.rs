//! Authentication: who is on the other end of a connection. SASL listeners (`SASL_PLAINTEXT`,
//! `SASL_SSL`) make clients prove an identity with PLAIN or SCRAM before serving them
//! ([`sasl`]); every connection carries its principal ([`session`]), `User:ANONYMOUS` on
//! listeners without SASL. SCRAM users are managed over the protocol
//! (AlterUserScramCredentials / DescribeUserScramCredentials, [`scram_api`]) and kept salted and
//! hashed in [`scram::ScramStore`]. What an identity may do is the authorizer's business
//! ([`crate::acl`]), kept here beside the identities.

pub mod config;
pub mod sasl;
pub mod scram;
pub mod scram_api;
pub mod session;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rsasl::prelude::SASLConfig;

pub use config::SaslSettings;
pub use scram::{ScramMechanism, ScramStore};
pub use session::ConnectionAuth;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::listener::{ListenerSpec, SecurityProtocol};

/// The broker's authentication state: settings, SCRAM credentials, and one `rsasl`
/// configuration per SASL listener (each listener has its own PLAIN users).
pub struct Security {
    /// The `sasl.*` settings the broker started with.
    pub settings: SaslSettings,
    /// The SCRAM credentials (AlterUserScramCredentials), shared with the SASL handshake.
    pub scram: Arc<ScramStore>,
    /// The authorizer and its ACLs (`<meta dir>/acls.json`).
    pub authorizer: crate::acl::Authorizer,
    listeners: BTreeMap<String, Arc<SASLConfig>>,
    pub(crate) failures: sasl::FailureLog,
}

/// Which listeners use SASL; never the settings, which hold PLAIN users' passwords.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("sasl_listeners", &self.listeners.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The listeners `config` binds (as [`crate::listener::bind::prepare`] resolves them).
fn listener_specs(config: &BrokerConfig) -> Result<Vec<ListenerSpec>> {
    Ok(config.listener_settings.resolve()?.unwrap_or_else(|| {
        vec![ListenerSpec {
            name: "PLAINTEXT".into(),
            bind: config.listen,
            protocol: SecurityProtocol::Plaintext,
            advertised: None,
        }]
    }))
}

/// Checks the SASL settings against the listeners, before anything touches the disk: PLAIN
/// enabled on a SASL listener needs that listener's JAAS users (Kafka refuses to start without
/// them too), and PLAIN users for a listener that does not exist are a typo.
pub fn check(config: &BrokerConfig) -> Result<()> {
    let specs = listener_specs(config)?;
    let sasl = &config.sasl;
    for spec in specs.iter().filter(|s| s.protocol.uses_sasl()) {
        if sasl.is_enabled("PLAIN") && !sasl.plain_users.contains_key(&spec.name) {
            return Err(BrokerError::invalid_config(
                format!(
                    "listener.name.{}.plain.sasl.jaas.config",
                    spec.name.to_ascii_lowercase()
                ),
                "",
                format!(
                    "PLAIN is in sasl.enabled.mechanisms, so SASL listener {} needs its PLAIN \
                     users (or leave PLAIN out of sasl.enabled.mechanisms)",
                    spec.name
                ),
            ));
        }
    }
    if let Some(name) = sasl.plain_users.keys().find(|n| {
        !specs
            .iter()
            .any(|s| s.name == **n && s.protocol.uses_sasl())
    }) {
        return Err(BrokerError::invalid_config(
            format!(
                "listener.name.{}.plain.sasl.jaas.config",
                name.to_ascii_lowercase()
            ),
            "<JAAS config>",
            format!("{name} is not a SASL listener"),
        ));
    }
    Ok(())
}

impl Security {
    /// Opens the SCRAM store (`<meta dir>/scram_credentials.json`) and builds each SASL
    /// listener's configuration.
    pub fn open(config: &BrokerConfig, meta_dir: Option<&Path>) -> Result<Self> {
        check(config)?;
        let scram = Arc::new(ScramStore::open(
            meta_dir.map(|d| d.join("scram_credentials.json")),
        )?);
        let mut listeners = BTreeMap::new();
        for spec in listener_specs(config)?
            .into_iter()
            .filter(|s| s.protocol.uses_sasl())
        {
            let plain = match config.sasl.is_enabled("PLAIN") {
                true => config.sasl.plain_users.get(&spec.name).cloned(),
                false => None,
            };
            let cfg = sasl::listener_config(scram.clone(), plain.unwrap_or_default())?;
            listeners.insert(spec.name, cfg);
        }
        let authorizer = crate::acl::Authorizer::open(
            config.authorizer.clone(),
            meta_dir.map(|d| d.join("acls.json")),
        )?;
        Ok(Security {
            settings: config.sasl.clone(),
            scram,
            authorizer,
            listeners,
            failures: Default::default(),
        })
    }

    /// The `rsasl` configuration of a SASL listener.
    pub fn sasl_config(&self, listener: &str) -> Option<Arc<SASLConfig>> {
        self.listeners.get(listener).cloned()
    }
}

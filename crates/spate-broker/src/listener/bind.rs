//! Turning listener settings into bound sockets, in two steps so that the broker can check the
//! settings and load certificates before recovering storage (a bad key fails fast) and bind only
//! after it (a ready port means a ready broker).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{ListenerInfo, ListenerSpec, SecurityProtocol};
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::state::Advertised;

/// A listener whose settings and certificates checked out, not yet bound.
pub struct Prepared {
    spec: ListenerSpec,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A bound listener.
pub struct Bound {
    /// The bound socket.
    pub tcp: TcpListener,
    /// The address it is bound to (the real port for port 0).
    pub local_addr: SocketAddr,
    /// The listener's name, protocol, advertised endpoint and TLS acceptor.
    pub info: Arc<ListenerInfo>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("local_addr", &self.local_addr)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The listeners `config` asks for (`listeners`, or the single plaintext `listen` address),
/// with TLS acceptors built for TLS listeners.
pub fn prepare(config: &BrokerConfig) -> Result<Vec<Prepared>> {
    let specs = match config.listener_settings.resolve()? {
        Some(specs) => specs,
        None => vec![ListenerSpec {
            name: "PLAINTEXT".into(),
            bind: config.listen,
            protocol: SecurityProtocol::Plaintext,
            advertised: None,
        }],
    };
    crate::security::check(config)?;
    specs
        .into_iter()
        .map(|spec| {
            let tls = match spec.protocol.uses_tls() {
                true => Some(config.listener_settings.ssl.acceptor()?),
                false => None,
            };
            Ok(Prepared { spec, tls })
        })
        .collect()
}

/// Binds every prepared listener. The first is the broker's primary address (`local_addr`,
/// `bootstrap_servers`); `advertised.host`/`advertised.port` apply to it when
/// `advertised.listeners` does not name it.
pub async fn bind(prepared: Vec<Prepared>, config: &BrokerConfig) -> Result<Vec<Bound>> {
    let mut out = Vec::with_capacity(prepared.len());
    for (i, Prepared { spec, tls }) in prepared.into_iter().enumerate() {
        let listen_error = |source| BrokerError::Listen {
            addr: format!("{}://{}", spec.name, spec.bind),
            source,
        };
        let tcp = TcpListener::bind(spec.bind).await.map_err(listen_error)?;
        let local_addr = tcp.local_addr().map_err(listen_error)?;
        let (host, port) = match (&spec.advertised, i) {
            (Some((h, p)), _) => (h.clone(), *p),
            (None, 0) => (
                config
                    .advertised_host
                    .clone()
                    .unwrap_or_else(|| advertised_ip(local_addr)),
                config.advertised_port.unwrap_or(local_addr.port()),
            ),
            (None, _) => (advertised_ip(local_addr), local_addr.port()),
        };
        let info = ListenerInfo {
            name: spec.name,
            protocol: spec.protocol,
            advertised: Arc::new(Advertised {
                node_id: config.node_id,
                host,
                port: i32::from(port),
            }),
            tls,
        };
        out.push(Bound {
            tcp,
            local_addr,
            info: Arc::new(info),
        });
    }
    Ok(out)
}

/// The IP to advertise for a bound address: the address itself, or loopback when bound to the
/// unspecified address (0.0.0.0 is not connectable).
pub fn advertised_ip(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    }
}

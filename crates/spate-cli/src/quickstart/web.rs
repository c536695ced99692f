//! The web UI of the quickstart's job ([`spate_ui`]) on 127.0.0.1: `--ui-port` (4040, Spark's
//! port) when it is free, any free port when it is taken — a second quickstart, or a Spark
//! shell, must not stop the first command of the README from working — and a word on stdout
//! about which one it got.

use std::io::ErrorKind;

use anyhow::Context as _;
use spate_kafka::KafkaParams;
use spate_streaming::StreamingContext;

use spate_ui::{UiConfig, UiError, UiServer};

/// Serves the UI of `ctx` on `port` (0: any free port), with consumer lag read from the
/// cluster in `params`.
pub fn start(ctx: &StreamingContext, port: u16, params: &KafkaParams) -> anyhow::Result<UiServer> {
    let config = UiConfig::default()
        .port(port)
        .kafka_lag(params)
        .context("setting up the web UI")?;
    match UiServer::start(ctx, config.clone()) {
        Ok(ui) => Ok(ui),
        Err(UiError::Bind { source, .. }) if port != 0 && source.kind() == ErrorKind::AddrInUse => {
            let ui = UiServer::start(ctx, config.port(0)).context("starting the web UI")?;
            println!(
                "port {port} is taken, so the web UI uses port {} instead",
                ui.local_addr().port()
            );
            Ok(ui)
        }
        Err(e) => Err(e).context("starting the web UI"),
    }
}

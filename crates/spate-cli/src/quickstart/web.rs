//! The web UI of the quickstart's job ([`spate_ui`]): on 127.0.0.1 by default, elsewhere only
//! with credentials (`--ui-token-file`, `--ui-basic-auth-file`, read from files so a secret
//! never appears in `ps` or shell history); `--ui-port` (4040, Spark's port) when it is free,
//! any free port when it is taken — a second quickstart, or a Spark shell, must not stop the
//! first command of the README from working — and a word on stdout about which one it got.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context as _};
use spate_kafka::KafkaParams;
use spate_streaming::StreamingContext;

use spate_ui::{UiAuth, UiConfig, UiError, UiServer};

use super::QuickstartArgs;

/// The credentials the flags ask for (read before anything starts, so a bad file stops the
/// quickstart at once).
pub fn auth(args: &QuickstartArgs) -> anyhow::Result<UiAuth> {
    if let Some(path) = &args.ui_token_file {
        let token = first_line(path, "--ui-token-file")?;
        return Ok(UiAuth::Token(token));
    }
    if let Some(path) = &args.ui_basic_auth_file {
        let line = first_line(path, "--ui-basic-auth-file")?;
        let Some((user, password)) = line.split_once(':') else {
            bail!(
                "--ui-basic-auth-file {}: the first line must be user:password",
                path.display()
            );
        };
        if user.is_empty() || password.is_empty() {
            bail!(
                "--ui-basic-auth-file {}: the user and the password must not be empty",
                path.display()
            );
        }
        return Ok(UiAuth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    if !args.ui_bind.is_loopback() && !args.no_ui {
        bail!(
            "--ui-bind {} makes the web UI reachable from other machines: give it \
             --ui-token-file FILE or --ui-basic-auth-file FILE (or --no-ui)",
            args.ui_bind
        );
    }
    Ok(UiAuth::None)
}

fn first_line(path: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {flag} {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        bail!("{flag} {}: the first line is empty", path.display());
    }
    Ok(line)
}

/// Serves the UI of `ctx` on `addr` (port 0: any free port), asking for `auth`, with consumer
/// lag read from the cluster in `params`.
pub fn start(
    ctx: &StreamingContext,
    addr: SocketAddr,
    auth: UiAuth,
    params: &KafkaParams,
) -> anyhow::Result<UiServer> {
    let config = UiConfig::default()
        .bind(addr)
        .auth(auth)
        .kafka_lag(params)
        .context("setting up the web UI")?;
    let port = addr.port();
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

//! `spate broker`: run the embedded Kafka-compatible broker in the foreground until Ctrl-C or
//! SIGTERM, then shut down cleanly (stop accepting, finish in-flight requests, flush logs).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use spate_broker::{Broker, BrokerConfig, StorageKind};

/// `spate broker`: where the embedded broker keeps its data, where it listens, its settings.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Directory for partition logs and broker metadata.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// A broker setting by its Kafka name, e.g. `num.partitions=3` or
    /// `log.retention.ms=60000`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<String>,

    /// Keep partition logs in memory only (nothing survives a restart).
    #[arg(long)]
    pub in_memory: bool,
}

/// `HOST:PORT` with a name (`localhost:9092`) or an IP address.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

impl BrokerArgs {
    /// The broker configuration these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<BrokerConfig> {
        let mut config = BrokerConfig::default().listen(self.listen);
        for kv in &self.configs {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--config {kv:?}: expected KEY=VALUE"))?;
            config.set(k.trim(), v)?;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = Some(dir.clone());
        }
        config.storage = if self.in_memory || config.data_dir.is_none() {
            StorageKind::Memory
        } else {
            StorageKind::Disk
        };
        Ok(config)
    }
}

/// Runs `spate broker`: starts the broker and serves until SIGTERM or Ctrl-C.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    if config.data_dir.is_none() && !args.in_memory {
        tracing::warn!("no --data-dir given: running in memory, nothing survives a restart");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spate-broker")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        // Listen for the signal before storage recovery starts, which can take long on a big
        // log: a SIGTERM then stops the start-up (recovery finishes its current work when the
        // runtime winds down) and the process exits 0 instead of dying by the signal.
        // The handlers are installed here, before recovery, not on the future's first poll:
        // a signal that arrives at any point after this line is a clean stop.
        let signal = installed_signal_handlers()?;
        tokio::pin!(signal);
        tracing::info!(
            data_dir = ?config.data_dir,
            "recovering storage before listening"
        );
        let broker = tokio::select! {
            biased;
            stop = &mut signal => {
                stop?;
                tracing::info!("stopped during storage recovery, before listening");
                return Ok(());
            }
            started = Broker::start(config) => started.context("starting the broker")?,
        };
        println!("spate broker listening on {}", broker.local_addr());
        println!("bootstrap.servers={}", broker.bootstrap_servers());
        // SIGTERM/Ctrl-C stops it within shutdown.timeout.ms; a second signal exits at once.
        spate_broker::signals::run_until_signal(broker)
            .await
            .context("shutting down the broker")?;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM: how a foreground command (the broker, the quickstart) is asked to stop.
/// Both handlers are installed before this returns, so the process no longer dies by either
/// signal; the future completes when one arrives.
#[cfg(unix)]
pub(crate) fn installed_signal_handlers(
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        Ok(())
    })
}

#[cfg(not(unix))]
pub(crate) fn installed_signal_handlers(
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    Ok(async { tokio::signal::ctrl_c().await.context("waiting for Ctrl-C") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_config_from_flags() {
        let args = BrokerArgs {
            data_dir: Some(PathBuf::from("/tmp/d")),
            listen: "127.0.0.1:0".parse().unwrap(),
            configs: vec![
                "num.partitions=4".into(),
                "log.segment.bytes=1048576".into(),
            ],
            in_memory: false,
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.num_partitions, 4);
        assert_eq!(c.storage, StorageKind::Disk);
        assert_eq!(c.default_log_config().unwrap().segment_bytes, 1048576);
        let bad = BrokerArgs {
            configs: vec!["num.partitions".into()],
            ..args
        };
        assert!(bad.to_config().is_err());
        assert_eq!(parse_listen("localhost:9093").unwrap().port(), 9093);
        assert!(parse_listen("nonsense").is_err());
    }
}

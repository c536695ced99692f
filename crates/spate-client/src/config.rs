//! Connecting to a broker, as every client command and benchmark does: `--bootstrap-server`,
//! `--command-config FILE` (a Java properties file of client settings, as Kafka's tools take)
//! and `-X key=value` librdkafka settings and a request timeout, turned into an rdkafka
//! `ClientConfig`. Security settings travel this way: `security.protocol=SASL_SSL`,
//! `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`.
//!
//! librdkafka retries an unreachable broker forever by default, so every command first asks for
//! metadata with a deadline (`connect`) and turns a miss into "could not reach broker at X within
//! Ns" instead of hanging.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{ClientError, Result};

/// Connection options shared by `topics`, `produce`, `consume` and the benchmarks. With the
/// `cli` feature they are also command-line flags (clap); without it, library users (the YSB
/// job) build them with [`ClientArgs::new`] and pull in no CLI parser.
#[derive(Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ClientArgs {
    /// The broker to connect to (host:port, or a comma-separated list).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")
    )]
    pub bootstrap_server: String,

    /// A librdkafka setting (e.g. -X linger.ms=10), repeatable; applied after spate's own
    /// settings, so it overrides them.
    #[cfg_attr(
        feature = "cli",
        arg(short = 'X', id = "rdkafka_config", value_name = "KEY=VALUE", value_parser = parse_key_value)
    )]
    pub config: Vec<(String, String)>,

    /// A properties file of client settings (`key=value` lines, `#` comments), like the
    /// `--command-config` of Kafka's tools; `-X` settings override it.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", value_parser = parse_properties_file)
    )]
    pub command_config: Option<PropertiesFile>,

    /// How long to wait for the broker to answer a request before giving up, in milliseconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "MS", default_value_t = 10_000)
    )]
    pub request_timeout_ms: u64,
}

impl ClientArgs {
    /// Args for code that builds clients itself (the benchmarks).
    pub fn new(bootstrap_server: impl Into<String>) -> Self {
        ClientArgs {
            bootstrap_server: bootstrap_server.into(),
            config: Vec::new(),
            command_config: None,
            request_timeout_ms: 10_000,
        }
    }

    /// `request_timeout_ms` as a duration: how long to wait for the broker to answer a request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The user's settings in the order they apply: the `--command-config` file's, then `-X`
    /// (a later one wins). For clients not built from [`ClientArgs::client_config`], e.g. a
    /// streaming job's Kafka parameters.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &str)> {
        let file = self.command_config.iter().flat_map(|f| f.settings.iter());
        file.chain(&self.config)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The librdkafka config: bootstrap servers, then the command's `defaults`, then `-X`.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_server);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in self.overrides() {
            config.set(key, value);
        }
        config
    }

    /// Creates a client of type `T` with the quiet [`CliContext`], naming the `-X` setting at
    /// fault when librdkafka rejects one.
    pub fn create<T: FromClientConfigAndContext<CliContext>>(
        &self,
        defaults: &[(&str, &str)],
    ) -> Result<T> {
        self.create_with_context(defaults, CliContext)
    }

    /// Like `create`, for clients with a custom context (delivery counters, rebalance hooks).
    pub fn create_with_context<C, T>(&self, defaults: &[(&str, &str)], context: C) -> Result<T>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        self.client_config(defaults)
            .create_with_context::<C, T>(context)
            .map_err(|e| self.config_error(e))
    }

    fn config_error(&self, e: KafkaError) -> ClientError {
        match e {
            KafkaError::ClientConfig(_, ref msg, ref key, ref value) => {
                let in_file = |f: &PropertiesFile| f.settings.iter().any(|(k, _)| k == key);
                let origin = if self.config.iter().any(|(k, _)| k == key) {
                    "-X setting"
                } else if self.command_config.as_ref().is_some_and(in_file) {
                    "--command-config setting"
                } else {
                    "client setting"
                };
                ClientError::InvalidSetting {
                    origin,
                    key: key.clone(),
                    value: value.clone(),
                    message: msg.clone(),
                }
            }
            other => ClientError::CreateClient(other),
        }
    }

    /// Fetches cluster metadata (for `topic`, or all topics) within the request timeout; the
    /// first call of every command, so that an unreachable broker is reported quickly.
    pub fn metadata<C: ClientContext>(
        &self,
        client: &Client<C>,
        topic: Option<&str>,
    ) -> Result<Metadata> {
        client
            .fetch_metadata(topic, self.request_timeout())
            .map_err(|e| self.unreachable(e))
    }

    /// The partition count of `topic`, asking again while the broker reports the topic's leader
    /// as not yet available (Kafka's answer right after it auto-creates a topic), up to the
    /// request timeout.
    pub fn topic_partitions<C: ClientContext>(
        &self,
        client: &Client<C>,
        topic: &str,
    ) -> Result<i32> {
        let deadline = std::time::Instant::now() + self.request_timeout();
        loop {
            let metadata = self.metadata(client, Some(topic))?;
            let leader_pending = metadata.topics().iter().any(|t| {
                t.name() == topic
                    && (t.error().map(RDKafkaErrorCode::from)
                        == Some(RDKafkaErrorCode::LeaderNotAvailable)
                        || t.partitions().iter().any(|p| p.leader() < 0))
            });
            if !leader_pending || std::time::Instant::now() >= deadline {
                return partition_count(&metadata, topic);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The error for a broker that did not answer in time.
    pub fn unreachable(&self, cause: KafkaError) -> ClientError {
        ClientError::Unreachable {
            bootstrap: self.bootstrap_server.clone(),
            timeout_secs: fmt_secs(self.request_timeout()),
            cause: Box::new(cause),
        }
    }
}

/// The client context of the CLI commands: librdkafka's own log lines and "global errors" (one
/// per failed connection attempt, repeated every retry) go to `tracing` at debug level, because
/// the commands report what went wrong themselves, once and clearly. `RUST_LOG=debug` shows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CliContext;

impl ClientContext for CliContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        librdkafka_error(&error, reason);
    }
}

impl ConsumerContext for CliContext {}

/// `ClientContext::log` for spate's contexts.
pub fn librdkafka_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info => {
            tracing::trace!(target: "librdkafka", "{fac} {message}")
        }
        _ => tracing::debug!(target: "librdkafka", "{fac} {message}"),
    }
}

/// `ClientContext::error` for spate's contexts.
pub fn librdkafka_error(error: &KafkaError, reason: &str) {
    tracing::debug!(target: "librdkafka", "{error}: {reason}");
}

fn fmt_secs(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs:.1}")
    }
}

/// Whether a client setting holds a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.jaas.config`, `sasl.oauthbearer.client.secret`, …), so `Debug` hides its value.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "jaas", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// `key=value` pairs for `Debug`, secrets replaced.
fn redacted(settings: &[(String, String)]) -> Vec<String> {
    settings
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret(k) { "[redacted]" } else { v };
            format!("{k}={shown}")
        })
        .collect()
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("bootstrap_server", &self.bootstrap_server)
            .field("config", &redacted(&self.config))
            .field("command_config", &self.command_config)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

/// The settings of a `--command-config` file, in file order.
#[derive(Clone, PartialEq, Eq)]
pub struct PropertiesFile {
    /// Where the file was read from (for messages naming it).
    pub path: std::path::PathBuf,
    /// `key=value` settings, in file order.
    pub settings: Vec<(String, String)>,
}

impl std::fmt::Debug for PropertiesFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropertiesFile")
            .field("path", &self.path)
            .field("settings", &redacted(&self.settings))
            .finish()
    }
}

/// Reads a Java properties file the way Kafka's tools use one: `key=value` (or `key: value`)
/// lines, `#` and `!` comments, blank lines skipped. Line continuations and escapes are not
/// supported; a line that is not a setting is an error naming the line.
pub fn parse_properties_file(path: &str) -> Result<PropertiesFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut settings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).map(|i| (&line[..i], &line[i + 1..]));
        match split {
            Some((key, value)) if !key.trim().is_empty() => {
                settings.push((key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => return Err(format!("{path}:{}: expected key=value", n + 1)),
        }
    }
    Ok(PropertiesFile {
        path: path.into(),
        settings,
    })
}

/// Parses `key=value`; the value may itself contain `=` but the key may not be empty.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The partition count of `topic` in `metadata`, or an error saying the topic does not exist.
pub fn partition_count(metadata: &Metadata, topic: &str) -> Result<i32> {
    let topic_name = || topic.to_owned();
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(ClientError::UnknownTopic {
            topic: topic_name(),
        });
    };
    if let Some(err) = t.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Err(ClientError::UnknownTopic {
                topic: topic_name(),
            });
        }
        return Err(ClientError::TopicMetadata {
            topic: topic_name(),
            code,
        });
    }
    if t.partitions().is_empty() {
        return Err(ClientError::NoPartitions {
            topic: topic_name(),
        });
    }
    i32::try_from(t.partitions().len()).map_err(|_| ClientError::PartitionCountOverflow {
        topic: topic_name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_parsing() {
        assert_eq!(
            parse_key_value("linger.ms=5").unwrap(),
            ("linger.ms".to_owned(), "5".to_owned())
        );
        assert_eq!(
            parse_key_value("sasl.jaas.config=a=b").unwrap(),
            ("sasl.jaas.config".to_owned(), "a=b".to_owned())
        );
        assert_eq!(
            parse_key_value("k=").unwrap(),
            ("k".to_owned(), String::new())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }

    #[test]
    fn x_overrides_defaults() {
        let mut args = ClientArgs::new("h:1");
        args.config.push(("linger.ms".into(), "50".into()));
        let config = args.client_config(&[("linger.ms", "5"), ("acks", "1")]);
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("1"));
        assert_eq!(config.get("bootstrap.servers"), Some("h:1"));
    }

    #[test]
    fn debug_hides_secrets() {
        let mut args = ClientArgs::new("127.0.0.1:9092");
        args.config = vec![
            ("sasl.password".into(), "pw-1".into()),
            ("sasl.username".into(), "alice".into()),
        ];
        args.command_config = Some(PropertiesFile {
            path: "client.properties".into(),
            settings: vec![("ssl.key.password".into(), "pw-2".into())],
        });
        let shown = format!("{args:?}");
        assert!(
            !shown.contains("pw-1") && !shown.contains("pw-2"),
            "{shown}"
        );
        assert!(
            shown.contains("alice") && shown.contains("ssl.key.password"),
            "{shown}"
        );
    }

    #[test]
    fn command_config_file_then_x() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        std::fs::write(
            &path,
            "# secured\nsecurity.protocol=SASL_SSL\nsasl.mechanism = SCRAM-SHA-512\n\n\
             sasl.jaas.config=a=b\nlinger.ms: 7\n",
        )
        .unwrap();
        let file = parse_properties_file(path.to_str().unwrap()).unwrap();
        assert_eq!(file.settings.len(), 4);
        let mut args = ClientArgs::new("h:1");
        args.command_config = Some(file);
        args.config.push(("linger.ms".into(), "50".into()));
        let config = args.client_config(&[("linger.ms", "5")]);
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.jaas.config"), Some("a=b"));
        assert_eq!(config.get("linger.ms"), Some("50"), "-X overrides the file");
        std::fs::write(&path, "no separator here\n").unwrap();
        let err = parse_properties_file(path.to_str().unwrap()).unwrap_err();
        assert!(err.contains(":1: expected key=value"), "{err}");
    }

    #[test]
    fn unknown_x_setting_is_named() {
        let mut args = ClientArgs::new("127.0.0.1:1");
        args.config.push(("no.such.setting".into(), "1".into()));
        let Err(err) = args.create::<rdkafka::consumer::BaseConsumer<CliContext>>(&[]) else {
            panic!("an unknown setting must be rejected");
        };
        let err = err.to_string();
        assert!(err.contains("-X setting no.such.setting=1"), "{err}");
    }
}

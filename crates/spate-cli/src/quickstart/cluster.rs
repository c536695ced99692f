//! The Kafka cluster a quickstart runs against: the embedded broker started in this process with
//! its logs under the quickstart directory (so a second run finds the topic and its records), or
//! an existing cluster given with `--bootstrap-server`. Also the two admin questions the
//! quickstart asks it: "make sure the topic exists" and "where does each partition end".

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::types::RDKafkaErrorCode;

use spate_client::config::{CliContext, ClientArgs, PropertiesFile};
use spate_client::embedded::{EmbeddedBroker, Storage};

/// Where the pipeline's records live. An embedded broker stops when this is dropped.
pub struct Cluster {
    /// Client settings (bootstrap servers and `-X` overrides) shared by every client.
    pub client: ClientArgs,
    /// For the banner, e.g. "embedded broker, disk storage in ./spate-quickstart/broker".
    pub description: String,
    embedded: Option<EmbeddedBroker>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts the embedded broker on `127.0.0.1:0` with its data in `data_dir`, or connects to
    /// `bootstrap` when given. `command_config` (a properties file) and then `overrides` (`-X`)
    /// are client settings for every client.
    pub fn start(
        bootstrap: Option<&str>,
        data_dir: &Path,
        command_config: Option<&PropertiesFile>,
        overrides: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let (client, description, embedded) = match bootstrap {
            Some(servers) => (
                ClientArgs::new(servers),
                format!("Kafka cluster at {servers}"),
                None,
            ),
            None => {
                let broker = EmbeddedBroker::start(Storage::Disk(Some(data_dir.to_path_buf())))?;
                let client = ClientArgs::new(broker.bootstrap());
                let description = format!(
                    "embedded broker on {}, data in {}",
                    broker.bootstrap(),
                    data_dir.display()
                );
                (client, description, Some(broker))
            }
        };
        let mut client = client;
        client.command_config = command_config.cloned();
        client.config.extend(overrides.iter().cloned());
        Ok(Cluster {
            client,
            description,
            embedded,
        })
    }

    /// The `bootstrap.servers` value for clients of this cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.client.bootstrap_server
    }

    /// Whether the broker runs inside this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Creates `topic` with `partitions` partitions unless it exists; returns its partition
    /// count (an existing topic keeps the count it has).
    pub fn ensure_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<i32> {
        let admin: AdminClient<CliContext> = self.client.create(&[])?;
        let metadata = self.client.metadata(admin.inner(), None)?;
        if metadata.topics().iter().any(|t| t.name() == topic) {
            return Ok(self.client.topic_partitions(admin.inner(), topic)?);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("could not start the async runtime")?;
        let timeout = self.client.request_timeout();
        let options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results = runtime
            .block_on(async {
                tokio::time::timeout(
                    timeout + Duration::from_secs(5),
                    admin.create_topics([&new_topic], &options),
                )
                .await
            })
            .map_err(|_| anyhow!("creating topic {topic}: no answer within {timeout:?}"))?
            .map_err(|e| anyhow!("creating topic {topic} failed: {e}"))?;
        for result in results {
            match result {
                Ok(_) => {}
                // Another client created it between our metadata request and ours.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("could not create topic {name:?}: {code}"),
            }
        }
        Ok(self.client.topic_partitions(admin.inner(), topic)?)
    }

    /// The partition count of an existing `topic`.
    pub fn partitions(&self, topic: &str) -> anyhow::Result<i32> {
        let consumer: BaseConsumer<CliContext> = self
            .client
            .create(&[("group.id", "spate-quickstart-offsets")])?;
        Ok(self.client.topic_partitions(consumer.client(), topic)?)
    }

    /// The end (latest) offset of every partition of `topic`.
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> anyhow::Result<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer<CliContext> = self
            .client
            .create(&[("group.id", "spate-quickstart-offsets")])?;
        let mut out = BTreeMap::new();
        for p in 0..partitions {
            let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(
                &consumer,
                topic,
                p,
                self.client.request_timeout(),
            )
            .map_err(|e| anyhow!("reading the end offset of {topic}-{p}: {e}"))?;
            out.insert(p, high);
        }
        Ok(out)
    }
}

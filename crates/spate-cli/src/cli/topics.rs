//! `spate topics`: create, list, describe, alter and delete topics, like `kafka-topics.sh`
//! (plus `--add-config`/`--delete-config` from `kafka-configs.sh`), on rdkafka's AdminClient.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigResource, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication, TopicResult,
};
use rdkafka::types::RDKafkaErrorCode;

use spate_client::config::{parse_key_value, partition_count, CliContext, ClientArgs};

type Admin = AdminClient<CliContext>;

/// `spate topics <action>`.
#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(subcommand)]
    action: TopicsAction,
}

/// The subcommands of `spate topics`, after kafka-topics.sh.
#[derive(Subcommand, Debug)]
pub enum TopicsAction {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List(ListArgs),
    /// Show partitions, leaders and configs of one topic (or of all topics).
    Describe(DescribeArgs),
    /// Add partitions or change configs of a topic.
    Alter(AlterArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
}

/// The topic name, given either positionally or as `--topic` (Kafka's spelling).
#[derive(Args, Debug)]
pub struct TopicName {
    /// The topic name.
    #[arg(value_name = "TOPIC", conflicts_with = "topic")]
    name: Option<String>,
    /// The topic name (same as the positional argument).
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
}

impl TopicName {
    /// The topic name, from the positional argument or `--topic`.
    pub fn get(&self) -> Option<&str> {
        self.name.as_deref().or(self.topic.as_deref())
    }

    /// The topic name, or an error saying that one is required.
    pub fn required(&self) -> anyhow::Result<&str> {
        self.get()
            .ok_or_else(|| anyhow!("a topic name is required (positional TOPIC or --topic)"))
    }
}

/// `spate topics create`: name, partitions, replication factor and configs.
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    topic: TopicName,
    /// Number of partitions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Replication factor; spate's embedded broker is a single node, so only 1 is meaningful.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: i32,
    /// A topic config (e.g. --config retention.ms=60000), repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Succeed without doing anything if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate topics list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Leave out internal topics (names starting with `__consumer_offsets` or `__transaction_state`).
    #[arg(long)]
    exclude_internal: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate topics describe`: one topic, or all.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    topic: TopicName,
    /// Set from spate's global `--verbose`: also show the log cleaner's state of each
    /// partition (dirty ratio, clean and dirty bytes, last cleaning), read from the broker's
    /// metrics listener (`--metrics-address`).
    #[arg(skip)]
    pub verbose: bool,
    /// The broker's `metrics.listen` address (HOST:PORT), where it serves the cleaner's state
    /// that `--verbose` shows.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_address: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate topics alter`: new partition count and config changes.
#[derive(Args, Debug)]
pub struct AlterArgs {
    #[command(flatten)]
    topic: TopicName,
    /// Increase the partition count to N (partitions can never be removed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Set a topic config, repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    add_config: Vec<(String, String)>,
    /// Remove a topic config override (back to the broker default), repeatable.
    #[arg(long, value_name = "KEY")]
    delete_config: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `spate topics delete`: which topic.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    topic: TopicName,
    /// Succeed without doing anything if the topic does not exist.
    #[arg(long)]
    if_exists: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// `verbose` is spate's global `--verbose` (describe then adds the cleaner's state).
pub fn run(mut args: TopicsArgs, verbose: bool) -> anyhow::Result<()> {
    if let TopicsAction::Describe(a) = &mut args.action {
        a.verbose = verbose;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    match args.action {
        TopicsAction::Create(a) => runtime.block_on(create(a)),
        TopicsAction::List(a) => list(a),
        TopicsAction::Describe(a) => runtime.block_on(describe(a)),
        TopicsAction::Alter(a) => runtime.block_on(alter(a)),
        TopicsAction::Delete(a) => runtime.block_on(delete(a)),
    }
}

/// An admin client whose broker has answered a metadata request, so later calls do not hang.
fn connect(client: &ClientArgs) -> anyhow::Result<Admin> {
    let admin: Admin = client.create(&[])?;
    client.metadata(admin.inner(), None)?;
    Ok(admin)
}

fn admin_options(client: &ClientArgs) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(client.request_timeout()))
        .operation_timeout(Some(client.request_timeout()))
}

/// Awaits an admin future with a hard deadline on top of librdkafka's own request timeout.
async fn with_deadline<T>(
    client: &ClientArgs,
    what: &str,
    fut: impl Future<Output = rdkafka::error::KafkaResult<T>>,
) -> anyhow::Result<T> {
    let deadline = client.request_timeout() + Duration::from_secs(5);
    match tokio::time::timeout(deadline, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what} failed: {e}")),
        Err(_) => Err(anyhow!(
            "{what}: no answer from broker at {} within {}s",
            client.bootstrap_server,
            deadline.as_secs()
        )),
    }
}

/// The one result for `topic` out of a batch result, as `Ok(())` or its error code.
fn single_result(results: Vec<TopicResult>, topic: &str) -> Result<(), RDKafkaErrorCode> {
    for r in results {
        match r {
            Ok(name) if name == topic => return Ok(()),
            Err((name, code)) if name == topic => return Err(code),
            _ => {}
        }
    }
    Err(RDKafkaErrorCode::Fail)
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let topic = a.topic.required()?;
    let admin = connect(&a.client)?;
    let mut new_topic = NewTopic::new(
        topic,
        a.partitions,
        TopicReplication::Fixed(a.replication_factor),
    );
    for (k, v) in &a.config {
        new_topic = new_topic.set(k, v);
    }
    let results = with_deadline(
        &a.client,
        "create topic",
        admin.create_topics([&new_topic], &admin_options(&a.client)),
    )
    .await?;
    match single_result(results, topic) {
        Ok(()) => {
            println!("Created topic {topic}.");
            Ok(())
        }
        Err(RDKafkaErrorCode::TopicAlreadyExists) if a.if_not_exists => Ok(()),
        Err(RDKafkaErrorCode::TopicAlreadyExists) => bail!("topic {topic:?} already exists"),
        Err(code) => bail!("could not create topic {topic:?}: {code}"),
    }
}

fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let admin = a.client.create::<Admin>(&[])?;
    let metadata = a.client.metadata(admin.inner(), None)?;
    let mut names: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !(a.exclude_internal && is_internal(n)))
        .collect();
    names.sort_unstable();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let admin = a.client.create::<Admin>(&[])?;
    let metadata = a.client.metadata(admin.inner(), None)?;
    let mut names: Vec<String> = match a.topic.get() {
        Some(topic) => {
            partition_count(&metadata, topic)?;
            vec![topic.to_owned()]
        }
        None => metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .collect(),
    };
    names.sort_unstable();

    for name in &names {
        let Some(t) = metadata.topics().iter().find(|t| t.name() == name) else {
            continue;
        };
        // Configs are optional to a describe: a broker without DescribeConfigs still shows
        // partitions, with a note instead of the configs.
        let configs = topic_configs(&admin, &a.client, name).await;
        let mut partitions: Vec<_> = t.partitions().iter().collect();
        partitions.sort_by_key(|p| p.id());
        let replication = partitions.first().map_or(0, |p| p.replicas().len());
        let non_default = match &configs {
            Ok(c) => c
                .entries
                .iter()
                .filter(|e| is_non_default(e))
                .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(","),
            Err(_) => String::new(),
        };
        println!(
            "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {replication}\tConfigs: {non_default}",
            partitions.len()
        );
        for p in partitions {
            println!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                p.id(),
                p.leader(),
                join_ids(p.replicas()),
                join_ids(p.isr())
            );
        }
        print_configs(&configs);
        if a.verbose {
            print_cleaner_state(a.metrics_address.as_deref(), name);
        }
    }
    Ok(())
}

/// One `Config:` line per config of the topic, sorted, marking the non-default ones (or why
/// the configs are unavailable).
fn print_configs(configs: &anyhow::Result<ConfigResource>) {
    match configs {
        Ok(c) => {
            let mut entries: Vec<_> = c.entries.iter().collect();
            entries.sort_by(|x, y| x.name.cmp(&y.name));
            for e in entries {
                let value = if e.is_sensitive {
                    "(sensitive)"
                } else {
                    e.value.as_deref().unwrap_or("(null)")
                };
                let mark = if is_non_default(e) {
                    "\t(non-default)"
                } else {
                    ""
                };
                println!("\tConfig: {}={value}{mark}", e.name);
            }
        }
        Err(e) => println!("\tConfigs unavailable: {e:#}"),
    }
}

/// `--verbose`: the log cleaner's state of each partition of `topic`, read from the broker's
/// metrics listener at `metrics_address`.
fn print_cleaner_state(metrics_address: Option<&str>, topic: &str) {
    let report = match metrics_address {
        Some(address) => super::cleaner_status::fetch(address, topic),
        None => Err(anyhow!(
            "give --metrics-address HOST:PORT, the broker's metrics.listen address"
        )),
    };
    match report {
        Ok(report) => super::cleaner_status::lines(&report)
            .iter()
            .for_each(|l| println!("{l}")),
        Err(e) => println!("\tCleaner state unavailable: {e:#}"),
    }
}

fn is_non_default(e: &rdkafka::admin::ConfigEntry) -> bool {
    !e.is_default && e.source != ConfigSource::Default
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn topic_configs(
    admin: &Admin,
    client: &ClientArgs,
    topic: &str,
) -> anyhow::Result<ConfigResource> {
    let spec = ResourceSpecifier::Topic(topic);
    let results = with_deadline(
        client,
        "describe configs",
        admin.describe_configs([&spec], &admin_options(client)),
    )
    .await?;
    results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("broker returned no configs for topic {topic:?}"))?
        .map_err(|code| anyhow!("describe configs of topic {topic:?} failed: {code}"))
}

async fn alter(a: AlterArgs) -> anyhow::Result<()> {
    let topic = a.topic.required()?;
    if a.partitions.is_none() && a.add_config.is_empty() && a.delete_config.is_empty() {
        bail!("nothing to alter: give --partitions, --add-config or --delete-config");
    }
    let admin = connect(&a.client)?;
    let metadata = a.client.metadata(admin.inner(), Some(topic))?;
    let current = partition_count(&metadata, topic)?;

    if let Some(n) = a.partitions {
        if n <= current {
            bail!("topic {topic:?} has {current} partitions; --partitions can only increase it (got {n})");
        }
        let count = usize::try_from(n).context("partition count")?;
        let new_partitions = NewPartitions::new(topic, count);
        let results = with_deadline(
            &a.client,
            "create partitions",
            admin.create_partitions([&new_partitions], &admin_options(&a.client)),
        )
        .await?;
        single_result(results, topic)
            .map_err(|code| anyhow!("could not add partitions to topic {topic:?}: {code}"))?;
        println!("Topic {topic} now has {n} partitions.");
    }

    if !a.add_config.is_empty() || !a.delete_config.is_empty() {
        // AlterConfigs (the non-incremental API librdkafka wraps) replaces the topic's whole set of
        // overrides, so start from the current overrides and apply the changes to them.
        let configs = topic_configs(&admin, &a.client, topic).await?;
        let mut overrides: BTreeMap<String, String> = configs
            .entries
            .iter()
            .filter(|e| e.source == ConfigSource::DynamicTopic && !e.is_default)
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        for key in &a.delete_config {
            if overrides.remove(key).is_none() {
                bail!("topic {topic:?} has no override for config {key:?} to delete");
            }
        }
        for (k, v) in &a.add_config {
            overrides.insert(k.clone(), v.clone());
        }
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in &overrides {
            alter = alter.set(k, v);
        }
        let results = with_deadline(
            &a.client,
            "alter configs",
            admin.alter_configs([&alter], &admin_options(&a.client)),
        )
        .await?;
        for r in results {
            if let Err((_, code)) = r {
                bail!("could not alter configs of topic {topic:?}: {code}");
            }
        }
        println!("Updated configs of topic {topic}.");
    }
    Ok(())
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let topic = a.topic.required()?;
    let admin = connect(&a.client)?;
    let results = with_deadline(
        &a.client,
        "delete topic",
        admin.delete_topics(&[topic], &admin_options(&a.client)),
    )
    .await?;
    match single_result(results, topic) {
        Ok(()) => {
            println!("Deleted topic {topic}.");
            Ok(())
        }
        Err(RDKafkaErrorCode::UnknownTopicOrPartition) if a.if_exists => Ok(()),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition) => {
            bail!("topic {topic:?} does not exist")
        }
        Err(code) => bail!("could not delete topic {topic:?}: {code}"),
    }
}

//! The quickstart's streaming job — the Yahoo Streaming Benchmark's query on a direct stream:
//! parse each ad event, keep views, join the ad to its campaign, and count views per campaign
//! per 10-second event-time window; every batch adds its counts to SQLite in the same
//! transaction that stores the batch's offset ranges ([`foreach_batch_transactional`] over a
//! [`SqliteOffsetStore`]), so a batch that runs again after a crash or a restart (the
//! checkpoint re-runs planned batches with identical ranges) is recognised and not counted
//! twice.
//!
//! With `--sink kafka` the counts go to a topic instead, exactly once through Kafka
//! transactions ([`super::kafka_sink`]), and the offsets to the job's consumer group.
//!
//! The job is built inside [`StreamingContext::get_or_create`], so a second run continues from
//! the checkpoint; the stored offsets (SQLite's, or the group's) are also given to the stream as
//! starting offsets, so a deleted checkpoint still resumes where the results end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use rusqlite::params;
use spate_kafka::sink::{foreach_batch_transactional, SqliteOffsetStore, TransactionalOutput};
use spate_kafka::{
    ConsumerRecord, ConsumerStrategy, DirectKafkaStream, DirectStreamConfig, KafkaOffsetStore,
    KafkaOutput, KafkaParams, KafkaUtils, TopicPartition,
};
use spate_streaming::{Config, DStream, StreamingContext, Time};

use super::cluster::Cluster;
use super::{kafka_sink, Layout, QuickstartArgs, Sink};
use spate_ysb::{self as ysb, CampaignMap, Encoding, YsbSetup};

/// Seed of the campaigns and ads: fixed, so every run (and a checker) sees the same campaign
/// map.
pub const SEED: u64 = 0x5BA7_E000_0000_0001;

/// The job id the offsets are stored under in the results database.
pub const JOB_ID: &str = "spate-quickstart";

/// The results table: views per campaign per window, and when the row last changed.
pub const RESULTS_TABLE: &str = "campaign_windows";

const CREATE_RESULTS: &str = "CREATE TABLE IF NOT EXISTS campaign_windows (
    campaign_id  TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    seen_count   INTEGER NOT NULL,
    time_updated INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, window_start)
)";

const ADD_COUNT: &str =
    "INSERT INTO campaign_windows (campaign_id, window_start, seen_count, time_updated)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (campaign_id, window_start) DO UPDATE SET
        seen_count = seen_count + excluded.seen_count,
        time_updated = excluded.time_updated";

/// The running job and what it counts besides the listener's totals.
pub struct Pipeline {
    /// The streaming context running the job.
    pub ctx: StreamingContext,
    /// The job's Kafka settings (the UI reads latest offsets for lag with them).
    pub params: KafkaParams,
    /// Records that are not ad events (possible with `--bootstrap-server` and a shared topic).
    pub malformed: Arc<AtomicU64>,
    /// The output: batches committed, and batches the results already had (re-runs after a
    /// restart, not counted twice).
    pub output: Output,
}

/// The job's output, by `--sink`.
pub enum Output {
    /// Counts and offsets in one SQLite transaction per batch.
    Sqlite(TransactionalOutput<SqliteOffsetStore>),
    /// Counts written to an output topic in one Kafka transaction per batch.
    Kafka(KafkaOutput),
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("malformed", &self.malformed)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Output::Sqlite(_) => "Output::Sqlite",
            Output::Kafka(_) => "Output::Kafka",
        })
    }
}

impl Output {
    /// Batches the results already had (re-runs after a restart, not counted twice).
    pub fn skipped_batches(&self) -> u64 {
        match self {
            Output::Sqlite(o) => o.skipped_batches(),
            Output::Kafka(o) => o.skipped_batches(),
        }
    }
}

/// How the job's output is made, chosen before the context exists.
enum OutputPlan {
    Sqlite(SqliteOffsetStore),
    Kafka {
        store: KafkaOffsetStore,
        topic: String,
    },
}

impl Pipeline {
    /// Opens the results (the SQLite database, or the group's offsets with `--sink kafka`) and
    /// builds the job over `args.topic` (`partitions` partitions) with its checkpoint in
    /// `layout.checkpoint`.
    pub fn build(
        args: &QuickstartArgs,
        layout: &Layout,
        cluster: &Cluster,
        partitions: i32,
    ) -> anyhow::Result<Self> {
        let mut params = KafkaParams::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", JOB_ID)
            .set("auto.offset.reset", "earliest");
        for (k, v) in cluster.client.overrides() {
            params = params.set(k, v);
        }
        let (strategy, plan) = match args.sink {
            Sink::Sqlite => sqlite_plan(args, layout, params.clone())?,
            Sink::Kafka => kafka_plan(args, cluster, partitions, params.clone())?,
        };
        let malformed = Arc::new(AtomicU64::new(0));
        let mut output = None;
        let ctx = StreamingContext::get_or_create(&layout.checkpoint, || {
            // The windows are event-time windows in the results, not engine windows, so the
            // batches of the time between two runs need not be replayed one by one: after one
            // catch-up batch, planning jumps to now (offsets continue either way).
            let config = Config::new("spate-quickstart")
                .batch_interval(args.batch_interval)
                .max_downtime_batches(1);
            let ctx = StreamingContext::new(config)?;
            output = Some(define(&ctx, strategy, plan, malformed.clone())?);
            Ok(ctx)
        })
        .context("building the streaming job")?;
        let output = output.context("the job was built without its output")?;
        Ok(Pipeline {
            ctx,
            params,
            malformed,
            output,
        })
    }
}

/// The SQLite results and a subscription starting at the offsets stored with them.
fn sqlite_plan(
    args: &QuickstartArgs,
    layout: &Layout,
    params: KafkaParams,
) -> anyhow::Result<(ConsumerStrategy, OutputPlan)> {
    let store =
        SqliteOffsetStore::open(&layout.results, JOB_ID).context("opening the results database")?;
    store
        .connection()
        .execute(CREATE_RESULTS, [])
        .with_context(|| format!("creating {RESULTS_TABLE} in {}", layout.results.display()))?;
    let starting = store
        .starting_offsets()
        .context("reading the stored offsets")?;
    let strategy = ConsumerStrategy::subscribe([args.topic.as_str()], params).with_offsets(
        starting
            .into_iter()
            .filter(|(tp, _)| tp.topic == args.topic),
    );
    Ok((strategy, OutputPlan::Sqlite(store)))
}

/// The output topic (created like the input), and the input's partitions assigned at the
/// offsets committed to the job's group. Assigned, not subscribed: the group must have no
/// active members for the output's transactional offset commits (generation -1) to be taken.
fn kafka_plan(
    args: &QuickstartArgs,
    cluster: &Cluster,
    partitions: i32,
    params: KafkaParams,
) -> anyhow::Result<(ConsumerStrategy, OutputPlan)> {
    cluster.ensure_topic(&args.output_topic, partitions)?;
    let mut store =
        KafkaOffsetStore::open(params.clone()).context("opening the job's consumer group")?;
    let strategy = store
        .assign_strategy(
            (0..partitions).map(|p| TopicPartition::new(&args.topic, p)),
            params,
        )
        .context("reading the offsets committed to the job's group")?;
    Ok((
        strategy,
        OutputPlan::Kafka {
            store,
            topic: args.output_topic.clone(),
        },
    ))
}

/// direct stream → views per (campaign, window) → the output of `plan`.
fn define(
    ctx: &StreamingContext,
    strategy: ConsumerStrategy,
    plan: OutputPlan,
    malformed: Arc<AtomicU64>,
) -> spate_streaming::Result<Output> {
    let stream =
        KafkaUtils::create_direct_stream_with(ctx, strategy, DirectStreamConfig::default())?;
    let campaigns = Arc::new(YsbSetup::new(SEED).campaign_map());
    let counts = window_counts(&stream, campaigns.clone(), malformed);
    Ok(match plan {
        OutputPlan::Sqlite(store) => {
            Output::Sqlite(save_to_sqlite(&stream, &counts, store, campaigns))
        }
        OutputPlan::Kafka { store, topic } => Output::Kafka(kafka_sink::save_counts(
            &counts, &stream, store, &topic, campaigns,
        )?),
    })
}

/// Views per `(campaign index, window start)` of each batch.
fn window_counts(
    stream: &DirectKafkaStream,
    campaigns: Arc<CampaignMap>,
    malformed: Arc<AtomicU64>,
) -> DStream<((u32, i64), u64)> {
    stream
        .flat_map(move |r: ConsumerRecord| view(&r, &campaigns, &malformed))
        .map(|key| (key, 1u64))
        .reduce_by_key(|a, b| a + b)
}

/// Adds each batch's counts to SQLite with the batch's offset ranges, in one transaction.
fn save_to_sqlite(
    stream: &DirectKafkaStream,
    counts: &DStream<((u32, i64), u64)>,
    store: SqliteOffsetStore,
    campaigns: Arc<CampaignMap>,
) -> TransactionalOutput<SqliteOffsetStore> {
    foreach_batch_transactional(stream, counts, store, move |tx, counts, _time| {
        let now = i64::try_from(Time::now().as_millis()).unwrap_or(i64::MAX);
        let mut add = tx.prepare_cached(ADD_COUNT)?;
        for ((campaign, window), n) in counts {
            let id = campaigns
                .campaign_id(campaign)
                .map(ysb::events::uuid_string)
                .unwrap_or_default();
            add.execute(params![
                id,
                window,
                i64::try_from(n).unwrap_or(i64::MAX),
                now
            ])?;
        }
        Ok::<_, rusqlite::Error>(())
    })
}

/// `(campaign index, window start)` of a record that is a view of a known ad; nothing for any
/// other record, counting the ones that are not ad events at all.
fn view(r: &ConsumerRecord, campaigns: &CampaignMap, malformed: &AtomicU64) -> Option<(u32, i64)> {
    let value = r.value()?;
    match ysb::view_of(Encoding::Json, value, campaigns) {
        Ok(v) => v.map(|(campaign, time)| (campaign, ysb::window_start(time))),
        Err(e) => {
            if malformed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "{}-{}@{}: {e}; records that are not ad events are skipped",
                    r.topic,
                    r.partition,
                    r.offset
                );
            }
            None
        }
    }
}

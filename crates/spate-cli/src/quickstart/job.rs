//! The quickstart's streaming job — the Yahoo Streaming Benchmark's query on a direct stream:
//! parse each ad event, keep views, join the ad to its campaign, and count views per campaign
//! per 10-second event-time window; every batch adds its counts to SQLite in the same
//! transaction that stores the batch's offset ranges ([`foreach_batch_transactional`] over a
//! [`SqliteOffsetStore`]), so a batch that runs again after a crash or a restart (the
//! checkpoint re-runs planned batches with identical ranges) is recognised and not counted
//! twice.
//!
//! The job is built inside [`StreamingContext::get_or_create`], so a second run continues from
//! the checkpoint; the stored offsets are also given to the stream as starting offsets, so a
//! deleted checkpoint still resumes where the results end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use rusqlite::params;
use spate_kafka::sink::{foreach_batch_transactional, SqliteOffsetStore, TransactionalOutput};
use spate_kafka::{ConsumerRecord, ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils};
use spate_streaming::{Config, StreamingContext, Time};

use super::cluster::Cluster;
use super::{Layout, QuickstartArgs};
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
    pub ctx: StreamingContext,
    /// The job's Kafka settings (the UI reads latest offsets for lag with them).
    pub params: KafkaParams,
    /// Records that are not ad events (possible with `--bootstrap-server` and a shared topic).
    pub malformed: Arc<AtomicU64>,
    /// The SQLite output: batches committed, and batches the database already had (re-runs
    /// after a restart, not counted twice).
    pub output: TransactionalOutput,
}

impl Pipeline {
    /// Opens the results database and builds the job over `args.topic` with its checkpoint in
    /// `layout.checkpoint`.
    pub fn build(
        args: &QuickstartArgs,
        layout: &Layout,
        cluster: &Cluster,
    ) -> anyhow::Result<Self> {
        let store = SqliteOffsetStore::open(&layout.results, JOB_ID)
            .context("opening the results database")?;
        store
            .connection()
            .execute(CREATE_RESULTS, [])
            .with_context(|| format!("creating {RESULTS_TABLE} in {}", layout.results.display()))?;
        let starting = store
            .starting_offsets()
            .context("reading the stored offsets")?;

        let mut params = KafkaParams::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", JOB_ID)
            .set("auto.offset.reset", "earliest");
        for (k, v) in &cluster.client.config {
            params = params.set(k.as_str(), v.as_str());
        }
        let strategy = ConsumerStrategy::subscribe([args.topic.as_str()], params.clone())
            .with_offsets(
                starting
                    .into_iter()
                    .filter(|(tp, _)| tp.topic == args.topic),
            );
        let malformed = Arc::new(AtomicU64::new(0));
        let mut output = None;
        let ctx = StreamingContext::get_or_create(&layout.checkpoint, || {
            // The windows are event-time windows in SQLite, not engine windows, so the batches of
            // the time between two runs need not be replayed one by one: after one catch-up
            // batch, planning jumps to now (offsets continue either way).
            let config = Config::new("spate-quickstart")
                .batch_interval(args.batch_interval)
                .max_downtime_batches(1);
            let ctx = StreamingContext::new(config)?;
            output = Some(define(&ctx, strategy, store, malformed.clone())?);
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

/// direct stream → views per (campaign, window) → added to SQLite with the batch's offsets.
fn define(
    ctx: &StreamingContext,
    strategy: ConsumerStrategy,
    store: SqliteOffsetStore,
    malformed: Arc<AtomicU64>,
) -> spate_streaming::Result<TransactionalOutput> {
    let stream =
        KafkaUtils::create_direct_stream_with(ctx, strategy, DirectStreamConfig::default())?;
    let campaigns = Arc::new(YsbSetup::new(SEED).campaign_map());
    let lookup = campaigns.clone();
    let counts = stream
        .flat_map(move |r: ConsumerRecord| view(&r, &lookup, &malformed))
        .map(|key| (key, 1u64))
        .reduce_by_key(|a, b| a + b);
    Ok(foreach_batch_transactional(
        &stream,
        &counts,
        store,
        move |tx, counts, _time| {
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
        },
    ))
}

/// `(campaign index, window start)` of a record that is a view of a known ad; nothing for any
/// other record, counting the ones that are not ad events at all.
fn view(r: &ConsumerRecord, campaigns: &CampaignMap, malformed: &AtomicU64) -> Option<(u32, i64)> {
    let value = r.value.as_deref()?;
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

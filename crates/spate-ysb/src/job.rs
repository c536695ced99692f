//! The YSB job on spate's direct stream:
//!
//! ```text
//! create_direct_stream(ad-events)
//!   .map_partitions(parse → filter views → project (ad_id, event_time) → join campaign
//!                   → partial count per (campaign, window))      // one pass, no per-record alloc
//!   .reduce_by_key(+)                                            // batch count per window
//!   .map_with_state(running count per window)                    // YSB's HINCRBY
//!   .foreach_batch(write (campaign, window, count, time_updated) to the output topic)
//! ```
//!
//! Counting inside `map_partitions` before the shuffle is what Spark's `reduceByKey` map-side
//! combine does; it keeps the per-record work to the parse, a hash lookup and an increment.
//! The output is keyed `campaign_id:window_start`, so every update of a window lands in one
//! partition in order and the last one is the window's count.
//!
//! [`JobStats`] is also the job's streaming listener: it collects batch processing times and
//! completed record counts, and a sample of the views' event times per batch, which the output
//! turns into end-to-end latencies once the batch's writes are acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rustc_hash::FxHashMap;
use spate_kafka::{
    ConsumerRecord, ConsumerStrategy, DirectKafkaStream, DirectStreamConfig, KafkaParams,
    KafkaUtils,
};
use spate_streaming::{
    BatchInfo, PartitionIter, State, StateSpec, StreamingContext, StreamingListener,
};

use crate::checker::WindowCount;
use crate::error::{Result, YsbError};
use crate::events::{window_start, Encoding};
use crate::generator::now_ms;
use crate::setup::CampaignMap;
use crate::view::view_of;
use spate_client::config::ClientArgs;
use spate_client::delivery::{send_with_backpressure, DeliveryCounter};

/// The job's settings.
#[derive(Debug, Clone)]
pub struct YsbJobConfig {
    /// The broker's `host:port` list.
    pub bootstrap: String,
    /// The topic of ad events the job reads.
    pub input_topic: String,
    /// The topic the job writes window-count updates to.
    pub output_topic: String,
    /// How the input events are encoded.
    pub encoding: Encoding,
    /// Partitions of the input topic (bounds a batch through `max_records_per_batch`).
    pub partitions: usize,
    /// Caps a batch at about this many records (`maxRatePerPartition` derived from the batch
    /// interval), so a catch-up run over a large backlog reads it in bounded batches.
    pub max_records_per_batch: Option<u64>,
    /// Keep one view's event time in this many for the end-to-end latency.
    pub latency_sample_every: u64,
    /// Windows with no new views for this long (batch time) leave the state.
    pub state_timeout: Duration,
}

impl YsbJobConfig {
    /// Defaults for a job reading `input_topic` and writing `output_topic`.
    pub fn new(
        bootstrap: impl Into<String>,
        input_topic: impl Into<String>,
        output_topic: impl Into<String>,
    ) -> Self {
        YsbJobConfig {
            bootstrap: bootstrap.into(),
            input_topic: input_topic.into(),
            output_topic: output_topic.into(),
            encoding: Encoding::Json,
            partitions: 1,
            max_records_per_batch: None,
            latency_sample_every: 16,
            state_timeout: Duration::from_secs(120),
        }
    }
}

/// What the running job has done so far (shared with the caller; also the job's listener).
#[derive(Debug, Default)]
pub struct JobStats {
    /// Input records of completed batches.
    pub records_completed: AtomicU64,
    /// Records parsed (all event types).
    pub records_parsed: AtomicU64,
    /// Views joined to a campaign and counted.
    pub views: AtomicU64,
    /// Records that were not YSB events.
    pub malformed: AtomicU64,
    /// Window-count updates written to the output topic.
    pub updates_written: AtomicU64,
    /// Completed batches.
    pub batches: AtomicU64,
    batch_infos: Mutex<Vec<BatchInfo>>,
    pending_event_times: Mutex<Vec<i64>>,
    latencies_ms: Mutex<Vec<f64>>,
    failures: Mutex<Vec<String>>,
}

impl JobStats {
    /// Completed batches' infos so far.
    pub fn batch_infos(&self) -> Vec<BatchInfo> {
        self.batch_infos.lock().clone()
    }

    /// Sampled end-to-end latencies (ms): acknowledged output write − event time.
    pub fn latencies_ms(&self) -> Vec<f64> {
        self.latencies_ms.lock().clone()
    }

    /// Failure reasons of failed batches.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().clone()
    }

    /// Forgets the samples and infos collected so far (after a warm-up).
    pub fn reset_samples(&self) {
        self.batch_infos.lock().clear();
        self.latencies_ms.lock().clear();
    }
}

impl StreamingListener for JobStats {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if let Some(reason) = info.failure_reason() {
            self.failures.lock().push(reason.to_owned());
            return;
        }
        self.records_completed
            .fetch_add(info.num_records(), Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_infos.lock().push(info.clone());
    }
}

/// Settings of the stream's task consumers beyond the direct stream's own: a 1 ms fetch wait
/// (with 5 ms, 10 ms batches at 75K events/s took 10 ms (p50) instead of 5 ms, as reads waited
/// out fetches). Fetch sizes and the pre-fetch queue are left to the stream, which splits its
/// pre-fetch budget (16 MiB) over a batch's partitions and sizes fetches to fit in it; the
/// raw ceiling's 64 MiB fetches and 16 MiB queue per partition had the job process peak at
/// 148 MiB in a 4M-event catch-up (docs/benchmarks.md).
pub const JOB_CONSUMER_TUNING: &[(&str, &str)] =
    &[("fetch.wait.max.ms", "1"), ("fetch.queue.backoff.ms", "10")];

/// The output producer: no linger (a batch's updates are flushed at once) and leader acks.
const OUTPUT_PRODUCER: &[(&str, &str)] = &[
    ("acks", "1"),
    ("linger.ms", "0"),
    ("compression.type", "none"),
    ("message.timeout.ms", "30000"),
];

/// Waits until every record sent is acknowledged (or failed). Not `Producer::flush`: rdkafka
/// 0.39's `BaseProducer::poll` returns only when its timeout has passed, so `flush` takes at
/// least 100 ms whenever an acknowledgement is outstanding — a floor under every batch. Polling
/// without waiting, with 100 µs sleeps between polls, bounds the wait by the broker's answer.
fn await_acks(producer: &BaseProducer<DeliveryCounter>, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() >= deadline {
            return Err(YsbError::CountsNotAcknowledged {
                pending: producer.in_flight_count(),
                timeout_secs: timeout.as_secs(),
            });
        }
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    Ok(())
}

/// A YSB job defined on a streaming context (start the context to run it).
#[derive(Debug, Clone)]
pub struct YsbJob {
    /// Counters the job updates as batches complete; read them while it runs.
    pub stats: Arc<JobStats>,
}

impl YsbJob {
    /// Defines the job on `ctx` (not yet started): the direct stream over `config.input_topic`
    /// from the earliest offset, and the output to `config.output_topic`.
    pub fn build(
        ctx: &StreamingContext,
        config: &YsbJobConfig,
        campaigns: Arc<CampaignMap>,
    ) -> Result<YsbJob> {
        let stats = Arc::new(JobStats::default());
        ctx.add_streaming_listener(stats.clone());
        let stream = input_stream(ctx, config)?;

        let counter = ViewCounter {
            encoding: config.encoding,
            sample_every: config.latency_sample_every.max(1),
            campaigns: campaigns.clone(),
            stats: stats.clone(),
        };
        let partial_counts = stream.map_partitions(move |records| counter.count(records));

        let spec = StateSpec::function(
            |key: &(u32, i64), batch_count: Option<u64>, state: &mut State<u64>| {
                if state.is_timing_out() {
                    return None;
                }
                let count = state.get().copied().unwrap_or(0) + batch_count.unwrap_or(0);
                state.update(count);
                Some((key.0, key.1, count))
            },
        )
        .timeout(config.state_timeout);
        let updates = partial_counts
            .reduce_by_key(|a, b| a + b)
            .map_with_state(spec)
            .mapped();

        let writer = CountWriter::new(config, campaigns, stats.clone())?;
        updates.foreach_batch(move |batch, _time| -> Result<()> {
            let updates = batch.collect().map_err(YsbError::Batch)?;
            writer.write(updates.into_iter().flatten())
        });
        Ok(YsbJob { stats })
    }
}

/// The job's input: a direct stream subscribed to the input topic from the earliest offset,
/// with `max_records_per_batch` turned into a per-partition rate limit.
fn input_stream(ctx: &StreamingContext, config: &YsbJobConfig) -> Result<DirectKafkaStream> {
    let mut params = KafkaParams::new()
        .set("bootstrap.servers", config.bootstrap.as_str())
        .set("auto.offset.reset", "earliest");
    for (k, v) in JOB_CONSUMER_TUNING {
        params = params.set(*k, *v);
    }
    let mut stream_config = DirectStreamConfig::default().initial_rate(None);
    if let Some(max) = config.max_records_per_batch {
        let secs = ctx.batch_interval().as_secs_f64().max(1e-3);
        let per_partition = (max as f64 / config.partitions.max(1) as f64 / secs).ceil();
        stream_config = stream_config.max_rate_per_partition((per_partition as u64).max(1));
    }
    KafkaUtils::create_direct_stream_with(
        ctx,
        ConsumerStrategy::subscribe([config.input_topic.as_str()], params),
        stream_config,
    )
    .map_err(YsbError::DirectStream)
}

/// YSB's parse → filter → project → join on one partition of a batch, counted per campaign and
/// window before the shuffle; also samples event times for the latency measurement.
struct ViewCounter {
    encoding: Encoding,
    sample_every: u64,
    campaigns: Arc<CampaignMap>,
    stats: Arc<JobStats>,
}

impl ViewCounter {
    fn count(&self, records: PartitionIter<'_, ConsumerRecord>) -> Vec<((u32, i64), u64)> {
        let mut counts: FxHashMap<(u32, i64), u64> = FxHashMap::default();
        let (mut parsed, mut views, mut malformed) = (0u64, 0u64, 0u64);
        let mut samples = Vec::new();
        for record in records {
            let Some(value) = record.value() else {
                malformed += 1;
                continue;
            };
            match view_of(self.encoding, value, &self.campaigns) {
                Ok(Some((campaign, time))) => {
                    parsed += 1;
                    if views % self.sample_every == 0 {
                        samples.push(time);
                    }
                    views += 1;
                    *counts.entry((campaign, window_start(time))).or_insert(0) += 1;
                }
                Ok(None) => parsed += 1,
                Err(e) => {
                    if malformed == 0 {
                        tracing::warn!(offset = record.offset, "skipping a record: {e}");
                    }
                    malformed += 1;
                }
            }
        }
        let st = &self.stats;
        st.records_parsed.fetch_add(parsed, Ordering::Relaxed);
        st.views.fetch_add(views, Ordering::Relaxed);
        st.malformed.fetch_add(malformed, Ordering::Relaxed);
        if !samples.is_empty() {
            st.pending_event_times.lock().extend(samples);
        }
        counts.into_iter().collect::<Vec<_>>()
    }
}

/// Writes a batch's updated window counts to the output topic and waits for their
/// acknowledgements, so a batch completes only once its counts are in Kafka; the latency of
/// the sampled events ends at that acknowledgement.
struct CountWriter {
    producer: BaseProducer<DeliveryCounter>,
    topic: String,
    campaigns: Arc<CampaignMap>,
    stats: Arc<JobStats>,
}

impl CountWriter {
    fn new(
        config: &YsbJobConfig,
        campaigns: Arc<CampaignMap>,
        stats: Arc<JobStats>,
    ) -> Result<Self> {
        let client = ClientArgs::new(config.bootstrap.clone());
        let producer: BaseProducer<DeliveryCounter> =
            client.create_with_context(OUTPUT_PRODUCER, DeliveryCounter::default())?;
        Ok(CountWriter {
            producer,
            topic: config.output_topic.clone(),
            campaigns,
            stats,
        })
    }

    fn write(&self, updates: impl Iterator<Item = (u32, i64, u64)>) -> Result<()> {
        let producer = &self.producer;
        let failed_before = producer.context().failed.load(Ordering::Relaxed);
        let time_updated = now_ms();
        let mut written = 0u64;
        let mut buf = Vec::with_capacity(160);
        for (campaign, window, count) in updates {
            let campaign_id = self
                .campaigns
                .campaign_id(campaign)
                .ok_or(YsbError::UnknownCampaign(campaign))?;
            let update = WindowCount {
                campaign_id,
                window_start: window,
                count,
                time_updated,
            };
            let key = update.key();
            buf.clear();
            update.encode(&mut buf);
            let record = BaseRecord::<str, [u8]>::to(&self.topic)
                .key(key.as_str())
                .payload(&buf[..])
                .timestamp(time_updated);
            send_with_backpressure(producer, record).map_err(YsbError::WriteCount)?;
            written += 1;
        }
        await_acks(producer, Duration::from_secs(30))?;
        if producer.context().failed.load(Ordering::Relaxed) != failed_before {
            return Err(YsbError::CountsFailed(
                producer.context().errors().join("; "),
            ));
        }
        let st = &self.stats;
        st.updates_written.fetch_add(written, Ordering::Relaxed);
        let acked = now_ms();
        let times = std::mem::take(&mut *st.pending_event_times.lock());
        st.latencies_ms
            .lock()
            .extend(times.into_iter().map(|t| (acked - t) as f64));
        Ok(())
    }
}

//! `spate bench scale-instance` (hidden): one instance of `spate bench scale`'s job, run as a
//! child process of the benchmark. It joins the job's consumer group with a group-managed
//! direct stream, runs the word count of `bench direct` over the partitions it owns, and talks
//! to its parent over stdio:
//!
//! * stdout, one `SCALE {json}` line per event: `owned` (the partitions it owns, also before
//!   the context starts, so the parent can wait for a settled group), `batch` (each completed
//!   batch: records, processing time, words counted so far), `rebalance` (the stream's
//!   [`RebalanceInfo`] with its durations, as the UI shows them) and `usage` (peak RSS and CPU
//!   seconds, twice a second, so a SIGKILLed instance has reported them too);
//! * stdin: `go` starts the context (every instance starts at once, after the group settled),
//!   `stop` or end of input stops it.
//!
//! Where a partition starts when it moves: the instances of a layout share a directory of
//! positions (`--offsets-dir`, one file per partition with the offset after its last completed
//! batch), read by the stream's rebalance listener on assignment. Offsets cannot go to the
//! consumer group here: a commit from outside the group's membership is refused while the group
//! has members (UNKNOWN_MEMBER_ID), and the word count writes no transaction to carry them. So a
//! killed instance's partitions resume after its last completed batch (at least once), not
//! from the beginning of the topic.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use spate_client::config::parse_key_value;
use std::collections::BTreeMap;

use spate_kafka::{
    ConsumerStrategy, DirectKafkaStream, DirectStreamConfig, KafkaParams, KafkaUtils, OffsetRange,
    RebalanceListener, TopicPartition,
};
use spate_streaming::{
    BatchInfo, InputOwnershipInfo, RebalanceInfo, StreamingContext, StreamingListener,
};

use crate::error::{BenchError, Result};
use crate::resources::{peak_rss_bytes, CpuTime};
use crate::stream_job::{word_count, Progress};

/// The prefix of every event line on stdout.
pub const EVENT_PREFIX: &str = "SCALE ";

/// Options of `spate bench scale-instance` (set by `spate bench scale`).
#[derive(Args, Debug)]
pub struct ScaleInstanceArgs {
    /// The topic to read.
    #[arg(long)]
    pub topic: String,
    /// Worker threads of the engine.
    #[arg(long)]
    pub threads: usize,
    /// Batch interval, ms.
    #[arg(long)]
    pub batch_interval_ms: u64,
    /// Per-partition cap of the stream, records/s (bounds a batch's size).
    #[arg(long)]
    pub max_rate_per_partition: u64,
    /// Where the instances of a layout keep each partition's position (see the module docs).
    #[arg(long)]
    pub offsets_dir: std::path::PathBuf,
    /// The stream's Kafka parameters (group.id, group.instance.id, tuning), repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
}

/// One event an instance reports to the benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum InstanceEvent {
    /// The partitions owned now.
    Owned {
        /// Partition numbers.
        partitions: Vec<i32>,
    },
    /// A batch completed.
    Batch {
        /// Records of the batch.
        records: u64,
        /// Its processing time, ms (with records only).
        processing_ms: Option<f64>,
        /// Words counted by the output so far.
        units: u64,
    },
    /// A rebalance, or a rebalance's first batch.
    Rebalance {
        /// What the stream reported.
        info: RebalanceInfo,
    },
    /// Resource use so far.
    Usage {
        /// Peak RSS, bytes.
        peak_rss_bytes: Option<u64>,
        /// CPU seconds of the process.
        cpu_seconds: f64,
    },
}

impl InstanceEvent {
    fn emit(&self) {
        if let Ok(json) = serde_json::to_string(self) {
            println!("{EVENT_PREFIX}{json}");
        }
    }

    /// Parses an event line (`None` for other output).
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line.strip_prefix(EVENT_PREFIX)?).ok()
    }
}

/// The shared positions: `<dir>/<topic>-<partition>` holds the offset to resume from.
#[derive(Debug, Clone)]
struct FilePositions {
    dir: std::path::PathBuf,
}

impl FilePositions {
    fn path(&self, tp: &TopicPartition) -> std::path::PathBuf {
        self.dir.join(format!("{}-{}", tp.topic, tp.partition))
    }

    /// Records where each range's partition resumes (write, then rename: a reader never sees
    /// a half-written file).
    fn save(&self, ranges: &[OffsetRange]) {
        for r in ranges {
            let tp = r.topic_partition();
            let tmp = self.dir.join(format!(
                ".{}-{}.{}",
                tp.topic,
                tp.partition,
                std::process::id()
            ));
            let saved = std::fs::write(&tmp, r.until_offset.to_string())
                .and_then(|()| std::fs::rename(&tmp, self.path(&tp)));
            if let Err(e) = saved {
                tracing::warn!(partition = %tp, error = %e, "could not save the position");
            }
        }
    }
}

impl RebalanceListener for FilePositions {
    fn on_partitions_assigned(
        &self,
        partitions: &[TopicPartition],
    ) -> spate_kafka::Result<BTreeMap<TopicPartition, i64>> {
        Ok(partitions
            .iter()
            .filter_map(|tp| {
                let text = std::fs::read_to_string(self.path(tp)).ok()?;
                Some((tp.clone(), text.trim().parse().ok()?))
            })
            .collect())
    }
}

/// Reports batches and rebalances as events, and saves each completed batch's positions.
struct Events {
    progress: Arc<Progress>,
    stream: DirectKafkaStream,
    positions: FilePositions,
}

impl StreamingListener for Events {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if info.failure_reason().is_none() {
            if let Some(ranges) = self.stream.offset_ranges(info.batch_time) {
                self.positions.save(&ranges);
            }
        }
        let records = info.num_records();
        InstanceEvent::Batch {
            records,
            processing_ms: (records > 0)
                .then_some(info.processing_micros)
                .flatten()
                .map(|us| us as f64 / 1000.0),
            units: self
                .progress
                .units
                .load(std::sync::atomic::Ordering::SeqCst),
        }
        .emit();
    }

    fn on_input_ownership(&self, info: &InputOwnershipInfo) {
        if let Some(r) = &info.rebalance {
            InstanceEvent::Rebalance { info: r.clone() }.emit();
        }
    }
}

/// Runs one instance until `stop` or the end of stdin.
pub fn run(args: ScaleInstanceArgs) -> Result<()> {
    let threads = args.threads.max(1);
    let ctx = StreamingContext::new(
        spate_streaming::Config::new("bench-scale")
            .batch_interval(Duration::from_millis(args.batch_interval_ms.max(1)))
            .executor_threads(threads)
            .default_parallelism(threads)
            .graceful_stop_timeout(Duration::from_secs(5)),
    )?;
    let params: KafkaParams = args.config.iter().cloned().collect();
    let strategy = ConsumerStrategy::subscribe_group_managed([args.topic.as_str()], params)?;
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(args.max_rate_per_partition)
        .backpressure(false)
        .initial_rate(None);
    let stream = KafkaUtils::create_direct_stream_with(&ctx, strategy, config)?;
    let positions = FilePositions {
        dir: args.offsets_dir.clone(),
    };
    stream.set_rebalance_listener(positions.clone());
    let progress = Arc::new(Progress::default());
    word_count(&stream, progress.clone());
    ctx.add_streaming_listener(Arc::new(Events {
        progress,
        stream: stream.clone(),
        positions,
    }));
    let watched = stream.clone();
    std::thread::Builder::new()
        .name("scale-instance-watch".into())
        .spawn(move || watch(&watched))
        .map_err(BenchError::io("starting the instance's watch thread"))?;
    let mut lines = std::io::stdin().lock().lines();
    let go = lines
        .next()
        .transpose()
        .map_err(BenchError::io("reading stdin"))?;
    if go.as_deref().map(str::trim) != Some("go") {
        return Ok(());
    }
    ctx.start()?;
    for line in lines {
        match line {
            Ok(l) if l.trim() == "stop" => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    ctx.stop(false)?;
    Ok(())
}

/// Reports ownership changes and resource use until the process ends.
fn watch(stream: &DirectKafkaStream) {
    let mut last: Option<Vec<i32>> = None;
    let mut tick = 0u32;
    loop {
        let mut owned: Vec<i32> = stream
            .owned_partitions()
            .unwrap_or_default()
            .iter()
            .map(|tp| tp.partition)
            .collect();
        owned.sort_unstable();
        if last.as_ref() != Some(&owned) {
            InstanceEvent::Owned {
                partitions: owned.clone(),
            }
            .emit();
            last = Some(owned);
        }
        if tick % 25 == 0 {
            InstanceEvent::Usage {
                peak_rss_bytes: peak_rss_bytes(),
                cpu_seconds: CpuTime::now().total(),
            }
            .emit();
        }
        tick = tick.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20));
    }
}

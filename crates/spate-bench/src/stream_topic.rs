//! The topic the Kafka stream benchmarks read, and the flags they share: `--records` records of
//! `--record-size` bytes of text (`wNNNN` words from a 1,000-word vocabulary, space-separated,
//! padded with spaces, so one topic serves pass-through and word count) loaded with the tuned
//! producer into a fresh topic, the ceiling measured on it with `kafka_io::drain`, and the Kafka
//! parameters a stream over it gets.

use crate::error::{BenchError, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;

use crate::broker::{create_topic, delete_topic, tuning_json};
use crate::job_result::{JobResult, Phase};
use crate::kafka_io;
use crate::report::Ceiling;
use crate::target::{BrokerTarget, TargetArgs};
use spate_client::config::{parse_key_value, ClientArgs};
use spate_client::measure::fmt_count;
use spate_client::measure::LoadResult;
use spate_client::tuning::CONSUMER_TUNING;

/// The topic, broker and engine settings shared by `bench direct` and `bench receiver`.
#[derive(Args, Debug, Clone)]
pub struct StreamBenchArgs {
    /// The broker to benchmark against (embedded or external).
    #[command(flatten)]
    pub target: TargetArgs,
    /// Records preloaded into the topic (each job reads all of them).
    #[arg(long, value_name = "N", default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,
    /// Record (value) size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub record_size: u64,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Batch interval of the streaming jobs, ms.
    #[arg(long, value_name = "MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_interval_ms: u64,
    /// Worker threads of the engine (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Give up on a job that has not seen every record after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout_secs: u64,
    /// Write the report as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// A librdkafka setting for every consumer, applied after the tuning (e.g. -X fetch.wait.max.ms=50).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Read this existing topic (left by an earlier run with `--keep-topic`) instead of
    /// creating and loading one, so the process holds only the jobs' memory. `--records`,
    /// `--record-size` and `--partitions` must describe it.
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// Leave the loaded topic on the broker for later runs with `--topic`.
    #[arg(long)]
    pub keep_topic: bool,
    /// Skip the consumer ceiling (with `--topic`, to measure a job's memory alone); the report
    /// then has no ratios.
    #[arg(long)]
    pub no_ceiling: bool,
}

impl StreamBenchArgs {
    /// `--threads`, or the number of cores when not given.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// The topic the jobs read: `--topic`, or a new one loaded for `benchmark` (kept with
    /// `--keep-topic`).
    pub fn preloaded(&self, benchmark: &str) -> Result<Preloaded> {
        self.preloaded_with(benchmark, &[])
    }

    /// [`StreamBenchArgs::preloaded`] on an embedded broker started with `settings` (Kafka's
    /// broker setting names; ignored for an external broker).
    pub fn preloaded_with(
        &self,
        benchmark: &str,
        settings: &[(&str, String)],
    ) -> Result<Preloaded> {
        let mut topic = match &self.topic {
            Some(name) => Preloaded::existing(name, self, settings)?,
            None => Preloaded::start(benchmark, self, settings)?,
        };
        topic.keep |= self.keep_topic;
        Ok(topic)
    }

    /// `--batch-interval-ms` as a duration.
    pub fn batch_interval(&self) -> Duration {
        Duration::from_millis(self.batch_interval_ms)
    }

    /// The report's `config`, with what is specific to one benchmark merged in.
    pub fn config_json(&self, topic: &Preloaded, extra: serde_json::Value) -> serde_json::Value {
        let mut config = serde_json::json!({
            "broker": topic.target.description,
            "bootstrap_server": topic.target.bootstrap,
            "topic": topic.topic,
            "partitions": self.partitions,
            "records": self.records,
            "record_size": self.record_size,
            "words_per_record": words_per_record(self.record_size as usize),
            "batch_interval_ms": self.batch_interval_ms,
            "threads": self.threads(),
            "consumer": tuning_json(CONSUMER_TUNING, &self.config),
        });
        if let (Some(c), serde_json::Value::Object(e)) = (config.as_object_mut(), extra) {
            c.extend(e);
        }
        config
    }
}

/// Words in a record of `size` bytes: `wNNNN` (5 bytes) separated by single spaces.
pub fn words_per_record(size: usize) -> u64 {
    ((size + 1) / 6) as u64
}

/// Writes record `i`'s text into `payload`: words from a 1,000-word vocabulary (an xorshift of
/// the record number picks them, so every run loads the same data), then spaces up to the size.
pub(crate) fn fill_words(i: u64, payload: &mut [u8]) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words = words_per_record(payload.len()) as usize;
    for (w, chunk) in payload.chunks_mut(6).enumerate() {
        if w >= words {
            chunk.fill(b' ');
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = x % 1000;
        let word = [
            b'w',
            b'0',
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
            b' ',
        ];
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The broker and the loaded topic; the topic is deleted (best effort) and an embedded broker
/// stopped on drop.
#[derive(Debug)]
pub struct Preloaded {
    /// The broker holding the topic.
    pub target: BrokerTarget,
    /// Client options for that broker (with the run's `-X` settings).
    pub client: ClientArgs,
    /// The loaded topic's name.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Records loaded.
    pub records: u64,
    /// Value size of every record, bytes.
    pub record_size: usize,
    /// How fast the load went (zero for a topic loaded by an earlier run).
    pub load: LoadResult,
    /// Leave the topic on the broker when done (`--keep-topic`, or a topic this run did not
    /// create).
    pub keep: bool,
}

impl Preloaded {
    /// Starts the target broker (an embedded one with `settings`), creates a topic named after
    /// `benchmark` and loads it.
    pub fn start(
        benchmark: &str,
        args: &StreamBenchArgs,
        settings: &[(&str, String)],
    ) -> Result<Self> {
        let target = BrokerTarget::start_with(&args.target, settings)?;
        let mut client = ClientArgs::new(target.bootstrap.clone());
        client.config = args.config.clone();
        let topic = format!(
            "spate-bench-{benchmark}-{}-{}",
            std::process::id(),
            unique_suffix()
        );
        create_topic(&client, &topic, args.partitions)?;
        let record_size = usize::try_from(args.record_size)
            .map_err(|_| BenchError::InvalidOptions("--record-size too large".into()))?;
        eprintln!(
            "spate bench {benchmark}: {} at {}; loading {} records of {record_size} B into {} partitions...",
            target.description, target.bootstrap, args.records, args.partitions
        );
        let load = kafka_io::load_with(
            &client,
            &topic,
            args.partitions,
            args.records,
            record_size,
            fill_words,
        )
        .map_err(|e| e.during("loading the benchmark topic"))?;
        eprintln!(
            "  loaded in {:.1} s ({} records/s)",
            load.throughput.seconds,
            fmt_count(load.throughput.records_per_sec())
        );
        Ok(Preloaded {
            target,
            client,
            topic,
            partitions: args.partitions,
            records: args.records,
            record_size,
            load,
            keep: false,
        })
    }

    /// A topic an earlier run loaded and kept (`bench direct --topic`): nothing is created or
    /// loaded, so this process's memory is the job's alone. It must hold `--records` records of
    /// `--record-size` bytes in `--partitions` partitions, as that run's flags said.
    pub fn existing(
        topic: &str,
        args: &StreamBenchArgs,
        settings: &[(&str, String)],
    ) -> Result<Self> {
        let target = BrokerTarget::start_with(&args.target, settings)?;
        let mut client = ClientArgs::new(target.bootstrap.clone());
        client.config = args.config.clone();
        let record_size = usize::try_from(args.record_size)
            .map_err(|_| BenchError::InvalidOptions("--record-size too large".into()))?;
        eprintln!(
            "spate bench: {} at {}; reading the existing topic {topic} ({} records of {record_size} B)",
            target.description, target.bootstrap, args.records
        );
        Ok(Preloaded {
            target,
            client,
            topic: topic.to_owned(),
            partitions: args.partitions,
            records: args.records,
            record_size,
            load: LoadResult {
                throughput: spate_client::measure::Throughput {
                    records: 0,
                    bytes: 0,
                    seconds: 0.0,
                },
                ack_latency_ms: None,
            },
            keep: true,
        })
    }

    /// Value bytes loaded: `records × record_size`.
    pub fn bytes(&self) -> u64 {
        self.records * self.record_size as u64
    }

    /// Drains the topic with a bare rdkafka consumer: the ceiling every job is compared with.
    pub fn measure_ceiling(&self) -> Result<(Ceiling, JobResult)> {
        eprintln!("  ceiling: rdkafka BaseConsumer...");
        let phase = Phase::begin();
        let t = kafka_io::drain(&self.client, &self.topic, self.partitions, self.records)
            .map_err(|e| e.during("draining the topic for the ceiling"))?;
        let ceiling = Ceiling {
            record_size: self.record_size,
            records_per_sec: t.records_per_sec(),
            mb_per_sec: t.mb_per_sec(),
            method: "rdkafka BaseConsumer, all partitions assigned, no group, no engine".to_owned(),
        };
        Ok((
            ceiling,
            phase.end("rdkafka consumer (ceiling)", t, Vec::new()),
        ))
    }

    /// Kafka parameters for a stream over this topic: the consumer tuning of the ceiling (minus
    /// what the stream decides itself) with its pre-fetch budget split evenly over `consumers`
    /// consumers, `-X` overrides, and a fresh consumer group.
    ///
    /// The split keeps the comparison fair in memory: the ceiling's one consumer may queue
    /// 64 MiB / 1M records ahead; a direct stream has one consumer per partition, and giving each
    /// the whole budget cost it 40% of its throughput in page faults (librdkafka's buffers
    /// growing to over 1 GiB).
    pub fn kafka_params(
        &self,
        consumers: u32,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.target.bootstrap.clone()),
            (
                "group.id".into(),
                format!("spate-bench-{}-{}", std::process::id(), unique_suffix()),
            ),
            ("auto.offset.reset".into(), "earliest".into()),
        ];
        let consumers = u64::from(consumers.max(1));
        params.extend(
            CONSUMER_TUNING
                .iter()
                // The streams choose their own `fetch.queue.backoff.ms`: what is measured is
                // what a job gets.
                .filter(|(k, _)| {
                    !k.starts_with("group.")
                        && !k.starts_with("enable.auto.")
                        && *k != "fetch.queue.backoff.ms"
                })
                .map(|&(k, v)| {
                    let v = match (k, v.parse::<u64>()) {
                        ("queued.min.messages" | "queued.max.messages.kbytes", Ok(n)) => {
                            (n / consumers).max(1).to_string()
                        }
                        _ => v.to_owned(),
                    };
                    (k.to_owned(), v)
                }),
        );
        params.extend(extra.iter().cloned());
        params.extend(self.client.config.iter().cloned());
        params
    }
}

impl Drop for Preloaded {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept topic {}", self.topic);
            return;
        }
        delete_topic(&self.client, &self.topic);
    }
}

/// Distinguishes topics and groups of runs in the same process (tests run in parallel).
fn unique_suffix() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_words_of_the_vocabulary() {
        for size in [5usize, 6, 11, 100, 103] {
            let mut p = vec![0u8; size];
            fill_words(42, &mut p);
            let text = std::str::from_utf8(&p).unwrap();
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(words.len() as u64, words_per_record(size), "{text:?}");
            assert!(words
                .iter()
                .all(|w| w.len() == 5 && w.starts_with('w') && w[1..].parse::<u32>().is_ok()));
        }
        assert_eq!(words_per_record(100), 16);
        assert_eq!(words_per_record(4), 0);
        let (mut a, mut b) = (vec![0u8; 100], vec![0u8; 100]);
        fill_words(1, &mut a);
        fill_words(2, &mut b);
        assert_ne!(a, b, "records differ");
    }
}

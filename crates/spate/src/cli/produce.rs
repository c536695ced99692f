//! `spate produce TOPIC`: one record per stdin line, like `kafka-console-producer.sh`.
//!
//! Built for large inputs: a `BaseProducer` with librdkafka's batching, no waiting per record; the
//! delivery reports are counted by `DeliveryCounter` and the command fails if any record was not
//! acknowledged.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::client_config::{librdkafka_error, librdkafka_log, parse_key_value, ClientArgs};
use super::topics::TopicName;

/// How long librdkafka may try to deliver a record before reporting it failed, unless `-X
/// message.timeout.ms` says otherwise (librdkafka's own default is 5 minutes).
const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// How many delivery errors are quoted in the summary; the rest are only counted.
const QUOTED_ERRORS: usize = 5;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    topic: TopicName,
    /// Split each line at the first SEP: the part before is the key, the rest the value. Lines
    /// without SEP are reported and not sent.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition instead of partitioning by key.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Acknowledgements the leader waits for before answering.
    #[arg(long, value_enum, default_value_t = Acks::One)]
    acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// A header added to every record (e.g. --header source=cli), repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    header: Vec<(String, String)>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    #[value(name = "all", alias = "-1")]
    All,
}

impl Acks {
    fn as_config(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Counts delivery reports; librdkafka calls it from `poll`/`flush` on the producing thread.
/// Optionally samples acknowledgement latency (delivery report time minus the record's
/// CreateTime, so millisecond resolution) for the benchmarks.
#[derive(Default)]
pub struct DeliveryCounter {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Every `n`th delivery's latency in ms is kept when this is `Some(n)`.
    sample_every: Option<u64>,
    latencies_ms: Mutex<Vec<f64>>,
}

impl DeliveryCounter {
    /// A counter that also keeps the ack latency of every `n`th record.
    pub fn sampling_latency(n: u64) -> Self {
        DeliveryCounter {
            sample_every: Some(n.max(1)),
            ..DeliveryCounter::default()
        }
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The sampled acknowledgement latencies, in milliseconds.
    pub fn latencies_ms(&self) -> Vec<f64> {
        self.latencies_ms
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    fn record_error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < QUOTED_ERRORS {
                errors.push(message);
            }
        }
    }

    fn sample_latency(&self, n: u64, message: &BorrowedMessage<'_>) {
        let Some(every) = self.sample_every else {
            return;
        };
        if n % every != 0 {
            return;
        }
        let Some(created) = message.timestamp().to_millis() else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if let Ok(mut latencies) = self.latencies_ms.lock() {
            latencies.push((now - created).max(0) as f64);
        }
    }
}

impl ClientContext for DeliveryCounter {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        librdkafka_error(&error, reason);
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let n = self.delivered.fetch_add(1, Ordering::Relaxed);
                self.sample_latency(n, message);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.record_error(format!("delivery failed: {e}"));
            }
        }
    }
}

/// Sends `record`, waiting for room when librdkafka's queue is full instead of failing.
pub fn send_with_backpressure<K, P>(
    producer: &BaseProducer<DeliveryCounter>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    produce(&args, stdin.lock())
}

fn produce(args: &ProduceArgs, input: impl Read) -> anyhow::Result<()> {
    let topic = args.topic.required()?;
    let message_timeout = DEFAULT_MESSAGE_TIMEOUT_MS.to_string();
    let producer: BaseProducer<DeliveryCounter> = args.client.create_with_context(
        &[
            ("acks", args.acks.as_config()),
            ("compression.type", args.compression.as_config()),
            ("message.timeout.ms", &message_timeout),
        ],
        DeliveryCounter::default(),
    )?;
    let partitions = args.client.topic_partitions(producer.client(), topic)?;
    if let Some(p) = args.partition {
        if p >= partitions {
            bail!("topic {topic:?} has {partitions} partitions; --partition {p} does not exist");
        }
    }

    let headers = args.header.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    });
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    if separator.is_some_and(<[u8]>::is_empty) {
        bail!("--key-separator must not be empty");
    }

    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    let mut sent = 0u64;
    let mut rejected = 0u64;
    let mut rejected_quotes = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("could not read standard input")?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let body = strip_newline(&line);
        let (key, value) = match separator {
            Some(sep) => match split_once(body, sep) {
                Some(kv) => (Some(kv.0), kv.1),
                None => {
                    rejected += 1;
                    if rejected_quotes.len() < QUOTED_ERRORS {
                        rejected_quotes.push(format!("line {line_no}: no key separator found"));
                    }
                    continue;
                }
            },
            None => (None, body),
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if !args.header.is_empty() {
            record = record.headers(headers.clone());
        }
        match send_with_backpressure(&producer, record) {
            Ok(()) => sent += 1,
            Err(e) => {
                rejected += 1;
                if rejected_quotes.len() < QUOTED_ERRORS {
                    rejected_quotes.push(format!("line {line_no}: {e}"));
                }
            }
        }
        if sent % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }

    // A record is either acknowledged or failed by librdkafka within message.timeout.ms, so
    // waiting a little longer than that for the flush cannot cut a delivery short.
    let message_timeout_ms = args
        .client
        .config
        .iter()
        .rev()
        .find(|(k, _)| k == "message.timeout.ms" || k == "delivery.timeout.ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MESSAGE_TIMEOUT_MS);
    let flushed = producer.flush(Duration::from_millis(message_timeout_ms + 5_000));
    let elapsed = started.elapsed();
    let ctx = producer.context();
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    let undelivered = sent.saturating_sub(delivered + failed);
    let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "spate produce: {delivered} records delivered to {topic}, {} failed, {rejected} not sent \
         ({:.2}s, {rate:.0} records/s)",
        failed + undelivered,
        elapsed.as_secs_f64()
    );
    for quote in rejected_quotes.iter().chain(ctx.errors().iter()) {
        eprintln!("  {quote}");
    }
    if flushed.is_err() && undelivered > 0 {
        eprintln!(
            "  {undelivered} records were still unacknowledged after {}s",
            message_timeout_ms / 1000 + 5
        );
    }
    if failed + undelivered + rejected > 0 {
        bail!(
            "{} of {line_no} input lines were not delivered",
            failed + undelivered + rejected
        );
    }
    Ok(())
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn split_once<'a>(haystack: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = haystack.windows(sep.len()).position(|w| w == sep)?;
    Some((&haystack[..at], &haystack[at + sep.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_stripping() {
        assert_eq!(strip_newline(b"abc\n"), b"abc");
        assert_eq!(strip_newline(b"abc\r\n"), b"abc");
        assert_eq!(strip_newline(b"abc"), b"abc");
        assert_eq!(strip_newline(b"\n"), b"");
    }

    #[test]
    fn key_splitting_uses_first_separator() {
        assert_eq!(
            split_once(b"k::v::w", b"::"),
            Some((&b"k"[..], &b"v::w"[..]))
        );
        assert_eq!(split_once(b"k\tv", b"\t"), Some((&b"k"[..], &b"v"[..])));
        assert_eq!(split_once(b"\tv", b"\t"), Some((&b""[..], &b"v"[..])));
        assert_eq!(split_once(b"nosep", b"\t"), None);
    }
}

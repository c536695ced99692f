//! `spate produce TOPIC`: one record per stdin line, like `kafka-console-producer.sh`.
//!
//! Built for large inputs: a `BaseProducer` with librdkafka's batching, no waiting per record; the
//! delivery reports are counted by `DeliveryCounter` and the command fails if any record was not
//! acknowledged.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::topics::TopicName;
use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_client::config::{parse_key_value, ClientArgs};
use spate_client::delivery::{send_with_backpressure, DeliveryCounter, QUOTED_ERRORS};

/// How long librdkafka may try to deliver a record before reporting it failed, unless `-X
/// message.timeout.ms` says otherwise (librdkafka's own default is 5 minutes).
const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// `spate produce`: the topic, how lines become records, and the producer's settings.
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

/// `--acks`: Kafka's `acks`, how many acknowledgements a send waits for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// The leader answers without waiting for the write.
    #[value(name = "0")]
    Zero,
    /// The leader answers once the batch is in its log.
    #[value(name = "1")]
    One,
    /// The leader answers once all in-sync replicas have the batch.
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

/// `--compression`: Kafka's `compression.type` of the produced batches.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
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

/// Runs `spate produce`: sends stdin lines as records and reports the lines it could not send.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    produce(&args, stdin.lock())
}

fn produce(args: &ProduceArgs, input: impl Read) -> anyhow::Result<()> {
    let topic = args.topic.required()?;
    let producer = open_producer(args, topic)?;
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
    let sent = send_lines(&producer, args, topic, &headers, separator, input)?;
    flush_and_report(&producer, args, topic, started, &sent)
}

/// The producer with the command's acks, compression and delivery timeout, after checking
/// that the topic (and `--partition`, when given) exists.
fn open_producer(args: &ProduceArgs, topic: &str) -> anyhow::Result<BaseProducer<DeliveryCounter>> {
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
    Ok(producer)
}

/// What reading the input and handing it to librdkafka came to, before any acknowledgement.
#[derive(Debug, Default)]
struct SentLines {
    /// Input lines read.
    lines: u64,
    /// Records handed to librdkafka.
    sent: u64,
    /// Lines not sent (no key separator, or librdkafka refused the record).
    rejected: u64,
    /// The first few reasons a line was not sent.
    rejected_quotes: Vec<String>,
}

impl SentLines {
    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        if self.rejected_quotes.len() < QUOTED_ERRORS {
            self.rejected_quotes
                .push(format!("line {}: {reason}", self.lines));
        }
    }
}

/// Sends one record per input line (split into key and value at `separator`, when given),
/// without waiting for acknowledgements.
fn send_lines(
    producer: &BaseProducer<DeliveryCounter>,
    args: &ProduceArgs,
    topic: &str,
    headers: &OwnedHeaders,
    separator: Option<&[u8]>,
    input: impl Read,
) -> anyhow::Result<SentLines> {
    let mut out = SentLines::default();
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("could not read standard input")?;
        if n == 0 {
            break;
        }
        out.lines += 1;
        let body = strip_newline(&line);
        let (key, value) = match separator {
            Some(sep) => match split_once(body, sep) {
                Some(kv) => (Some(kv.0), kv.1),
                None => {
                    out.reject("no key separator found".to_owned());
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
        match send_with_backpressure(producer, record) {
            Ok(()) => out.sent += 1,
            Err(e) => out.reject(e.to_string()),
        }
        if out.sent % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    Ok(out)
}

/// Waits for every sent record's acknowledgement, prints the summary and fails when any line
/// was not delivered.
fn flush_and_report(
    producer: &BaseProducer<DeliveryCounter>,
    args: &ProduceArgs,
    topic: &str,
    started: Instant,
    lines: &SentLines,
) -> anyhow::Result<()> {
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
    let undelivered = lines.sent.saturating_sub(delivered + failed);
    let rejected = lines.rejected;
    let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "spate produce: {delivered} records delivered to {topic}, {} failed, {rejected} not sent \
         ({:.2}s, {rate:.0} records/s)",
        failed + undelivered,
        elapsed.as_secs_f64()
    );
    for quote in lines.rejected_quotes.iter().chain(ctx.errors().iter()) {
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
            "{} of {} input lines were not delivered",
            failed + undelivered + rejected,
            lines.lines
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

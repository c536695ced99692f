//! `spate consume TOPIC`: print records to stdout, like `kafka-console-consumer.sh`.
//!
//! With `--group` it subscribes as a member of that consumer group (offsets committed
//! automatically); without, it assigns itself every partition (or `--partition N`) and starts at
//! `--offset`, so reading a topic never disturbs a group.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use super::topics::TopicName;
use spate_client::config::{CliContext, ClientArgs};

/// `spate consume`: what to read and how to print it (like kafka-console-consumer.sh).
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    topic: TopicName,
    /// Start at the earliest offset when there is no committed offset (same as --offset earliest).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Consume as a member of this consumer group (subscribe) instead of assigning partitions.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
    /// Read only this partition (default: all partitions).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Where to start: an offset, `earliest` or `latest` (default `latest`).
    #[arg(long, value_name = "N|earliest|latest", value_parser = parse_start)]
    offset: Option<Start>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this many milliseconds. Exits non-zero if --max-messages
    /// was given and not reached.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print the key before the value (text format).
    #[arg(long)]
    print_key: bool,
    /// Print the partition (text format).
    #[arg(long)]
    print_partition: bool,
    /// Print the offset (text format).
    #[arg(long)]
    print_offset: bool,
    /// Print the timestamp with its type, e.g. CreateTime:1700000000000 (text format).
    #[arg(long)]
    print_timestamp: bool,
    /// Print the headers as k:v,k2:v2 (text format).
    #[arg(long)]
    print_headers: bool,
    /// Separator between the printed fields (text format).
    #[arg(long, value_name = "SEP", default_value = "\t")]
    separator: String,
    /// Output format: `text` (key/value as lossy UTF-8) or `json` (one object per record with
    /// every field; key, value and header values base64-encoded).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which records of transactional producers to show: `read_uncommitted` (every record, as
    /// Kafka's console consumer by default) or `read_committed` (only committed transactions;
    /// aborted records are skipped, and reading stops at the last stable offset).
    #[arg(long, value_enum, default_value_t = IsolationLevel::ReadUncommitted)]
    isolation_level: IsolationLevel,
    #[command(flatten)]
    client: ClientArgs,
}

/// How each record is printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The value as text (the key and partition too with `--print-key`, `--print-partition`).
    Text,
    /// One JSON object per record: topic, partition, offset, timestamp, base64 key, value, headers.
    Json,
}

/// Kafka's `isolation.level`, with Kafka's spelling on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Aborted transactions' records are returned too.
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
    /// Only committed records, up to the last stable offset.
    #[value(name = "read_committed")]
    ReadCommitted,
}

impl IsolationLevel {
    fn config_value(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        }
    }
}

/// Where reading starts in each partition (`--offset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The partition's log start offset.
    Earliest,
    /// The partition's log end offset (only records produced from now on).
    Latest,
    /// This offset.
    At(i64),
}

fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "earliest" | "beginning" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Start::At(n)),
            _ => Err(format!(
                "expected a non-negative offset, `earliest` or `latest`, got {s:?}"
            )),
        },
    }
}

impl Start {
    fn offset(self) -> Offset {
        match self {
            Start::Earliest => Offset::Beginning,
            Start::Latest => Offset::End,
            Start::At(n) => Offset::Offset(n),
        }
    }
}

/// Runs `spate consume`: prints records to stdout until `--max-messages`, a timeout or Ctrl-C.
pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let topic = args.topic.required()?.to_owned();
    let consumer = open_consumer(&args, &topic)?;
    let consumed = print_records(&consumer, &args)?;
    eprintln!("Processed a total of {} messages", consumed.count);
    if let (true, Some(max)) = (consumed.timed_out, args.max_messages) {
        if consumed.count < max {
            bail!(
                "timed out after {}ms without a record: got {} of the {max} messages asked for",
                args.timeout_ms.unwrap_or_default(),
                consumed.count
            );
        }
    }
    Ok(())
}

/// The consumer's settings: where to start without a committed offset, and either the user's
/// group (committing) or a fixed group id that never joins (assign only, nothing committed).
fn consumer_defaults(args: &ConsumeArgs) -> Vec<(&'static str, &str)> {
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    // librdkafka (2.x) pauses fetching for fetch.queue.backoff.ms (default 1 s) whenever its
    // pre-fetch queue is full; a console consumer drains that queue in milliseconds, so the
    // default makes a backlog read ~10x slower than it needs to be.
    let mut defaults: Vec<(&str, &str)> = vec![
        ("auto.offset.reset", reset),
        ("fetch.queue.backoff.ms", "10"),
        ("isolation.level", args.isolation_level.config_value()),
    ];
    match &args.group {
        Some(group) => {
            defaults.extend([("group.id", group.as_str()), ("enable.auto.commit", "true")])
        }
        // Without a group nothing may be committed. rust-rdkafka's BaseConsumer only polls the
        // consumer queue (where fetched records land) when a group.id is set, so set a fixed one;
        // it never joins a group because we only assign.
        None => defaults.extend([
            ("group.id", "spate-console-consumer"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ]),
    }
    defaults
}

/// A consumer of `topic` that subscribes with `--group`, or else is assigned `--partition` (or
/// every partition) from `--offset` / `--from-beginning` / the end.
fn open_consumer(args: &ConsumeArgs, topic: &str) -> anyhow::Result<BaseConsumer<CliContext>> {
    let consumer: BaseConsumer<CliContext> = args.client.create(&consumer_defaults(args))?;
    let partitions = args.client.topic_partitions(consumer.client(), topic)?;
    if args.group.is_some() {
        consumer
            .subscribe(&[topic])
            .map_err(|e| anyhow!("could not subscribe to topic {topic:?}: {e}"))?;
        return Ok(consumer);
    }
    let start = args.offset.unwrap_or(if args.from_beginning {
        Start::Earliest
    } else {
        Start::Latest
    });
    let wanted: Vec<i32> = match args.partition {
        Some(p) if p >= partitions => {
            bail!("topic {topic:?} has {partitions} partitions; --partition {p} does not exist")
        }
        Some(p) => vec![p],
        None => (0..partitions).collect(),
    };
    let mut tpl = TopicPartitionList::new();
    for p in wanted {
        tpl.add_partition_offset(topic, p, start.offset())
            .map_err(|e| anyhow!("bad start offset for partition {p}: {e}"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| anyhow!("could not assign partitions of topic {topic:?}: {e}"))?;
    Ok(consumer)
}

/// How the printing loop ended.
#[derive(Debug)]
struct Consumed {
    /// Records printed.
    count: u64,
    /// Stopped by `--timeout-ms` without a record.
    timed_out: bool,
}

/// `Ok(false)` when the reader of stdout went away (a closed pipe ends the command quietly, as
/// `head` expects), an error for any other write failure.
fn still_open(written: io::Result<()>) -> anyhow::Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow!("could not write to standard output: {e}")),
    }
}

/// Prints records until `--max-messages`, `--timeout-ms` without a record, a signal, or a
/// closed stdout; output is flushed whenever librdkafka has nothing buffered.
fn print_records(
    consumer: &BaseConsumer<CliContext>,
    args: &ConsumeArgs,
) -> anyhow::Result<Consumed> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let printer = Printer::new(args);
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let interrupted = stop_on_signal();
    let started = Instant::now();
    let mut last_record = started;
    let mut warned_unassigned = false;
    let mut count = 0u64;
    let mut pending_flush = false;
    let mut timed_out = false;
    let mut pipe_closed = false;
    while args.max_messages.is_none_or(|max| count < max) && !interrupted.load(Ordering::Relaxed) {
        let wait = if pending_flush {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                last_record = Instant::now();
                count += 1;
                if !still_open(printer.print(&mut out, &message))? {
                    pipe_closed = true;
                    break;
                }
                pending_flush = true;
            }
            Some(Err(e)) => tracing::warn!("consumer error: {e}"),
            None => {
                // Nothing buffered in librdkafka: a good moment to show what we have.
                if pending_flush {
                    pending_flush = false;
                    if !still_open(out.flush())? {
                        pipe_closed = true;
                        break;
                    }
                }
                if !warned_unassigned && started.elapsed() >= args.client.request_timeout() {
                    warned_unassigned = warn_if_unassigned(consumer, args);
                }
                if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                    timed_out = true;
                    break;
                }
            }
        }
    }
    if !pipe_closed {
        still_open(out.flush())?;
    }
    Ok(Consumed { count, timed_out })
}

/// Warns, once the request timeout has passed, when a group member still has no partitions;
/// true when it warned.
fn warn_if_unassigned(consumer: &BaseConsumer<CliContext>, args: &ConsumeArgs) -> bool {
    let Some(group) = &args.group else {
        return false;
    };
    if !consumer.assignment().is_ok_and(|a| a.count() == 0) {
        return false;
    }
    tracing::warn!(
        "no partitions assigned to group {group:?} after {}s; is the broker's \
         group coordinator reachable, or do other members hold every partition?",
        args.client.request_timeout().as_secs()
    );
    true
}

/// A flag raised by Ctrl-C or SIGTERM, so that the consumer leaves its group and commits its
/// offsets on the way out (as kafka-console-consumer's shutdown hook does) instead of dying.
fn stop_on_signal() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let raised = flag.clone();
    let (registered_tx, registered_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("spate-signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                let _ = registered_tx.send(());
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                raised.store(true, Ordering::Relaxed);
            });
        });
    match spawned {
        // Wait until the handlers are installed, so a signal right after the first record is
        // not the default (abrupt) one.
        Ok(_) => {
            if registered_rx.recv_timeout(Duration::from_secs(2)).is_err() {
                tracing::debug!(
                    "signal handlers not installed; Ctrl-C will end the process abruptly"
                );
            }
        }
        Err(e) => {
            tracing::debug!("no signal handler thread ({e}); Ctrl-C will end the process abruptly")
        }
    }
    flag
}

/// Renders one record in the chosen format.
struct Printer {
    format: Format,
    key: bool,
    partition: bool,
    offset: bool,
    timestamp: bool,
    headers: bool,
    separator: String,
}

impl Printer {
    fn new(args: &ConsumeArgs) -> Self {
        Printer {
            format: args.format,
            key: args.print_key,
            partition: args.print_partition,
            offset: args.print_offset,
            timestamp: args.print_timestamp,
            headers: args.print_headers,
            separator: args.separator.clone(),
        }
    }

    fn print(&self, out: &mut impl Write, m: &BorrowedMessage<'_>) -> io::Result<()> {
        match self.format {
            Format::Text => self.print_text(out, m),
            Format::Json => {
                serde_json::to_writer(&mut *out, &json_record(m))?;
                out.write_all(b"\n")
            }
        }
    }

    /// Kafka's DefaultMessageFormatter order: timestamp, partition, offset, headers, key, value.
    fn print_text(&self, out: &mut impl Write, m: &BorrowedMessage<'_>) -> io::Result<()> {
        let sep = self.separator.as_bytes();
        if self.timestamp {
            match m.timestamp() {
                Timestamp::NotAvailable => write!(out, "NoTimestampType:-1")?,
                Timestamp::CreateTime(t) => write!(out, "CreateTime:{t}")?,
                Timestamp::LogAppendTime(t) => write!(out, "LogAppendTime:{t}")?,
            }
            out.write_all(sep)?;
        }
        if self.partition {
            write!(out, "Partition:{}", m.partition())?;
            out.write_all(sep)?;
        }
        if self.offset {
            write!(out, "Offset:{}", m.offset())?;
            out.write_all(sep)?;
        }
        if self.headers {
            match m.headers().filter(|h| h.count() > 0) {
                None => out.write_all(b"NO_HEADERS")?,
                Some(headers) => {
                    for (i, h) in headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        write!(out, "{}:", h.key)?;
                        match h.value {
                            Some(v) => out.write_all(String::from_utf8_lossy(v).as_bytes())?,
                            None => out.write_all(b"null")?,
                        }
                    }
                }
            }
            out.write_all(sep)?;
        }
        if self.key {
            write_lossy(out, m.key())?;
            out.write_all(sep)?;
        }
        write_lossy(out, m.payload())?;
        out.write_all(b"\n")
    }
}

fn write_lossy(out: &mut impl Write, bytes: Option<&[u8]>) -> io::Result<()> {
    match bytes {
        Some(b) => out.write_all(String::from_utf8_lossy(b).as_bytes()),
        None => out.write_all(b"null"),
    }
}

fn json_record(m: &BorrowedMessage<'_>) -> serde_json::Value {
    let (timestamp, timestamp_type) = match m.timestamp() {
        Timestamp::NotAvailable => (None, None),
        Timestamp::CreateTime(t) => (Some(t), Some("CreateTime")),
        Timestamp::LogAppendTime(t) => (Some(t), Some("LogAppendTime")),
    };
    let headers: Vec<serde_json::Value> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| serde_json::json!({"key": h.key, "value": h.value.map(|v| BASE64.encode(v))}))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": timestamp,
        "timestamp_type": timestamp_type,
        "key": m.key().map(|k| BASE64.encode(k)),
        "value": m.payload().map(|v| BASE64.encode(v)),
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::At(42)));
        assert!(parse_start("-3").is_err());
        assert!(parse_start("soon").is_err());
    }
}

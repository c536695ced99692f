//! `spate transactions`: list and describe transactions and the producers of a partition, and
//! abort a hanging transaction, like `kafka-transactions.sh` (`list`, `describe
//! --transactional-id`, `describe-producers --topic --partition`, `abort --topic --partition
//! --start-offset` or `--producer-id --producer-epoch --coordinator-epoch`), with Kafka's column
//! names and flags.
//!
//! It speaks ListTransactions, DescribeTransactions, DescribeProducers and WriteTxnMarkers
//! itself ([`Connection`]): the Rust librdkafka wrapper has none of them. `abort` writes an
//! ABORT marker for one producer on one partition, as Kafka's `AbortTransaction` admin call
//! does; with `--start-offset` the producer is the one whose open transaction on the partition
//! starts there (found with DescribeProducers).

use anyhow::bail;
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::raw_admin::{AdminArgs, Connection};

/// `spate transactions`.
#[derive(Args, Debug)]
pub struct TransactionsArgs {
    /// The broker and the client's security settings.
    #[command(flatten)]
    pub connect: AdminArgs,
    #[command(subcommand)]
    command: TransactionsCommand,
}

/// The subcommands of `kafka-transactions.sh`.
#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
    /// Every transactional id the coordinator knows, with its producer id and state.
    List,
    /// One transaction: producer id and epoch, state, timeout, start and its partitions.
    Describe {
        /// The transactional id.
        #[arg(long, value_name = "ID")]
        transactional_id: String,
    },
    /// The active producers of one partition (idempotent and transactional).
    DescribeProducers {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
    },
    /// Abort a hanging transaction on one partition: the open transaction starting at
    /// --start-offset, or the one of --producer-id/--producer-epoch/--coordinator-epoch.
    Abort(AbortArgs),
}

/// `spate transactions abort`: which transaction, on which partition.
#[derive(Args, Debug)]
pub struct AbortArgs {
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// The partition.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: i32,
    /// First offset of the open transaction to abort (see `describe-producers`).
    #[arg(
        long,
        value_name = "OFFSET",
        conflicts_with = "producer_id",
        required_unless_present = "producer_id"
    )]
    pub start_offset: Option<i64>,
    /// The producer id of the transaction (with --producer-epoch and --coordinator-epoch).
    #[arg(long, value_name = "ID", requires_all = ["producer_epoch", "coordinator_epoch"])]
    pub producer_id: Option<i64>,
    /// The producer epoch of the transaction.
    #[arg(long, value_name = "EPOCH", requires = "producer_id")]
    pub producer_epoch: Option<i16>,
    /// The coordinator epoch of the producer's last marker (-1 is sent as 0, as Kafka's tool
    /// does: a producer with no marker yet shows -1).
    #[arg(
        long,
        value_name = "EPOCH",
        requires = "producer_id",
        allow_hyphen_values = true
    )]
    pub coordinator_epoch: Option<i32>,
}

/// Runs `spate transactions` (like kafka-transactions.sh).
pub fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let mut conn = args.connect.connect()?;
    let table = match &args.command {
        TransactionsCommand::List => list(&mut conn)?,
        TransactionsCommand::Describe { transactional_id } => {
            describe(&mut conn, transactional_id)?
        }
        TransactionsCommand::DescribeProducers { topic, partition } => {
            describe_producers(&mut conn, topic, *partition)?
        }
        TransactionsCommand::Abort(a) => {
            abort(&mut conn, a)?;
            return Ok(());
        }
    };
    print!("{}", render(&table));
    Ok(())
}

/// A header row and data rows.
type Table = Vec<Vec<String>>;

fn list(conn: &mut Connection) -> anyhow::Result<Table> {
    let resp = conn.call(&ListTransactionsRequest::default(), 0)?;
    if resp.error_code != 0 {
        bail!(
            "listing transactions failed: {}",
            error_name(resp.error_code)
        );
    }
    let mut rows = vec![cols(&["TransactionalId", "ProducerId", "TransactionState"])];
    let mut states = resp.transaction_states;
    states.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    for s in states {
        rows.push(vec![
            s.transactional_id.to_string(),
            s.producer_id.to_string(),
            s.transaction_state.to_string(),
        ]);
    }
    Ok(rows)
}

fn describe(conn: &mut Connection, id: &str) -> anyhow::Result<Table> {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_owned()))]);
    let resp = conn.call(&req, 0)?;
    let Some(s) = resp.transaction_states.into_iter().next() else {
        bail!("the broker answered without a result for {id:?}");
    };
    if s.error_code != 0 {
        bail!("describing {id:?} failed: {}", error_name(s.error_code));
    }
    let partitions: Vec<String> = s
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", &*t.topic))
        })
        .collect();
    let duration = if s.transaction_start_time_ms >= 0 {
        (now_ms() - s.transaction_start_time_ms).max(0).to_string()
    } else {
        "None".to_string()
    };
    Ok(vec![
        cols(&[
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "CurrentTransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
        ]),
        vec![
            s.transactional_id.to_string(),
            s.producer_id.to_string(),
            s.producer_epoch.to_string(),
            s.transaction_state.to_string(),
            s.transaction_timeout_ms.to_string(),
            optional(s.transaction_start_time_ms),
            duration,
            partitions.join(","),
        ],
    ])
}

/// The active producers of `topic`-`partition`.
fn producers_of(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Vec<ProducerState>> {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_indexes(vec![partition])]);
    let resp = conn.call(&req, 0)?;
    let Some(p) = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
    else {
        bail!("the broker answered without a result for {topic}-{partition}");
    };
    if p.error_code != 0 {
        bail!(
            "describing the producers of {topic}-{partition} failed: {}",
            error_name(p.error_code)
        );
    }
    Ok(p.active_producers)
}

fn describe_producers(conn: &mut Connection, topic: &str, partition: i32) -> anyhow::Result<Table> {
    let producers = producers_of(conn, topic, partition)?;
    let mut rows = vec![cols(&[
        "ProducerId",
        "ProducerEpoch",
        "LatestCoordinatorEpoch",
        "LastSequence",
        "LastTimestamp",
        "CurrentTransactionStartOffset",
    ])];
    for s in producers {
        rows.push(vec![
            s.producer_id.to_string(),
            s.producer_epoch.to_string(),
            s.coordinator_epoch.to_string(),
            s.last_sequence.to_string(),
            s.last_timestamp.to_string(),
            optional(s.current_txn_start_offset),
        ]);
    }
    Ok(rows)
}

/// The transaction to abort: `(producer id, producer epoch, coordinator epoch)`.
fn abort_spec(conn: &mut Connection, a: &AbortArgs) -> anyhow::Result<(i64, i16, i32)> {
    if let (Some(id), Some(epoch), Some(coordinator)) =
        (a.producer_id, a.producer_epoch, a.coordinator_epoch)
    {
        // A producer whose transaction hangs before its first marker shows -1; 0 is at most
        // any coordinator epoch (Kafka's tool does the same).
        return Ok((id, epoch, coordinator.max(0)));
    }
    let Some(start) = a.start_offset else {
        bail!("name the transaction with --start-offset, or with --producer-id, --producer-epoch and --coordinator-epoch");
    };
    let (topic, partition) = (&a.topic, a.partition);
    let Some(p) = producers_of(conn, topic, partition)?
        .into_iter()
        .find(|p| p.current_txn_start_offset == start)
    else {
        bail!("could not find any open transactions starting at offset {start} on partition {topic}-{partition}");
    };
    let epoch = i16::try_from(p.producer_epoch)
        .map_err(|_| anyhow::anyhow!("producer epoch {} out of range", p.producer_epoch))?;
    Ok((p.producer_id.0, epoch, p.coordinator_epoch.max(0)))
}

/// Writes an ABORT marker for the transaction on the partition (WriteTxnMarkers).
fn abort(conn: &mut Connection, a: &AbortArgs) -> anyhow::Result<()> {
    let (producer_id, producer_epoch, coordinator_epoch) = abort_spec(conn, a)?;
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_transaction_result(false)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_string(a.topic.clone())))
            .with_partition_indexes(vec![a.partition])]);
    let resp = conn.call(
        &WriteTxnMarkersRequest::default().with_markers(vec![marker]),
        1,
    )?;
    let code = resp
        .markers
        .iter()
        .filter(|m| m.producer_id.0 == producer_id)
        .flat_map(|m| &m.topics)
        .filter(|t| *t.name == *a.topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == a.partition)
        .map(|p| p.error_code);
    match code {
        Some(0) => {
            println!(
                "aborted the transaction of producer {producer_id} (epoch {producer_epoch}) on {}-{}",
                a.topic, a.partition
            );
            Ok(())
        }
        Some(code) => bail!(
            "aborting the transaction of producer {producer_id} on {}-{} failed: {}",
            a.topic,
            a.partition,
            error_name(code)
        ),
        None => bail!(
            "the broker answered without a result for {}-{}",
            a.topic,
            a.partition
        ),
    }
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Kafka's tool prints `None` where the protocol says -1.
fn optional(v: i64) -> String {
    if v < 0 {
        "None".into()
    } else {
        v.to_string()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn error_name(code: i16) -> String {
    use kafka_protocol::error::ParseResponseErrorCode as _;
    match code.err() {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error code {code}"),
    }
}

/// Columns padded to their widest cell, separated by two spaces (as Kafka's tool prints them).
fn render(table: &Table) -> String {
    let widths: Vec<usize> = (0..table.first().map_or(0, Vec::len))
        .map(|c| {
            table
                .iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns() {
        let t = vec![cols(&["A", "Bee"]), cols(&["long", "x"])];
        assert_eq!(render(&t), "A     Bee\nlong  x\n");
        assert_eq!(optional(-1), "None");
    }
}

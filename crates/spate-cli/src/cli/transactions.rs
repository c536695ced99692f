//! `spate transactions`: list and describe transactions and the producers of a partition, like
//! `kafka-transactions.sh` (`list`, `describe --transactional-id`, `describe-producers --topic
//! --partition`), with Kafka's column names.
//!
//! It speaks ListTransactions, DescribeTransactions and DescribeProducers itself
//! ([`Connection`]): the Rust librdkafka wrapper has none of the three. `abort` (which writes
//! markers through WriteTxnMarkers) is not offered: the broker does not serve WriteTxnMarkers;
//! a hanging transaction is aborted by the coordinator when its `transaction.timeout.ms` ends.

use anyhow::bail;
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::raw_admin::Connection;

/// `spate transactions`.
#[derive(Args, Debug)]
pub struct TransactionsArgs {
    /// The broker to connect to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// How long to wait for the broker, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    #[command(subcommand)]
    pub command: TransactionsCommand,
}

/// The subcommands of `kafka-transactions.sh` that the broker can answer.
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
}

pub fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let mut conn = Connection::open(&args.bootstrap_server, args.request_timeout_ms)?;
    let table = match &args.command {
        TransactionsCommand::List => list(&mut conn)?,
        TransactionsCommand::Describe { transactional_id } => {
            describe(&mut conn, transactional_id)?
        }
        TransactionsCommand::DescribeProducers { topic, partition } => {
            describe_producers(&mut conn, topic, *partition)?
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

fn describe_producers(conn: &mut Connection, topic: &str, partition: i32) -> anyhow::Result<Table> {
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
    let mut rows = vec![cols(&[
        "ProducerId",
        "ProducerEpoch",
        "LatestCoordinatorEpoch",
        "LastSequence",
        "LastTimestamp",
        "CurrentTransactionStartOffset",
    ])];
    for s in p.active_producers {
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

//! Kafka transactions: the transaction coordinator and what it needs from the log.
//!
//! - [`metadata`] — one transactional id's state machine (Kafka's `TransactionMetadata`),
//!   pure, with Kafka's states and error codes;
//! - [`coordinator`] — every id, the durable [`log`], markers, timeouts and expiry;
//! - [`marker`] — the COMMIT/ABORT control batches written to each partition;
//! - [`api`] — InitProducerId (transactional), AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//!   TxnOffsetCommit; [`admin`] — DescribeTransactions, ListTransactions, DescribeProducers;
//!   [`write_markers`] — WriteTxnMarkers, with which admin tools abort a hanging transaction;
//! - [`config`] — `transaction.*` broker settings.
//!
//! The partition side (open transactions per producer, the last stable offset, the aborted
//! transaction index, producer state snapshots) lives with the partition
//! (`crate::partition`, `crate::producer_state`, the storage's `.txnindex` files).
//!
//! What a user can rely on:
//! - This broker coordinates every transactional id. State changes are fsynced to
//!   `<data dir>/meta/transactions/transactions.log` before they are acknowledged and replayed
//!   on start; a commit or abort decided before a crash is completed on start (markers and
//!   offsets); a transaction left Ongoing by a crash is aborted once its timeout passes.
//! - EndTxn answers after every marker is written (Kafka answers after the decision is
//!   durable and writes markers asynchronously), so the next transaction of the same producer
//!   never waits for CONCURRENT_TRANSACTIONS.
//! - The `transaction.version` feature is not advertised (KIP-890 part 2 is not implemented),
//!   so clients use the v1 flow: AddPartitionsToTxn before producing to a partition.
//! - A transactional batch is accepted only for a partition added to its producer's ongoing
//!   transaction at its epoch (else INVALID_TXN_STATE, or INVALID_PRODUCER_EPOCH for an old
//!   epoch), which rules out "hanging" transactions.

pub mod admin;
pub mod api;
pub mod config;
pub mod coordinator;
#[cfg(test)]
mod coordinator_tests;
pub mod log;
pub mod marker;
pub mod metadata;
pub mod write_markers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::*;

pub use config::TxnConfig;
pub use coordinator::{TransactionCoordinator, TxnEnv};
pub use metadata::{TransactionMetadata, TxnState};

use crate::config::BrokerConfig;
use crate::error::Result;
use crate::handlers::HandlerRegistry;
use crate::producer_state::ProducerIdAllocator;
use crate::state::BrokerState;

/// Registers the transaction APIs (InitProducerId stays with the broker's own APIs: it also
/// serves idempotent producers).
pub fn register(r: &mut HandlerRegistry) {
    r.register::<AddPartitionsToTxnRequest, _, _>(0, 3, api::handle_add_partitions_to_txn)
        .register::<AddOffsetsToTxnRequest, _, _>(0, 3, api::handle_add_offsets_to_txn)
        .register::<EndTxnRequest, _, _>(0, 3, api::handle_end_txn)
        .register::<TxnOffsetCommitRequest, _, _>(0, 3, api::handle_txn_offset_commit)
        .register::<DescribeTransactionsRequest, _, _>(0, 0, admin::handle_describe_transactions)
        .register::<ListTransactionsRequest, _, _>(0, 1, admin::handle_list_transactions)
        .register::<DescribeProducersRequest, _, _>(0, 0, admin::handle_describe_producers)
        .register::<WriteTxnMarkersRequest, _, _>(0, 1, write_markers::handle_write_txn_markers);
}

/// Opens the coordinator as the broker starts: replays its log from
/// `<meta dir>/transactions/` (in memory without a meta dir) and keeps the producer id allocator
/// above every id it owns.
pub fn open(
    config: &BrokerConfig,
    meta_dir: Option<&Path>,
    producer_ids: &ProducerIdAllocator,
) -> Result<Arc<TransactionCoordinator>> {
    let txn = match meta_dir {
        Some(d) => TransactionCoordinator::open(config.txn.clone(), &d.join("transactions"))?,
        None => TransactionCoordinator::in_memory(config.txn.clone()),
    };
    for id in txn.producer_ids() {
        producer_ids.observe(id);
    }
    Ok(Arc::new(txn))
}

/// Completes transactions decided before a crash (markers, offsets) and starts the timer task
/// (timeouts, id expiry), which stops when the broker shuts down. Called once the state is
/// shared, before the server accepts connections.
pub async fn start(state: &Arc<BrokerState>) -> Result<()> {
    api::with_env(state, |txn, env| {
        txn.complete_pending(env, crate::time::now_ms())
    })
    .await?;
    let ticker = tokio::spawn(run_timers(state.clone()));
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        ticker.abort();
    });
    Ok(())
}

/// Every `transaction.abort.timed.out.transaction.cleanup.interval.ms`: aborts timed-out
/// transactions and retries unfinished completions; every
/// `transaction.remove.expired.transaction.cleanup.interval.ms`: forgets idle ids.
async fn run_timers(state: Arc<BrokerState>) {
    let config = state.config.txn.clone();
    let every = Duration::from_millis(config.abort_timed_out_interval_ms.max(1) as u64);
    let mut last_expiry = crate::time::now_ms();
    loop {
        tokio::time::sleep(every).await;
        let expire = crate::time::now_ms() - last_expiry >= config.remove_expired_interval_ms;
        if expire {
            last_expiry = crate::time::now_ms();
        }
        let work = api::with_env(&state, move |txn, env| {
            let now = crate::time::now_ms();
            txn.complete_pending(env, now);
            txn.abort_timed_out(env, now);
            if expire {
                let n = txn.expire_ids(now);
                if n > 0 {
                    tracing::info!(ids = n, "expired idle transactional ids");
                }
            }
        });
        if let Err(e) = work.await {
            tracing::warn!(error = %e, "transaction timer failed");
        }
    }
}

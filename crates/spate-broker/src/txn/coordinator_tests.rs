//! The coordinator's timer work and bookkeeping against real (in-memory) partitions: expiry of
//! idle transactional ids, aborting timed-out transactions with the epoch bumped, produce
//! verification, and pending offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::config::TxnConfig;
use super::coordinator::{TransactionCoordinator, TxnEnv};
use super::metadata::{PendingOffset, TxnState};
use crate::group::{GroupConfig, GroupCoordinator};
use crate::producer_state::ProducerIdAllocator;
use crate::storage::MemoryStorage;
use crate::topics::{NewTopic, TopicRegistry};

struct World {
    topics: TopicRegistry,
    ids: ProducerIdAllocator,
    groups: GroupCoordinator,
}

impl World {
    fn new() -> World {
        let topics = TopicRegistry::open(Arc::new(MemoryStorage::new()), BTreeMap::new(), None)
            .expect("registry");
        topics
            .create(
                NewTopic {
                    name: "t".into(),
                    partitions: 1,
                    configs: Default::default(),
                },
                false,
            )
            .expect("topic");
        World {
            topics,
            ids: ProducerIdAllocator::open(None).expect("allocator"),
            groups: GroupCoordinator::in_memory(GroupConfig::default()),
        }
    }

    fn env(&self) -> TxnEnv<'_> {
        TxnEnv {
            topics: &self.topics,
            producer_ids: &self.ids,
            groups: &self.groups,
        }
    }
}

fn tp() -> (String, i32) {
    ("t".to_string(), 0)
}

#[test]
fn timeouts_and_id_expiry() {
    let w = World::new();
    let config = TxnConfig {
        id_expiration_ms: 1_000,
        ..TxnConfig::default()
    };
    let c = TransactionCoordinator::in_memory(config);
    assert_eq!(
        c.init_producer_id(w.env(), "x", 900_001, None, 0),
        Err(ResponseError::InvalidTransactionTimeout)
    );
    assert_eq!(
        c.init_producer_id(w.env(), "", 1_000, None, 0),
        Err(ResponseError::InvalidRequest)
    );
    let (pid, epoch) = c.init_producer_id(w.env(), "a", 500, None, 0).unwrap();
    c.init_producer_id(w.env(), "idle", 500, None, 0).unwrap();
    c.add_partitions("a", pid, epoch, &[tp()], 100).unwrap();
    c.verify_produce(pid, epoch, "t", 0).unwrap();
    assert!(c.verify_produce(pid, epoch, "t", 1).is_err());
    assert!(c.verify_produce(pid + 100, 0, "t", 0).is_err());

    // Not yet: the transaction started at 100 with a 500 ms timeout.
    assert_eq!(c.abort_timed_out(w.env(), 599), 0);
    assert_eq!(c.abort_timed_out(w.env(), 600), 1);
    let m = c.describe("a").unwrap();
    assert_eq!(
        (m.state, m.producer_epoch),
        (TxnState::CompleteAbort, epoch + 1)
    );
    // The late producer is fenced everywhere: coordinator and partition.
    assert_eq!(
        c.end_txn(w.env(), "a", pid, epoch, true, 700),
        Err(ResponseError::ProducerFenced)
    );
    assert!(matches!(
        c.verify_produce(pid, epoch, "t", 0),
        Err(crate::error::BrokerError::InvalidProducerEpoch { .. })
    ));
    let p = w.topics.partition("t", 0).unwrap();
    assert_eq!(
        p.producers()[0].epoch,
        epoch + 1,
        "the abort marker carries the new epoch"
    );

    // "idle" has done nothing since 0; "a" was last updated at 600.
    assert_eq!(c.expire_ids(1_000), 1);
    assert!(c.describe("idle").is_none() && c.describe("a").is_some());
    assert_eq!(c.expire_ids(1_600), 1);
    assert!(c.list().is_empty());
}

#[test]
fn pending_offsets_are_applied_on_commit_only() {
    let w = World::new();
    let c = TransactionCoordinator::in_memory(TxnConfig::default());
    let (pid, epoch) = c.init_producer_id(w.env(), "a", 60_000, None, 0).unwrap();
    let offset = |o| {
        vec![(
            tp(),
            PendingOffset {
                offset: o,
                leader_epoch: -1,
                metadata: String::new(),
            },
        )]
    };
    assert_eq!(
        c.txn_offset_commit("a", pid, epoch, "g", offset(3), 1),
        Err(ResponseError::InvalidTxnState),
        "the group must be added first"
    );
    c.add_offsets("a", pid, epoch, "g", 1).unwrap();
    c.txn_offset_commit("a", pid, epoch, "g", offset(3), 2)
        .unwrap();
    assert!(c.has_pending_offset("g", "t", 0));
    assert!(!c.has_pending_offset("other", "t", 0));
    c.end_txn(w.env(), "a", pid, epoch, false, 3).unwrap();
    assert!(!c.has_pending_offset("g", "t", 0));
    let fetched = |w: &World| {
        w.groups
            .fetch_offsets("g", Some(&[("t".to_string(), vec![0])]))[0]
            .offset
    };
    assert_eq!(fetched(&w), -1, "aborted offsets are dropped");

    c.add_offsets("a", pid, epoch, "g", 4).unwrap();
    c.txn_offset_commit("a", pid, epoch, "g", offset(9), 5)
        .unwrap();
    c.end_txn(w.env(), "a", pid, epoch, true, 6).unwrap();
    assert_eq!(fetched(&w), 9);
    // A retried EndTxn after success is answered without doing anything.
    assert_eq!(c.end_txn(w.env(), "a", pid, epoch, true, 7), Ok(()));
    assert_eq!(
        c.end_txn(w.env(), "a", pid, epoch, false, 7),
        Err(ResponseError::InvalidTxnState)
    );
}

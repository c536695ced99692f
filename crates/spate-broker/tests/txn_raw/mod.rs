//! A raw-protocol transactional producer for the transaction tests: InitProducerId,
//! AddPartitionsToTxn, transactional Produce and EndTxn, each returning the broker's error code.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::raw_client::RawClient;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A transactional batch of `values` from producer `pid` at `epoch`, sequences from `seq`.
pub fn txn_batch(values: &[&str], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let recs: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &recs, &opts).unwrap();
    buf.freeze()
}

pub struct Txn<'a> {
    pub c: &'a mut RawClient,
    pub id: String,
    pub pid: i64,
    pub epoch: i16,
}

impl Txn<'_> {
    pub fn init<'a>(c: &'a mut RawClient, id: &str) -> Txn<'a> {
        Self::init_with_timeout(c, id, 60_000)
    }

    pub fn init_with_timeout<'a>(c: &'a mut RawClient, id: &str, timeout_ms: i32) -> Txn<'a> {
        let r = c.call(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(id))))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        );
        assert_eq!(r.error_code, 0);
        Txn {
            c,
            id: id.to_string(),
            pid: r.producer_id.0,
            epoch: r.producer_epoch,
        }
    }

    pub fn add_partition(&mut self, topic: &str, partition: i32) -> i16 {
        let r = self.c.call(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(&self.id)))
                .with_v3_and_below_producer_id(ProducerId(self.pid))
                .with_v3_and_below_producer_epoch(self.epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![partition])]),
            3,
        );
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    /// Produces a transactional batch; `(error, base offset)`.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        values: &[&str],
        epoch: i16,
        seq: i32,
    ) -> (i16, i64) {
        let pd = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(txn_batch(values, self.pid, epoch, seq)));
        let r = self.c.call(
            &ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(s(&self.id))))
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(vec![pd])]),
            9,
        );
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    pub fn end(&mut self, commit: bool) -> i16 {
        self.c
            .call(
                &EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(&self.id)))
                    .with_producer_id(ProducerId(self.pid))
                    .with_producer_epoch(self.epoch)
                    .with_committed(commit),
                1,
            )
            .error_code
    }
}

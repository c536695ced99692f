#!/usr/bin/env python3
"""Kafka transactions through kafka-python, a Kafka client NOT built on librdkafka: a
transactional producer commits, aborts and commits again (the second commit with offsets sent
to a consumer group), then read_committed and read_uncommitted consumers read the partition.
The Rust test that runs it (crates/spate-broker/tests/python_txn.rs) checks the JSON it prints.

Usage:
  python_txn.py BOOTSTRAP TOPIC TRANSACTIONAL_ID GROUP
"""

import json
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata


def out(doc):
    print(json.dumps(doc, sort_keys=True, default=str), flush=True)


def read(bootstrap, topic, isolation):
    """(offset, value) of every record of TOPIC-0 the consumer sees, up to the partition end
    (the last stable offset for read_committed, which end_offsets answers)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                      enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    got = []
    while c.position(tp) < end:
        for records in c.poll(timeout_ms=1000).values():
            got.extend((r.offset, r.value.decode()) for r in records)
    c.close()
    return end, got


def main(bootstrap, topic, txn_id, group):
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id,
                      transaction_timeout_ms=60000)
    p.init_transactions()
    p.begin_transaction()
    for v in ("kp-c1", "kp-c2"):
        p.send(topic, v.encode(), partition=0)
    p.commit_transaction()
    p.begin_transaction()
    for v in ("kp-a1", "kp-a2"):
        p.send(topic, v.encode(), partition=0)
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    p.send(topic, b"kp-c3", partition=0)
    tp = TopicPartition(topic, 0)
    p.send_offsets_to_transaction({tp: OffsetAndMetadata(3, "", -1)}, group)
    p.commit_transaction()
    p.close()

    for isolation in ("read_committed", "read_uncommitted"):
        end, got = read(bootstrap, topic, isolation)
        out({"isolation": isolation, "end": end, "records": got})
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    out({"committed": c.committed(tp)})
    c.close()


if __name__ == "__main__":
    main(*sys.argv[1:])

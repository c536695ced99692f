#!/usr/bin/env python3
"""A consumer group through spate's broker with kafka-python, a Kafka client NOT built on
librdkafka: it joins a group, consumes, commits, and a second run resumes from the commit.

Usage: python_group.py BOOTSTRAP TOPIC GROUP [--records N]

Steps:
  1. KafkaAdminClient creates TOPIC (2 partitions); KafkaProducer sends N records per partition.
  2. A KafkaConsumer in GROUP (subscribe, so it goes through JoinGroup/SyncGroup with its own
     assignor) reads the first half of the records of every partition and commits exactly the
     offsets after them (manual commit), then closes (LeaveGroup).
  3. The committed offsets are read back with KafkaAdminClient.list_group_offsets
     (OffsetFetch), and the group is listed (ListGroups) and described (DescribeGroups).
  4. A second KafkaConsumer in GROUP resumes: its first record of each partition is exactly at
     the commit, and it reads the rest; then it commits with auto-commit on close.

Exits 0 and prints "OK" on success; on a mismatch prints what was expected and found to stderr
and exits 1. Run by crates/spate/tests/python_client_group.rs with the venv made by
.ci/setup.d/python-clients.sh.
"""

import argparse
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

PARTITIONS = 2
TIMEOUT_S = 60


class Mismatch(Exception):
    """A check failed: the message says what was expected and what was found."""


def produce(bootstrap, topic, records):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="spate-pygroup-admin")
    try:
        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="spate-pygroup-producer", acks=1)
    for i in range(records):
        for p in range(PARTITIONS):
            producer.send(topic, value=f"{p}-{i}".encode(), partition=p)
    producer.flush(timeout=TIMEOUT_S)
    producer.close()


def group_consumer(bootstrap, topic, group, auto_commit):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="spate-pygroup-consumer",
        auto_offset_reset="earliest",
        enable_auto_commit=auto_commit,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        consumer_timeout_ms=1000,
    )
    consumer.subscribe([topic])
    return consumer


def read(consumer, want):
    """Reads until `want(seen)` is true; returns {partition: [offsets]}."""
    seen = {p: [] for p in range(PARTITIONS)}
    deadline = time.time() + TIMEOUT_S
    while not want(seen):
        if time.time() > deadline:
            raise Mismatch(f"timed out reading; seen so far: { {p: len(o) for p, o in seen.items()} }")
        batch = consumer.poll(timeout_ms=500)
        for tp, messages in batch.items():
            for m in messages:
                seen[tp.partition].append(m.offset)
    return seen


def first_run(bootstrap, topic, group, records):
    half = records // 2
    consumer = group_consumer(bootstrap, topic, group, auto_commit=False)
    try:
        read(consumer, lambda seen: all(len(o) >= half for o in seen.values()))
        offsets = {TopicPartition(topic, p): OffsetAndMetadata(half, "py", -1) for p in range(PARTITIONS)}
        consumer.commit(offsets)
        for p in range(PARTITIONS):
            got = consumer.committed(TopicPartition(topic, p))
            if got != half:
                raise Mismatch(f"committed({p}) = {got}, expected {half}")
    finally:
        consumer.close(autocommit=False)
    return half


def field(obj, *names):
    """A field of a kafka-python admin result, whether it is a dict, a namedtuple or an object."""
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    raise Mismatch(f"no field {names} in {obj!r}")


def check_admin(bootstrap, topic, group, half):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="spate-pygroup-admin")
    try:
        result = admin.list_group_offsets({group: None})
        offsets = result.get(group, result) if isinstance(result, dict) else result
        for p in range(PARTITIONS):
            got = offsets.get(TopicPartition(topic, p))
            if got is None or field(got, "offset") != half:
                raise Mismatch(f"list_group_offsets partition {p}: {got}, expected {half} (all: {result})")
        groups = [field(g, "group_id", "group") if not isinstance(g, tuple) else g[0]
                  for g in admin.list_groups()]
        if group not in groups:
            raise Mismatch(f"group {group!r} not in list_groups(): {groups}")
        described = admin.describe_groups([group])
        described = described[group] if isinstance(described, dict) else described[0]
        state = field(described, "group_state", "state")
        members = field(described, "members")
        if state not in ("Empty", "Dead") or members:
            raise Mismatch(f"after close the group should be Empty: {described}")
    finally:
        admin.close()


def second_run(bootstrap, topic, group, records, half):
    consumer = group_consumer(bootstrap, topic, group, auto_commit=True)
    try:
        seen = read(consumer, lambda seen: all(len(o) >= records - half for o in seen.values()))
        for p, offsets in seen.items():
            if not offsets or min(offsets) != half:
                raise Mismatch(f"partition {p}: resumed at {min(offsets) if offsets else None}, expected {half}")
            if sorted(offsets) != list(range(half, records)):
                raise Mismatch(f"partition {p}: read {offsets}, expected {half}..{records - 1}")
    finally:
        consumer.close(autocommit=True)
    check = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        for p in range(PARTITIONS):
            got = check.committed(TopicPartition(topic, p))
            if got != records:
                raise Mismatch(f"auto-commit on close: committed({p}) = {got}, expected {records}")
    finally:
        check.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--records", type=int, default=50)
    args = parser.parse_args()
    try:
        produce(args.bootstrap, args.topic, args.records)
        half = first_run(args.bootstrap, args.topic, args.group, args.records)
        check_admin(args.bootstrap, args.topic, args.group, half)
        second_run(args.bootstrap, args.topic, args.group, args.records, half)
    except Mismatch as e:
        print(f"MISMATCH: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"OK, group {args.group} resumed at offset {half} of {args.records} per partition")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Round trip through spate's broker with kafka-python, a Kafka client NOT built on librdkafka.

Usage: python_roundtrip.py BOOTSTRAP TOPIC [--records N]

Steps (each a function in STEPS, so that more can be appended, e.g. a consumer-group step):
  1. KafkaAdminClient creates TOPIC with PARTITIONS partitions.
  2. KafkaProducer sends N keyed records with headers, uncompressed, then N more with gzip.
  3. KafkaConsumer (no group, all partitions assigned, from the beginning) reads them back and
     checks every key, value, header and offset, and the order within each partition.

Exits 0 on success; on any mismatch prints what was expected and what was found to stderr and
exits 1. Run by crates/spate/tests/python_client.rs with the venv made by
.ci/setup.d/python-clients.sh.
"""

import argparse
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

PARTITIONS = 3
TIMEOUT_S = 30


class Mismatch(Exception):
    """A check failed: the message says what was expected and what was found."""


class Context:
    """What the steps share: the arguments and the records produced so far."""

    def __init__(self, bootstrap, topic, records):
        self.bootstrap = bootstrap
        self.topic = topic
        self.records = records
        # Per partition, in send order: (offset, key, value, headers) as acknowledged by the broker.
        self.produced = {p: [] for p in range(PARTITIONS)}


def create_topic(ctx):
    admin = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, client_id="spate-pyclient-admin")
    try:
        admin.create_topics({ctx.topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
        topics = admin.list_topics()
        if ctx.topic not in topics:
            raise Mismatch(f"topic {ctx.topic!r} missing from list_topics() after create: {topics}")
    finally:
        admin.close()


def produce(ctx, compression):
    producer = KafkaProducer(
        bootstrap_servers=ctx.bootstrap,
        client_id=f"spate-pyclient-producer-{compression}",
        compression_type=None if compression == "none" else compression,
        acks=1,
        linger_ms=5,
    )
    try:
        futures = []
        for i in range(ctx.records):
            key = f"key-{i % 17}".encode()
            value = f"{compression}-value-{i}".encode()
            headers = [("seq", str(i).encode()), ("codec", compression.encode())]
            futures.append((key, value, headers, producer.send(ctx.topic, key=key, value=value, headers=headers)))
        producer.flush(timeout=TIMEOUT_S)
        for key, value, headers, future in futures:
            meta = future.get(timeout=TIMEOUT_S)
            ctx.produced[meta.partition].append((meta.offset, key, value, headers))
    finally:
        producer.close(timeout=TIMEOUT_S)


def produce_uncompressed(ctx):
    produce(ctx, "none")


def produce_gzip(ctx):
    produce(ctx, "gzip")


def consume_and_check(ctx):
    expected_total = sum(len(v) for v in ctx.produced.values())
    consumer = KafkaConsumer(
        bootstrap_servers=ctx.bootstrap,
        client_id="spate-pyclient-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    got = {p: [] for p in range(PARTITIONS)}
    try:
        partitions = [TopicPartition(ctx.topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + TIMEOUT_S
        total = 0
        while total < expected_total and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for m in messages:
                    got[tp.partition].append((m.offset, m.key, m.value, list(m.headers)))
                    total += 1
    finally:
        consumer.close()

    if total != expected_total:
        raise Mismatch(f"consumed {total} records within {TIMEOUT_S}s, expected {expected_total}")
    for p in range(PARTITIONS):
        want, have = ctx.produced[p], got[p]
        if len(want) != len(have):
            raise Mismatch(f"partition {p}: produced {len(want)} records, consumed {len(have)}")
        for i, (w, h) in enumerate(zip(want, have)):
            if w != h:
                raise Mismatch(
                    f"partition {p}, record #{i}: expected (offset, key, value, headers) = {w!r}, got {h!r}"
                )


STEPS = [create_topic, produce_uncompressed, produce_gzip, consume_and_check]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args()

    ctx = Context(args.bootstrap, args.topic, args.records)
    for step in STEPS:
        started = time.monotonic()
        try:
            step(ctx)
        except Mismatch as e:
            print(f"python_roundtrip: FAILED in {step.__name__}: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # a client error is a failure too; say which step and why
            print(f"python_roundtrip: FAILED in {step.__name__}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"python_roundtrip: {step.__name__} ok ({time.monotonic() - started:.2f}s)", file=sys.stderr)
    total = sum(len(v) for v in ctx.produced.values())
    print(f"python_roundtrip: OK, {total} records round-tripped through {args.bootstrap} topic {args.topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""One kafka-python consumer (a client NOT built on librdkafka, and one that uses incremental
fetch sessions, KIP-227) assigned every partition of an idle topic, fetching for a while.

Usage: python_idle_fetch.py BOOTSTRAP TOPIC PARTITIONS SECONDS [--no-sessions]

The consumer assigns all PARTITIONS partitions of TOPIC, seeks to the beginning and polls for
SECONDS seconds (and at least 30 polls) with a 100 ms fetch wait. The test in front of it (a
counting proxy, crates/spate-broker/tests/fetch_limits_sessions.rs) measures the bytes of every Fetch request
and response. Prints "OK <records>" and exits 0.
"""

import sys
import time

from kafka import KafkaConsumer, TopicPartition

MIN_POLLS = 30


def main():
    bootstrap, topic, partitions, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    sessions = "--no-sessions" not in sys.argv[5:]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        enable_incremental_fetch_sessions=sessions,
    )
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    records = 0
    # At least SECONDS, and at least MIN_POLLS polls: on a loaded machine a poll of 500
    # partitions can take a good part of a second, and the test needs enough fetches to look at.
    deadline = time.time() + seconds
    polls = 0
    while time.time() < deadline or polls < MIN_POLLS:
        polls += 1
        for batch in consumer.poll(timeout_ms=100).values():
            records += len(batch)
    consumer.close()
    print("OK", records)


if __name__ == "__main__":
    main()

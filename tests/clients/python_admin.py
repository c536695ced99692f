#!/usr/bin/env python3
"""Admin answers of spate's broker seen by kafka-python, a Kafka client NOT built on librdkafka.
Each subcommand asks one thing and prints what the broker answered as JSON lines; the Rust test
that runs it (crates/spate-broker/tests/admin_answers.rs) checks the values.

Usage:
  python_admin.py max-timestamp BOOTSTRAP TOPIC
      ListOffsets MAX_TIMESTAMP of TOPIC-0: {"offset": .., "timestamp": ..}
"""

import json
import sys

from kafka import KafkaAdminClient, TopicPartition
from kafka.protocol.consumer.offsets import OffsetSpec


def out(doc):
    print(json.dumps(doc, sort_keys=True, default=str))


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)


def max_timestamp(bootstrap, topic):
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    got = a.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp]
    out({"offset": got.offset, "timestamp": got.timestamp})
    a.close()


COMMANDS = {
    "max-timestamp": max_timestamp,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])

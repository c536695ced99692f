#!/usr/bin/env python3
"""Admin answers of spate's broker seen by kafka-python, a Kafka client NOT built on librdkafka.
Each subcommand asks one thing and prints what the broker answered as JSON lines; the Rust test
that runs it (crates/spate-broker/tests/admin_answers.rs) checks the values.

Usage:
  python_admin.py max-timestamp BOOTSTRAP TOPIC
      ListOffsets MAX_TIMESTAMP of TOPIC-0: {"offset": .., "timestamp": ..}
  python_admin.py consume-all BOOTSTRAP TOPIC
      Every record of TOPIC-0 from offset 0 to the log end, one line each:
      {"offset": .., "key": .., "value": ..} (null key or value as null)
"""

import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
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


def consume_all(bootstrap, topic):
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      request_timeout_ms=20000, consumer_timeout_ms=20000)
    c.assign([tp])
    c.seek(tp, 0)
    end = c.end_offsets([tp])[tp]
    while c.position(tp) < end:
        for records in c.poll(timeout_ms=1000).values():
            for r in records:
                out({
                    "offset": r.offset,
                    "key": None if r.key is None else r.key.decode(),
                    "value": None if r.value is None else r.value.decode(),
                })
    c.close()


COMMANDS = {
    "max-timestamp": max_timestamp,
    "consume-all": consume_all,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])

#!/usr/bin/env python3
"""SASL seen by kafka-python, a Kafka client NOT built on librdkafka: produce COUNT records to
TOPIC-0 over SASL_PLAINTEXT with MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), then read them
back. Prints one JSON line: {"produced": n, "consumed": n}, or {"error": "..."} when the broker
refuses the login. The Rust test that runs it is crates/spate-broker/tests/sasl.rs.

Usage: python_sasl.py BOOTSTRAP TOPIC MECHANISM USER PASSWORD COUNT
"""

import json
import logging
import os
import sys

if os.environ.get("SPATE_PY_DEBUG"):
    logging.basicConfig(level=logging.DEBUG)

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


class AuthErrors(logging.Handler):
    """Keeps what kafka-python logs about refused logins: it retries them until its bootstrap
    times out, so the broker's error message is only in its log."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.messages = []

    def emit(self, record):
        text = record.getMessage()
        if "Authentication" in text and "failed" in text:
            self.messages.append(text)


def out(doc):
    print(json.dumps(doc, sort_keys=True, default=str))


def main(bootstrap, topic, mechanism, user, password, count):
    count = int(count)
    auth_errors = AuthErrors()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(auth_errors)
    if kafka_log.getEffectiveLevel() > logging.INFO:
        kafka_log.setLevel(logging.INFO)
    security = dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
        request_timeout_ms=15000,
    )
    try:
        producer = KafkaProducer(**security, max_block_ms=6000, bootstrap_timeout_ms=3000)
    except Exception as e:  # the login is refused while bootstrapping
        out({"error": f"{type(e).__name__}: {e}", "auth_errors": auth_errors.messages[:3]})
        # kafka-python's network thread outlives a failed bootstrap by ~30 s; nothing is left
        # to clean up, so leave at once.
        sys.stdout.flush()
        os._exit(0)
    for i in range(count):
        producer.send(topic, value=f"py{i}".encode(), partition=0).get(timeout=15)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(**security, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = []
    for msg in consumer:
        values.append(msg.value.decode())
        if len(values) >= count:
            break
    consumer.close()
    assert values == [f"py{i}" for i in range(count)], values
    out({"produced": count, "consumed": len(values)})


if __name__ == "__main__":
    main(*sys.argv[1:])

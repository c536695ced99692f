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
  python_admin.py delete-records BOOTSTRAP TOPIC OFFSET
      DeleteRecords on TOPIC-0 before OFFSET: {"error": null or the error's class name,
      "low_watermark": .. or null}
  python_admin.py broker-configs BOOTSTRAP
      IncrementalAlterConfigs on BROKER 0 (SET log.retention.bytes, DELETE message.max.bytes),
      a read-only key (num.partitions), then DescribeConfigs with synonyms: one line per step.
  python_admin.py authorized-ops BOOTSTRAP TOPIC GROUP
      The authorized operations of TOPIC (Metadata), the cluster (DescribeCluster) and GROUP
      (DescribeGroups), as sorted AclOperation codes.
  python_admin.py describe-topic-partitions BOOTSTRAP LIMIT TOPIC...
      DescribeTopicPartitions (API 75) for TOPICs, LIMIT partitions per page, following the
      cursor to the end: one line per page (topics with their partition indexes and errors).
  python_admin.py acls BOOTSTRAP TOPIC
      CreateAcls (a literal ALLOW READ for User:alice on TOPIC, a prefixed DENY WRITE for
      User:bob on TOPIC's first 3 characters), DescribeAcls with a MATCH filter on TOPIC,
      DeleteAcls of bob's ACLs, DescribeAcls again: one line per step.
  python_admin.py group-configs BOOTSTRAP GROUP
      IncrementalAlterConfigs on GROUP (a valid and an out-of-range session timeout), then
      DescribeConfigs with synonyms.
"""

import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
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


def delete_records(bootstrap, topic, offset):
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    try:
        got = a.delete_records({tp: int(offset)})[tp]
        out({"error": None, "low_watermark": got["low_watermark"]})
    except Exception as e:  # kafka-python raises the partition's error as its KafkaError class
        out({"error": type(e).__name__, "low_watermark": None})
    a.close()


def describe(a, resource_type, name, keys):
    got = a.describe_configs([ConfigResource(resource_type, name)],
                             include_synonyms=True, config_filter='all')
    configs = got[resource_type.name.lower()][name]
    for key in keys:
        c = configs[key]
        out({"describe": key, "value": c["value"], "source": c["config_source"],
             "read_only": c["read_only"],
             "synonyms": [[s["name"], s["value"], s["source"]] for s in c.get("synonyms", [])]})


def alter(a, resource_type, name, configs):
    got = a.alter_configs([ConfigResource(resource_type, name, configs)],
                          raise_on_unknown=False, incremental=True)
    return got[resource_type.name.lower()][name]


def broker_configs(bootstrap):
    a = admin(bootstrap)
    b = ConfigResourceType.BROKER
    out({"alter": "set+delete", "result": alter(a, b, "0", {
        "log.retention.bytes": (AlterConfigOp.SET, "123456"),
        "message.max.bytes": (AlterConfigOp.DELETE, None)})})
    out({"alter": "read-only", "result": alter(a, b, "0", {"num.partitions": "7"})})
    describe(a, b, "0", ["log.retention.bytes", "message.max.bytes", "log.segment.bytes",
                         "num.partitions"])
    a.close()


def group_configs(bootstrap, group):
    a = admin(bootstrap)
    g = ConfigResourceType.GROUP
    out({"alter": "valid", "result": alter(a, g, group, {
        "consumer.session.timeout.ms": "50000",
        "consumer.heartbeat.interval.ms": "6000"})})
    out({"alter": "too-small", "result": alter(a, g, group, {
        "consumer.session.timeout.ms": "1000"})})
    describe(a, g, group, ["consumer.session.timeout.ms", "consumer.heartbeat.interval.ms",
                           "share.record.lock.duration.ms"])
    a.close()


def op_codes(value):
    """AclOperation codes from what kafka-python returns: a bitfield, or a collection of
    codes, ACLOperation enums or their names."""
    from kafka.admin import ACLOperation
    if value is None:
        return None
    if isinstance(value, int):
        return [bit for bit in range(32) if value & (1 << bit)]
    codes = []
    for v in value:
        if isinstance(v, str):
            codes.append(ACLOperation[v].value)
        else:
            codes.append(int(getattr(v, "value", v)))
    return sorted(codes)


def authorized_ops(bootstrap, topic, group):
    a = admin(bootstrap)
    topics = a.describe_topics([topic])
    out({"resource": "topic", "ops": op_codes(topics[0].get("authorized_operations"))})
    cluster = a.describe_cluster()
    out({"resource": "cluster", "ops": op_codes(cluster.get("authorized_operations"))})
    groups = a.describe_groups([group])
    described = groups[group] if isinstance(groups, dict) else groups[0]
    out({"resource": "group", "ops": op_codes(described.get("authorized_operations"))})
    a.close()


def describe_topic_partitions(bootstrap, limit, *topics):
    a = admin(bootstrap)
    cursor = None
    while True:
        page = a.describe_topic_partitions(list(topics), int(limit), cursor)
        out({
            "topics": [
                {
                    "name": t["name"],
                    "error": t["error_code"],
                    "partitions": [p["partition_index"] for p in t["partitions"]],
                    "ops": op_codes(t["topic_authorized_operations"]),
                }
                for t in page["topics"]
            ],
            "next": page["next_cursor"],
        })
        cursor = page["next_cursor"]
        if cursor is None:
            break
    a.close()


def acl_doc(acl):
    p = acl.resource_pattern
    return {
        "principal": acl.principal, "host": acl.host, "operation": acl.operation.name,
        "permission": acl.permission_type.name, "resource_type": p.resource_type.name,
        "name": p.resource_name, "pattern": p.pattern_type.name,
    }


def acls(bootstrap, topic):
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, ResourcePattern, ResourcePatternFilter,
                             ResourceType)
    a = admin(bootstrap)
    created = a.create_acls([
        ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL)),
        ACL("User:bob", "*", ACLOperation.WRITE, ACLPermissionType.DENY,
            ResourcePattern(ResourceType.TOPIC, topic[:3], ACLResourcePatternType.PREFIXED)),
    ])
    out({"step": "create", "succeeded": len(created["succeeded"]),
         "failed": [type(e).__name__ for _, e in created["failed"]]})

    def describe(step):
        got, err = a.describe_acls(ACLFilter(
            None, None, ACLOperation.ANY, ACLPermissionType.ANY,
            ResourcePatternFilter(ResourceType.TOPIC, topic, ACLResourcePatternType.MATCH)))
        out({"step": step, "error": getattr(err, "__name__", type(err).__name__),
             "acls": sorted([acl_doc(x) for x in got], key=lambda d: d["principal"])})

    describe("describe")
    deleted = a.delete_acls([ACLFilter(
        "User:bob", None, ACLOperation.ANY, ACLPermissionType.ANY,
        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))])
    matched = [acl_doc(x) for _, results, _ in deleted for x in results]
    out({"step": "delete", "deleted": matched})
    describe("after-delete")
    a.close()


COMMANDS = {
    "acls": acls,
    "describe-topic-partitions": describe_topic_partitions,
    "authorized-ops": authorized_ops,
    "max-timestamp": max_timestamp,
    "consume-all": consume_all,
    "delete-records": delete_records,
    "broker-configs": broker_configs,
    "group-configs": group_configs,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])

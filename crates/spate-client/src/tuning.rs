//! librdkafka settings for throughput, shared by everything that moves many records with plain
//! rdkafka clients: the benchmarks' loader and drain, the YSB generator and checker. Documented,
//! with the measurements that chose them, in docs/benchmarks.md.

/// Producer settings for bulk loading, documented in docs/benchmarks.md: acks=1 (the leader's
/// write, like Kafka's perf-test default), 10 ms linger and up to 1 MB / 100k records per batch
/// so librdkafka sends few large batches, and a queue deep enough (128 MiB) that the sender
/// rarely stalls; deeper queues only added memory and queueing latency, not throughput.
pub const PRODUCER_TUNING: &[(&str, &str)] = &[
    ("acks", "1"),
    ("linger.ms", "10"),
    ("batch.size", "1000000"),
    ("batch.num.messages", "100000"),
    ("queue.buffering.max.messages", "500000"),
    ("queue.buffering.max.kbytes", "131072"),
    ("compression.type", "none"),
    ("message.timeout.ms", "60000"),
];

/// Consumer settings for draining: large fetches (4 MB per partition), a short fetch wait, a
/// pre-fetch queue (64 MiB) deep enough that `poll` rarely waits on the network, and a 10 ms
/// instead of 1 s pause when that queue is full (`fetch.queue.backoff.ms`, librdkafka 2.x).
pub const CONSUMER_TUNING: &[(&str, &str)] = &[
    ("group.id", "spate-bench-unused"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("fetch.max.bytes", "67108864"),
    ("max.partition.fetch.bytes", "4194304"),
    ("fetch.wait.max.ms", "100"),
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "65536"),
    ("fetch.queue.backoff.ms", "10"),
];

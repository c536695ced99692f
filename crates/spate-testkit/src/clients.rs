//! rdkafka client configurations for tests: short timeouts so a failure shows up in seconds,
//! no auto-commit, and consumers that start from the earliest offset.

use rdkafka::config::ClientConfig;

/// A producer config. Idempotence is off; turn it on with `.set("enable.idempotence", "true")`.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .set("socket.timeout.ms", "10000")
        .set("linger.ms", "1")
        .set("broker.address.family", "v4");
    c
}

/// A consumer config in group `group`, reading from the earliest offset, committing nothing
/// unless the test does.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("socket.timeout.ms", "10000")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "100")
        .set("broker.address.family", "v4");
    c
}

/// An admin client config.
pub fn admin_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("broker.address.family", "v4");
    c
}

pub use crate::produce::produce_to_partition;

//! Helpers shared by spate's tests: a broker on `127.0.0.1:0` in a temporary data directory
//! ([`TestBroker`]), random topic and group names so that tests can run in parallel against one
//! broker, and rdkafka client configs ([`clients`]) that fail fast instead of retrying for
//! minutes when something is wrong; crash tests' killable child jobs ([`child`]), polling with a
//! deadline ([`wait`]), producing test records ([`produce`]), certificates for TLS tests
//! ([`tls`]) and a real PostgreSQL server in a temp directory ([`postgres`]).
//!
//! The test kit is for tests: its functions panic with a clear message when the environment is
//! broken (a broker that cannot start), instead of making every test handle that.

#![warn(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod broker;
pub mod child;
pub mod clients;
pub mod consume;
pub mod logs;
pub mod postgres;
pub mod produce;
pub mod tls;
pub mod wait;

pub use broker::TestBroker;
pub use child::ChildJob;
pub use postgres::{PostgresServer, TestDatabase};
pub use wait::{poll_until, timed_wait_until, wait_for, wait_until};

use rand::distr::{Alphanumeric, SampleString};

/// A topic name unique to this test run: `__{prefix}_{10 random chars}`.
pub fn random_topic(prefix: &str) -> String {
    format!("__{prefix}_{}", random_suffix())
}

/// A free TCP port on 127.0.0.1, for listeners that must be named in a config up front.
///
/// Chosen below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), where every
/// `bind(…:0)` and outgoing connection of the tests in parallel gets its port: a port taken from
/// that range and released could be handed to another test before our listener binds it. Below
/// it, only another caller of this function could pick the same port, at random.
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000u16.min(ephemeral_start.saturating_sub(1_000));
    for _ in 0..1_000 {
        let port = rand::random_range(low..ephemeral_start);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {low}..{ephemeral_start}")
}

/// A consumer group id unique to this test run.
pub fn random_group(prefix: &str) -> String {
    format!("__group_{prefix}_{}", random_suffix())
}

fn random_suffix() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 10)
}

/// Sends `tracing` output to the test harness (shown for failing tests), filtered by
/// `RUST_LOG` (default `warn`). Safe to call from every test.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_distinct() {
        assert_ne!(super::random_topic("t"), super::random_topic("t"));
        assert!(super::random_group("g").starts_with("__group_g_"));
    }
}

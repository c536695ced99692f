//! Helpers shared by spate's tests: random topic and group names so that tests can run in
//! parallel against one broker, and (later) a broker started on `127.0.0.1:0`.

use rand::distr::{Alphanumeric, SampleString};

/// A topic name unique to this test run: `__{prefix}_{10 random chars}`.
pub fn random_topic(prefix: &str) -> String {
    format!("__{prefix}_{}", random_suffix())
}

/// A consumer group id unique to this test run.
pub fn random_group(prefix: &str) -> String {
    format!("__group_{prefix}_{}", random_suffix())
}

fn random_suffix() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 10)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_distinct() {
        assert_ne!(super::random_topic("t"), super::random_topic("t"));
        assert!(super::random_group("g").starts_with("__group_g_"));
    }
}

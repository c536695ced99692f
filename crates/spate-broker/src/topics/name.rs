//! Kafka's rules for topic names (`org.apache.kafka.common.internals.Topic.validate`): 1–249
//! characters from `[a-zA-Z0-9._-]`, and not `.` or `..` (those would be directory names).

use crate::error::{BrokerError, Result};

/// The longest legal topic name: 255 (a file name) minus room for `-<partition>` suffixes.
pub const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name, failing with `InvalidTopic` (INVALID_TOPIC_EXCEPTION) and the reason.
pub fn validate(name: &str) -> Result<()> {
    let invalid = |reason: String| BrokerError::InvalidTopic {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("topic name is empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("topic name cannot be \".\" or \"..\"".into()));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(invalid(format!(
            "topic name is {} characters long, the maximum is {MAX_NAME_LENGTH}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "illegal character {c:?}: legal characters are ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn follows_kafka_rules() {
        for ok in ["a", "events", "my.topic_1-x", &"x".repeat(249)] {
            validate(ok).unwrap();
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            assert!(validate(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

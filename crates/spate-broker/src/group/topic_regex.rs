//! Regular-expression subscriptions of the consumer group protocol (KIP-848's
//! `SubscribedTopicRegex`, ConsumerGroupHeartbeat v1): a member names a pattern, the
//! coordinator resolves it against the topics that exist, and the topics it matches join the
//! member's subscription.
//!
//! Kafka compiles these patterns with RE2/J; the `regex` crate implements the same RE2 syntax
//! (no backreferences or lookaround, linear-time matching), so what one refuses the other
//! refuses too, with Kafka's INVALID_REGULAR_EXPRESSION. A topic matches when its whole name
//! matches (RE2/J's `Matcher.matches()`). Patterns are resolved again on every heartbeat of any
//! member, so a topic created later that matches is assigned at the group's next heartbeat.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use regex::Regex;

/// An error code and Kafka's message for it (as the heartbeat answers it).
pub type RegexError = (ResponseError, String);

/// Compiles `pattern` so that it matches whole topic names only; a pattern that is not valid
/// RE2 syntax is Kafka's INVALID_REGULAR_EXPRESSION with its message.
pub fn compile(pattern: &str) -> Result<Regex, RegexError> {
    // Checked alone first: the anchoring group must not give an unbalanced pattern a meaning.
    let anchored = Regex::new(pattern).and_then(|_| Regex::new(&format!("^(?:{pattern})$")));
    anchored.map_err(|e| {
        let reason = e.to_string();
        let last = reason.lines().last().unwrap_or_default().trim();
        let reason = last.strip_prefix("error: ").unwrap_or(last).to_owned();
        (
            ResponseError::InvalidRegularExpression,
            format!(
                "SubscribedTopicRegex `{pattern}` is not a valid regular expression: {reason}."
            ),
        )
    })
}

/// The topics each of `patterns` matches among `topics`. A pattern that does not compile (one
/// stored by a broker whose regex syntax differed) matches nothing.
pub fn resolve<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    topics: &[&str],
) -> BTreeMap<String, BTreeSet<String>> {
    patterns
        .into_iter()
        .map(|pattern| {
            let matched = match compile(pattern) {
                Ok(re) => topics
                    .iter()
                    .filter(|t| re.is_match(t))
                    .map(|t| (*t).to_owned())
                    .collect(),
                Err(_) => BTreeSet::new(),
            };
            (pattern.to_owned(), matched)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_names_match_and_invalid_patterns_are_kafkas_error() {
        let topics = ["orders", "orders-eu", "my-orders", "payments"];
        let r = resolve(["orders.*", "^pay.*", "x"], &topics);
        assert_eq!(
            r["orders.*"],
            ["orders", "orders-eu"].map(String::from).into()
        );
        assert_eq!(r["^pay.*"], ["payments"].map(String::from).into());
        assert!(r["x"].is_empty());
        for bad in ["(", "a)|(b", "[z-a]", "a{2,1}", "(?<=a)b"] {
            let (code, message) = compile(bad).unwrap_err();
            assert_eq!(code, ResponseError::InvalidRegularExpression, "{bad}");
            assert!(
                message.starts_with(&format!("SubscribedTopicRegex `{bad}`")),
                "{message}"
            );
        }
    }
}

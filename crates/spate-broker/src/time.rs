//! Wall-clock milliseconds since the Unix epoch, the unit of Kafka timestamps.

/// Now, in Kafka's timestamp unit. A clock before 1970 reads as 0 rather than failing.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

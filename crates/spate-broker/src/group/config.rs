//! Broker settings of the group coordinator, named and defaulted as Kafka's broker configs.

/// Group coordinator configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (Kafka default 6000): shorter session timeouts are
    /// rejected with INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`. Kafka's broker default is 3000, but the
    /// `server.properties` Kafka ships sets it to 0 for development and tests, and an embedded
    /// broker is exactly that use; so the default here is 0: the first rebalance of a new group
    /// completes as soon as its members have joined. Set it to 3000 to batch a fleet of members
    /// that start together into one rebalance, as a production Kafka does.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka default unbounded): more members get GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// `offsets.retention.minutes` (Kafka default 10080 = 7 days): offsets of a group that has
    /// been Empty this long (or, for a group that never used group management, offsets not
    /// committed again for this long) expire.
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms` (Kafka default 600000): how often expiry runs.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (Kafka default 4096): longer commit metadata is rejected
    /// with OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 0,
            max_size: usize::MAX,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

impl GroupConfig {
    /// Offset retention in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        self.offsets_retention_minutes.saturating_mul(60_000)
    }
}

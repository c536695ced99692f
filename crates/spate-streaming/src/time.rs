//! Batch time: milliseconds since the Unix epoch, as in Spark's `Time`.
//!
//! Batch times are multiples of the batch interval, so they are stable names for batches: the
//! checkpoint's offset and commit logs, output file names (`prefix-TIME_IN_MS.suffix`) and
//! listener events all use them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time in milliseconds since the Unix epoch; the name of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(pub u64);

impl Time {
    /// Builds a time from milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Time(ms)
    }

    /// `self + d`.
    pub fn plus(self, d: Duration) -> Self {
        Time(self.0.saturating_add(d.as_millis() as u64))
    }

    /// `self - d`, saturating at zero.
    pub fn minus(self, d: Duration) -> Self {
        Time(self.0.saturating_sub(d.as_millis() as u64))
    }

    /// The smallest multiple of `interval` that is `>= self`.
    pub fn ceil_to(self, interval: Duration) -> Self {
        let i = (interval.as_millis() as u64).max(1);
        Time(self.0.div_ceil(i) * i)
    }

    /// Milliseconds from `earlier` to `self` (zero if `earlier` is later).
    pub fn millis_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// Milliseconds of a duration as `u64` (durations here are far below `u64::MAX` ms).
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

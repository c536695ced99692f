//! [`RateLimiter`]: the receiver-side token bucket (Spark's `receiver.RateLimiter`, set by `spark.streaming.receiver.maxRate`).
//!
//! Spark wraps Guava's `RateLimiter` ("smooth bursty": up to one second of unused permits may be
//! saved up and spent at once; a request larger than the saved permits is granted immediately and
//! its cost is paid by the *next* caller's wait). This is the same algorithm, so a receiver
//! ported from Spark behaves the same: at a steady 1,000 records/s each record waits ~1 ms, and a
//! chunk acquired with `acquire(n)` costs `n` permits.
//!
//! Limits, as in Spark: `max_rate` is `spark.streaming.receiver.maxRate` (unlimited by default);
//! the initial rate is `min(initial_rate, max_rate)` with `initial_rate` defaulting to `max_rate`
//! (`spark.streaming.backpressure.initialRate`); `update_rate(new)` (from backpressure) sets
//! `min(new, max_rate)` and ignores `new <= 0`.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Seconds of unused permits a bursty limiter saves up (Guava's `SmoothBursty` uses 1.0).
const MAX_BURST_SECONDS: f64 = 1.0;

#[derive(Debug)]
struct Bucket {
    /// Permits per second; infinite = unlimited.
    rate: f64,
    stored: f64,
    max_stored: f64,
    /// When the next request may proceed (earlier callers' debt is paid until then).
    next_free: Instant,
}

impl Bucket {
    fn resync(&mut self, now: Instant) {
        if now > self.next_free {
            let gained = (now - self.next_free).as_secs_f64() * self.rate;
            self.stored = (self.stored + gained).min(self.max_stored);
            self.next_free = now;
        }
    }

    /// Reserves `n` permits; returns the moment the caller may proceed.
    fn reserve(&mut self, n: u64, now: Instant) -> Instant {
        self.resync(now);
        let moment = self.next_free;
        let wanted = n as f64;
        let from_stored = wanted.min(self.stored);
        let fresh = wanted - from_stored;
        let wait = Duration::try_from_secs_f64(fresh / self.rate).unwrap_or(Duration::MAX);
        self.next_free = self
            .next_free
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        self.stored -= from_stored;
        moment
    }

    fn set_rate(&mut self, rate: f64, now: Instant) {
        self.resync(now);
        let old_max = self.max_stored;
        self.rate = rate;
        self.max_stored = MAX_BURST_SECONDS * rate;
        self.stored = if old_max.is_infinite() {
            self.max_stored
        } else if old_max == 0.0 {
            0.0
        } else {
            self.stored * self.max_stored / old_max
        };
    }
}

/// A thread-safe token bucket limiting records per second. See the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    max_rate: f64,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    /// A limiter with `max_rate` records/s (`None` or ≤ 0: unlimited) starting at
    /// `min(initial_rate, max_rate)` (`initial_rate` `None` or ≤ 0: start at `max_rate`).
    pub fn new(max_rate: Option<f64>, initial_rate: Option<f64>) -> Self {
        let max_rate = max_rate.filter(|r| *r > 0.0).unwrap_or(f64::INFINITY);
        let initial = initial_rate
            .filter(|r| *r > 0.0)
            .unwrap_or(max_rate)
            .min(max_rate);
        let now = Instant::now();
        let mut bucket = Bucket {
            rate: initial,
            stored: 0.0,
            max_stored: 0.0,
            next_free: now,
        };
        // Guava starts with no saved permits: the first second is not a burst.
        bucket.set_rate(initial, now);
        bucket.stored = 0.0;
        RateLimiter {
            max_rate,
            bucket: Mutex::new(bucket),
        }
    }

    /// A limiter that never waits (until `update_rate` gives it a rate).
    pub fn unlimited() -> Self {
        Self::new(None, None)
    }

    /// The configured maximum (`f64::INFINITY` when unlimited).
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// The current rate in records/s (`f64::INFINITY` when unlimited).
    pub fn current_rate(&self) -> f64 {
        self.bucket.lock().rate
    }

    /// Sets the rate to `min(new_rate, max_rate)`; ignores `new_rate <= 0` (and NaN), as Spark
    /// does for backpressure updates.
    pub fn update_rate(&self, new_rate: f64) {
        if new_rate.is_nan() || new_rate <= 0.0 {
            return;
        }
        let rate = new_rate.min(self.max_rate);
        self.bucket.lock().set_rate(rate, Instant::now());
        tracing::debug!(rate, "receiver rate limit updated");
    }

    fn reserve(&self, n: u64) -> Option<Instant> {
        let mut bucket = self.bucket.lock();
        if bucket.rate.is_infinite() || n == 0 {
            return None;
        }
        Some(bucket.reserve(n, Instant::now()))
    }

    /// Takes `n` permits, blocking the caller until they are available (Spark's `waitToPush`,
    /// per record or per chunk).
    pub fn acquire(&self, n: u64) {
        if let Some(moment) = self.reserve(n) {
            let now = Instant::now();
            if moment > now {
                std::thread::sleep(moment - now);
            }
        }
    }

    /// Like [`acquire`](Self::acquire) but gives up waiting (returning `false`) once `stopped()`
    /// says so, polled at least every 100 ms — so a receiver at a low rate still stops promptly.
    pub fn acquire_unless(&self, n: u64, stopped: impl Fn() -> bool) -> bool {
        let Some(moment) = self.reserve(n) else {
            return true;
        };
        loop {
            let now = Instant::now();
            if moment <= now {
                return true;
            }
            if stopped() {
                return false;
            }
            std::thread::sleep((moment - now).min(Duration::from_millis(100)));
        }
    }

    /// Takes `n` permits if the caller would not have to wait, as Guava's `tryAcquire`: succeeds
    /// when no earlier request's cost is still outstanding (even if `n` exceeds what is saved up —
    /// the cost then delays the next caller).
    pub fn try_acquire(&self, n: u64) -> bool {
        let mut bucket = self.bucket.lock();
        if bucket.rate.is_infinite() || n == 0 {
            return true;
        }
        let now = Instant::now();
        if bucket.next_free > now {
            return false;
        }
        bucket.reserve(n, now);
        true
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::unlimited()
    }
}

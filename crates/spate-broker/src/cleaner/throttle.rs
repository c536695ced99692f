//! The cleaner's I/O throttle (`log.cleaner.io.max.bytes.per.second`, Kafka's cleaner
//! `Throttler`): one budget shared by every cleaner thread, so a broker cleaning several logs at
//! once still reads and writes at most that many bytes per second in total.
//!
//! Threads report the bytes they read and write; every `CHECK_INTERVAL` the observed rate is
//! compared with the setting and a thread that reports past it sleeps long enough to bring the
//! rate of the interval back to the setting. The rate can change at runtime (dynamic broker
//! config); the default (`f64::MAX`, Kafka's `Double.MaxValue`) never sleeps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long the observed rate is measured over before it is compared with the setting (Kafka
/// checks its cleaner throttle every 300 ms).
const CHECK_INTERVAL: Duration = Duration::from_millis(300);

/// The longest single sleep before the stop flag and the setting are looked at again.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Period {
    started: Instant,
    bytes: u64,
}

/// A bytes-per-second budget shared by the cleaner threads.
#[derive(Debug)]
pub struct Throttle {
    /// The allowed rate, as `f64` bits (changed by dynamic config).
    rate_bits: AtomicU64,
    period: Mutex<Period>,
}

impl Throttle {
    /// A throttle letting `bytes_per_second` through (`log.cleaner.io.max.bytes.per.second`).
    pub fn new(bytes_per_second: f64) -> Throttle {
        Throttle {
            rate_bits: AtomicU64::new(bytes_per_second.to_bits()),
            period: Mutex::new(Period {
                started: Instant::now(),
                bytes: 0,
            }),
        }
    }

    /// The allowed rate now.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Changes the rate at run time (a dynamic broker config change).
    pub fn set_rate(&self, bytes_per_second: f64) {
        self.rate_bits
            .store(bytes_per_second.to_bits(), Ordering::Relaxed);
    }

    /// Counts `bytes` of cleaner I/O and sleeps when the interval's rate is above the
    /// setting; returns early when `stop` is raised. Returns how long it slept.
    pub fn account(&self, bytes: u64, stop: &AtomicBool) -> Duration {
        let rate = self.rate();
        if !(rate.is_finite() && rate < f64::MAX) {
            return Duration::ZERO;
        }
        let sleep = {
            let mut p = self.period.lock();
            p.bytes += bytes;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(p.started);
            if elapsed < CHECK_INTERVAL {
                return Duration::ZERO;
            }
            // The time the interval's bytes should have taken at the allowed rate.
            let due = Duration::from_secs_f64((p.bytes as f64 / rate.max(1.0)).min(86_400.0));
            let sleep = due.saturating_sub(elapsed);
            // The next interval starts once this sleep is over, so other threads do not count
            // the sleep as idle time and burst.
            p.started = now + sleep;
            p.bytes = 0;
            sleep
        };
        let until = Instant::now() + sleep;
        while !stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.rate() != rate {
                break;
            }
            std::thread::sleep(left.min(SLEEP_SLICE));
        }
        sleep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_sleeps() {
        let t = Throttle::new(f64::MAX);
        let stop = AtomicBool::new(false);
        for _ in 0..1000 {
            assert_eq!(t.account(1 << 30, &stop), Duration::ZERO);
        }
    }

    #[test]
    fn holds_the_rate_over_an_interval() {
        // 1 MB/s: 600 KB reported over the first check interval must take about 0.6 s.
        let t = Throttle::new(1_000_000.0);
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let mut slept = Duration::ZERO;
        for _ in 0..6 {
            slept += t.account(100_000, &stop);
            std::thread::sleep(Duration::from_millis(60));
        }
        slept += t.account(0, &stop);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(550),
            "took {took:?}, slept {slept:?}"
        );
        assert!(slept > Duration::ZERO);
    }

    #[test]
    fn stop_cuts_a_sleep_short() {
        let t = Throttle::new(1.0);
        let stop = AtomicBool::new(true);
        std::thread::sleep(CHECK_INTERVAL);
        let started = Instant::now();
        let planned = t.account(1_000_000, &stop);
        assert!(planned > Duration::from_secs(1000));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

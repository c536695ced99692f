//! Receiver token bucket: throughput at a fixed rate, rate updates, limits, try_acquire.
//!
//! Timing bounds are generous on the slow side because the test machine is shared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_streaming::rate::RateLimiter;

#[test]
fn thousand_per_second_passes_about_a_thousand_in_a_second() {
    let limiter = RateLimiter::new(Some(1000.0), None);
    let start = Instant::now();
    for _ in 0..1000 {
        limiter.acquire(1);
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "too fast: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(3000),
        "too slow: {elapsed:?}"
    );
}

#[test]
fn shared_by_threads_the_total_rate_holds() {
    let limiter = Arc::new(RateLimiter::new(Some(2000.0), None));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let l = Arc::clone(&limiter);
            std::thread::spawn(move || {
                for _ in 0..250 {
                    l.acquire(1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    // 1000 permits at 2000/s ≈ 0.5 s.
    assert!(
        elapsed >= Duration::from_millis(470),
        "too fast: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(2500),
        "too slow: {elapsed:?}"
    );
}

#[test]
fn update_rate_takes_effect_and_respects_max() {
    let limiter = RateLimiter::new(Some(10_000.0), Some(100.0));
    assert_eq!(limiter.current_rate(), 100.0);
    // At 100/s, 20 permits take ~0.2 s.
    let start = Instant::now();
    for _ in 0..20 {
        limiter.acquire(1);
    }
    assert!(
        start.elapsed() >= Duration::from_millis(180),
        "{:?}",
        start.elapsed()
    );

    limiter.update_rate(5000.0);
    assert_eq!(limiter.current_rate(), 5000.0);
    let start = Instant::now();
    for _ in 0..500 {
        limiter.acquire(1);
    }
    let elapsed = start.elapsed();
    // ~0.1 s at 5000/s (plus the one permit of debt left at 100/s: 10 ms).
    assert!(
        elapsed >= Duration::from_millis(90),
        "too fast: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(1500),
        "too slow: {elapsed:?}"
    );

    // Above max: clamped. Non-positive: ignored.
    limiter.update_rate(1e9);
    assert_eq!(limiter.current_rate(), 10_000.0);
    limiter.update_rate(0.0);
    limiter.update_rate(-3.0);
    limiter.update_rate(f64::NAN);
    assert_eq!(limiter.current_rate(), 10_000.0);
}

#[test]
fn initial_rate_is_min_of_initial_and_max() {
    assert_eq!(
        RateLimiter::new(Some(50.0), Some(80.0)).current_rate(),
        50.0
    );
    assert_eq!(RateLimiter::new(Some(50.0), None).current_rate(), 50.0);
    assert_eq!(RateLimiter::new(None, Some(80.0)).current_rate(), 80.0);
    let unlimited = RateLimiter::unlimited();
    assert!(unlimited.current_rate().is_infinite());
    let start = Instant::now();
    unlimited.acquire(1_000_000);
    assert!(start.elapsed() < Duration::from_millis(50));
    // An unlimited limiter can be given a rate by backpressure.
    unlimited.update_rate(250.0);
    assert_eq!(unlimited.current_rate(), 250.0);
}

#[test]
fn try_acquire_fails_while_a_debt_is_outstanding() {
    let limiter = RateLimiter::new(Some(10.0), None);
    assert!(limiter.try_acquire(1)); // free now; next permit in 100 ms
    assert!(!limiter.try_acquire(1));
    std::thread::sleep(Duration::from_millis(120));
    assert!(limiter.try_acquire(5)); // granted; its cost (0.5 s) delays the next caller
    assert!(!limiter.try_acquire(1));
}

#[test]
fn chunk_acquire_costs_n_permits() {
    let limiter = RateLimiter::new(Some(1000.0), None);
    let start = Instant::now();
    limiter.acquire(300); // immediate, but pays 0.3 s forward
    limiter.acquire(1); // waits for the debt
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(280), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(2000), "{elapsed:?}");
}

#[test]
fn acquire_unless_gives_up_when_stopped() {
    let limiter = RateLimiter::new(Some(1.0), None);
    limiter.acquire(10); // 10 s of debt
    let start = Instant::now();
    let deadline = start + Duration::from_millis(150);
    assert!(!limiter.acquire_unless(1, || Instant::now() >= deadline));
    assert!(start.elapsed() < Duration::from_secs(2));
}

//! PID estimator and rate controller. Expected values are worked out by hand from Spark's
//! formula (`PIDRateEstimator.compute`); the arithmetic is in the comments.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use spate_streaming::rate::{BatchCompleted, PidRateEstimator, RateController};

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn defaults_first_run_skips_and_min_rate() {
    let mut pid = PidRateEstimator::with_defaults(1000).unwrap();
    // Skipped: no elements. State untouched (first run still pending).
    assert_eq!(pid.compute(1000, 0, 100, 0), None);
    // First non-skipped batch only seeds: rate = 1000 / 500 ms * 1000 = 2000/s.
    assert_eq!(pid.compute(1000, 1000, 500, 0), None);
    // Skipped: time not after the latest.
    assert_eq!(pid.compute(1000, 1000, 500, 0), None);
    assert_eq!(pid.compute(999, 1000, 500, 0), None);
    // Skipped: zero processing delay.
    assert_eq!(pid.compute(2000, 1000, 0, 0), None);
    // Second batch: processingRate = 1000/1000*1000 = 1000; error = 2000 − 1000 = 1000;
    // historicalError = 500 * 1000 / 1000 = 500; dError = (1000 − 0)/1 s = 1000 (Kd = 0);
    // newRate = 2000 − 1.0*1000 − 0.2*500 − 0 = 900.
    assert!(close(pid.compute(2000, 1000, 1000, 500), 900.0));
    // Third: processingRate = 50; error = 900 − 50 = 850; historical 0;
    // newRate = 900 − 850 = 50 → clamped to minRate 100.
    assert!(close(pid.compute(3000, 50, 1000, 0), 100.0));
}

#[test]
fn defaults_reduce_to_processing_rate_minus_scheduling_overflow() {
    // With Kp = 1 the previous rate cancels out:
    // newRate = max(pr − 0.2 · S · pr / B, 100).
    let mut pid = PidRateEstimator::with_defaults(500).unwrap();
    assert_eq!(pid.compute(10_000, 123, 77, 9), None);
    // pr = 5000 / 1000 ms * 1000 = 5000; S = 250, B = 500 → 5000 − 0.2*250*5000/500 = 4500.
    assert!(close(pid.compute(10_500, 5000, 1000, 250), 4500.0));
    // pr = 3000/600*1000 = 5000; S = 0 → 5000.
    assert!(close(pid.compute(11_000, 3000, 600, 0), 5000.0));
}

#[test]
fn derivative_and_integral_terms() {
    // Kp 1, Ki 0.2, Kd 0.5, minRate 10, B = 2000 ms.
    let mut pid = PidRateEstimator::new(2000, 1.0, 0.2, 0.5, 10.0).unwrap();
    // Seed: pr = 4000/1000*1000 = 4000.
    assert_eq!(pid.compute(1000, 4000, 1000, 0), None);
    // t = 3000 (2 s later): pr = 3000/1500*1000 = 2000; error = 4000 − 2000 = 2000;
    // hist = 1000*2000/2000 = 1000; dError = (2000 − 0)/2 = 1000;
    // new = 4000 − 2000 − 0.2*1000 − 0.5*1000 = 1300.
    assert!(close(pid.compute(3000, 3000, 1500, 1000), 1300.0));
    // t = 4000 (1 s later): pr = 1300; error = 1300 − 1300 = 0; hist = 0;
    // dError = (0 − 2000)/1 = −2000; new = 1300 − 0 − 0 − 0.5*(−2000) = 2300.
    assert!(close(pid.compute(4000, 1300, 1000, 0), 2300.0));
}

#[test]
fn constructor_validates_like_spark() {
    assert!(PidRateEstimator::new(0, 1.0, 0.2, 0.0, 100.0).is_err());
    assert!(PidRateEstimator::new(100, -0.1, 0.2, 0.0, 100.0).is_err());
    assert!(PidRateEstimator::new(100, 1.0, -0.2, 0.0, 100.0).is_err());
    assert!(PidRateEstimator::new(100, 1.0, 0.2, -1.0, 100.0).is_err());
    assert!(PidRateEstimator::new(100, 1.0, 0.2, 0.0, 0.0).is_err());
    assert!(PidRateEstimator::new(100, f64::NAN, 0.2, 0.0, 1.0).is_err());
    let err = PidRateEstimator::new(100, 1.0, 0.2, 0.0, -5.0).unwrap_err();
    assert!(err.to_string().contains("minRate"), "{err}");
    // Zero gains are allowed.
    assert!(PidRateEstimator::new(100, 0.0, 0.0, 0.0, 1.0).is_ok());
}

#[test]
fn controller_starts_at_minus_one_and_publishes_truncated_rates() {
    let published = Arc::new(AtomicI64::new(0));
    let sink = Arc::clone(&published);
    let controller = RateController::new(3, PidRateEstimator::with_defaults(1000).unwrap())
        .with_publish(move |r| sink.store(r, Ordering::SeqCst));
    assert_eq!(controller.latest_rate(), -1);
    let batch = |end, n, p, s| BatchCompleted {
        processing_end_ms: end,
        num_records: n,
        processing_delay_ms: p,
        scheduling_delay_ms: s,
    };
    // First non-empty batch publishes nothing: the rate stays −1 until the second.
    assert_eq!(
        controller.on_batch_completed(&batch(1000, 1000, 300, 0)),
        None
    );
    assert_eq!(controller.latest_rate(), -1);
    // pr = 1000/300*1000 = 3333.33…; S = 100 → 3333.33 − 0.2*100*3333.33/1000 = 3266.66… → 3266.
    assert_eq!(
        controller.on_batch_completed(&batch(2000, 1000, 300, 100)),
        Some(3266)
    );
    assert_eq!(controller.latest_rate(), 3266);
    assert_eq!(published.load(Ordering::SeqCst), 3266);
    // An empty batch changes nothing.
    assert_eq!(controller.on_batch_completed(&batch(3000, 0, 300, 0)), None);
    assert_eq!(controller.latest_rate(), 3266);
}

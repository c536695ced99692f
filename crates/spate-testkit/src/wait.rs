//! Waiting for a condition in a test: poll it until it holds or a deadline passes, and say what
//! was awaited when it never held. One helper instead of a hand-rolled loop per test file, so
//! every test polls at the same pace and fails with a message instead of hanging.

use std::time::{Duration, Instant};

/// How often the condition is polled: short enough not to slow tests down, long enough not to
/// spin a core that the job under test needs.
const POLL: Duration = Duration::from_millis(20);

/// Polls `f` until it returns `Some`, and returns that value; panics after `timeout` saying
/// what was awaited.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `f` until it returns true; panics after `timeout` saying what was awaited.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, timeout, || f().then_some(()))
}

/// As [`wait_until`], and returns how long the condition took to hold, for tests that report
/// how promptly something happened.
pub fn timed_wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    wait_until(what, timeout, f);
    started.elapsed()
}

/// Polls `f` until it returns true or `timeout` passes; returns whether it did. For tests that
/// report what they saw before asserting.
pub fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let mut n = 0;
        let v = wait_for("three polls", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, 3);
        assert!(!poll_until(Duration::from_millis(50), || false));
    }

    #[test]
    #[should_panic(expected = "waiting for never")]
    fn names_what_never_happened() {
        wait_until("never", Duration::from_millis(50), || false);
    }
}

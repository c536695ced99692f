//! [`RetryPolicy`]: how long the driver and the task consumers wait for an unreachable or busy
//! broker. Every failed attempt is reported (a `tracing` warning and an optional callback), the
//! wait doubles up to a cap, and when the policy gives up the error says how long we tried —
//! data is never skipped because a broker was down (Spark complaints #4, #11).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::{Result, SpateKafkaError};

/// One failed attempt, as reported to [`RetryPolicy::on_retry`].
#[derive(Debug)]
pub struct RetryEvent<'a> {
    /// What was being done, e.g. "fetching metadata".
    pub operation: &'a str,
    /// Which attempt failed, from 1.
    pub attempt: u32,
    /// Why it failed.
    pub error: &'a KafkaError,
    /// How long the policy waits before the next attempt.
    pub next_backoff: Duration,
}

type RetryCallback = Arc<dyn Fn(&RetryEvent<'_>) + Send + Sync>;

/// Exponential backoff for broker calls.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Wait after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Give up after this long in total (`None`: retry until the broker is back).
    pub max_elapsed: Option<Duration>,
    on_retry: Option<RetryCallback>,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_elapsed", &self.max_elapsed)
            .finish_non_exhaustive()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Some(Duration::from_secs(300)),
            on_retry: None,
        }
    }
}

impl RetryPolicy {
    /// Calls `f` for every failed attempt (e.g. to surface it in a UI or a test).
    pub fn on_retry(mut self, f: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(f));
        self
    }

    /// Adds `f` after the callback already set, which keeps running (the stream adds its
    /// listener report to whatever the user asked for).
    pub(crate) fn and_on_retry(
        mut self,
        f: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        let previous = self.on_retry.take();
        self.on_retry = Some(Arc::new(move |event: &RetryEvent<'_>| {
            if let Some(p) = &previous {
                p(event);
            }
            f(event);
        }));
        self
    }

    /// Sets [`RetryPolicy::max_elapsed`].
    pub fn max_elapsed(mut self, max: Option<Duration>) -> Self {
        self.max_elapsed = max;
        self
    }

    /// Sets [`RetryPolicy::initial_backoff`].
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Runs `f` until it succeeds, fails with a non-retriable error, or the policy gives up.
    pub fn run<T>(
        &self,
        operation: &str,
        mut f: impl FnMut() -> std::result::Result<T, KafkaError>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut backoff = self.initial_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match f() {
                Ok(v) => {
                    if attempt > 1 {
                        tracing::info!(operation, attempt, "broker call succeeded after retries");
                    }
                    return Ok(v);
                }
                Err(e) if is_retriable(&e) => {
                    let waited = start.elapsed();
                    if self.max_elapsed.is_some_and(|max| waited + backoff > max) {
                        return Err(SpateKafkaError::BrokerUnavailable {
                            operation: operation.to_owned(),
                            attempts: attempt,
                            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                            source: e,
                        });
                    }
                    tracing::warn!(operation, attempt, error = %e, backoff_ms = backoff.as_millis() as u64,
                        "broker call failed; retrying");
                    if let Some(cb) = &self.on_retry {
                        cb(&RetryEvent {
                            operation,
                            attempt,
                            error: &e,
                            next_backoff: backoff,
                        });
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.max_backoff);
                }
                Err(e) => return Err(SpateKafkaError::client(operation, e)),
            }
        }
    }
}

/// Errors that a later attempt can fix: transport failures, timeouts, leadership moves.
pub fn is_retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    match e.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            BrokerTransportFailure
                | AllBrokersDown
                | OperationTimedOut
                | RequestTimedOut
                | TimedOutQueue
                | LeaderNotAvailable
                | NotLeaderForPartition
                | NetworkException
                | CoordinatorNotAvailable
                | NotCoordinator
                | CoordinatorLoadInProgress
                | WaitingForCoordinator
                | Resolve
                | UnknownLeaderEpoch
                | FencedLeaderEpoch
        ),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transport() -> KafkaError {
        KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure)
    }

    #[test]
    fn retries_retriable_errors_and_reports_each() {
        let reported = Arc::new(AtomicU32::new(0));
        let r = reported.clone();
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(1))
            .on_retry(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            });
        let mut calls = 0;
        let v = policy
            .run("fetch", || {
                calls += 1;
                if calls < 4 {
                    Err(transport())
                } else {
                    Ok(calls)
                }
            })
            .unwrap();
        assert_eq!(v, 4);
        assert_eq!(reported.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn gives_up_after_max_elapsed_with_a_clear_error() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(5))
            .max_elapsed(Some(Duration::from_millis(30)));
        let err = policy
            .run::<()>("fetching watermarks of t-0", || Err(transport()))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, SpateKafkaError::BrokerUnavailable { attempts, .. } if attempts >= 2),
            "{msg}"
        );
        assert!(msg.contains("fetching watermarks of t-0"), "{msg}");
    }

    #[test]
    fn non_retriable_errors_fail_at_once() {
        let mut calls = 0;
        let err = RetryPolicy::default()
            .run::<()>("x", || {
                calls += 1;
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::TopicAuthorizationFailed,
                ))
            })
            .unwrap_err();
        assert_eq!(calls, 1);
        assert!(matches!(err, SpateKafkaError::Client { .. }));
    }
}

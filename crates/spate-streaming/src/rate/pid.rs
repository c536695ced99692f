//! Spark's PID rate estimator (`org.apache.spark.streaming.scheduler.rate.PIDRateEstimator`),
//! reproduced exactly, including its skip rules and the silent first run.
//!
//! Spark's defaults (`spark.streaming.backpressure.pid.*`): proportional 1.0, integral 0.2,
//! derived 0.0, minRate 100. With them the estimate reduces to
//! `max(processingRate − 0.2 · schedulingDelay · processingRate / batchInterval, 100)`.

use crate::error::{Result, StreamingError};

/// Something that turns a completed batch into a new ingestion rate (records/s). Spark has one
/// implementation (`pid`); the trait lets a job plug in another.
pub trait RateEstimator: Send {
    /// Computes a new rate from a completed batch, or `None` when there is no new estimate.
    ///
    /// `time_ms` is the batch's processing end time, `num_elements` the records it processed,
    /// `processing_delay_ms` its end − start, `scheduling_delay_ms` its start − submission.
    fn compute(
        &mut self,
        time_ms: i64,
        num_elements: i64,
        processing_delay_ms: i64,
        scheduling_delay_ms: i64,
    ) -> Option<f64>;
}

/// Spark's PID controller for the ingestion rate. See the module docs.
#[derive(Debug, Clone)]
pub struct PidRateEstimator {
    batch_interval_ms: i64,
    proportional: f64,
    integral: f64,
    derivative: f64,
    min_rate: f64,
    first_run: bool,
    latest_time: i64,
    latest_rate: f64,
    latest_error: f64,
}

impl PidRateEstimator {
    /// Spark's default proportional gain (`spark.streaming.backpressure.pid.proportional`).
    pub const DEFAULT_PROPORTIONAL: f64 = 1.0;
    /// Spark's default integral gain (`spark.streaming.backpressure.pid.integral`).
    pub const DEFAULT_INTEGRAL: f64 = 0.2;
    /// Spark's default derivative gain (`spark.streaming.backpressure.pid.derived`).
    pub const DEFAULT_DERIVATIVE: f64 = 0.0;
    /// Spark's default minimum rate (`spark.streaming.backpressure.pid.minRate`).
    pub const DEFAULT_MIN_RATE: f64 = 100.0;

    /// An estimator with explicit gains. Fails, like Spark's `require`s, unless the batch
    /// interval is positive, every gain is ≥ 0 and `min_rate` > 0.
    pub fn new(
        batch_interval_ms: i64,
        proportional: f64,
        integral: f64,
        derivative: f64,
        min_rate: f64,
    ) -> Result<Self> {
        let invalid = |name: &str, value: String, reason: &str| StreamingError::InvalidConfig {
            name: name.into(),
            value,
            reason: reason.into(),
        };
        if batch_interval_ms <= 0 {
            return Err(invalid(
                "batchInterval",
                format!("{batch_interval_ms} ms"),
                "must be > 0",
            ));
        }
        for (name, v) in [
            (
                "spark.streaming.backpressure.pid.proportional",
                proportional,
            ),
            ("spark.streaming.backpressure.pid.integral", integral),
            ("spark.streaming.backpressure.pid.derived", derivative),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(invalid(name, v.to_string(), "must be >= 0"));
            }
        }
        if min_rate.is_nan() || min_rate <= 0.0 {
            return Err(invalid(
                "spark.streaming.backpressure.pid.minRate",
                min_rate.to_string(),
                "must be > 0",
            ));
        }
        tracing::info!(
            batch_interval_ms,
            proportional,
            integral,
            derivative,
            min_rate,
            "created PID rate estimator"
        );
        Ok(PidRateEstimator {
            batch_interval_ms,
            proportional,
            integral,
            derivative,
            min_rate,
            first_run: true,
            latest_time: -1,
            latest_rate: -1.0,
            latest_error: -1.0,
        })
    }

    /// An estimator with Spark's default gains and minimum rate.
    pub fn with_defaults(batch_interval_ms: i64) -> Result<Self> {
        Self::new(
            batch_interval_ms,
            Self::DEFAULT_PROPORTIONAL,
            Self::DEFAULT_INTEGRAL,
            Self::DEFAULT_DERIVATIVE,
            Self::DEFAULT_MIN_RATE,
        )
    }

    /// Computes the new rate (records/s) after a batch; see [`RateEstimator::compute`].
    ///
    /// Returns `None` when the batch is skipped (not newer than the last one, empty, or with no
    /// processing delay) and on the first batch that is not skipped, which only seeds the
    /// controller — so the first estimate comes from the second non-empty batch, as in Spark.
    pub fn compute(
        &mut self,
        time_ms: i64,
        num_elements: i64,
        processing_delay_ms: i64,
        scheduling_delay_ms: i64,
    ) -> Option<f64> {
        tracing::trace!(
            time_ms,
            num_elements,
            processing_delay_ms,
            scheduling_delay_ms,
            "PID rate estimator input"
        );
        // Spark: `if (time > latestTime && numElements > 0 && processingDelay > 0)`, else None.
        if time_ms <= self.latest_time || num_elements <= 0 || processing_delay_ms <= 0 {
            return None;
        }
        // In seconds, should be close to the batch interval.
        let delay_since_update = (time_ms - self.latest_time) as f64 / 1000.0;
        // In elements/second.
        let processing_rate = num_elements as f64 / processing_delay_ms as f64 * 1000.0;
        // In elements/second: positive when we ingested faster than we could process.
        let error = self.latest_rate - processing_rate;
        // The scheduling delay is how long the backlog waited; scaled to the batch interval it is
        // the rate of elements we were "behind" by — the integral term.
        let historical_error =
            scheduling_delay_ms as f64 * processing_rate / self.batch_interval_ms as f64;
        // In elements/(second ^ 2).
        let d_error = (error - self.latest_error) / delay_since_update;
        let new_rate = (self.latest_rate
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error)
            .max(self.min_rate);
        self.latest_time = time_ms;
        if self.first_run {
            self.latest_rate = processing_rate;
            self.latest_error = 0.0;
            self.first_run = false;
            tracing::trace!("first run, rate estimation skipped");
            None
        } else {
            self.latest_rate = new_rate;
            self.latest_error = error;
            tracing::trace!(new_rate, "new rate");
            Some(new_rate)
        }
    }
}

impl RateEstimator for PidRateEstimator {
    fn compute(
        &mut self,
        time_ms: i64,
        num_elements: i64,
        processing_delay_ms: i64,
        scheduling_delay_ms: i64,
    ) -> Option<f64> {
        PidRateEstimator::compute(
            self,
            time_ms,
            num_elements,
            processing_delay_ms,
            scheduling_delay_ms,
        )
    }
}

//! The direct stream's settings given as string keys in the Kafka parameter map (the keys are in
//! [`crate::keys`]), for jobs configured from files, environment or the command line
//! (`spate quickstart -X ...`) rather than code: [`DirectStreamConfig::with_params`].

use std::time::Duration;

use crate::direct::config::DirectStreamConfig;
use crate::direct::params::KafkaParams;
use crate::error::{Result, SpateKafkaError};
use crate::keys::{
    BACKPRESSURE_ENABLED, BACKPRESSURE_INITIAL_RATE, CONSUMER_CACHE_MAX_CAPACITY, CONSUMER_POLL_MS,
    CONSUMER_PREFETCH_KBYTES, DIRECT_KEYS as KEYS, FAIL_ON_DATA_LOSS, MAX_RATE_PER_PARTITION,
    MIN_RATE_PER_PARTITION,
};

fn parse<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| SpateKafkaError::config(key, value, format!("expected {what}")))
}

impl DirectStreamConfig {
    /// `self` with the `spate.streaming.*` keys of `params` applied on top: keys given at
    /// deployment override what the code set. Unknown `spate.*` keys and malformed values are
    /// errors naming the key.
    pub fn with_params(mut self, params: &KafkaParams) -> Result<Self> {
        for (key, value) in params.spate_settings() {
            match key {
                MAX_RATE_PER_PARTITION => {
                    self = self.max_rate_per_partition(parse(key, value, "records per second")?);
                }
                MIN_RATE_PER_PARTITION => {
                    self = self.min_rate_per_partition(parse(key, value, "records per second")?);
                }
                BACKPRESSURE_ENABLED => self.backpressure = parse(key, value, "true or false")?,
                BACKPRESSURE_INITIAL_RATE => {
                    self.initial_rate = match value.trim() {
                        "none" | "unbounded" => None,
                        _ => {
                            let rate: f64 = parse(key, value, "records per second or none")?;
                            if !(rate.is_finite() && rate > 0.0) {
                                return Err(SpateKafkaError::config(
                                    key,
                                    value,
                                    "must be a positive rate, or none for an unbounded first batch",
                                ));
                            }
                            Some(rate)
                        }
                    };
                }
                FAIL_ON_DATA_LOSS => self.fail_on_data_loss = parse(key, value, "true or false")?,
                CONSUMER_POLL_MS => {
                    self.poll_timeout = Duration::from_millis(parse(key, value, "milliseconds")?);
                }
                CONSUMER_PREFETCH_KBYTES => {
                    self.prefetch_kbytes = parse(key, value, "KiB")?;
                }
                CONSUMER_CACHE_MAX_CAPACITY => {
                    self.consumer_cache_capacity = parse(key, value, "a count")?;
                }
                other => {
                    return Err(SpateKafkaError::config(
                        other,
                        value,
                        format!("unknown direct-stream setting; known: {}", KEYS.join(", ")),
                    ))
                }
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> KafkaParams {
        pairs.iter().fold(
            KafkaParams::new().set("bootstrap.servers", "b:9092"),
            |p, (k, v)| p.set(*k, *v),
        )
    }

    #[test]
    fn keys_override_the_code_and_stay_away_from_librdkafka() {
        let p = params(&[
            (MAX_RATE_PER_PARTITION, "500"),
            (MIN_RATE_PER_PARTITION, "5"),
            (BACKPRESSURE_ENABLED, "true"),
            (BACKPRESSURE_INITIAL_RATE, "none"),
            (FAIL_ON_DATA_LOSS, "false"),
            (CONSUMER_POLL_MS, "2500"),
            (CONSUMER_CACHE_MAX_CAPACITY, "8"),
        ]);
        let c = DirectStreamConfig::default()
            .max_rate_per_partition(10)
            .with_params(&p)
            .unwrap();
        assert_eq!(
            c.per_partition,
            crate::PerPartitionConfig::default()
                .max_rate_per_partition(500)
                .min_rate_per_partition(5)
        );
        assert!(c.backpressure);
        assert_eq!(c.initial_rate, None);
        assert!(!c.fail_on_data_loss);
        assert_eq!(c.poll_timeout, Duration::from_millis(2500));
        assert_eq!(c.consumer_cache_capacity, 8);
        for config in [p.driver_config().unwrap(), p.executor_config().unwrap()] {
            for key in KEYS {
                assert_eq!(config.get(key), None, "{key} reached librdkafka");
            }
        }
        let c = DirectStreamConfig::default()
            .with_params(&params(&[(BACKPRESSURE_INITIAL_RATE, "2500")]))
            .unwrap();
        assert_eq!(c.initial_rate, Some(2500.0));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = DirectStreamConfig::default()
            .with_params(&params(&[("spate.streaming.kafka.max.rate", "5")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("spate.streaming.kafka.max.rate"), "{err}");
        assert!(err.contains(MAX_RATE_PER_PARTITION), "{err}");
        for (key, value) in [
            (MAX_RATE_PER_PARTITION, "fast"),
            (BACKPRESSURE_ENABLED, "yes"),
            (BACKPRESSURE_INITIAL_RATE, "-1"),
            (CONSUMER_POLL_MS, "1.5"),
        ] {
            let err = DirectStreamConfig::default()
                .with_params(&params(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(value), "{err}");
        }
    }
}

//! Broker settings of the transaction coordinator, named and defaulted as Kafka's broker
//! configs (`transaction.*`, `transactional.id.*`).

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// Transaction coordinator configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (Kafka default 900000 = 15 min): InitProducerId asking for
    /// a longer `transaction.timeout.ms` gets INVALID_TRANSACTION_TIMEOUT.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (Kafka default 604800000 = 7 days): a transactional id
    /// with no transaction in progress and no update for this long is forgotten, so clients
    /// that create a fresh id per checkpoint do not grow the coordinator without bound.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (Kafka default 10000):
    /// how often transactions past their timeout are looked for and aborted.
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (Kafka default 3600000):
    /// how often expired transactional ids are removed.
    pub remove_expired_interval_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

impl TxnConfig {
    /// Whether `key` is one of the coordinator's broker configs.
    pub fn handles(key: &str) -> bool {
        matches!(
            key,
            "transaction.max.timeout.ms"
                | "transactional.id.expiration.ms"
                | "transaction.abort.timed.out.transaction.cleanup.interval.ms"
                | "transaction.remove.expired.transaction.cleanup.interval.ms"
        )
    }

    /// Sets one setting by its Kafka name; every value must be a positive integer.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let n: i64 = value
            .trim()
            .parse()
            .map_err(|_| BrokerError::invalid_config(key, value, "not an integer"))?;
        if n < 1 {
            return Err(BrokerError::invalid_config(
                key,
                value,
                "must be at least 1",
            ));
        }
        match key {
            "transaction.max.timeout.ms" => {
                self.max_timeout_ms = i32::try_from(n)
                    .map_err(|_| BrokerError::invalid_config(key, value, "out of range"))?
            }
            "transactional.id.expiration.ms" => self.id_expiration_ms = n,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.abort_timed_out_interval_ms = n
            }
            "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                self.remove_expired_interval_ms = n
            }
            _ => {
                return Err(BrokerError::invalid_config(
                    key,
                    value,
                    "unknown broker config",
                ))
            }
        }
        Ok(())
    }
}

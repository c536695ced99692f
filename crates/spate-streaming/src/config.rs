//! Configuration of a streaming context: a builder, a TOML file, and environment overrides.
//!
//! Every key lives in one table, [`KEYS`], with its default and meaning; the docs page of
//! configuration keys is generated from it, and an unknown or malformed key is an error at
//! [`Config::build`] that names the key. Precedence, lowest first: built-in defaults, TOML file
//! ([`Config::with_toml_file`]), builder calls (in call order, so a later call wins over an
//! earlier file), and finally environment variables: `spate.streaming.batch.interval.ms` is
//! overridden by `SPATE_STREAMING_BATCH_INTERVAL_MS` (upper case, dots become underscores), so
//! an operator can change a deployed job without recompiling it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::error::{Result, StreamingError};

/// One documented configuration key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// The key, e.g. `spate.streaming.batch.interval.ms`.
    pub key: &'static str,
    /// The default, as text (may describe a rule, e.g. `10 × batch interval`).
    pub default: &'static str,
    /// What the key controls.
    pub doc: &'static str,
}

/// Key: application name (logs, metrics source name).
pub const APP_NAME: &str = "spate.streaming.app.name";
/// Key: batch interval in milliseconds.
pub const BATCH_INTERVAL_MS: &str = "spate.streaming.batch.interval.ms";
/// Key: worker threads that run a batch's tasks.
pub const EXECUTOR_THREADS: &str = "spate.streaming.executor.threads";
/// Key: number of partitions of shuffles (reduce_by_key, joins, state) when not given.
pub const DEFAULT_PARALLELISM: &str = "spate.streaming.default.parallelism";
/// Key: graceful stop timeout in milliseconds.
pub const GRACEFUL_STOP_TIMEOUT_MS: &str = "spate.streaming.graceful.stop.timeout.ms";
/// Key: state snapshot interval in batches.
pub const CHECKPOINT_INTERVAL_BATCHES: &str = "spate.streaming.checkpoint.interval.batches";
/// Key: at most this many down-time batches are planned after a restart.
pub const RECOVERY_MAX_DOWNTIME_BATCHES: &str = "spate.streaming.recovery.max.downtime.batches";
/// Key: completed batches kept for the UI.
pub const UI_RETAINED_BATCHES: &str = "spate.streaming.ui.retained.batches";

/// All configuration keys of the streaming engine, with defaults and meaning.
pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        key: APP_NAME,
        default: "spate",
        doc: "Application name, used in logs and as the metrics source name (`<app>.StreamingMetrics`).",
    },
    ConfigKey {
        key: BATCH_INTERVAL_MS,
        default: "1000",
        doc: "Batch interval in milliseconds (>= 1; 10 ms works). Every window length and slide must be a multiple of it.",
    },
    ConfigKey {
        key: EXECUTOR_THREADS,
        default: "number of CPU cores",
        doc: "Size of the worker pool that runs a batch's partitions in parallel (>= 1).",
    },
    ConfigKey {
        key: DEFAULT_PARALLELISM,
        default: "executor threads",
        doc: "Partitions of a shuffle (reduce_by_key, joins, state operators) when the operator is not given a number (Spark's spark.default.parallelism).",
    },
    ConfigKey {
        key: GRACEFUL_STOP_TIMEOUT_MS,
        default: "10 × batch interval",
        doc: "How long stop(graceful = true) waits for planned batches to run and commit (Spark's spark.streaming.gracefulStopTimeout).",
    },
    ConfigKey {
        key: CHECKPOINT_INTERVAL_BATCHES,
        default: "10",
        doc: "With a checkpoint directory, operator state (update_state_by_key, map_with_state, windows) is snapshotted every this many batches; after a crash, batches since the snapshot are replayed from their recorded plans (Spark's mapWithState default: 10 × batch interval).",
    },
    ConfigKey {
        key: RECOVERY_MAX_DOWNTIME_BATCHES,
        default: "1000",
        doc: "After a restart from a checkpoint, batch times continue right after the last recorded batch and the batches of the down time are planned back to back (Spark reschedules all of them); at most this many are, then planning jumps to the current time. Windows stay exact across the gap.",
    },
    ConfigKey {
        key: UI_RETAINED_BATCHES,
        default: "1000",
        doc: "Completed batches kept in memory for the UI and metrics (Spark's spark.streaming.ui.retainedBatches).",
    },
];

/// The table of keys as Markdown (key, environment variable, default, meaning): the source of
/// `docs/configuration.md`.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| key | environment variable | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            k.key,
            env_var_for(k.key),
            k.default,
            k.doc
        ));
    }
    out
}

/// Environment variable that overrides `key`: upper case, dots become underscores.
pub fn env_var_for(key: &str) -> String {
    key.replace('.', "_").to_ascii_uppercase()
}

/// A configuration builder. Nothing is checked until [`Config::build`].
///
/// ```
/// use std::time::Duration;
/// use spate_streaming::Config;
///
/// let conf = Config::new("wordcount")
///     .batch_interval(Duration::from_millis(500))
///     .executor_threads(2)
///     .build_with_env(std::iter::empty())
///     .unwrap();
/// assert_eq!(conf.batch_interval, Duration::from_millis(500));
/// assert_eq!(conf.graceful_stop_timeout, Duration::from_millis(5000));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// A configuration with the given application name and defaults for everything else.
    pub fn new(app_name: impl Into<String>) -> Self {
        Config::default().set(APP_NAME, app_name.into())
    }

    /// Sets any key from the table [`KEYS`] by name (checked at build time).
    pub fn set(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.values.insert(key.into(), value.to_string());
        self
    }

    /// Batch interval (millisecond resolution).
    pub fn batch_interval(self, interval: Duration) -> Self {
        self.set(BATCH_INTERVAL_MS, interval.as_millis())
    }

    /// Worker pool size.
    pub fn executor_threads(self, n: usize) -> Self {
        self.set(EXECUTOR_THREADS, n)
    }

    /// Default shuffle partitions.
    pub fn default_parallelism(self, n: usize) -> Self {
        self.set(DEFAULT_PARALLELISM, n)
    }

    /// Graceful stop timeout.
    pub fn graceful_stop_timeout(self, timeout: Duration) -> Self {
        self.set(GRACEFUL_STOP_TIMEOUT_MS, timeout.as_millis())
    }

    /// State snapshot interval, in batches.
    pub fn checkpoint_interval_batches(self, n: u64) -> Self {
        self.set(CHECKPOINT_INTERVAL_BATCHES, n)
    }

    /// Completed batches retained for the UI.
    pub fn retained_batches(self, n: usize) -> Self {
        self.set(UI_RETAINED_BATCHES, n)
    }

    /// Down-time batches planned after a restart, at most.
    pub fn max_downtime_batches(self, n: u64) -> Self {
        self.set(RECOVERY_MAX_DOWNTIME_BATCHES, n)
    }

    /// Merges a TOML document. Keys may be dotted (`spate.streaming.batch.interval.ms = 500`) or
    /// nested tables (`[spate.streaming]` then `"batch.interval.ms" = 500`); both flatten to the
    /// same key. Values already set by the builder are overwritten.
    pub fn with_toml_str(mut self, text: &str, origin: &Path) -> Result<Self> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| StreamingError::ConfigFile {
                    path: origin.to_path_buf(),
                    message: e.to_string(),
                })?;
        let mut flat = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        self.values.extend(flat);
        Ok(self)
    }

    /// Merges a TOML file (see [`Config::with_toml_str`]).
    pub fn with_toml_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| StreamingError::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.with_toml_str(&text, path)
    }

    /// Validates, applying overrides from the process environment.
    pub fn build(&self) -> Result<StreamingConfig> {
        self.build_with_env(std::env::vars())
    }

    /// Validates, applying overrides from the given environment (for tests and embedding).
    pub fn build_with_env(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<StreamingConfig> {
        let mut values = self.values.clone();
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for k in KEYS {
            if let Some(v) = env.get(&env_var_for(k.key)) {
                values.insert(k.key.to_owned(), v.clone());
            }
        }
        if let Some(unknown) = values
            .keys()
            .find(|k| !KEYS.iter().any(|c| c.key == k.as_str()))
        {
            return Err(StreamingError::config(
                unknown.clone(),
                values[unknown].clone(),
                "unknown configuration key",
            ));
        }
        let app_name = values
            .get(APP_NAME)
            .cloned()
            .unwrap_or_else(|| "spate".to_owned());
        if app_name.trim().is_empty() {
            return Err(StreamingError::config(
                APP_NAME,
                app_name,
                "must not be empty",
            ));
        }
        let batch_ms = parse_u64(&values, BATCH_INTERVAL_MS, 1000)?;
        if batch_ms == 0 {
            return Err(StreamingError::config(
                BATCH_INTERVAL_MS,
                "0",
                "must be at least 1 ms",
            ));
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let threads = parse_u64(&values, EXECUTOR_THREADS, cores as u64)? as usize;
        if threads == 0 {
            return Err(StreamingError::config(
                EXECUTOR_THREADS,
                "0",
                "must be at least 1",
            ));
        }
        let parallelism = parse_u64(&values, DEFAULT_PARALLELISM, threads as u64)? as usize;
        if parallelism == 0 {
            return Err(StreamingError::config(
                DEFAULT_PARALLELISM,
                "0",
                "must be at least 1",
            ));
        }
        let stop_ms = parse_u64(
            &values,
            GRACEFUL_STOP_TIMEOUT_MS,
            batch_ms.saturating_mul(10),
        )?;
        let ckpt = parse_u64(&values, CHECKPOINT_INTERVAL_BATCHES, 10)?;
        if ckpt == 0 {
            return Err(StreamingError::config(
                CHECKPOINT_INTERVAL_BATCHES,
                "0",
                "must be at least 1",
            ));
        }
        let retained = parse_u64(&values, UI_RETAINED_BATCHES, 1000)? as usize;
        let max_downtime = parse_u64(&values, RECOVERY_MAX_DOWNTIME_BATCHES, 1000)?;
        Ok(StreamingConfig {
            app_name,
            batch_interval: Duration::from_millis(batch_ms),
            executor_threads: threads,
            default_parallelism: parallelism,
            graceful_stop_timeout: Duration::from_millis(stop_ms),
            checkpoint_interval_batches: ckpt,
            retained_batches: retained,
            max_downtime_batches: max_downtime,
        })
    }
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

fn parse_u64(values: &BTreeMap<String, String>, key: &str, default: u64) -> Result<u64> {
    match values.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| StreamingError::config(key, v.clone(), "expected a non-negative integer")),
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Application name.
    pub app_name: String,
    /// Batch interval.
    pub batch_interval: Duration,
    /// Worker pool size.
    pub executor_threads: usize,
    /// Default shuffle partitions.
    pub default_parallelism: usize,
    /// Graceful stop timeout.
    pub graceful_stop_timeout: Duration,
    /// State snapshot interval in batches.
    pub checkpoint_interval_batches: u64,
    /// Completed batches retained for the UI.
    pub retained_batches: usize,
    /// Down-time batches planned after a restart, at most.
    pub max_downtime_batches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_derived_defaults() {
        let c = Config::new("t")
            .batch_interval(Duration::from_millis(20))
            .build_with_env(env(&[]))
            .unwrap();
        assert_eq!(c.graceful_stop_timeout, Duration::from_millis(200));
        assert_eq!(c.default_parallelism, c.executor_threads);
        assert_eq!(c.retained_batches, 1000);
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = Config::new("t")
            .set(BATCH_INTERVAL_MS, "fast")
            .build_with_env(env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains(BATCH_INTERVAL_MS), "{err}");
        let err = Config::new("t")
            .batch_interval(Duration::ZERO)
            .build_with_env(env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains(BATCH_INTERVAL_MS), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::new("t")
            .set("spate.streaming.batch.intervall.ms", 5)
            .build_with_env(env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("batch.intervall.ms"), "{err}");
    }

    #[test]
    fn toml_then_builder_then_env() {
        let toml = "[spate.streaming]\n\"batch.interval.ms\" = 300\n\"executor.threads\" = 3\n";
        let c = Config::new("t")
            .with_toml_str(toml, Path::new("inline.toml"))
            .unwrap()
            .executor_threads(5)
            .build_with_env(env(&[("SPATE_STREAMING_BATCH_INTERVAL_MS", "40")]))
            .unwrap();
        assert_eq!(c.batch_interval, Duration::from_millis(40));
        assert_eq!(c.executor_threads, 5);
        let err = Config::new("t")
            .build_with_env(env(&[("SPATE_STREAMING_EXECUTOR_THREADS", "0")]))
            .unwrap_err();
        assert!(err.to_string().contains(EXECUTOR_THREADS));
    }

    #[test]
    fn markdown_table_lists_every_key() {
        let t = markdown_table();
        for k in KEYS {
            assert!(t.contains(k.key) && t.contains(&env_var_for(k.key)));
        }
        assert_eq!(t.lines().count(), KEYS.len() + 2);
    }

    #[test]
    fn bad_toml_names_the_file() {
        let err = Config::new("t")
            .with_toml_str("= nope", Path::new("job.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("job.toml"));
    }
}

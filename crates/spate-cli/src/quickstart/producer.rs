//! The quickstart's event source: YSB's live generator ([`spate_ysb::generator`]) on its own
//! thread, writing JSON ad events at `--rate` until the quickstart stops it.
//!
//! A resumed run continues the sequence: the first event number is the topic's total end
//! offset, and the event stream's seed is derived from it, so a second run adds new events
//! after the first run's instead of writing the same ones again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context as _};

use super::cluster::Cluster;
use super::job::SEED;
use spate_ysb::generator::{produce_at_rate, GeneratorConfig, LiveLoad};
use spate_ysb::{Encoding, YsbSetup};

/// "Until stopped": the generator takes a duration, and this one outlives any quickstart.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The running generator thread.
pub struct Producer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<LiveLoad>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stopping", &self.stop)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Starts writing `rate` events/s to `topic`; `first_event` is the number of events the
    /// topic already has.
    pub fn start(
        cluster: &Cluster,
        topic: &str,
        partitions: i32,
        rate: u64,
        first_event: u64,
    ) -> anyhow::Result<Self> {
        let config = GeneratorConfig {
            topic: topic.to_owned(),
            partitions,
            encoding: Encoding::Json,
            seed: SEED ^ first_event,
        };
        let client = cluster.client.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("spate-quickstart-producer".into())
            .spawn(move || {
                let setup = YsbSetup::new(SEED);
                let result = produce_at_rate(&client, &config, &setup, rate as f64, FOREVER, &flag)
                    .map_err(anyhow::Error::from);
                if let Err(e) = &result {
                    tracing::error!("the event producer stopped: {e:#}");
                }
                result
            })
            .context("could not start the producer thread")?;
        Ok(Producer { stop, thread })
    }

    /// Whether the generator is still writing (it stops by itself only on an error).
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops the generator, waits until its events are acknowledged, and returns how many it
    /// wrote in this run.
    pub fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let load = self
            .thread
            .join()
            .map_err(|_| anyhow!("the producer thread panicked"))??;
        Ok(load.events)
    }
}

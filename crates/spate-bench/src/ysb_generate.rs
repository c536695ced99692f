//! `spate ysb-generate`: YSB's live load generator on its own, in its own process, so that a
//! `spate bench ysb --mode live --generator-process` run measures the engine's CPU and memory
//! without the generator's. It offers events at a fixed rate (see
//! [`spate_ysb::generator::produce_at_rate`]) and prints what it achieved as one JSON line
//! ([`LiveLoad`]) on stdout when done.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::error::Result;
use clap::Args;
use spate_client::config::ClientArgs;
use spate_ysb::generator::produce_at_rate;
use spate_ysb::{Encoding, GeneratorConfig, LiveLoad, YsbSetup};

/// Options of `spate ysb-generate`.
#[derive(Args, Debug, Clone)]
pub struct YsbGenerateArgs {
    /// The broker to write to.
    #[arg(long)]
    pub bootstrap_server: String,
    /// The input topic the events go to.
    #[arg(long)]
    pub topic: String,
    /// Partitions of that topic; events are spread over them.
    #[arg(long, default_value_t = 2)]
    pub partitions: i32,
    /// Binary records instead of YSB's JSON.
    #[arg(long)]
    pub binary: bool,
    /// Events per second to offer.
    #[arg(long)]
    pub rate: f64,
    /// Seconds to offer them for.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seed of the YSB set-up (campaigns and ads; the job must use the same).
    #[arg(long, default_value_t = 2015)]
    pub setup_seed: u64,
    /// Seed of the event stream.
    #[arg(long, default_value_t = 2016)]
    pub seed: u64,
}

impl YsbGenerateArgs {
    /// The command-line arguments that reproduce these options (after `ysb-generate`).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--bootstrap-server".to_owned(),
            self.bootstrap_server.clone(),
            "--topic".to_owned(),
            self.topic.clone(),
            "--partitions".to_owned(),
            self.partitions.to_string(),
            "--rate".to_owned(),
            self.rate.to_string(),
            "--duration".to_owned(),
            self.duration.to_string(),
            "--setup-seed".to_owned(),
            self.setup_seed.to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ];
        if self.binary {
            args.push("--binary".to_owned());
        }
        args
    }
}

/// Offers the load and prints the [`LiveLoad`] as JSON on stdout.
pub fn run(args: YsbGenerateArgs) -> Result<()> {
    let client = ClientArgs::new(&args.bootstrap_server);
    let setup = YsbSetup::new(args.setup_seed);
    let config = GeneratorConfig {
        topic: args.topic.clone(),
        partitions: args.partitions,
        encoding: if args.binary {
            Encoding::Binary
        } else {
            Encoding::Json
        },
        seed: args.seed,
    };
    let stop = AtomicBool::new(false);
    let duration = Duration::from_secs_f64(args.duration.max(0.0));
    let load: LiveLoad = produce_at_rate(&client, &config, &setup, args.rate, duration, &stop)?;
    println!("{}", serde_json::to_string(&load)?);
    Ok(())
}

//! When the quickstart stops: Ctrl-C (SIGINT), SIGTERM, the end of `--duration`, or the job
//! or the producer stopping on their own (a failed batch terminates the streaming context; a
//! producer that cannot deliver gives up). Waiting happens on a
//! small tokio runtime, because tokio's signal handling is already a dependency and it lets one
//! `select!` cover every reason.

use std::time::Duration;

use anyhow::Context as _;
use spate_streaming::{ContextState, StreamingContext};

use crate::cli::broker::wait_for_signal;

/// Why the quickstart is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// `--duration` elapsed.
    DurationElapsed,
    /// The streaming context stopped by itself (see `await_termination` for the error).
    JobStopped,
    /// The event producer stopped by itself (it logged why).
    ProducerStopped,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Interrupted => "interrupted",
            StopReason::DurationElapsed => "duration elapsed",
            StopReason::JobStopped => "the job stopped",
            StopReason::ProducerStopped => "the producer stopped",
        })
    }
}

/// How often the context's state is looked at while waiting.
const STATE_POLL: Duration = Duration::from_millis(100);

/// Blocks until one of the reasons above happens; `duration` `None` waits for a signal.
/// `producer_running` is asked as often as the context's state.
pub fn wait(
    ctx: &StreamingContext,
    duration: Option<Duration>,
    producer_running: impl Fn() -> bool,
) -> anyhow::Result<StopReason> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the signal runtime")?;
    runtime.block_on(async {
        let deadline = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let stopped_by_itself = async {
            let mut tick = tokio::time::interval(STATE_POLL);
            loop {
                tick.tick().await;
                if ctx.state() == ContextState::Stopped {
                    return StopReason::JobStopped;
                }
                if !producer_running() {
                    return StopReason::ProducerStopped;
                }
            }
        };
        tokio::select! {
            r = wait_for_signal() => r.map(|()| StopReason::Interrupted),
            () = deadline => Ok(StopReason::DurationElapsed),
            reason = stopped_by_itself => Ok(reason),
        }
    })
}

/// From now on, Ctrl-C or SIGTERM ends the process at once (exit code 130): for a user whose
/// graceful stop takes too long. Called once the quickstart has begun to stop.
pub fn exit_on_next_signal() {
    let spawned = std::thread::Builder::new()
        .name("spate-quickstart-signal".into())
        .spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if runtime.block_on(wait_for_signal()).is_ok() {
                eprintln!("second interrupt: exiting without waiting for the graceful stop");
                std::process::exit(130);
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("no second-interrupt handler: {e}");
    }
}

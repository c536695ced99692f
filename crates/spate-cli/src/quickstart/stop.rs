//! When the quickstart stops: Ctrl-C (SIGINT), SIGTERM, the end of `--duration`, or the job
//! or the producer stopping on their own (a failed batch terminates the streaming context; a
//! producer that cannot deliver gives up).
//!
//! Signals are watched from the quickstart's first step ([`Interrupts::install`]), not only once
//! the job runs: a SIGTERM that arrives while the embedded broker recovers its log or the job
//! is being built would otherwise end the process by the signal's default action, with no
//! clean-shutdown marker and no summary. An interrupt during start-up makes the start-up stop at
//! the next step and return cleanly. Once stopping has begun, a further Ctrl-C or SIGTERM exits
//! at once (code 130), for a user whose graceful stop takes too long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use spate_streaming::{ContextState, StreamingContext};

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

/// How often the stop conditions are looked at while waiting.
const STATE_POLL: Duration = Duration::from_millis(50);

/// Exit code of a second interrupt: 128 + SIGINT, what shells report for Ctrl-C.
const EXIT_INTERRUPTED: i32 = 130;

/// Ctrl-C and SIGTERM, counted from the moment [`Interrupts::install`] returns.
#[derive(Debug, Clone)]
pub struct Interrupts {
    /// An interrupt has arrived.
    requested: Arc<AtomicBool>,
    /// The quickstart is already stopping: the next interrupt exits at once.
    stopping: Arc<AtomicBool>,
}

impl Interrupts {
    /// Installs the SIGINT and SIGTERM handlers (replacing the default action, which would end
    /// the process uncleanly) on a small thread of their own, and returns once they are in
    /// place.
    pub fn install() -> anyhow::Result<Interrupts> {
        let interrupts = Interrupts {
            requested: Arc::new(AtomicBool::new(false)),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let watcher = interrupts.clone();
        std::thread::Builder::new()
            .name("spate-quickstart-signals".into())
            .spawn(move || watcher.watch(&ready_tx))
            .context("starting the signal thread")?;
        ready_rx
            .recv()
            .context("the signal thread ended before installing its handlers")??;
        Ok(interrupts)
    }

    /// Whether Ctrl-C or SIGTERM has arrived.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// From now on, the next Ctrl-C or SIGTERM exits the process at once.
    pub fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The signal thread: registers the handlers, reports whether that worked, then counts
    /// signals for as long as the process lives.
    fn watch(self, ready: &mpsc::Sender<anyhow::Result<()>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = ready.send(Err(anyhow::Error::new(e).context("the signal runtime")));
                return;
            }
        };
        runtime.block_on(async {
            let mut signals = match Signals::register() {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            loop {
                signals.next().await;
                if self.stopping.load(Ordering::SeqCst) || self.requested() {
                    eprintln!("second interrupt: exiting without waiting for the graceful stop");
                    std::process::exit(EXIT_INTERRUPTED);
                }
                self.requested.store(true, Ordering::SeqCst);
            }
        });
    }
}

/// The registered SIGINT and SIGTERM streams.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn register() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Blocks until one of the reasons above happens; `duration` `None` waits for a signal.
/// `producer_running` is asked as often as the context's state.
pub fn wait(
    ctx: &StreamingContext,
    interrupts: &Interrupts,
    duration: Option<Duration>,
    producer_running: impl Fn() -> bool,
) -> StopReason {
    let deadline = duration.map(|d| Instant::now() + d);
    loop {
        if interrupts.requested() {
            return StopReason::Interrupted;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return StopReason::DurationElapsed;
        }
        if ctx.state() == ContextState::Stopped {
            return StopReason::JobStopped;
        }
        if !producer_running() {
            return StopReason::ProducerStopped;
        }
        std::thread::sleep(STATE_POLL);
    }
}

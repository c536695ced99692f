//! Where `spate`'s log lines go and how many there are. The commands print their own results
//! and progress on stdout/stderr; tracing lines are for diagnosing, so by default only warnings
//! and errors are shown, and `-v` (info) or `-vv` (debug) — or `RUST_LOG`, when no `-v` is
//! given — asks for more. Colour codes are written only when stderr is a terminal, so a log
//! file or a pipe gets plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The filter directive for `-v` given `verbosity` times.
pub fn level_for(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// The filter: `-v` when given (a flag on the command line beats the environment), else
/// `RUST_LOG` when set and valid, else warnings.
pub fn filter(verbosity: u8, rust_log: Option<&str>) -> EnvFilter {
    if verbosity == 0 {
        if let Some(directives) = rust_log.and_then(|s| EnvFilter::try_new(s).ok()) {
            return directives;
        }
    }
    EnvFilter::new(level_for(verbosity))
}

/// Installs the global subscriber: stderr, ANSI colour only on a terminal.
pub fn init(verbosity: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity, rust_log.as_deref()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_by_default_more_with_v() {
        assert_eq!(filter(0, None).to_string(), "warn");
        assert_eq!(filter(1, None).to_string(), "info");
        assert_eq!(filter(2, None).to_string(), "debug");
        assert_eq!(filter(5, None).to_string(), "trace");
    }

    #[test]
    fn rust_log_applies_without_v_and_v_wins_over_it() {
        assert_eq!(
            filter(0, Some("spate_kafka=debug")).to_string(),
            "spate_kafka=debug"
        );
        assert_eq!(filter(1, Some("spate_kafka=debug")).to_string(), "info");
        assert_eq!(filter(0, Some("=[not a filter")).to_string(), "warn");
    }
}

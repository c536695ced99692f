//! One module per `spate` subcommand; `main.rs` only parses and dispatches.

pub mod broker;

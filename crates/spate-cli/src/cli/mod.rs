//! One module per `spate` subcommand; `main.rs` only parses and dispatches. The client
//! commands (topics, produce, consume) are each modelled on the Kafka tool of the same job.

pub mod acls;
pub mod broker;
pub mod cleaner_status;
pub mod configs;
pub mod consume;
pub mod group_members;
pub mod groups;
pub mod produce;
pub mod raw_admin;
pub mod topics;
pub mod transactions;
pub mod users;

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// The commands as main.rs mounts them, so clap's own consistency checks (unique argument
    /// names, valid defaults) run in a unit test instead of at a user's first `--help`.
    #[derive(Parser)]
    enum Commands {
        Topics(super::topics::TopicsArgs),
        Produce(super::produce::ProduceArgs),
        Consume(super::consume::ConsumeArgs),
        Configs(super::configs::ConfigsArgs),
        Transactions(super::transactions::TransactionsArgs),
        Users(super::users::UsersArgs),
        Acls(super::acls::AclsArgs),
        Bench(spate_bench::BenchArgs),
    }

    #[test]
    fn command_definitions_are_consistent() {
        Commands::command().debug_assert();
    }

    #[test]
    fn flags_parse_like_kafkas_tools() {
        let parsed = Commands::try_parse_from([
            "spate",
            "topics",
            "create",
            "--topic",
            "t",
            "--partitions",
            "4",
            "--config",
            "retention.ms=1000",
            "-X",
            "client.id=x",
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        assert!(
            Commands::try_parse_from(["spate", "topics", "create", "a", "--topic", "b"]).is_err()
        );
        assert!(Commands::try_parse_from(["spate", "produce", "t", "--acks", "2"]).is_err());
        assert!(Commands::try_parse_from(["spate", "produce", "t", "--acks", "all"]).is_ok());
        assert!(Commands::try_parse_from([
            "spate",
            "consume",
            "t",
            "--group",
            "g",
            "--partition",
            "1"
        ])
        .is_err());
        assert!(Commands::try_parse_from(["spate", "consume", "t", "--offset", "x"]).is_err());
        assert!(Commands::try_parse_from([
            "spate",
            "bench",
            "broker",
            "--record-size",
            "100,1024,4096"
        ])
        .is_ok());
    }
}

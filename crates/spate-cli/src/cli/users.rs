//! `spate users add|list|delete`: SCRAM users, as `kafka-configs.sh --entity-type users
//! --alter --add-config 'SCRAM-SHA-512=[password=…]'` manages them. The password is salted here,
//! on the client (a random salt, PBKDF2 with the mechanism's hash, Kafka's AdminClient does the
//! same), and only the salted password is sent in AlterUserScramCredentials; `list` shows the
//! mechanisms and iteration counts DescribeUserScramCredentials reports, never a secret.
//!
//! It speaks the protocol over [`Connection`], with the security settings of every client command
//! (`--command-config FILE`, `-X`): a PLAINTEXT listener on a trusted interface (typically
//! 127.0.0.1) creates the first users; afterwards an admin user manages the rest over
//! `SASL_SSL`.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use spate_broker::security::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use spate_broker::security::ScramMechanism;

use super::raw_admin::{AdminArgs, Connection};

/// `spate users`.
#[derive(Args, Debug)]
pub struct UsersArgs {
    /// The broker and the client's security settings.
    #[command(flatten)]
    pub connect: AdminArgs,
    #[command(subcommand)]
    action: UsersAction,
}

/// The subcommands of `spate users`: SCRAM credentials (like kafka-configs.sh --entity-type users).
#[derive(Subcommand, Debug)]
pub enum UsersAction {
    /// Create a user or change its password (one credential per mechanism).
    Add {
        /// The user name (its principal is `User:<name>`).
        name: String,
        /// The password (salted here; the broker never sees it).
        #[arg(long)]
        password: String,
        /// SCRAM mechanisms to store the password for, repeatable.
        #[arg(
            long = "mechanism",
            value_name = "SCRAM-SHA-256|SCRAM-SHA-512",
            default_value = "SCRAM-SHA-512"
        )]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (Kafka's bounds: 4096 to 16384).
        #[arg(long, default_value_t = MIN_ITERATIONS)]
        iterations: i32,
    },
    /// List users and their SCRAM mechanisms (all users, or the ones named).
    List {
        /// The users to list; all when none is named.
        names: Vec<String>,
    },
    /// Delete a user's credentials (for the mechanisms given, or all it has).
    Delete {
        /// The user name.
        name: String,
        /// SCRAM mechanisms to delete the credential of, repeatable; all it has when none.
        #[arg(long = "mechanism", value_name = "SCRAM-SHA-256|SCRAM-SHA-512")]
        mechanisms: Vec<String>,
    },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::parse(name).with_context(|| {
        format!("unknown SCRAM mechanism {name:?} (SCRAM-SHA-256 or SCRAM-SHA-512)")
    })
}

/// Runs `spate users`.
pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    let mut conn = args.connect.connect()?;
    match args.action {
        UsersAction::Add {
            name,
            password,
            mechanisms,
            iterations,
        } => add(&mut conn, &name, &password, &mechanisms, iterations),
        UsersAction::List { names } => list(&mut conn, &names),
        UsersAction::Delete { name, mechanisms } => delete(&mut conn, &name, &mechanisms),
    }
}

/// One salted credential, as AlterUserScramCredentials carries it.
fn upsertion(
    name: &str,
    password: &str,
    mechanism: ScramMechanism,
    iterations: i32,
) -> ScramCredentialUpsertion {
    let salt: [u8; 32] = rand::random();
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations as u32);
    let mut up = ScramCredentialUpsertion::default();
    up.name = StrBytes::from(name.to_string());
    up.mechanism = mechanism.code();
    up.iterations = iterations;
    up.salt = Bytes::copy_from_slice(&salt);
    up.salted_password = Bytes::from(salted);
    up
}

fn add(
    conn: &mut Connection,
    name: &str,
    password: &str,
    mechanisms: &[String],
    iterations: i32,
) -> anyhow::Result<()> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        bail!("--iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}");
    }
    if password.is_empty() {
        bail!("--password must not be empty");
    }
    let mut req = AlterUserScramCredentialsRequest::default();
    for m in mechanisms {
        req.upsertions
            .push(upsertion(name, password, mechanism(m)?, iterations));
    }
    alter(conn, &req)?;
    let names: Vec<&str> = req
        .upsertions
        .iter()
        .filter_map(|u| ScramMechanism::from_code(u.mechanism).map(|m| m.name()))
        .collect();
    println!(
        "Completed updating SCRAM credentials for user {name}: {} (iterations={iterations})",
        names.join(", ")
    );
    Ok(())
}

fn alter(conn: &mut Connection, req: &AlterUserScramCredentialsRequest) -> anyhow::Result<()> {
    let resp = conn.call(req, 0)?;
    for r in &resp.results {
        if r.error_code != 0 {
            let code = ResponseError::try_from_code(r.error_code)
                .map(|e| format!("{e:?}"))
                .unwrap_or_else(|| r.error_code.to_string());
            bail!(
                "user {}: {code}: {}",
                r.user.as_str(),
                r.error_message.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// A user's SCRAM mechanisms with their iteration counts.
type UserCredentials = Vec<(ScramMechanism, i32)>;

/// The mechanisms and iterations of users (all of them when `names` is empty).
fn describe(
    conn: &mut Connection,
    names: &[String],
) -> anyhow::Result<Vec<(String, UserCredentials)>> {
    let mut req = DescribeUserScramCredentialsRequest::default();
    req.users = (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| {
                let mut u = UserName::default();
                u.name = StrBytes::from(n.clone());
                u
            })
            .collect()
    });
    let resp = conn.call(&req, 0)?;
    if resp.error_code != 0 {
        bail!(
            "DescribeUserScramCredentials failed: {}",
            resp.error_message.as_deref().unwrap_or("error")
        );
    }
    let mut out = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            bail!(
                "user {}: {}",
                r.user.as_str(),
                r.error_message.as_deref().unwrap_or("error")
            );
        }
        let creds = r
            .credential_infos
            .iter()
            .filter_map(|c| Some((ScramMechanism::from_code(c.mechanism)?, c.iterations)))
            .collect();
        out.push((r.user.to_string(), creds));
    }
    Ok(out)
}

fn list(conn: &mut Connection, names: &[String]) -> anyhow::Result<()> {
    for (user, creds) in describe(conn, names)? {
        let shown: Vec<String> = creds
            .iter()
            .map(|(m, i)| format!("{}=iterations={i}", m.name()))
            .collect();
        println!(
            "SCRAM credential configs for user-principal '{user}' are {}",
            shown.join(", ")
        );
    }
    Ok(())
}

fn delete(conn: &mut Connection, name: &str, mechanisms: &[String]) -> anyhow::Result<()> {
    let mechanisms: Vec<ScramMechanism> = if mechanisms.is_empty() {
        describe(conn, &[name.to_string()])?
            .into_iter()
            .flat_map(|(_, creds)| creds.into_iter().map(|(m, _)| m))
            .collect()
    } else {
        mechanisms
            .iter()
            .map(|m| mechanism(m))
            .collect::<anyhow::Result<_>>()?
    };
    let mut req = AlterUserScramCredentialsRequest::default();
    for m in &mechanisms {
        let mut d = ScramCredentialDeletion::default();
        d.name = StrBytes::from(name.to_string());
        d.mechanism = m.code();
        req.deletions.push(d);
    }
    alter(conn, &req)?;
    let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
    println!(
        "Deleted SCRAM credentials for user {name}: {}",
        names.join(", ")
    );
    Ok(())
}

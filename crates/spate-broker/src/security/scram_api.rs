//! AlterUserScramCredentials (API 51) and DescribeUserScramCredentials (API 50): managing SCRAM
//! users over the protocol, as `kafka-configs.sh --entity-type users` does. Clients salt the
//! password themselves and send only the salted password (Kafka's AdminClient does), so the
//! broker never sees it; it keeps StoredKey and ServerKey ([`super::scram`]).
//!
//! Errors follow Kafka's: an unknown mechanism is UNSUPPORTED_SASL_MECHANISM, iterations outside
//! 4096..=16384 or an empty name, salt or salted password UNACCEPTABLE_CREDENTIAL, a user named
//! twice for one mechanism DUPLICATE_RESOURCE, deleting or describing what does not exist
//! RESOURCE_NOT_FOUND. One result per user; a user with any bad alteration gets none applied.
//! Altering needs ALTER on the cluster, describing DESCRIBE (else CLUSTER_AUTHORIZATION_FAILED).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::scram::{Credentials, ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::error::Result;
use crate::handlers::{HandlerRegistry, RequestContext};
use crate::state::BrokerState;

type Refusal = (ResponseError, String);

/// One requested change for a user.
enum Change {
    Upsert(ScramMechanism, ScramCredential),
    Delete(ScramMechanism),
}

fn refuse(code: ResponseError, message: &str) -> Refusal {
    (code, message.to_string())
}

fn mechanism_of(code: i8) -> std::result::Result<ScramMechanism, Refusal> {
    ScramMechanism::from_code(code).ok_or_else(|| {
        refuse(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        )
    })
}

/// The request's alterations grouped by user (in request order), each checked on its own.
fn collect_changes(
    req: &AlterUserScramCredentialsRequest,
) -> Vec<(String, std::result::Result<Vec<Change>, Refusal>)> {
    let mut by_user: Vec<(String, std::result::Result<Vec<Change>, Refusal>)> = Vec::new();
    let mut push = |name: &str, change: std::result::Result<Change, Refusal>| {
        let idx = match by_user.iter().position(|(u, _)| u == name) {
            Some(i) => i,
            None => {
                by_user.push((name.to_string(), Ok(Vec::new())));
                by_user.len() - 1
            }
        };
        let entry = &mut by_user[idx].1;
        match (entry.as_mut(), change) {
            (Err(_), _) => {}
            (Ok(_), Err(refusal)) => *entry = Err(refusal),
            (Ok(list), Ok(change)) => {
                let mech = match &change {
                    Change::Upsert(m, _) | Change::Delete(m) => *m,
                };
                if list
                    .iter()
                    .any(|c| matches!(c, Change::Upsert(m, _) | Change::Delete(m) if *m == mech))
                {
                    *entry = Err(refuse(
                        ResponseError::DuplicateResource,
                        "A user credential cannot be altered twice in the same request",
                    ));
                } else {
                    list.push(change);
                }
            }
        }
    };
    for d in &req.deletions {
        push(
            &d.name,
            check_name(&d.name).and_then(|_| Ok(Change::Delete(mechanism_of(d.mechanism)?))),
        );
    }
    for u in &req.upsertions {
        let change = check_name(&u.name).and_then(|_| {
            let mech = mechanism_of(u.mechanism)?;
            if u.iterations < MIN_ITERATIONS {
                return Err(refuse(
                    ResponseError::UnacceptableCredential,
                    "Too few iterations",
                ));
            }
            if u.iterations > MAX_ITERATIONS {
                return Err(refuse(
                    ResponseError::UnacceptableCredential,
                    "Too many iterations",
                ));
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err(refuse(
                    ResponseError::UnacceptableCredential,
                    "Salt and salted password must not be empty",
                ));
            }
            Ok(Change::Upsert(
                mech,
                ScramCredential::new(mech, &u.salt, &u.salted_password, u.iterations as u32),
            ))
        });
        push(&u.name, change);
    }
    by_user
}

fn check_name(name: &str) -> std::result::Result<(), Refusal> {
    match name.is_empty() {
        true => Err(refuse(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        )),
        false => Ok(()),
    }
}

/// Applies one user's changes to `users`, or refuses them all.
fn apply(
    users: &mut Credentials,
    user: &str,
    changes: Vec<Change>,
) -> std::result::Result<(), Refusal> {
    let mut mine = users.get(user).cloned().unwrap_or_default();
    for change in changes {
        match change {
            Change::Upsert(m, cred) => {
                mine.insert(m, cred);
            }
            Change::Delete(m) => {
                if mine.remove(&m).is_none() {
                    return Err(refuse(
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    ));
                }
            }
        }
    }
    users.insert(user.to_string(), mine);
    Ok(())
}

fn alter_result(
    user: String,
    outcome: std::result::Result<(), Refusal>,
) -> AlterUserScramCredentialsResult {
    let mut r = AlterUserScramCredentialsResult::default();
    r.user = StrBytes::from(user);
    if let Err((code, message)) = outcome {
        r.error_code = code.code();
        r.error_message = Some(StrBytes::from(message));
    }
    r
}

/// AlterUserScramCredentials: sets or deletes users' SCRAM credentials.
pub(crate) async fn alter(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> Result<AlterUserScramCredentialsResponse> {
    let changes = collect_changes(&req);
    if !ctx.authz(&state).cluster(crate::acl::AclOperation::Alter) {
        let mut resp = AlterUserScramCredentialsResponse::default();
        resp.results = changes
            .into_iter()
            .map(|(u, _)| {
                let why = refuse(
                    ResponseError::ClusterAuthorizationFailed,
                    "Authorization failed.",
                );
                alter_result(u, Err(why))
            })
            .collect();
        return Ok(resp);
    }
    let outcomes = state.security.scram.update(|users| {
        changes
            .into_iter()
            .map(|(user, changes)| {
                let outcome = changes.and_then(|c| apply(users, &user, c));
                (user, outcome)
            })
            .collect::<Vec<_>>()
    })?;
    for (user, outcome) in &outcomes {
        if outcome.is_ok() {
            tracing::info!(principal = %ctx.auth.principal(), %user, "SCRAM credentials altered");
        }
    }
    let mut resp = AlterUserScramCredentialsResponse::default();
    resp.results = outcomes
        .into_iter()
        .map(|(u, o)| alter_result(u, o))
        .collect();
    Ok(resp)
}

fn describe_result(
    user: &str,
    creds: Option<&BTreeMap<ScramMechanism, ScramCredential>>,
    duplicate: bool,
) -> DescribeUserScramCredentialsResult {
    let mut r = DescribeUserScramCredentialsResult::default();
    r.user = StrBytes::from(user.to_string());
    let refusal = match (duplicate, creds) {
        (true, _) => Some(refuse(
            ResponseError::DuplicateResource,
            "Cannot describe SCRAM credentials for the same user twice in a single request",
        )),
        (false, None) => Some(refuse(
            ResponseError::ResourceNotFound,
            "Attempt to describe a user credential that does not exist",
        )),
        (false, Some(creds)) => {
            r.credential_infos = creds
                .iter()
                .map(|(m, c)| {
                    let mut info = CredentialInfo::default();
                    info.mechanism = m.code();
                    info.iterations = c.iterations as i32;
                    info
                })
                .collect();
            None
        }
    };
    if let Some((code, message)) = refusal {
        r.error_code = code.code();
        r.error_message = Some(StrBytes::from(message));
    }
    r
}

/// DescribeUserScramCredentials: the mechanisms and iterations of users' credentials.
pub(crate) async fn describe(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> Result<DescribeUserScramCredentialsResponse> {
    let all = state.security.scram.all();
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if !ctx
        .authz(&state)
        .cluster(crate::acl::AclOperation::Describe)
    {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = Some(StrBytes::from_static_str("Authorization failed."));
        return Ok(resp);
    }
    resp.results = match req.users.filter(|u| !u.is_empty()) {
        None => all
            .iter()
            .map(|(user, creds)| describe_result(user, Some(creds), false))
            .collect(),
        Some(users) => users
            .iter()
            .map(|u| {
                let twice = users.iter().filter(|o| o.name == u.name).count() > 1;
                describe_result(&u.name, all.get(u.name.as_str()), twice)
            })
            .collect(),
    };
    Ok(resp)
}

/// Registers both APIs.
pub fn register(r: &mut HandlerRegistry) {
    r.register::<DescribeUserScramCredentialsRequest, _, _>(0, 0, describe)
        .register::<AlterUserScramCredentialsRequest, _, _>(0, 0, alter);
}

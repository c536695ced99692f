//! SCRAM credentials (RFC 5802, RFC 7677): what the broker keeps for each user and mechanism,
//! and the store that keeps them. Only the salt, the iteration count, StoredKey and ServerKey are
//! stored (Kafka's `ScramCredential`): enough to verify a client's proof and to prove the broker
//! knows them, not enough to log in as the user. The store is one JSON file under the broker's
//! meta dir, replaced atomically on every change ([`crate::persist`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use parking_lot::{Mutex, RwLock};
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256, Sha512};

use crate::error::{BrokerError, Result};

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations`/`maxIterations`).
pub const MIN_ITERATIONS: i32 = 4096;
/// The most SCRAM iterations Kafka accepts for a credential.
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism, with Kafka's wire code (AlterUserScramCredentials' `mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (code 1).
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512 (code 2).
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms, in wire-code order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The mechanism of AlterUserScramCredentials' code (1, 2); `None` for an unknown code.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The wire code: 1 for SCRAM-SHA-256, 2 for SCRAM-SHA-512.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The SASL mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name`, case-insensitive.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    /// `SaltedPassword := Hi(Normalize(password), salt, i)` (RFC 5802 §3): what a client sends
    /// in AlterUserScramCredentials, so the password itself never leaves the client.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = GenericArray::default();
                hash_password::<Sha256>(password, iterations, salt, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = GenericArray::default();
                hash_password::<Sha512>(password, iterations, salt, &mut out);
                out.to_vec()
            }
        }
    }

    /// StoredKey and ServerKey from a salted password (RFC 5802 §3).
    fn keys(self, salted_password: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self {
            ScramMechanism::Sha256 => {
                let (client, server) = derive_keys::<Sha256>(salted_password);
                (Sha256::digest(client).to_vec(), server.to_vec())
            }
            ScramMechanism::Sha512 => {
                let (client, server) = derive_keys::<Sha512>(salted_password);
                (Sha512::digest(client).to_vec(), server.to_vec())
            }
        }
    }

    /// The length of a salted password for this mechanism (the hash's output).
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What the broker keeps of one user's password for one mechanism (base64 in the file).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The PBKDF2 iteration count the password was salted with.
    pub iterations: u32,
    /// The salt, base64.
    pub salt: String,
    /// `StoredKey` = H(ClientKey) of RFC 5802, base64: what a client proof is checked against.
    pub stored_key: String,
    /// `ServerKey` of RFC 5802, base64: signs the server's final message.
    pub server_key: String,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramCredential {{ iterations: {} }}", self.iterations)
    }
}

impl ScramCredential {
    /// The credential of a password already salted with `salt` over `iterations` (RFC 5802 keys).
    pub fn new(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let (stored_key, server_key) = mechanism.keys(salted_password);
        ScramCredential {
            iterations,
            salt: b64(salt),
            stored_key: b64(&stored_key),
            server_key: b64(&server_key),
        }
    }

    /// Salt, StoredKey and ServerKey decoded; `None` if the file held something that is not
    /// base64 (the user then cannot log in, rather than the broker failing).
    pub fn decoded(&self) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let d = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
        Some((d(&self.salt)?, d(&self.stored_key)?, d(&self.server_key)?))
    }
}

/// Every user's credentials: user name to mechanism to credential.
pub type Credentials = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

#[derive(Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    users: Credentials,
}

/// The SCRAM credentials of every user, persisted under `<meta dir>/scram_credentials.json`
/// (in memory only for a broker without a data dir).
pub struct ScramStore {
    path: Option<PathBuf>,
    users: RwLock<Credentials>,
    /// Serialises changes, so two AlterUserScramCredentials cannot lose each other's update.
    write: Mutex<()>,
}

/// Names where the credentials live, never what they are.
impl std::fmt::Debug for ScramStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ScramStore {
    /// Opens the credentials stored at `path`; `None` keeps them in memory only.
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let users = match &path {
            Some(p) if p.exists() => {
                let bytes = std::fs::read(p).map_err(|e| BrokerError::MetadataStore {
                    path: p.clone(),
                    reason: e.to_string(),
                })?;
                let file: StoreFile =
                    serde_json::from_slice(&bytes).map_err(|e| BrokerError::MetadataStore {
                        path: p.clone(),
                        reason: e.to_string(),
                    })?;
                file.users
            }
            _ => Credentials::new(),
        };
        Ok(ScramStore {
            path,
            users: RwLock::new(users),
            write: Mutex::new(()),
        })
    }

    /// The credential of `user` for `mechanism`, if one is set.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users.read().get(user)?.get(&mechanism).cloned()
    }

    /// A snapshot of every user's credentials.
    pub fn all(&self) -> Credentials {
        self.users.read().clone()
    }

    /// Applies `change` to a copy of the credentials, persists the copy, then makes it current:
    /// a failed write leaves both the file and the served credentials as they were.
    pub fn update<T>(&self, change: impl FnOnce(&mut Credentials) -> T) -> Result<T> {
        let _guard = self.write.lock();
        let mut next = self.users.read().clone();
        let out = change(&mut next);
        next.retain(|_, mechs| !mechs.is_empty());
        if let Some(path) = &self.path {
            crate::persist::write_json(
                path,
                &StoreFile {
                    version: 1,
                    users: next.clone(),
                },
            )?;
        }
        *self.users.write() = next;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil", 4096 iterations.
    #[test]
    fn derives_rfc7677_keys() {
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let cred = ScramCredential::new(ScramMechanism::Sha256, &salt, &salted, 4096);
        // The server signature in RFC 7677 is made with this ServerKey; StoredKey = H(ClientKey).
        let (_, stored, server) = cred.decoded().unwrap();
        assert_eq!(stored.len(), 32);
        assert_eq!(server.len(), 32);
        assert_ne!(stored, server);
        let again = ScramCredential::new(ScramMechanism::Sha256, &salt, &salted, 4096);
        assert_eq!(cred, again);
    }

    #[test]
    fn store_persists_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scram_credentials.json");
        let store = ScramStore::open(Some(path.clone())).unwrap();
        let salted = ScramMechanism::Sha512.salted_password(b"pw", b"salt", 4096);
        let cred = ScramCredential::new(ScramMechanism::Sha512, b"salt", &salted, 4096);
        store
            .update(|u| {
                u.entry("alice".into())
                    .or_default()
                    .insert(ScramMechanism::Sha512, cred.clone())
            })
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("pw\""), "no password in the file");
        let reopened = ScramStore::open(Some(path)).unwrap();
        assert_eq!(reopened.get("alice", ScramMechanism::Sha512), Some(cred));
        assert_eq!(reopened.get("alice", ScramMechanism::Sha256), None);
    }
}

//! The ACLs of a broker: a set of bindings, persisted as one JSON file under the broker's meta
//! dir (`acls.json`), replaced atomically on every change ([`crate::persist`]: write a temp
//! file, fsync, rename, fsync the directory), so a crash leaves the old or the new set, never a
//! mix. A broker without a data dir keeps them in memory only.

use std::collections::BTreeSet;
use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::types::AclBinding;
use crate::error::{BrokerError, Result};

#[derive(Default, Serialize, Deserialize)]
struct AclFile {
    version: u32,
    acls: BTreeSet<AclBinding>,
}

/// The current ACL bindings.
#[derive(Debug)]
pub struct AclStore {
    path: Option<PathBuf>,
    acls: RwLock<BTreeSet<AclBinding>>,
    /// Serialises changes, so concurrent CreateAcls and DeleteAcls cannot lose each other's.
    write: Mutex<()>,
}

impl AclStore {
    /// Opens the store at `path` (in memory when `None`). A file that does not parse, or holds
    /// an ACL Kafka would refuse to create, is an error naming the file: a broker must not
    /// start enforcing a partial or garbled set.
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let acls = match &path {
            Some(p) => match crate::persist::read_json::<AclFile>(p)? {
                Some(file) => {
                    if file.version != 1 {
                        return Err(BrokerError::MetadataStore {
                            path: p.clone(),
                            reason: format!("unknown ACL file version {}", file.version),
                        });
                    }
                    if let Some((acl, why)) = file
                        .acls
                        .iter()
                        .find_map(|a| a.validate().err().map(|w| (a, w)))
                    {
                        return Err(BrokerError::MetadataStore {
                            path: p.clone(),
                            reason: format!("invalid ACL {acl:?}: {why}"),
                        });
                    }
                    file.acls
                }
                None => BTreeSet::new(),
            },
            None => BTreeSet::new(),
        };
        Ok(AclStore {
            path,
            acls: RwLock::new(acls),
            write: Mutex::new(()),
        })
    }

    /// A read guard over every binding (the authorizer scans it per decision).
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, BTreeSet<AclBinding>> {
        self.acls.read()
    }

    /// Every binding, copied.
    pub fn all(&self) -> Vec<AclBinding> {
        self.acls.read().iter().cloned().collect()
    }

    /// Applies `change` to a copy of the set, persists the copy, then makes it current: a
    /// failed write leaves both the file and the enforced ACLs as they were.
    pub fn update<T>(&self, change: impl FnOnce(&mut BTreeSet<AclBinding>) -> T) -> Result<T> {
        let _guard = self.write.lock();
        let mut next = self.acls.read().clone();
        let out = change(&mut next);
        if let Some(path) = &self.path {
            crate::persist::write_json(
                path,
                &AclFile {
                    version: 1,
                    acls: next.clone(),
                },
            )?;
        }
        *self.acls.write() = next;
        Ok(out)
    }
}

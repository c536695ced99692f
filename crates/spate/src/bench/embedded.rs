//! The embedded broker as a benchmark target: started in this process on `127.0.0.1:0`, with
//! segment files in a temp dir (or a given dir) or in-memory storage, stopped on drop.

use std::path::PathBuf;

use anyhow::bail;

/// Where the embedded broker keeps partition logs.
pub enum Storage {
    /// Segment files under the given dir, or a fresh temp dir deleted on drop.
    Disk(Option<PathBuf>),
    Memory,
}

pub struct EmbeddedBroker {
    bootstrap: String,
    description: String,
}

impl EmbeddedBroker {
    pub fn start(_storage: Storage) -> anyhow::Result<Self> {
        bail!("the embedded broker is not in this build yet; pass --bootstrap-server")
    }

    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    pub fn description(&self) -> String {
        self.description.clone()
    }
}

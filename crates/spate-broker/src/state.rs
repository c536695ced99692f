//! [`BrokerState`]: everything a request handler can reach — configuration, the topic registry
//! (and through it every partition), the producer id allocator, the handler registry, and a
//! typed extension slot for subsystems that live beside the request path (the group
//! coordinator keeps its state there, so this file does not need to know its types).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::handlers::HandlerRegistry;
use crate::producer_state::ProducerIdAllocator;
use crate::topics::TopicRegistry;

/// Where clients are told to connect (Metadata, DescribeCluster, FindCoordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A map from type to one shared value of that type.
#[derive(Default)]
pub struct Extensions {
    map: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// The value of type `T`, created by `init` on first use.
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.map.lock();
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(init()) as Arc<dyn Any + Send + Sync>)
            .clone();
        drop(map);
        // The entry under TypeId::of::<T>() always holds a T.
        match entry.downcast::<T>() {
            Ok(v) => v,
            Err(_) => unreachable_type(),
        }
    }

    /// The value of type `T`, if one was set.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let entry = self.map.lock().get(&TypeId::of::<T>())?.clone();
        entry.downcast::<T>().ok()
    }

    /// Sets (or replaces) the value of type `T`.
    pub fn insert<T: Any + Send + Sync>(&self, value: Arc<T>) {
        self.map.lock().insert(TypeId::of::<T>(), value);
    }
}

#[cold]
fn unreachable_type() -> ! {
    unreachable!("extension map holds a value of another type under a TypeId")
}

/// State shared by every connection and handler.
pub struct BrokerState {
    pub config: BrokerConfig,
    pub advertised: Advertised,
    pub topics: TopicRegistry,
    pub producer_ids: ProducerIdAllocator,
    pub apis: HandlerRegistry,
    pub extensions: Extensions,
    /// Cancelled when the broker shuts down; long waits (Fetch long-polls) and background
    /// tasks of subsystems watch it.
    pub shutdown: CancellationToken,
    /// Run once on clean shutdown, after the last request finished and before the partition
    /// logs are flushed and closed (in registration order).
    pub(crate) shutdown_hooks: Mutex<Vec<ShutdownHook>>,
}

/// Work a subsystem needs done on clean shutdown (e.g. the group coordinator flushing its
/// offsets log).
pub type ShutdownHook = Box<dyn FnOnce() -> crate::error::Result<()> + Send>;

impl BrokerState {
    pub fn data_dir(&self) -> Option<&Path> {
        self.config.data_dir.as_deref()
    }

    /// Registers work to run on clean shutdown (see [`ShutdownHook`]).
    pub fn on_shutdown(&self, hook: impl FnOnce() -> crate::error::Result<()> + Send + 'static) {
        self.shutdown_hooks.lock().push(Box::new(hook));
    }

    /// Takes the registered shutdown hooks (each runs once).
    pub(crate) fn take_shutdown_hooks(&self) -> Vec<ShutdownHook> {
        std::mem::take(&mut *self.shutdown_hooks.lock())
    }

    /// Directory for broker metadata files (`<data dir>/meta`), if the broker persists.
    pub fn meta_dir(&self) -> Option<PathBuf> {
        self.data_dir().map(|d| d.join("meta"))
    }
}

#[cfg(test)]
mod tests {
    use super::Extensions;

    #[test]
    fn extensions_are_typed() {
        let e = Extensions::default();
        assert!(e.get::<u32>().is_none());
        let a = e.get_or_init(|| 5u32);
        let b = e.get_or_init(|| 6u32);
        assert_eq!((*a, *b), (5, 5));
        e.insert(std::sync::Arc::new(String::from("x")));
        assert_eq!(e.get::<String>().unwrap().as_str(), "x");
    }
}

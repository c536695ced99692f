//! [`MemoryBudget`]: how many bytes of received records a receiver may hold in memory at once —
//! in the block generator's buffer, in its queue, and in stored blocks that a batch has not
//! finished with — and the [`BudgetPermit`] each block carries.
//!
//! A receiver reads as fast as its source delivers; batches free blocks only once they are done.
//! Without a bound a receiver that outruns its batches keeps everything it read (the whole topic,
//! when catching up). With one, `store` waits while the budget is spent: the receiver stops
//! polling, and the source (Kafka's consumer, with its own bounded pre-fetch) holds the rest.
//!
//! Bytes are acquired record by record when stored and travel with the block that holds the
//! records: its permit returns them when the last reference to the block is dropped — when the
//! block store removes it after its batch completed (and, with the write-ahead log, it is durable
//! long before that), or when a failed push drops it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// A byte budget shared by a receiver's block generator and the blocks it cut. See the module
/// docs.
#[derive(Debug)]
pub struct MemoryBudget {
    capacity: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl MemoryBudget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            capacity: capacity.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// The budget in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently held.
    pub fn used(&self) -> usize {
        *self.used.lock()
    }

    /// Takes `bytes`, waiting while they do not fit, unless `give_up()` turns true (checked every
    /// 10 ms). A request is granted whenever nothing is held, so a record larger than the whole
    /// budget still goes through (alone). Returns false when it gave up.
    pub fn acquire_unless(&self, bytes: usize, give_up: impl Fn() -> bool) -> bool {
        let mut used = self.used.lock();
        while *used > 0 && used.saturating_add(bytes) > self.capacity {
            if give_up() {
                return false;
            }
            let _ = self.freed.wait_for(&mut used, Duration::from_millis(10));
        }
        *used = used.saturating_add(bytes);
        true
    }

    /// Returns `bytes`.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut used = self.used.lock();
        *used = used.saturating_sub(bytes);
        self.freed.notify_all();
    }
}

/// Bytes of a [`MemoryBudget`] held by one block, returned when the block is dropped. Cloning a
/// block does not clone its permit (the clone is not accounted), and permits never make blocks
/// unequal.
#[derive(Debug, Default)]
pub struct BudgetPermit {
    held: Option<(Arc<MemoryBudget>, usize)>,
}

impl BudgetPermit {
    /// A permit returning `bytes` (already acquired) to `budget` on drop.
    pub(crate) fn new(budget: Arc<MemoryBudget>, bytes: usize) -> Self {
        BudgetPermit {
            held: Some((budget, bytes)),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |(_, n)| *n)
    }
}

impl Clone for BudgetPermit {
    fn clone(&self) -> Self {
        BudgetPermit::default()
    }
}

impl PartialEq for BudgetPermit {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for BudgetPermit {}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        if let Some((budget, bytes)) = self.held.take() {
            budget.release(bytes);
        }
    }
}

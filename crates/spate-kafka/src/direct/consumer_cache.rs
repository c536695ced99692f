//! [`ConsumerCache`]: task consumers reused across batches, keyed by (group, topic-partition),
//! so that a partition read every batch keeps its connection and prefetched data.
//!
//! Spark's cache hands out shared consumers guarded by an `inUse` flag, and every path that
//! forgot the flag became a `ConcurrentModificationException`. Here the cache
//! holds only *idle* consumers: [`ConsumerCache::checkout`] moves one out (or creates a new one),
//! so the [`ConsumerLease`] is its only owner, and dropping the lease checks it back in. Two
//! tasks on the same key simply get two consumers. Idle consumers are bounded; the least
//! recently used one is closed first. A lease whose read failed is [`ConsumerLease::invalidate`]d
//! and closed instead of going back (Spark invalidates on task retry).

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::direct::offset_range::TopicPartition;

/// Cache key: the consumer group and the partition the consumer is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The consumer's `group.id`.
    pub group: String,
    /// The partition it is assigned to.
    pub tp: TopicPartition,
}

struct Inner<C> {
    capacity: usize,
    /// Idle consumers, most recently checked in at the front.
    idle: Mutex<VecDeque<(CacheKey, C)>>,
}

/// Bounded LRU cache of idle consumers. Cloning shares the cache.
pub struct ConsumerCache<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for ConsumerCache<C> {
    fn clone(&self) -> Self {
        ConsumerCache {
            inner: self.inner.clone(),
        }
    }
}

impl<C> std::fmt::Debug for ConsumerCache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerCache")
            .field("capacity", &self.inner.capacity)
            .field("idle", &self.inner.idle.lock().len())
            .finish()
    }
}

impl<C: Send> ConsumerCache<C> {
    /// A cache keeping at most `capacity` idle consumers (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        ConsumerCache {
            inner: Arc::new(Inner {
                capacity,
                idle: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Takes an idle consumer for `key`, or creates one with `create`. The lease is exclusive.
    pub fn checkout<E>(
        &self,
        key: CacheKey,
        create: impl FnOnce() -> Result<C, E>,
    ) -> Result<ConsumerLease<C>, E> {
        let cached = {
            let mut idle = self.inner.idle.lock();
            idle.iter()
                .position(|(k, _)| *k == key)
                .and_then(|i| idle.remove(i))
        };
        let (consumer, reused) = match cached {
            Some((_, c)) => (c, true),
            None => (create()?, false),
        };
        tracing::trace!(?key, reused, "consumer checked out");
        Ok(ConsumerLease {
            cache: self.clone(),
            key,
            consumer: Some(consumer),
            reused,
        })
    }

    /// Number of idle consumers.
    pub fn idle_len(&self) -> usize {
        self.inner.idle.lock().len()
    }

    /// Closes every idle consumer of `key` (e.g. after the partition was deleted).
    pub fn invalidate_key(&self, key: &CacheKey) {
        let removed: Vec<_> = {
            let mut idle = self.inner.idle.lock();
            let (gone, keep): (VecDeque<_>, VecDeque<_>) =
                idle.drain(..).partition(|(k, _)| k == key);
            *idle = keep;
            gone.into_iter().collect()
        };
        drop(removed); // closes the consumers outside the lock
    }

    /// Closes every idle consumer (the stream stopped). Consumers leased out at that moment
    /// still come back when their lease ends, so stop reading first.
    pub fn clear(&self) {
        let all: Vec<_> = self.inner.idle.lock().drain(..).collect();
        drop(all);
    }

    fn check_in(&self, key: CacheKey, consumer: C) {
        let evicted = {
            let mut idle = self.inner.idle.lock();
            idle.push_front((key, consumer));
            let mut evicted = Vec::new();
            while idle.len() > self.inner.capacity {
                if let Some(e) = idle.pop_back() {
                    evicted.push(e);
                }
            }
            evicted
        };
        for (key, _) in &evicted {
            tracing::debug!(?key, "evicting least recently used consumer");
        }
        drop(evicted); // closing a consumer can block; never under the lock
    }
}

/// Exclusive use of one cached consumer; checks it back in on drop.
pub struct ConsumerLease<C: Send> {
    cache: ConsumerCache<C>,
    key: CacheKey,
    consumer: Option<C>,
    reused: bool,
}

impl<C: Send> std::fmt::Debug for ConsumerLease<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerLease")
            .field("key", &self.key)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl<C: Send> ConsumerLease<C> {
    /// True when the consumer came from the cache (not created for this lease).
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The group and partition the leased consumer belongs to.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Closes the consumer instead of returning it (after an error its state is unknown).
    pub fn invalidate(mut self) {
        self.consumer = None;
    }
}

impl<C: Send> std::ops::Deref for ConsumerLease<C> {
    type Target = C;
    fn deref(&self) -> &C {
        // Only `invalidate` (which consumes the lease) and `drop` take the consumer.
        self.consumer
            .as_ref()
            .expect("lease holds its consumer until dropped")
    }
}

impl<C: Send> std::ops::DerefMut for ConsumerLease<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.consumer
            .as_mut()
            .expect("lease holds its consumer until dropped")
    }
}

impl<C: Send> Drop for ConsumerLease<C> {
    fn drop(&mut self) {
        if let Some(c) = self.consumer.take() {
            self.cache.check_in(self.key.clone(), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(p: i32) -> CacheKey {
        CacheKey {
            group: "g".into(),
            tp: TopicPartition::new("t", p),
        }
    }

    /// A fake consumer that counts how many are alive.
    struct Fake {
        id: usize,
        alive: Arc<AtomicUsize>,
    }
    impl Drop for Fake {
        fn drop(&mut self) {
            self.alive.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn maker(
        alive: &Arc<AtomicUsize>,
        next: &AtomicUsize,
    ) -> impl FnOnce() -> Result<Fake, Infallible> {
        let alive = alive.clone();
        let id = next.fetch_add(1, Ordering::SeqCst);
        move || {
            alive.fetch_add(1, Ordering::SeqCst);
            Ok(Fake { id, alive })
        }
    }

    #[test]
    fn a_checked_in_consumer_is_reused() {
        let (alive, next) = (Arc::new(AtomicUsize::new(0)), AtomicUsize::new(0));
        let cache = ConsumerCache::new(4);
        let first = cache.checkout(key(0), maker(&alive, &next)).unwrap();
        let id = first.id;
        assert!(!first.reused());
        drop(first);
        let again = cache.checkout(key(0), maker(&alive, &next)).unwrap();
        assert!(again.reused());
        assert_eq!(again.id, id);
        assert_eq!(alive.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn concurrent_users_of_one_key_never_share_a_consumer() {
        let (alive, next) = (Arc::new(AtomicUsize::new(0)), AtomicUsize::new(0));
        let cache = ConsumerCache::new(4);
        let a = cache.checkout(key(0), maker(&alive, &next)).unwrap();
        let b = cache.checkout(key(0), maker(&alive, &next)).unwrap();
        assert_ne!(a.id, b.id);
        drop((a, b));
        assert_eq!(cache.idle_len(), 2);
    }

    #[test]
    fn least_recently_used_is_evicted_and_closed() {
        let (alive, next) = (Arc::new(AtomicUsize::new(0)), AtomicUsize::new(0));
        let cache = ConsumerCache::new(2);
        for p in 0..3 {
            drop(cache.checkout(key(p), maker(&alive, &next)).unwrap());
        }
        assert_eq!(cache.idle_len(), 2);
        assert_eq!(alive.load(Ordering::SeqCst), 2);
        // Partition 0 was the least recently used: it is gone, 1 and 2 are still cached.
        assert!(!cache
            .checkout(key(0), maker(&alive, &next))
            .unwrap()
            .reused());
        assert!(cache
            .checkout(key(2), maker(&alive, &next))
            .unwrap()
            .reused());
    }

    #[test]
    fn invalidated_leases_are_closed_not_returned() {
        let (alive, next) = (Arc::new(AtomicUsize::new(0)), AtomicUsize::new(0));
        let cache = ConsumerCache::new(2);
        cache
            .checkout(key(0), maker(&alive, &next))
            .unwrap()
            .invalidate();
        assert_eq!(cache.idle_len(), 0);
        assert_eq!(alive.load(Ordering::SeqCst), 0);
        drop(cache.checkout(key(1), maker(&alive, &next)).unwrap());
        cache.invalidate_key(&key(1));
        assert_eq!(alive.load(Ordering::SeqCst), 0);
        drop(cache.checkout(key(2), maker(&alive, &next)).unwrap());
        drop(cache.checkout(key(3), maker(&alive, &next)).unwrap());
        cache.clear();
        assert_eq!((cache.idle_len(), alive.load(Ordering::SeqCst)), (0, 0));
    }

    #[test]
    fn many_threads_hammering_one_key_each_get_exclusive_use() {
        let (alive, next) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let cache = ConsumerCache::new(8);
        let in_use: Arc<Mutex<std::collections::HashSet<usize>>> = Arc::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (cache, alive, next, in_use) =
                    (cache.clone(), alive.clone(), next.clone(), in_use.clone());
                s.spawn(move || {
                    for _ in 0..200 {
                        let lease = cache.checkout(key(0), maker(&alive, &next)).unwrap();
                        assert!(
                            in_use.lock().insert(lease.id),
                            "consumer {} shared",
                            lease.id
                        );
                        std::thread::yield_now();
                        assert!(in_use.lock().remove(&lease.id));
                    }
                });
            }
        });
        assert!(cache.idle_len() <= 8);
    }
}

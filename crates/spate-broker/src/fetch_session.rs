//! Incremental fetch sessions (KIP-227): the broker remembers, per session, which partitions a
//! consumer fetches and at which offsets, so that an incremental Fetch carries only the
//! partitions whose fetch position changed and its response only the partitions with something
//! new (records, a moved high watermark or log start offset, an error). A consumer of 500 idle
//! partitions then sends and receives a few dozen bytes per fetch instead of kilobytes.
//!
//! Rules follow Kafka's `FetchManager`/`FetchSessionCache`:
//! - epoch -1 (FINAL): a sessionless full fetch; a named session is closed first.
//! - epoch 0: a full fetch that opens a new session (a named one is closed first) if the cache
//!   has a free slot or can evict one; otherwise the response's session id is 0 and the client
//!   keeps sending full fetches.
//! - epoch > 0: an incremental fetch of an existing session; an unknown id is
//!   FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH, and a session created
//!   with topic ids used by a request without them (or the reverse) FETCH_SESSION_TOPIC_ID_ERROR.
//! - `max.incremental.fetch.session.cache.slots` (Kafka default 1000) bounds the sessions. When
//!   full, a new session evicts the least recently used one if it has not been used for
//!   [`EVICTION_MS`], else the smallest session (fewest partitions) that is older than
//!   [`EVICTION_MS`] and strictly smaller than the new one.
//! - A partition that returned records moves to the end of its session, so the next fetch's
//!   `max_bytes` budget goes to the others first.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

/// How long a session is protected from eviction (Kafka's
/// `min.incremental.fetch.session.eviction.ms`, an internal constant of 120 s).
pub const EVICTION_MS: i64 = 120_000;

/// A topic as the fetch request names it: by name before Fetch v13, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    /// Fetch v0–12: the topic's name.
    Name(String),
    /// Fetch v13+: the topic's id.
    Id(Uuid),
}

/// One partition of a fetch, as requested (or as cached in a session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    /// The partition's topic, by name (Fetch v0–12) or id (v13+).
    pub topic: TopicKey,
    /// The partition's index.
    pub partition: i32,
    /// The offset to read from.
    pub fetch_offset: i64,
    /// The most record bytes to return for this partition (`max.partition.fetch.bytes`).
    pub partition_max_bytes: i32,
    /// The leader epoch the client knows, -1 if none; checked against the partition's.
    pub current_leader_epoch: i32,
}

impl FetchPartition {
    fn key(&self) -> (TopicKey, i32) {
        (self.topic.clone(), self.partition)
    }
}

/// What was last sent to the client for a partition: an incremental response repeats a
/// partition only when one of these changed (or it has records or an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// A read_committed client must learn when a transaction ends, even with no new records.
    pub last_stable_offset: i64,
    /// The partition's log start offset.
    pub log_start_offset: i64,
}

/// The outcome of one partition's read, as the session needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionResult {
    /// The partition's offsets after the read.
    pub state: PartitionState,
    /// How many record bytes the read returned.
    pub records_bytes: usize,
    /// The Kafka error code of the read; 0 on success.
    pub error_code: i16,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental request must carry.
    epoch: i32,
    uses_topic_ids: bool,
    partitions: IndexMap<(TopicKey, i32), (FetchPartition, Option<PartitionState>)>,
    created_ms: i64,
    last_used_ms: i64,
}

/// How a Fetch request is served.
#[derive(Debug)]
pub enum FetchContext {
    /// Read exactly the requested partitions; answer with session id 0.
    Sessionless(Vec<FetchPartition>),
    /// Read the requested partitions, then try to open a session for them.
    Full(Vec<FetchPartition>),
    /// Read every partition of the session, then answer only what changed.
    Incremental {
        /// The session's id.
        session_id: i32,
        /// The session's epoch after this request (the next request must carry it).
        next_epoch: i32,
        /// Every partition of the session, with the request's changes applied.
        partitions: Vec<FetchPartition>,
    },
}

/// The broker's fetch session cache.
#[derive(Debug)]
pub struct FetchSessionCache {
    slots: usize,
    sessions: Mutex<HashMap<i32, Session>>,
}

/// Kafka's `FetchMetadata.nextEpoch`: epochs wrap from `i32::MAX` to 1 (0 and -1 are
/// reserved).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        0
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessionCache {
    /// A cache of at most `slots` sessions (0 disables sessions).
    pub fn new(slots: usize) -> Self {
        FetchSessionCache {
            slots,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether no fetch session is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides how a Fetch (v7+) is served, updating the named session for an incremental one.
    pub fn new_context(
        &self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        requested: Vec<FetchPartition>,
        forgotten: &[(TopicKey, i32)],
        now_ms: i64,
    ) -> Result<FetchContext, ResponseError> {
        let mut sessions = self.sessions.lock();
        if epoch <= 0 {
            if session_id != 0 {
                sessions.remove(&session_id);
            }
            return Ok(if epoch < 0 {
                FetchContext::Sessionless(requested)
            } else {
                FetchContext::Full(requested)
            });
        }
        let Some(session) = sessions.get_mut(&session_id) else {
            return Err(ResponseError::FetchSessionIdNotFound);
        };
        if session.epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Err(ResponseError::FetchSessionTopicIdError);
        }
        for key in forgotten {
            session.partitions.shift_remove(key);
        }
        for p in requested.iter() {
            match session.partitions.get_mut(&p.key()) {
                Some((cached, _)) => *cached = p.clone(),
                None => {
                    session.partitions.insert(p.key(), (p.clone(), None));
                }
            }
        }
        if session.partitions.is_empty() {
            sessions.remove(&session_id);
            return Ok(FetchContext::Sessionless(requested));
        }
        session.epoch = next_epoch(session.epoch);
        session.last_used_ms = now_ms;
        Ok(FetchContext::Incremental {
            session_id,
            next_epoch: session.epoch,
            partitions: session
                .partitions
                .values()
                .map(|(p, _)| p.clone())
                .collect(),
        })
    }

    /// After a full fetch: opens a session for its partitions if a slot is free (or can be
    /// freed). Returns the new session id, or 0.
    pub fn create(
        &self,
        uses_topic_ids: bool,
        partitions: &[(FetchPartition, PartitionResult)],
        now_ms: i64,
    ) -> i32 {
        let mut sessions = self.sessions.lock();
        if self.slots == 0
            || (sessions.len() >= self.slots
                && !Self::try_evict(&mut sessions, partitions.len(), now_ms))
        {
            return 0;
        }
        let id = loop {
            let id: i32 = rand::random::<i32>() & i32::MAX;
            if id != 0 && !sessions.contains_key(&id) {
                break id;
            }
        };
        let partitions = partitions
            .iter()
            .map(|(p, r)| (p.key(), (p.clone(), Some(Self::sent_state(r)))))
            .collect();
        sessions.insert(
            id,
            Session {
                epoch: next_epoch(0),
                uses_topic_ids,
                partitions,
                created_ms: now_ms,
                last_used_ms: now_ms,
            },
        );
        id
    }

    /// What the client now knows about a partition; after an error it knows nothing (Kafka
    /// resets the cached high watermark so the next good read is sent).
    fn sent_state(r: &PartitionResult) -> PartitionState {
        if r.error_code != 0 {
            PartitionState {
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: r.state.log_start_offset,
            }
        } else {
            r.state
        }
    }

    fn try_evict(sessions: &mut HashMap<i32, Session>, new_size: usize, now_ms: i64) -> bool {
        let stale = sessions
            .iter()
            .filter(|(_, s)| now_ms - s.last_used_ms > EVICTION_MS)
            .min_by_key(|(id, s)| (s.last_used_ms, **id))
            .map(|(id, _)| *id);
        let victim = stale.or_else(|| {
            sessions
                .iter()
                .filter(|(_, s)| now_ms - s.created_ms > EVICTION_MS)
                .filter(|(_, s)| s.partitions.len() < new_size)
                .min_by_key(|(id, s)| (s.partitions.len(), **id))
                .map(|(id, _)| *id)
        });
        match victim {
            Some(id) => {
                tracing::debug!(session = id, "evicting fetch session");
                sessions.remove(&id).is_some()
            }
            None => false,
        }
    }

    /// After an incremental fetch: which partitions (by index into the context's list) the
    /// response carries, updating what the session remembers and moving partitions that
    /// returned records to the end. `Err` if another request moved the session on meanwhile
    /// (a duplicate request): INVALID_FETCH_SESSION_EPOCH.
    pub fn finish_incremental(
        &self,
        session_id: i32,
        next_epoch: i32,
        results: &[(FetchPartition, PartitionResult)],
    ) -> Result<Vec<bool>, ResponseError> {
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get_mut(&session_id) else {
            return Err(ResponseError::FetchSessionIdNotFound);
        };
        if session.epoch != next_epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        let mut keep = Vec::with_capacity(results.len());
        for (p, r) in results {
            let key = p.key();
            let Some((_, sent)) = session.partitions.get_mut(&key) else {
                keep.push(false);
                continue;
            };
            let now = Self::sent_state(r);
            let changed = *sent != Some(now);
            let must_send = r.records_bytes > 0 || r.error_code != 0 || changed;
            *sent = Some(now);
            if r.records_bytes > 0 {
                if let Some(entry) = session.partitions.shift_remove(&key) {
                    session.partitions.insert(key, entry);
                }
            }
            keep.push(must_send);
        }
        Ok(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: i32, offset: i64) -> FetchPartition {
        FetchPartition {
            topic: TopicKey::Name("t".into()),
            partition: p,
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        }
    }

    fn result(hw: i64, bytes: usize) -> PartitionResult {
        PartitionResult {
            state: PartitionState {
                high_watermark: hw,
                last_stable_offset: hw,
                log_start_offset: 0,
            },
            records_bytes: bytes,
            error_code: 0,
        }
    }

    fn open(cache: &FetchSessionCache, n: i32, now: i64) -> i32 {
        let parts: Vec<_> = (0..n).map(|p| (part(p, 0), result(0, 0))).collect();
        cache.create(false, &parts, now)
    }

    #[test]
    fn incremental_round_trip_sends_only_changes() {
        let cache = FetchSessionCache::new(10);
        let id = open(&cache, 3, 0);
        assert_ne!(id, 0);
        let ctx = cache.new_context(id, 1, false, vec![], &[], 1).unwrap();
        let FetchContext::Incremental {
            next_epoch,
            partitions,
            ..
        } = ctx
        else {
            panic!("expected incremental");
        };
        assert_eq!((next_epoch, partitions.len()), (2, 3));
        let results: Vec<_> = partitions
            .iter()
            .map(|p| (p.clone(), result(if p.partition == 1 { 5 } else { 0 }, 0)))
            .collect();
        assert_eq!(
            cache.finish_incremental(id, 2, &results).unwrap(),
            vec![false, true, false]
        );
        // Same epoch again: a duplicate.
        assert_eq!(
            cache.new_context(id, 1, false, vec![], &[], 2).unwrap_err(),
            ResponseError::InvalidFetchSessionEpoch
        );
        assert_eq!(
            cache.new_context(77, 1, false, vec![], &[], 2).unwrap_err(),
            ResponseError::FetchSessionIdNotFound
        );
        assert_eq!(
            cache.new_context(id, 2, true, vec![], &[], 2).unwrap_err(),
            ResponseError::FetchSessionTopicIdError
        );
        // Forgetting every partition closes the session.
        let forget: Vec<_> = (0..3).map(|p| (TopicKey::Name("t".into()), p)).collect();
        let ctx = cache.new_context(id, 2, false, vec![], &forget, 3).unwrap();
        assert!(matches!(ctx, FetchContext::Sessionless(_)));
        assert!(cache.is_empty());
    }

    #[test]
    fn partitions_with_records_move_to_the_end() {
        let cache = FetchSessionCache::new(10);
        let id = open(&cache, 3, 0);
        let FetchContext::Incremental { partitions, .. } =
            cache.new_context(id, 1, false, vec![], &[], 1).unwrap()
        else {
            panic!()
        };
        let results: Vec<_> = partitions
            .iter()
            .map(|p| (p.clone(), result(9, if p.partition == 0 { 100 } else { 0 })))
            .collect();
        cache.finish_incremental(id, 2, &results).unwrap();
        let FetchContext::Incremental { partitions, .. } = cache
            .new_context(id, 2, false, vec![part(0, 9)], &[], 2)
            .unwrap()
        else {
            panic!()
        };
        let order: Vec<(i32, i64)> = partitions
            .iter()
            .map(|p| (p.partition, p.fetch_offset))
            .collect();
        assert_eq!(order, vec![(1, 0), (2, 0), (0, 9)]);
    }

    #[test]
    fn full_cache_evicts_stale_then_smaller_sessions_only() {
        let cache = FetchSessionCache::new(2);
        let a = open(&cache, 5, 0);
        let b = open(&cache, 10, 0);
        assert!(a != 0 && b != 0);
        // Young sessions are not evicted.
        assert_eq!(open(&cache, 50, 1_000), 0);
        // Old enough: the new session evicts the smallest one smaller than itself.
        cache
            .new_context(a, 1, false, vec![], &[], EVICTION_MS)
            .unwrap();
        cache
            .new_context(b, 1, false, vec![], &[], EVICTION_MS)
            .unwrap();
        assert_eq!(open(&cache, 3, EVICTION_MS + 1), 0, "not bigger than any");
        let c = open(&cache, 7, EVICTION_MS + 1);
        assert_ne!(c, 0);
        assert_eq!(
            cache
                .new_context(a, 2, false, vec![], &[], EVICTION_MS + 2)
                .unwrap_err(),
            ResponseError::FetchSessionIdNotFound
        );
        // Unused for longer than the eviction time: any new session takes its slot.
        assert_ne!(open(&cache, 1, 3 * EVICTION_MS), 0);
        assert_eq!(cache.len(), 2);
        // No slots: sessions are off.
        assert_eq!(open(&FetchSessionCache::new(0), 5, 0), 0);
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), 0);
    }
}

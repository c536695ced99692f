//! The durable log of committed offsets: an append-only file of framed records, replayed on
//! start and compacted into a snapshot when it grows well past the live set.
//!
//! Kafka keeps committed offsets in the compacted `__consumer_offsets` topic. An embedded
//! single broker does not need partitioned, replicated storage for them, only durability and
//! bounded size, so this is a small purpose-built file (`offsets.log` in the coordinator's
//! directory) with the same properties:
//!
//! ```text
//! record  := length:u32be crc32c:u32be payload[length]        (crc over payload)
//! payload := 1u8 (commit) group topic partition:i32 offset:i64 leader_epoch:i32
//!                         metadata commit_ts:i64 expire_ts:i64 (-1 = none)
//!          | 2u8 (delete) group topic partition:i32
//!          | 3u8 (group)  group protocol_type protocol leader generation:i32 state_ts:i64
//!                         count:u32 member[count]
//!          | 4u8 (group tombstone) group
//!          | 5u8 (consumer group) group state:bytes   (a KIP-848 group, encoded by
//!                                                      `durable_consumer_group`)
//! member  := member_id instance_present:u8 instance client_id client_host
//!            session_timeout:i32 rebalance_timeout:i32 subscription:bytes assignment:bytes
//! string  := len:u16be utf8[len]
//! bytes   := len:u32be byte[len]
//! ```
//!
//! A group record is the group's membership as Kafka's `GroupMetadataValue` holds it
//! (generation, selected protocol, leader, members with their subscription and assignment); the
//! latest one per group is live, so a restarted coordinator resumes a Stable group without a
//! rebalance.
//!
//! A torn or corrupt tail (a crash mid-append) is truncated at the last valid record on open.
//! Compaction writes the live set to `offsets.log.tmp`, fsyncs it, renames it over the log and
//! fsyncs the directory, so a crash at any point leaves either the old or the new file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{BrokerError, Result};

const LOG_FILE: &str = "offsets.log";
const TMP_FILE: &str = "offsets.log.tmp";
const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_GROUP: u8 = 3;
const KIND_GROUP_TOMBSTONE: u8 = 4;
const KIND_CONSUMER_GROUP: u8 = 5;
/// Compaction triggers past this many records *and* twice the live set.
const COMPACT_MIN_RECORDS: usize = 1000;

/// One committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    /// The consumer group that committed.
    pub group: String,
    /// The topic of the committed partition.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset: the next record the group reads.
    pub offset: i64,
    /// The leader epoch of the record before `offset`, -1 if unknown.
    pub leader_epoch: i32,
    /// The metadata string the client committed with the offset.
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp_ms: i64,
    /// OffsetCommit v1's explicit expiry time, if the client set one.
    pub expire_timestamp_ms: Option<i64>,
}

/// One member of a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member's id.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The member's `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// The member's rebalance timeout (`max.poll.interval.ms`).
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Vec<u8>,
    /// The member's assignment from the last SyncGroup.
    pub assignment: Vec<u8>,
}

/// A group's membership as stored (no members: the group is Empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The group's id.
    pub group: String,
    /// The group's protocol type (`consumer`).
    pub protocol_type: String,
    /// The selected protocol; empty for an Empty group.
    pub protocol: String,
    /// The member id of the group leader.
    pub leader: String,
    /// The generation the membership belongs to.
    pub generation: i32,
    /// When the group entered its state (ms since the epoch).
    pub state_timestamp_ms: i64,
    /// The members of that generation.
    pub members: Vec<MemberRecord>,
}

/// A record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// An offset commit.
    Commit(OffsetRecord),
    /// An offset deleted (OffsetDelete, expiry, DeleteGroups).
    Delete {
        /// The group.
        group: String,
        /// The topic of the deleted offset.
        topic: String,
        /// The partition of the deleted offset.
        partition: i32,
    },
    /// A classic group's membership after a rebalance.
    Group(GroupRecord),
    /// A group's stored membership removed (DeleteGroups, or a group removed as unused).
    GroupTombstone {
        /// The group.
        group: String,
    },
    /// A consumer-protocol group's state (the tombstone above removes it too).
    ConsumerGroup {
        /// The group.
        group: String,
        /// Its encoded state.
        state: Vec<u8>,
    },
}

/// The open log file.
#[derive(Debug)]
pub struct OffsetsLog {
    dir: PathBuf,
    file: File,
    /// Records in the file (live or superseded): the compaction trigger.
    records: usize,
}

impl OffsetsLog {
    /// Opens (creating) the log in `dir` and returns it with every valid record in order.
    pub fn open(dir: &Path) -> Result<(OffsetsLog, Vec<LogEntry>)> {
        fs::create_dir_all(dir).map_err(|e| BrokerError::io(dir, e))?;
        let path = dir.join(LOG_FILE);
        // A leftover temp file is an interrupted compaction whose rename never happened.
        let _ = fs::remove_file(dir.join(TMP_FILE));
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        let (entries, valid_len) = decode_all(&bytes);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        if valid_len < bytes.len() {
            tracing::warn!(path = %path.display(), valid = valid_len, len = bytes.len(),
                           "truncating corrupt tail of the offsets log");
            file.set_len(valid_len as u64)
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        let records = entries.len();
        Ok((
            OffsetsLog {
                dir: dir.to_owned(),
                file,
                records,
            },
            entries,
        ))
    }

    /// Appends `entries` in one write and fsyncs, so an acknowledged commit survives a crash.
    pub fn append(&mut self, entries: &[LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            encode_framed(e, &mut buf);
        }
        let path = self.dir.join(LOG_FILE);
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| BrokerError::io(&path, e))?;
        self.records += entries.len();
        Ok(())
    }

    /// Whether the file holds enough superseded records to be worth rewriting.
    pub fn should_compact(&self, live: usize) -> bool {
        self.records >= COMPACT_MIN_RECORDS && self.records > 2 * live
    }

    /// Replaces the file with exactly `live` (atomically: temp file, fsync, rename, dir fsync).
    pub fn compact(&mut self, live: &[LogEntry]) -> Result<()> {
        let tmp = self.dir.join(TMP_FILE);
        let path = self.dir.join(LOG_FILE);
        let mut buf = Vec::new();
        for entry in live {
            encode_framed(entry, &mut buf);
        }
        let write_tmp = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()
        };
        write_tmp().map_err(|e| BrokerError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| BrokerError::io(&path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BrokerError::io(&self.dir, e))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        tracing::debug!(
            before = self.records,
            after = live.len(),
            "compacted offsets log"
        );
        self.records = live.len();
        Ok(())
    }
}

pub(super) fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Group ids, topic names and metadata are bounded well below 64 KiB by the coordinator
    // (offset.metadata.max.bytes, Kafka's name limits); clamp defensively anyway.
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    buf.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    buf.extend_from_slice(bytes);
}

pub(super) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
    buf.extend_from_slice(b);
}

fn encode_group(p: &mut Vec<u8>, g: &GroupRecord) {
    p.push(KIND_GROUP);
    put_str(p, &g.group);
    put_str(p, &g.protocol_type);
    put_str(p, &g.protocol);
    put_str(p, &g.leader);
    p.extend_from_slice(&g.generation.to_be_bytes());
    p.extend_from_slice(&g.state_timestamp_ms.to_be_bytes());
    p.extend_from_slice(&(g.members.len() as u32).to_be_bytes());
    for m in &g.members {
        put_str(p, &m.member_id);
        p.push(u8::from(m.group_instance_id.is_some()));
        put_str(p, m.group_instance_id.as_deref().unwrap_or_default());
        put_str(p, &m.client_id);
        put_str(p, &m.client_host);
        p.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        p.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        put_bytes(p, &m.subscription);
        put_bytes(p, &m.assignment);
    }
}

fn decode_group(r: &mut Reader<'_>) -> Option<GroupRecord> {
    let group = r.string()?;
    let protocol_type = r.string()?;
    let protocol = r.string()?;
    let leader = r.string()?;
    let generation = r.i32()?;
    let state_timestamp_ms = r.i64()?;
    let count = r.u32()? as usize;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let has_instance = r.u8()? != 0;
        let instance = r.string()?;
        members.push(MemberRecord {
            member_id,
            group_instance_id: has_instance.then_some(instance),
            client_id: r.string()?,
            client_host: r.string()?,
            session_timeout_ms: r.i32()?,
            rebalance_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(GroupRecord {
        group,
        protocol_type,
        protocol,
        leader,
        generation,
        state_timestamp_ms,
        members,
    })
}

fn encode_framed(entry: &LogEntry, buf: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(64);
    match entry {
        LogEntry::Commit(r) => {
            p.push(KIND_COMMIT);
            put_str(&mut p, &r.group);
            put_str(&mut p, &r.topic);
            p.extend_from_slice(&r.partition.to_be_bytes());
            p.extend_from_slice(&r.offset.to_be_bytes());
            p.extend_from_slice(&r.leader_epoch.to_be_bytes());
            put_str(&mut p, &r.metadata);
            p.extend_from_slice(&r.commit_timestamp_ms.to_be_bytes());
            p.extend_from_slice(&r.expire_timestamp_ms.unwrap_or(-1).to_be_bytes());
        }
        LogEntry::Delete {
            group,
            topic,
            partition,
        } => {
            p.push(KIND_DELETE);
            put_str(&mut p, group);
            put_str(&mut p, topic);
            p.extend_from_slice(&partition.to_be_bytes());
        }
        LogEntry::Group(g) => encode_group(&mut p, g),
        LogEntry::GroupTombstone { group } => {
            p.push(KIND_GROUP_TOMBSTONE);
            put_str(&mut p, group);
        }
        LogEntry::ConsumerGroup { group, state } => {
            p.push(KIND_CONSUMER_GROUP);
            put_str(&mut p, group);
            put_bytes(&mut p, state);
        }
    }
    buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&p).to_be_bytes());
    buf.extend_from_slice(&p);
}

/// Decodes records until the end or the first invalid one; returns them and the valid length.
fn decode_all(bytes: &[u8]) -> (Vec<LogEntry>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(entry) = decode_payload(payload) else {
            break;
        };
        entries.push(entry);
        pos += 8 + len;
    }
    (entries, pos)
}

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(super) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
    pub(super) fn bytes_fixed(&mut self, n: usize) -> Option<Vec<u8>> {
        self.take(n).map(<[u8]>::to_vec)
    }
    pub(super) fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        self.take(len).map(<[u8]>::to_vec)
    }
    pub(super) fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_be_bytes)
    }
    pub(super) fn string(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_payload(payload: &[u8]) -> Option<LogEntry> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let entry = match r.u8()? {
        KIND_COMMIT => {
            let group = r.string()?;
            let topic = r.string()?;
            let partition = r.i32()?;
            let offset = r.i64()?;
            let leader_epoch = r.i32()?;
            let metadata = r.string()?;
            let commit_timestamp_ms = r.i64()?;
            let expire = r.i64()?;
            LogEntry::Commit(OffsetRecord {
                group,
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
                expire_timestamp_ms: (expire >= 0).then_some(expire),
            })
        }
        KIND_DELETE => LogEntry::Delete {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        },
        KIND_GROUP => LogEntry::Group(decode_group(&mut r)?),
        KIND_GROUP_TOMBSTONE => LogEntry::GroupTombstone { group: r.string()? },
        KIND_CONSUMER_GROUP => LogEntry::ConsumerGroup {
            group: r.string()?,
            state: r.bytes()?,
        },
        _ => return None,
    };
    (r.pos == payload.len()).then_some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(group: &str, partition: i32, offset: i64) -> OffsetRecord {
        OffsetRecord {
            group: group.into(),
            topic: "t".into(),
            partition,
            offset,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: None,
        }
    }

    #[test]
    fn replays_appended_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, entries) = OffsetsLog::open(dir.path()).unwrap();
        assert!(entries.is_empty());
        let written = vec![
            LogEntry::Commit(rec("g", 0, 5)),
            LogEntry::Delete {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
            },
            LogEntry::Commit(rec("g", 1, 7)),
        ];
        log.append(&written).unwrap();
        drop(log);
        let (_, replayed) = OffsetsLog::open(dir.path()).unwrap();
        assert_eq!(replayed, written);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = OffsetsLog::open(dir.path()).unwrap();
        log.append(&[LogEntry::Commit(rec("g", 0, 1))]).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let good_len = fs::metadata(&path).unwrap().len();
        // Half a record, as a crash mid-write leaves it.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2, 3]).unwrap();
        drop(f);
        let (mut log, entries) = OffsetsLog::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        log.append(&[LogEntry::Commit(rec("g", 0, 2))]).unwrap();
        drop(log);
        let (_, entries) = OffsetsLog::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn group_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = OffsetsLog::open(dir.path()).unwrap();
        let group = GroupRecord {
            group: "g".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            leader: "m1".into(),
            generation: 7,
            state_timestamp_ms: 123,
            members: vec![MemberRecord {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 6000,
                rebalance_timeout_ms: 30000,
                subscription: vec![0, 1, 2],
                assignment: vec![3, 4],
            }],
        };
        let entries = vec![
            LogEntry::Group(group),
            LogEntry::GroupTombstone { group: "h".into() },
        ];
        log.append(&entries).unwrap();
        drop(log);
        assert_eq!(OffsetsLog::open(dir.path()).unwrap().1, entries);
    }

    #[test]
    fn corrupt_crc_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = OffsetsLog::open(dir.path()).unwrap();
        log.append(&[
            LogEntry::Commit(rec("g", 0, 1)),
            LogEntry::Commit(rec("g", 1, 2)),
        ])
        .unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, entries) = OffsetsLog::open(dir.path()).unwrap();
        assert_eq!(entries, vec![LogEntry::Commit(rec("g", 0, 1))]);
    }

    #[test]
    fn compaction_rewrites_only_the_live_set() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = OffsetsLog::open(dir.path()).unwrap();
        for i in 0..(COMPACT_MIN_RECORDS as i64) {
            log.append(&[LogEntry::Commit(rec("g", 0, i))]).unwrap();
        }
        assert!(log.should_compact(1));
        let before = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        log.compact(&[LogEntry::Commit(rec("g", 0, 999))]).unwrap();
        assert!(!log.should_compact(1));
        log.append(&[LogEntry::Commit(rec("g", 1, 5))]).unwrap();
        let after = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert!(after < before / 100, "{after} vs {before}");
        drop(log);
        let (_, entries) = OffsetsLog::open(dir.path()).unwrap();
        assert_eq!(
            entries,
            vec![
                LogEntry::Commit(rec("g", 0, 999)),
                LogEntry::Commit(rec("g", 1, 5))
            ]
        );
    }
}

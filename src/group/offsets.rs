//! Committed offsets: the record format of the internal offsets log and the in-memory table.
//!
//! Records are encoded exactly as Kafka writes them to `__consumer_offsets`, so the log can be
//! inspected with Kafka's own formatter:
//! - key (version 1): `i16 version, string group, string topic, i32 partition`
//! - value: version 3 `i64 offset, i32 leader_epoch, string metadata, i64 commit_timestamp`, or
//!   version 1 `i64 offset, string metadata, i64 commit_timestamp, i64 expire_timestamp` when an
//!   old client (OffsetCommit v2–v4) asked for an explicit retention time.
//! - a tombstone (null value) deletes the entry (OffsetDelete, DeleteGroups, expiry).
//!
//! Strings are `i16 length + UTF-8`. Decoding accepts value versions 0–3 and ignores the other
//! key versions (group metadata records, version 2), which Ringbolt does not write.
//!
//! Retention (`offsets.retention.minutes`, Kafka ≥ 2.1 rules): offsets of a group with members
//! never expire; once the group is empty they expire `retention` after it became empty (or after
//! the commit, whichever is later); offsets of groups without a coordinator state (standalone
//! consumers, or any group after a restart) expire `retention` after their commit. An explicit
//! v1 expire timestamp wins.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::{HashMap, HashSet};

pub const KEY_VERSION_OFFSET: i16 = 1;
pub const KEY_VERSION_GROUP: i16 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only from OffsetCommit v2–v4 with an explicit retention time.
    pub expire_timestamp: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("offsets record truncated")]
    Truncated,
    #[error("offsets record string is not UTF-8")]
    Utf8,
    #[error("unsupported offsets record version {0}")]
    Version(i16),
}

fn put_str(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn get_str(buf: &mut &[u8]) -> Result<String, DecodeError> {
    if buf.remaining() < 2 {
        return Err(DecodeError::Truncated);
    }
    let len = buf.get_i16();
    if len < 0 {
        return Ok(String::new());
    }
    let len = len as usize;
    if buf.remaining() < len {
        return Err(DecodeError::Truncated);
    }
    let s = std::str::from_utf8(&buf[..len]).map_err(|_| DecodeError::Utf8)?;
    let s = s.to_string();
    buf.advance(len);
    Ok(s)
}

fn need(buf: &[u8], n: usize) -> Result<(), DecodeError> {
    if buf.len() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

pub fn encode_key(k: &OffsetKey) -> Bytes {
    let mut b = BytesMut::with_capacity(10 + k.group.len() + k.topic.len());
    b.put_i16(KEY_VERSION_OFFSET);
    put_str(&mut b, &k.group);
    put_str(&mut b, &k.topic);
    b.put_i32(k.partition);
    b.freeze()
}

/// `Ok(None)` for keys of other record kinds (group metadata), which are skipped.
pub fn decode_key(mut buf: &[u8]) -> Result<Option<OffsetKey>, DecodeError> {
    need(buf, 2)?;
    let version = buf.get_i16();
    match version {
        0 | 1 => {
            let group = get_str(&mut buf)?;
            let topic = get_str(&mut buf)?;
            need(buf, 4)?;
            let partition = buf.get_i32();
            Ok(Some(OffsetKey {
                group,
                topic,
                partition,
            }))
        }
        KEY_VERSION_GROUP => Ok(None),
        v => Err(DecodeError::Version(v)),
    }
}

pub fn encode_value(v: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::with_capacity(32 + v.metadata.len());
    match v.expire_timestamp {
        Some(expire) => {
            b.put_i16(1);
            b.put_i64(v.offset);
            put_str(&mut b, &v.metadata);
            b.put_i64(v.commit_timestamp);
            b.put_i64(expire);
        }
        None => {
            b.put_i16(3);
            b.put_i64(v.offset);
            b.put_i32(v.leader_epoch);
            put_str(&mut b, &v.metadata);
            b.put_i64(v.commit_timestamp);
        }
    }
    b.freeze()
}

pub fn decode_value(mut buf: &[u8]) -> Result<CommittedOffset, DecodeError> {
    need(buf, 2)?;
    let version = buf.get_i16();
    if !(0..=3).contains(&version) {
        return Err(DecodeError::Version(version));
    }
    need(buf, 8)?;
    let offset = buf.get_i64();
    let leader_epoch = if version == 3 {
        need(buf, 4)?;
        buf.get_i32()
    } else {
        -1
    };
    let metadata = get_str(&mut buf)?;
    need(buf, 8)?;
    let commit_timestamp = buf.get_i64();
    let expire_timestamp = if version == 1 {
        need(buf, 8)?;
        Some(buf.get_i64()).filter(|t| *t >= 0)
    } else {
        None
    };
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

/// How a group's offsets age (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupActivity {
    /// Has members: offsets never expire.
    Active,
    /// Known to the coordinator and empty since this time.
    EmptySince(i64),
    /// No coordinator state: age from the commit timestamp.
    Unknown,
}

/// An offset as the table keeps it: the value plus the log offset of the record that wrote it
/// (Kafka's `OffsetAndMetadata.recordOffset`), which decides between a transactional and a plain
/// commit of the same partition when the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub value: CommittedOffset,
    pub record_offset: i64,
}

type Partitions = HashMap<(String, i32), Stored>;

/// A transaction's offsets not yet committed or aborted, by group.
#[derive(Debug, Default)]
struct OpenTxn {
    /// The newest producer epoch its records carried.
    epoch: i16,
    groups: HashMap<String, Partitions>,
}

/// One pending transactional offset (for the snapshot rewrite of an offsets partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffset {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub key: OffsetKey,
    pub stored: Stored,
}

/// The offsets of all groups a shard coordinates: the committed ones (group → (topic, partition)
/// → offset, what OffsetFetch answers) and the pending transactional ones of open transactions,
/// keyed by (offsets partition, producer id) as a transaction marker on that partition completes
/// them (Kafka's `pendingTransactionalOffsets` per `__consumer_offsets` partition).
///
/// Records are applied in log order, as Kafka's `OffsetMetadataManager` replays them: a plain
/// commit overwrites, a tombstone deletes the committed offset *and* the pending ones of that
/// partition (DeleteGroups, OffsetDelete), a transactional commit is held per producer, and a
/// COMMIT marker moves a producer's pending offsets into the committed ones unless a plain commit
/// written later in the log (higher record offset) is already there; an ABORT drops them.
#[derive(Debug, Default)]
pub struct OffsetTable {
    groups: HashMap<String, Partitions>,
    pending: HashMap<(u32, i64), OpenTxn>,
    /// Group → the (offsets partition, producer id) of its open transactions. As in Kafka, a
    /// transaction stays open for its group until its marker, even when tombstones removed all
    /// its offsets.
    open_by_group: HashMap<String, HashSet<(u32, i64)>>,
}

impl OffsetTable {
    /// Applies one plain log record at `record_offset` (a commit, or a tombstone when `value`
    /// is None).
    pub fn apply(&mut self, record_offset: i64, key: OffsetKey, value: Option<CommittedOffset>) {
        match value {
            Some(v) => {
                self.groups.entry(key.group).or_default().insert(
                    (key.topic, key.partition),
                    Stored {
                        value: v,
                        record_offset,
                    },
                );
            }
            None => {
                let tp = (key.topic, key.partition);
                if let Some(g) = self.groups.get_mut(&key.group) {
                    g.remove(&tp);
                    if g.is_empty() {
                        self.groups.remove(&key.group);
                    }
                }
                if let Some(open) = self.open_by_group.get(&key.group) {
                    for id in open {
                        if let Some(t) = self.pending.get_mut(id)
                            && let Some(g) = t.groups.get_mut(&key.group)
                        {
                            g.remove(&tp);
                        }
                    }
                }
            }
        }
    }

    /// Applies one record of a transactional batch of `producer_id` on offsets partition `part`:
    /// held as pending until the producer's marker on that partition.
    pub fn apply_txn(
        &mut self,
        part: u32,
        producer_id: i64,
        producer_epoch: i16,
        record_offset: i64,
        key: OffsetKey,
        value: CommittedOffset,
    ) {
        let t = self.pending.entry((part, producer_id)).or_default();
        t.epoch = t.epoch.max(producer_epoch);
        self.open_by_group
            .entry(key.group.clone())
            .or_default()
            .insert((part, producer_id));
        t.groups.entry(key.group).or_default().insert(
            (key.topic, key.partition),
            Stored {
                value,
                record_offset,
            },
        );
    }

    /// Applies a transaction marker of `producer_id` on partition `part`: COMMIT materialises its
    /// pending offsets (unless a newer plain commit is there), ABORT drops them. Returns whether
    /// the producer had an open transaction there.
    pub fn apply_marker(&mut self, part: u32, producer_id: i64, commit: bool) -> bool {
        let Some(t) = self.pending.remove(&(part, producer_id)) else {
            return false;
        };
        for (group, offsets) in t.groups {
            if let Some(open) = self.open_by_group.get_mut(&group) {
                open.remove(&(part, producer_id));
                if open.is_empty() {
                    self.open_by_group.remove(&group);
                }
            }
            if !commit || offsets.is_empty() {
                continue;
            }
            let committed = self.groups.entry(group).or_default();
            for (tp, s) in offsets {
                match committed.get(&tp) {
                    Some(cur) if cur.record_offset > s.record_offset => {}
                    _ => {
                        committed.insert(tp, s);
                    }
                }
            }
        }
        true
    }

    /// Whether `producer_id` has an open transaction on offsets partition `part`.
    pub fn has_open_txn(&self, part: u32, producer_id: i64) -> bool {
        self.pending.contains_key(&(part, producer_id))
    }

    /// The epoch of `producer_id`'s open transaction on `part`.
    pub fn open_txn_epoch(&self, part: u32, producer_id: i64) -> Option<i16> {
        self.pending.get(&(part, producer_id)).map(|t| t.epoch)
    }

    /// Whether an open transaction holds a pending offset for this partition of `group`
    /// (OffsetFetch `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(open) = self.open_by_group.get(group) else {
            return false;
        };
        let tp = (topic.to_string(), partition);
        open.iter().any(|id| {
            self.pending
                .get(id)
                .and_then(|t| t.groups.get(group))
                .is_some_and(|g| g.contains_key(&tp))
        })
    }

    /// Partitions of `group` with a pending transactional offset, sorted.
    pub fn pending_keys(&self, group: &str) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .open_by_group
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|id| self.pending.get(id)?.groups.get(group))
            .flat_map(|g| g.keys().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether `group` has an open transaction (its offsets then never expire, nor is it
    /// forgotten, as Kafka's `cleanupExpiredOffsets`).
    pub fn has_open_txns(&self, group: &str) -> bool {
        self.open_by_group.contains_key(group)
    }

    /// Every pending offset on offsets partition `part`.
    pub fn pending_on(&self, part: u32) -> Vec<PendingOffset> {
        let mut out = Vec::new();
        for ((p, pid), t) in &self.pending {
            if *p != part {
                continue;
            }
            for (group, offsets) in &t.groups {
                for ((topic, partition), s) in offsets {
                    out.push(PendingOffset {
                        producer_id: *pid,
                        producer_epoch: t.epoch,
                        key: OffsetKey {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        stored: s.clone(),
                    });
                }
            }
        }
        out
    }

    /// Forgets everything stored on offsets partition `part` (`in_part` tells a group's
    /// partition), before the partition is reloaded from its rewritten log.
    pub fn clear_partition(&mut self, part: u32, in_part: impl Fn(&str) -> bool) {
        self.groups.retain(|g, _| !in_part(g));
        self.pending.retain(|(p, _), _| *p != part);
        self.open_by_group.retain(|_, open| {
            open.retain(|(p, _)| *p != part);
            !open.is_empty()
        });
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups
            .get(group)?
            .get(&(topic.to_string(), partition))
            .map(|s| &s.value)
    }

    /// All committed offsets of a group, sorted by (topic, partition).
    pub fn group(&self, group: &str) -> Vec<(String, i32, CommittedOffset)> {
        self.stored(group)
            .into_iter()
            .map(|(t, p, s)| (t, p, s.value))
            .collect()
    }

    /// [`OffsetTable::group`] with record offsets.
    pub fn stored(&self, group: &str) -> Vec<(String, i32, Stored)> {
        let mut v: Vec<_> = self
            .groups
            .get(group)
            .map(|g| {
                g.iter()
                    .map(|((t, p), o)| (t.clone(), *p, o.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// A group with committed offsets or an open transaction.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group) || self.open_by_group.contains_key(group)
    }

    /// Groups with committed offsets or an open transaction.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.groups.keys().cloned().collect();
        ids.extend(
            self.open_by_group
                .keys()
                .filter(|g| !self.groups.contains_key(*g))
                .cloned(),
        );
        ids
    }

    /// Number of live committed (group, topic, partition) entries.
    pub fn len(&self) -> usize {
        self.groups.values().map(HashMap::len).sum()
    }

    /// Number of pending transactional offsets.
    pub fn pending_len(&self) -> usize {
        self.pending
            .values()
            .flat_map(|t| t.groups.values())
            .map(HashMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Keys whose offsets have expired at `now` (not removed: the caller writes tombstones and
    /// applies them). A partition with a pending transactional offset does not expire yet
    /// (Kafka's rule).
    pub fn expired(
        &self,
        now: i64,
        retention_ms: i64,
        activity: impl Fn(&str) -> GroupActivity,
    ) -> Vec<OffsetKey> {
        let mut out = Vec::new();
        for (group, offsets) in &self.groups {
            let act = activity(group);
            if act == GroupActivity::Active {
                continue;
            }
            for ((topic, partition), s) in offsets {
                let o = &s.value;
                let dead = match (o.expire_timestamp, act) {
                    (Some(expire), _) => now >= expire,
                    (None, GroupActivity::EmptySince(t)) => {
                        now.saturating_sub(t.max(o.commit_timestamp)) >= retention_ms
                    }
                    // Saturating: an OffsetCommit v1 timestamp is whatever the client sent.
                    (None, _) => now.saturating_sub(o.commit_timestamp) >= retention_ms,
                };
                if dead && !self.has_pending(group, topic, *partition) {
                    out.push(OffsetKey {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    });
                }
            }
        }
        out
    }
}

/// Java's `String.hashCode` (over UTF-16 code units), as Kafka uses to place a group on an
/// offsets partition: `abs(hash) % offsets.topic.num.partitions`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The offsets partition of a group (Kafka's `partitionFor`).
pub fn partition_for(group: &str, partitions: u32) -> u32 {
    ((java_string_hash(group) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(offset: i64, ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 4,
            metadata: "meta ✓".into(),
            commit_timestamp: ts,
            expire_timestamp: None,
        }
    }

    #[test]
    fn key_and_value_round_trip_in_kafka_format() {
        let k = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let kb = encode_key(&k);
        assert_eq!(&kb[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(decode_key(&kb).unwrap(), Some(k));
        let v = off(42, 1000);
        let vb = encode_value(&v);
        assert_eq!(&vb[..2], &[0, 3]);
        assert_eq!(decode_value(&vb).unwrap(), v);
        let v1 = CommittedOffset {
            expire_timestamp: Some(5000),
            leader_epoch: -1,
            ..off(7, 1)
        };
        let vb = encode_value(&v1);
        assert_eq!(&vb[..2], &[0, 1]);
        assert_eq!(decode_value(&vb).unwrap(), v1);
        assert_eq!(decode_value(&vb[..10]), Err(DecodeError::Truncated));
        assert_eq!(decode_key(&[0, 9]), Err(DecodeError::Version(9)));
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), Ok(None));
    }

    #[test]
    fn java_hash_matches_kafka() {
        // Values from Java: "".hashCode() == 0, "group".hashCode() == 98629247,
        // "my-group".hashCode() == -1906497762 (& 0x7fffffff % 50 == 36).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("group"), 98629247);
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(partition_for("my-group", 50), 36);
        assert_eq!(partition_for("group", 50), 47);
    }

    #[test]
    fn table_apply_and_expiry_rules() {
        let mut t = OffsetTable::default();
        let k = |g: &str, p: i32| OffsetKey {
            group: g.into(),
            topic: "t".into(),
            partition: p,
        };
        t.apply(0, k("active", 0), Some(off(1, 0)));
        t.apply(0, k("empty", 0), Some(off(1, 0)));
        t.apply(0, k("solo", 0), Some(off(1, 0)));
        t.apply(0, k("solo", 1), Some(off(1, 900)));
        t.apply(
            0,
            k("old", 0),
            Some(CommittedOffset {
                expire_timestamp: Some(50),
                ..off(1, 0)
            }),
        );
        assert_eq!(t.len(), 5);
        let act = |g: &str| match g {
            "active" => GroupActivity::Active,
            "empty" => GroupActivity::EmptySince(500),
            _ => GroupActivity::Unknown,
        };
        let mut e = t.expired(1000, 1000, act);
        e.sort_by_key(|k| (k.group.clone(), k.partition));
        assert_eq!(e, vec![k("old", 0), k("solo", 0)]);
        let e = t.expired(1500, 1000, act);
        assert!(e.contains(&k("empty", 0)) && !e.contains(&k("active", 0)));
        t.apply(0, k("solo", 0), None);
        t.apply(0, k("solo", 1), None);
        assert!(!t.has_group("solo"));
        assert_eq!(t.get("empty", "t", 0).unwrap().offset, 1);
    }

    fn txn_off(offset: i64) -> CommittedOffset {
        CommittedOffset {
            metadata: "txn".into(),
            ..off(offset, 0)
        }
    }

    fn key(g: &str, p: i32) -> OffsetKey {
        OffsetKey {
            group: g.into(),
            topic: "t".into(),
            partition: p,
        }
    }

    #[test]
    fn pending_offsets_are_invisible_until_commit_and_dropped_on_abort() {
        let mut t = OffsetTable::default();
        t.apply(0, key("g", 0), Some(off(5, 0)));
        t.apply_txn(3, 7, 1, 1, key("g", 0), txn_off(10));
        t.apply_txn(3, 7, 1, 2, key("g", 1), txn_off(20));
        t.apply_txn(3, 8, 0, 3, key("g", 2), txn_off(30));
        assert_eq!(t.get("g", "t", 0).unwrap().offset, 5);
        assert!(t.get("g", "t", 1).is_none());
        assert!(t.has_pending("g", "t", 0) && t.has_pending("g", "t", 2));
        assert!(!t.has_pending("g", "t", 3) && !t.has_pending("h", "t", 0));
        assert_eq!(
            t.pending_keys("g"),
            vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 2)]
        );
        assert_eq!(t.pending_len(), 3);
        // A marker of another partition does not touch partition 3's transaction.
        assert!(!t.apply_marker(4, 7, true));
        assert!(t.apply_marker(3, 7, true));
        assert_eq!(t.get("g", "t", 0).unwrap().offset, 10);
        assert_eq!(t.get("g", "t", 1).unwrap().offset, 20);
        assert!(!t.has_pending("g", "t", 0) && t.has_pending("g", "t", 2));
        assert!(t.apply_marker(3, 8, false));
        assert!(t.get("g", "t", 2).is_none());
        assert!(!t.has_open_txns("g"));
        // A second marker (a retried completion) finds nothing.
        assert!(!t.apply_marker(3, 7, true));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn log_order_decides_between_plain_and_transactional_commits() {
        let mut t = OffsetTable::default();
        // Plain commit written after the transactional one (higher record offset): it stays.
        t.apply_txn(0, 1, 0, 10, key("g", 0), txn_off(100));
        t.apply(11, key("g", 0), Some(off(200, 0)));
        // Plain commit written before it: the transaction's offset wins.
        t.apply(12, key("g", 1), Some(off(300, 0)));
        t.apply_txn(0, 1, 0, 13, key("g", 1), txn_off(400));
        t.apply_marker(0, 1, true);
        assert_eq!(t.get("g", "t", 0).unwrap().offset, 200);
        assert_eq!(t.get("g", "t", 1).unwrap().offset, 400);
        // A plain commit after the marker overwrites as usual.
        t.apply(20, key("g", 1), Some(off(500, 0)));
        assert_eq!(t.get("g", "t", 1).unwrap().offset, 500);
    }

    #[test]
    fn tombstones_delete_pending_offsets_and_pending_blocks_expiry() {
        let mut t = OffsetTable::default();
        t.apply(0, key("g", 0), Some(off(1, 0)));
        t.apply(1, key("g", 1), Some(off(1, 0)));
        t.apply_txn(0, 9, 0, 2, key("g", 0), txn_off(2));
        // Expired by age, but partition 0 has a pending offset: only partition 1 expires.
        let e = t.expired(10_000, 1000, |_| GroupActivity::Unknown);
        assert_eq!(e, vec![key("g", 1)]);
        // A tombstone (DeleteGroups) removes the committed and the pending offset; the
        // transaction stays open for the group until its marker, as in Kafka.
        t.apply(3, key("g", 0), None);
        t.apply(4, key("g", 1), None);
        assert!(!t.has_pending("g", "t", 0));
        assert!(t.has_group("g") && t.has_open_txns("g"));
        assert_eq!(t.group_ids(), vec!["g".to_string()]);
        t.apply_marker(0, 9, true);
        assert!(t.get("g", "t", 0).is_none());
        assert!(!t.has_group("g"));
    }
}

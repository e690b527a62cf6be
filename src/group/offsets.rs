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
use std::collections::HashMap;

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

pub(crate) fn put_str(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

pub(crate) fn get_str(buf: &mut &[u8]) -> Result<String, DecodeError> {
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

pub(crate) fn need(buf: &[u8], n: usize) -> Result<(), DecodeError> {
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

/// The committed offsets of all groups a shard coordinates: group → (topic, partition) → offset.
#[derive(Debug, Default)]
pub struct OffsetTable {
    groups: HashMap<String, HashMap<(String, i32), CommittedOffset>>,
}

impl OffsetTable {
    /// Applies one log record (a commit, or a tombstone when `value` is None).
    pub fn apply(&mut self, key: OffsetKey, value: Option<CommittedOffset>) {
        match value {
            Some(v) => {
                self.groups
                    .entry(key.group)
                    .or_default()
                    .insert((key.topic, key.partition), v);
            }
            None => {
                if let Some(g) = self.groups.get_mut(&key.group) {
                    g.remove(&(key.topic, key.partition));
                    if g.is_empty() {
                        self.groups.remove(&key.group);
                    }
                }
            }
        }
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// All offsets of a group, sorted by (topic, partition).
    pub fn group(&self, group: &str) -> Vec<(String, i32, CommittedOffset)> {
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

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Number of live (group, topic, partition) entries.
    pub fn len(&self) -> usize {
        self.groups.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Keys whose offsets have expired at `now` (not removed: the caller writes tombstones and
    /// applies them).
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
            for ((topic, partition), o) in offsets {
                let dead = match (o.expire_timestamp, act) {
                    (Some(expire), _) => now >= expire,
                    (None, GroupActivity::EmptySince(t)) => {
                        now.saturating_sub(t.max(o.commit_timestamp)) >= retention_ms
                    }
                    // Saturating: an OffsetCommit v1 timestamp is whatever the client sent.
                    (None, _) => now.saturating_sub(o.commit_timestamp) >= retention_ms,
                };
                if dead {
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
        t.apply(k("active", 0), Some(off(1, 0)));
        t.apply(k("empty", 0), Some(off(1, 0)));
        t.apply(k("solo", 0), Some(off(1, 0)));
        t.apply(k("solo", 1), Some(off(1, 900)));
        t.apply(
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
        t.apply(k("solo", 0), None);
        t.apply(k("solo", 1), None);
        assert!(!t.has_group("solo"));
        assert_eq!(t.get("empty", "t", 0).unwrap().offset, 1);
    }
}

//! The durable transaction state of one shard: Kafka's `__transaction_state` on Ringbolt's own
//! [`PartitionLog`], and its record format.
//!
//! # Layout
//! `<data-dir>/__transaction_state-<p>/` for `p` in `0..transaction.state.log.num.partitions`
//! (50): a transactional id lives on partition `abs(javaHash(id)) % 50` as in Kafka, and that
//! partition on shard `p % shards`, like the groups' offsets partitions. Partitions are opened on
//! their first write, or at start when their directory exists.
//!
//! # Record format
//! Kafka's own, so Kafka's tools can read these logs. kafka-protocol has no codec for them (they
//! are coordinator records, not API messages), so they are encoded here by hand from
//! `TransactionLogKey.json` / `TransactionLogValue.json`:
//! - key (version 0): `i16 version, string transactional_id`
//! - value (version 1, flexible): `i16 version, i64 producer_id, i16 producer_epoch,
//!   i32 timeout_ms, i8 state, compact nullable [topic: compact string, partitions: compact
//!   [i32], tagged fields], i64 last_update_ms, i64 start_ms`, tagged fields: 0
//!   `previous_producer_id`, 1 `next_producer_id` (when not -1), and Ringbolt's tag
//!   [`TAG_GROUPS`]: the consumer groups of the transaction (AddOffsetsToTxn), which Kafka keeps
//!   as `__consumer_offsets` partitions instead; Kafka's reader keeps unknown tags and ignores
//!   them. Version 0 values (no tagged fields) are read too.
//! - a tombstone (null value) removes an expired transactional id.
//!
//! # Write path
//! Every state change is one record, appended and waited for with
//! [`PartitionLog::wait_durable`] before the coordinator installs it and answers: transactions
//! change state a few times each, and concurrent writers share the log's fdatasync (group
//! commit), so this needs no batching of its own.
//!
//! # Compaction
//! The store keeps each partition's live records (the last value of every key, as encoded) and,
//! once a log holds over `compact_min_records` records and more than twice its live set,
//! rewrites it with [`keyed_log::rewrite`]. Writes hold a read lock on their partition, the
//! rewrite the write lock, so a rewrite never misses a record that is being written.

use super::state::{TxnMetadata, TxnState};
use crate::storage::{PartitionLog, StorageError, keyed_log};
use crate::util::now_ms;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use glommio::sync::RwLock;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub const KEY_VERSION: i16 = 0;
pub const VALUE_VERSION: i16 = 1;
/// Ringbolt's tagged field of the value: the transaction's consumer groups.
pub const TAG_GROUPS: u32 = 10_000;
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("transaction record truncated or malformed")]
    Truncated,
    #[error("transaction record string is not UTF-8")]
    Utf8,
    #[error("unsupported transaction record version {0}")]
    Version(i16),
    #[error("unknown transaction state {0}")]
    State(i8),
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(KEY_VERSION);
    let len = transactional_id.len().min(i16::MAX as usize);
    b.put_i16(len as i16);
    b.put_slice(&transactional_id.as_bytes()[..len]);
    b.freeze()
}

/// The transactional id of a key; `None` for a key version this broker does not write.
pub fn decode_key(mut buf: &[u8]) -> Result<Option<String>, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError::Truncated);
    }
    if buf.get_i16() != KEY_VERSION {
        return Ok(None);
    }
    let len = usize::try_from(buf.get_i16()).map_err(|_| DecodeError::Truncated)?;
    get_str(&mut buf, len).map(Some)
}

// kafka-protocol keeps its primitive codecs (varints, compact strings) private, hence these.
fn uvarint(b: &mut BytesMut, v: usize) {
    let mut v = v.min(u32::MAX as usize) as u32;
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn compact_str(b: &mut BytesMut, s: &str) {
    uvarint(b, s.len() + 1);
    b.put_slice(s.as_bytes());
}

fn tagged(b: &mut BytesMut, tag: u32, body: &[u8]) {
    uvarint(b, tag as usize);
    uvarint(b, body.len());
    b.put_slice(body);
}

/// The value record of `m` (state Dead is written as a tombstone by the store, not here).
pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(VALUE_VERSION);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    // Kafka never persists PrepareEpochFence: it writes the abort it leads to.
    let state = match m.state {
        TxnState::PrepareEpochFence => TxnState::PrepareAbort,
        s => s,
    };
    b.put_i8(state.id());
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &m.partitions {
        topics.entry(t).or_default().push(*p);
    }
    uvarint(&mut b, topics.len() + 1);
    for (t, ps) in &topics {
        compact_str(&mut b, t);
        uvarint(&mut b, ps.len() + 1);
        for p in ps {
            b.put_i32(*p);
        }
        uvarint(&mut b, 0);
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    let mut tags: Vec<(u32, BytesMut)> = Vec::new();
    if m.prev_producer_id != -1 {
        tags.push((
            TAG_PREVIOUS_PRODUCER_ID,
            BytesMut::from(&m.prev_producer_id.to_be_bytes()[..]),
        ));
    }
    if m.next_producer_id != -1 {
        tags.push((
            TAG_NEXT_PRODUCER_ID,
            BytesMut::from(&m.next_producer_id.to_be_bytes()[..]),
        ));
    }
    if !m.groups.is_empty() {
        let mut g = BytesMut::new();
        uvarint(&mut g, m.groups.len() + 1);
        for group in &m.groups {
            compact_str(&mut g, group);
        }
        tags.push((TAG_GROUPS, g));
    }
    uvarint(&mut b, tags.len());
    for (tag, body) in &tags {
        tagged(&mut b, *tag, body);
    }
    b.freeze()
}

fn get_uvarint(buf: &mut &[u8]) -> Result<usize, DecodeError> {
    let mut v = 0u32;
    for i in 0..5 {
        need(buf, 1)?;
        let b = buf.get_u8() as u32;
        v |= (b & 0x7f) << (i * 7);
        if b < 0x80 {
            return Ok(v as usize);
        }
    }
    Err(DecodeError::Truncated)
}

fn get_str(buf: &mut &[u8], len: usize) -> Result<String, DecodeError> {
    need(buf, len)?;
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

fn get_compact_str(buf: &mut &[u8]) -> Result<String, DecodeError> {
    let len = get_uvarint(buf)?.saturating_sub(1);
    get_str(buf, len)
}

/// Skips a tagged-field section, handing each field to `f(tag, body)`.
fn tagged_fields(
    buf: &mut &[u8],
    mut f: impl FnMut(u32, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let n = get_uvarint(buf)?;
    for _ in 0..n {
        let tag = get_uvarint(buf)? as u32;
        let size = get_uvarint(buf)?;
        need(buf, size)?;
        f(tag, &buf[..size])?;
        buf.advance(size);
    }
    Ok(())
}

fn get_i64(mut body: &[u8]) -> Result<i64, DecodeError> {
    need(body, 8)?;
    Ok(body.get_i64())
}

/// Decodes the value record of `transactional_id` (versions 0 and 1).
pub fn decode_value(transactional_id: &str, mut buf: &[u8]) -> Result<TxnMetadata, DecodeError> {
    need(buf, 2)?;
    let version = buf.get_i16();
    if !(0..=1).contains(&version) {
        return Err(DecodeError::Version(version));
    }
    let flexible = version >= 1;
    need(buf, 8 + 2 + 4 + 1)?;
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let sid = buf.get_i8();
    let state = TxnState::from_id(sid).ok_or(DecodeError::State(sid))?;
    let mut m = TxnMetadata::new(transactional_id, producer_id, timeout_ms, 0);
    m.producer_epoch = producer_epoch;
    m.state = state;
    let topics = if flexible {
        get_uvarint(&mut buf)?.checked_sub(1)
    } else {
        need(buf, 4)?;
        usize::try_from(buf.get_i32()).ok()
    };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible {
            get_compact_str(&mut buf)?
        } else {
            need(buf, 2)?;
            let len = usize::try_from(buf.get_i16()).map_err(|_| DecodeError::Truncated)?;
            get_str(&mut buf, len)?
        };
        let n = if flexible {
            get_uvarint(&mut buf)?.saturating_sub(1)
        } else {
            need(buf, 4)?;
            usize::try_from(buf.get_i32()).unwrap_or(0)
        };
        need(buf, n.saturating_mul(4))?;
        for _ in 0..n {
            m.partitions.insert((topic.clone(), buf.get_i32()));
        }
        if flexible {
            tagged_fields(&mut buf, |_, _| Ok(()))?;
        }
    }
    need(buf, 16)?;
    m.last_update_ms = buf.get_i64();
    m.start_ms = buf.get_i64();
    if flexible {
        let mut groups = BTreeSet::new();
        tagged_fields(&mut buf, |tag, mut body| {
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => m.prev_producer_id = get_i64(body)?,
                TAG_NEXT_PRODUCER_ID => m.next_producer_id = get_i64(body)?,
                TAG_GROUPS => {
                    let n = get_uvarint(&mut body)?.saturating_sub(1);
                    for _ in 0..n {
                        groups.insert(get_compact_str(&mut body)?);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        m.groups = groups;
    }
    Ok(m)
}

/// Settings of the transaction log (Kafka's names).
#[derive(Debug, Clone)]
pub struct TxnLogConfig {
    pub data_dir: PathBuf,
    /// `transaction.state.log.num.partitions` (50): fixed, it decides where ids live.
    pub num_partitions: u32,
    /// `transaction.state.log.segment.bytes` (100 MiB).
    pub segment_bytes: u64,
    /// Rewrite a partition's log once it holds this many records and over twice its live set.
    pub compact_min_records: u64,
}

impl TxnLogConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        TxnLogConfig {
            data_dir: data_dir.into(),
            num_partitions: 50,
            segment_bytes: 100 * 1024 * 1024,
            compact_min_records: 10_000,
        }
    }
}

pub fn partition_dir(data_dir: &Path, p: u32) -> PathBuf {
    data_dir.join(format!("__transaction_state-{p}"))
}

struct Partition {
    dir: PathBuf,
    log: RefCell<Option<Rc<PartitionLog>>>,
    /// Last record of every key (encoded key → encoded value), the rewrite's input.
    live: RefCell<HashMap<Bytes, Bytes>>,
    records: Cell<u64>,
    lock: RwLock<()>,
    rewriting: Cell<bool>,
}

/// One shard's transaction log partitions.
pub struct TxnLog {
    cfg: TxnLogConfig,
    parts: RefCell<HashMap<u32, Rc<Partition>>>,
}

impl TxnLog {
    /// Opens every existing partition for which `owned(p)` holds and returns the transactions
    /// it holds (the last record of each id; tombstones remove).
    pub async fn load(
        cfg: TxnLogConfig,
        owned: impl Fn(u32) -> bool,
    ) -> Result<(Rc<Self>, Vec<TxnMetadata>), StorageError> {
        let store = Rc::new(TxnLog {
            cfg,
            parts: RefCell::new(HashMap::new()),
        });
        let mut out = Vec::new();
        for p in 0..store.cfg.num_partitions {
            if !owned(p) {
                continue;
            }
            let dir = partition_dir(&store.cfg.data_dir, p);
            keyed_log::recover_dirs(&dir)?;
            if !dir.exists() {
                continue;
            }
            let part = store.partition(p);
            let log = store.open_log(&part).await?;
            let mut live = HashMap::new();
            let n = keyed_log::for_each_record(&log, |offset, k, v| match v {
                Some(v) => {
                    live.insert(k, v);
                }
                None => {
                    if live.remove(&k).is_none() {
                        tracing::debug!(offset, "tombstone of an unknown transactional id");
                    }
                }
            })
            .await?;
            for (k, v) in &live {
                match decode_key(k).and_then(|id| match id {
                    Some(id) => decode_value(&id, v).map(Some),
                    None => Ok(None),
                }) {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(partition = p, error = %e, "bad transaction record"),
                }
            }
            tracing::info!(
                partition = p,
                records = n,
                live = live.len(),
                "transaction log loaded"
            );
            part.records.set(n);
            *part.live.borrow_mut() = live;
        }
        Ok((store, out))
    }

    pub fn config(&self) -> &TxnLogConfig {
        &self.cfg
    }

    fn partition(&self, p: u32) -> Rc<Partition> {
        self.parts
            .borrow_mut()
            .entry(p)
            .or_insert_with(|| {
                Rc::new(Partition {
                    dir: partition_dir(&self.cfg.data_dir, p),
                    log: RefCell::new(None),
                    live: RefCell::new(HashMap::new()),
                    records: Cell::new(0),
                    lock: RwLock::new(()),
                    rewriting: Cell::new(false),
                })
            })
            .clone()
    }

    async fn open_log(&self, part: &Partition) -> Result<Rc<PartitionLog>, StorageError> {
        if let Some(l) = part.log.borrow().as_ref() {
            return Ok(l.clone());
        }
        let log = PartitionLog::open(
            part.dir.clone(),
            keyed_log::log_config(self.cfg.segment_bytes),
        )
        .await?;
        let log = Rc::new(log);
        *part.log.borrow_mut() = Some(log.clone());
        Ok(log)
    }

    /// Writes `m` (a tombstone for state Dead) to partition `p` and waits until it is durable.
    pub async fn write(self: &Rc<Self>, p: u32, m: &TxnMetadata) -> Result<(), StorageError> {
        let part = self.partition(p);
        let key = encode_key(&m.transactional_id);
        let value = (m.state != TxnState::Dead).then(|| encode_value(m));
        {
            let _guard = part
                .lock
                .read()
                .await
                .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?;
            let log = self.open_log(&part).await?;
            let bytes = keyed_log::encode_records(&[(key.clone(), value.clone())], now_ms());
            let info = log.append(bytes).await?;
            part.records.set(part.records.get() + 1);
            match value {
                Some(v) => part.live.borrow_mut().insert(key, v),
                None => part.live.borrow_mut().remove(&key),
            };
            log.wait_durable(info.last_offset).await?;
        }
        self.maybe_compact(part);
        Ok(())
    }

    fn maybe_compact(self: &Rc<Self>, part: Rc<Partition>) {
        let records = part.records.get();
        let live = part.live.borrow().len() as u64;
        if records < self.cfg.compact_min_records || records <= 2 * live || part.rewriting.get() {
            return;
        }
        part.rewriting.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = me.rewrite(&part).await {
                tracing::error!(dir = %part.dir.display(), error = %e, "transaction log rewrite failed");
            }
            part.rewriting.set(false);
        })
        .detach();
    }

    async fn rewrite(&self, part: &Partition) -> Result<(), StorageError> {
        let _guard = part
            .lock
            .write()
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?;
        let entries: Vec<(Bytes, Option<Bytes>)> = part
            .live
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let current = part.log.borrow_mut().take();
        let log = keyed_log::rewrite(
            &part.dir,
            &keyed_log::log_config(self.cfg.segment_bytes),
            current,
            keyed_log::encode_records(&entries, now_ms()),
        )
        .await?;
        *part.log.borrow_mut() = Some(Rc::new(log));
        part.records.set(entries.len() as u64);
        tracing::info!(dir = %part.dir.display(), live = entries.len(), "transaction log rewritten");
        Ok(())
    }

    /// Records currently in partition `p`'s log (tests).
    pub fn log_records(&self, p: u32) -> u64 {
        self.parts.borrow().get(&p).map_or(0, |x| x.records.get())
    }

    /// Flushes and closes every open log (clean shutdown).
    pub async fn close(&self) -> Result<(), StorageError> {
        let parts: Vec<Rc<Partition>> = self.parts.borrow().values().cloned().collect();
        for p in parts {
            let log = p.log.borrow_mut().take();
            if let Some(l) = log {
                l.close().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;

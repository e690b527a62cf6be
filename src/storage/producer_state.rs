//! Producer state of one partition, for idempotence and transactions in one state machine:
//! producer id → epoch, its last five batches, its ongoing transaction's first offset and the
//! coordinator epoch of its last marker; per partition, the ongoing transactions ordered by first
//! offset, which give the last stable offset.
//!
//! # What is checked (Kafka's `ProducerAppendInfo` / `ProducerStateEntry`)
//! Every produced v2 batch with a producer id (>= 0) is checked against the partition's entry for
//! that id before it is given offsets:
//! - **Duplicate**: same epoch and exactly the same (first, last) sequence as one of the last
//!   [`BATCHES_TO_RETAIN`] batches → nothing is written and the append is answered with the
//!   original batch's offsets (error NONE), as Kafka does for a retried batch.
//! - **Stale epoch**: epoch lower than the entry's → `INVALID_PRODUCER_EPOCH` (Kafka >= 2.7 sends
//!   this instead of the fatal `PRODUCER_FENCED` on the produce path).
//! - **New epoch**: must start at sequence 0 (unless the entry has no epoch) →
//!   `OUT_OF_ORDER_SEQUENCE_NUMBER` otherwise.
//! - **Same epoch**: the first sequence must follow the last one (`last + 1`, or `0` after
//!   `i32::MAX`: sequences wrap) → `OUT_OF_ORDER_SEQUENCE_NUMBER` otherwise.
//! - **Unknown producer**: any sequence is accepted. Since KIP-360 (Kafka 2.5) brokers no longer
//!   answer `UNKNOWN_PRODUCER_ID` for data batches: a producer whose state is gone (retention,
//!   expiry) simply starts a new entry. So this broker never returns `UNKNOWN_PRODUCER_ID` either.
//!
//! The check runs in the same synchronous section of [`super::PartitionLog::append`] that assigns
//! offsets, on the partition's owner shard, so it is serialised with the append: two in-flight
//! copies of one batch cannot both pass. A duplicate whose original is still being written is
//! answered once the original is readable (same wait as a normal append).
//!
//! # Transactions (Kafka's `ProducerAppendInfo.appendDataBatch` / `appendEndTxnMarker`)
//! - A **transactional batch** of a producer with no ongoing transaction starts one at its base
//!   offset; later transactional batches continue it. A **non-transactional batch** from a
//!   producer whose transaction is ongoing is refused with `INVALID_TXN_STATE`, as Kafka does.
//! - A **marker** (control batch, written by [`super::PartitionLog::append_marker`], never by
//!   clients: `append` refuses control batches with `INVALID_RECORD`) is checked first: an epoch
//!   older than the entry's is `INVALID_PRODUCER_EPOCH`, a coordinator epoch older than the one
//!   of the producer's last marker is `TRANSACTION_COORDINATOR_FENCED`. It then ends the ongoing
//!   transaction (if any: a marker for a producer that wrote nothing here — a partition added to
//!   the transaction but never produced to — is written anyway and completes nothing, so no
//!   index entry), takes the marker's epoch (clearing the remembered batches when it changed)
//!   and its coordinator epoch. An ABORT of a non-empty transaction yields the
//!   [`TxnIndexEntry`] the log adds to the active segment's `.txnindex` (`txn_index.rs`).
//! - The **last stable offset** is the least of the ongoing transactions' first offsets, the
//!   first offsets of transactions whose marker is assigned but not yet written (Kafka's
//!   "unreplicated" completed transactions: the data stays unstable until its marker is readable,
//!   so a read_committed reader never sees a committed transaction's data without the marker
//!   after it), and the high watermark.
//! - A producer with an ongoing transaction is never expired.
//!
//! # Restart: snapshots plus a tail scan (Kafka's design)
//! The state is written to `<offset>.snapshot` (20-digit offset, like Kafka's file name; our own
//! binary format, below) when a segment rolls (offset = new segment base, written by the writer
//! after the old segment is synced), on clean close (offset = log end) and, through the writer's
//! queue, after every [`SNAPSHOT_EVERY_BYTES`] appended (offset = end of the append that crossed
//! it). The two newest are kept. A snapshot may cover data a crash then loses: on open a snapshot
//! past the recovered log end is deleted and the previous one used. On open the newest readable snapshot whose offset is <= the recovered log end is loaded
//! and the batch *headers* from its offset to the log end are replayed (producer id, epoch, base
//! sequence and offsets are all in the 61-byte header; records are not read). Cost: nothing after a
//! clean shutdown; after a crash, a header walk of what was written since the last snapshot
//! (about [`SNAPSHOT_EVERY_BYTES`], twice that if the newest snapshot covered lost data). Without
//! any usable snapshot (a partition that never rolled or closed cleanly, a crash tearing the first
//! roll's snapshot after the new segment was created, a data dir from before this feature) every
//! segment is replayed, once: the next roll or close writes a snapshot. (Replaying only the active
//! segment would be wrong there: it may be the empty one the interrupted roll created.)
//!
//! Why not scan only: a full scan on every open costs a read of the whole active segment (up to
//! `segment.bytes`) per partition, also after clean shutdowns. Why not snapshot on every append:
//! a write per produce request. Kafka snapshots at roll and close only (and then re-reads whole
//! segments after a crash); the byte interval bounds our crash replay at the price of one small
//! file write and two fdatasyncs per 64 MiB appended.
//!
//! `cargo bench --bench storage -- producer_state` measures the check plus update per produced
//! batch (with one producer and with 1000 on the partition: small next to the append itself) and
//! reopening a partition with 64 MiB of idempotent batches from the close snapshot against
//! replaying every batch header (from a cold device the replay is bound by reading those 64 MiB);
//! measured in `docs/perf/storage-bench.md`.
//!
//! Producers idle for longer than [`PRODUCER_ID_EXPIRATION_MS`] (Kafka's
//! `producer.id.expiration.ms` default, 1 day, measured from the broker's clock at the
//! producer's last append) are dropped when a snapshot is taken, on open, and by appends at most
//! every [`EXPIRATION_CHECK_INTERVAL_MS`]. Memory: about 250 bytes per live producer.
//!
//! Snapshot format (big-endian): `"RBPS"`, version u16 = 2, CRC-32C u32 of everything after it,
//! offset i64, producer count u32, then per producer: id i64, epoch i16, last append ms i64,
//! coordinator epoch i32 (-1: none), ongoing transaction's first offset i64 (-1: none), last
//! timestamp i64 (of its last batch or marker, -1: none), batch count u8, and per batch: first
//! seq i32, last seq i32, first offset i64, last offset i64, max timestamp i64. Version 1 (the
//! same without the three transaction fields) is still read, as a state without transactions.
//! A snapshot failing its CRC is ignored (and the previous behaviour, a scan, applies). The
//! ongoing transactions are rebuilt from the entries' first offsets.
//!
//! The replay after the snapshot walks batch headers and, for control batches, reads the
//! marker's record (a few bytes after the header) to know COMMIT from ABORT; it rebuilds the
//! ongoing transactions and returns the aborted-transaction entries of the replayed range, which
//! the log puts back into the segments' `.txnindex` files (`log.rs`, `txn_index.rs`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::format::record_batch::BatchHeader;

use super::error::StorageError;
use super::segment::HeaderScanner;
use super::txn::{ProducerInfo, TxnMarker};
use super::txn_index::TxnIndexEntry;

/// Batches remembered per producer for duplicate detection (Kafka's `NUM_BATCHES_TO_RETAIN`,
/// equal to the clients' `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_TO_RETAIN: usize = 5;
/// Kafka's `producer.id.expiration.ms` default (1 day).
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;
/// How often appends also expire idle producers (Kafka's
/// `producer.id.expiration.check.interval.ms` default, 10 minutes).
pub const EXPIRATION_CHECK_INTERVAL_MS: i64 = 600_000;
/// A snapshot is also written after this many bytes were appended since the last one, so a
/// crash replays at most about this much (batch headers only).
pub const SNAPSHOT_EVERY_BYTES: u64 = 64 << 20;
/// `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

const MAGIC: &[u8; 4] = b"RBPS";
const VERSION: u16 = 2;
/// The format before transactions, still read.
const VERSION_1: u16 = 1;
const SUFFIX: &str = "snapshot";

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// One producer's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMeta>,
    /// Broker wall-clock ms of the last append (for expiry).
    pub last_append_ms: i64,
    /// The coordinator epoch of the producer's last marker here, -1 when none.
    pub coordinator_epoch: i32,
    /// The first offset of its ongoing transaction here, -1 when none.
    pub txn_first_offset: i64,
    /// The max timestamp of its last batch, or its last marker's timestamp; -1 when none.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            last_append_ms: 0,
            coordinator_epoch: -1,
            txn_first_offset: -1,
            last_timestamp: -1,
        }
    }
}

/// A transaction a marker ended (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
    /// The LSO once it ended: the first offset of the oldest transaction still ongoing, or
    /// `last_offset + 1`.
    pub last_stable_offset: i64,
}

impl CompletedTxn {
    /// Its `.txnindex` entry (aborted transactions only).
    pub fn index_entry(&self) -> Option<TxnIndexEntry> {
        self.aborted.then_some(TxnIndexEntry {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            last_stable_offset: self.last_stable_offset,
        })
    }
}

/// What the check decided for an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Append,
    /// A retry of this already written batch: answer with its offsets, write nothing.
    Duplicate(BatchMeta),
}

/// The last sequence of a batch: `base + lastOffsetDelta`, wrapping past `i32::MAX` to 0
/// (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn last_sequence(base_seq: i32, last_offset_delta: i32) -> i32 {
    if base_seq > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - base_seq) - 1
    } else {
        base_seq + last_offset_delta
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    next as i64 == last as i64 + 1 || (next == 0 && last == i32::MAX)
}

/// All producers of one partition.
///
/// Invariants: `ongoing` holds exactly (first offset → producer id) of the entries whose
/// `txn_first_offset >= 0`; `unwritten` holds (first offset, marker offset) of transactions whose
/// marker was assigned an offset, in marker order, until the high watermark passed the marker.
#[derive(Debug, Default, Clone)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    ongoing: BTreeMap<i64, i64>,
    unwritten: VecDeque<(i64, i64)>,
    /// Wall-clock ms of the last expiry pass.
    last_expiry_ms: i64,
}

impl PartialEq for ProducerStates {
    fn eq(&self, other: &Self) -> bool {
        self.producers == other.producers && self.ongoing == other.ongoing
    }
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Producer id → last offset of its newest batch, for every producer still tracked (the
    /// batches the log cleaner must keep, even emptied, so this state survives a rebuild).
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(pid, e)| e.batches.back().map(|b| (*pid, b.last_offset)))
            .collect()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks the batches of one append (headers as received) in order, as if each earlier one
    /// had been applied. Any duplicate makes the whole append a duplicate (Kafka returns at the
    /// first duplicate too; clients send one batch per partition and request).
    pub fn check(&self, headers: &[BatchHeader]) -> Result<Verdict, StorageError> {
        // Entries updated by earlier batches of this same append (rare: usually one batch).
        let mut overlay: Vec<(i64, ProducerEntry)> = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            if h.producer_id < 0 {
                continue;
            }
            let pid = h.producer_id;
            let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
            if let Some(e) = self.producers.get(&pid)
                && e.epoch == h.producer_epoch
                && let Some(b) = e
                    .batches
                    .iter()
                    .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
            {
                return Ok(Verdict::Duplicate(*b));
            }
            let cur = overlay
                .iter()
                .find(|(p, _)| *p == pid)
                .map(|(_, e)| e)
                .or_else(|| self.producers.get(&pid));
            let cur_epoch = cur.map_or(NO_PRODUCER_EPOCH, |e| e.epoch);
            if !h.is_transactional() && cur.is_some_and(|e| e.txn_first_offset >= 0) {
                return Err(StorageError::InvalidTxnState(format!(
                    "producer {pid}: non-transactional batch while its transaction is ongoing"
                )));
            }
            if h.producer_epoch < cur_epoch {
                return Err(StorageError::InvalidProducerEpoch(format!(
                    "producer {pid}: epoch {} is older than the current epoch {cur_epoch}",
                    h.producer_epoch
                )));
            }
            if h.producer_epoch != cur_epoch {
                if h.base_sequence != 0 && cur_epoch != NO_PRODUCER_EPOCH {
                    return Err(StorageError::OutOfOrderSequence(format!(
                        "producer {pid}: new epoch {} must start at sequence 0, got {} (current epoch {cur_epoch})",
                        h.producer_epoch, h.base_sequence
                    )));
                }
            } else if let Some(last) = cur.and_then(|e| e.batches.back())
                && !in_sequence(last.last_seq, h.base_sequence)
            {
                return Err(StorageError::OutOfOrderSequence(format!(
                    "producer {pid} epoch {}: sequence {} does not follow {}",
                    h.producer_epoch, h.base_sequence, last.last_seq
                )));
            }
            if i + 1 < headers.len() {
                let mut e = cur
                    .cloned()
                    .unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
                add_batch(&mut e, h, 0);
                if h.is_transactional() && e.txn_first_offset < 0 {
                    // Only "ongoing" matters here (offsets are not assigned yet).
                    e.txn_first_offset = h.base_offset.max(0);
                }
                match overlay.iter_mut().find(|(p, _)| *p == pid) {
                    Some(slot) => slot.1 = e,
                    None => overlay.push((pid, e)),
                }
            }
        }
        Ok(Verdict::Append)
    }

    /// Records a written data batch (`h` carries its final offsets): its sequence, and the start
    /// of its producer's transaction if it is the first transactional one. No checks: callers
    /// ran [`ProducerStates::check`] first, or replay the log. Control batches are markers:
    /// [`ProducerStates::apply_marker`].
    pub fn apply(&mut self, h: &BatchHeader, now_ms: i64) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        let e = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        add_batch(e, h, now_ms);
        if h.is_transactional() && e.txn_first_offset < 0 {
            e.txn_first_offset = h.base_offset;
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// Checks a marker before it is written (Kafka's `checkProducerEpoch` and
    /// `checkCoordinatorEpoch`).
    pub fn check_marker(&self, m: &TxnMarker) -> Result<(), StorageError> {
        let Some(e) = self.producers.get(&m.producer_id) else {
            return Ok(());
        };
        if m.producer_epoch < e.epoch {
            return Err(StorageError::InvalidProducerEpoch(format!(
                "marker for producer {}: epoch {} is older than the current epoch {}",
                m.producer_id, m.producer_epoch, e.epoch
            )));
        }
        if m.coordinator_epoch < e.coordinator_epoch {
            return Err(StorageError::CoordinatorFenced(format!(
                "marker for producer {}: coordinator epoch {} is older than {}",
                m.producer_id, m.coordinator_epoch, e.coordinator_epoch
            )));
        }
        Ok(())
    }

    /// Records a marker at `offset` (timestamp `timestamp`): ends the producer's transaction and
    /// returns it, if one was ongoing. `hw` is the high watermark now: a marker at or above it is
    /// not readable yet, so its transaction keeps the LSO until it is (see the module docs).
    pub fn apply_marker(
        &mut self,
        m: &TxnMarker,
        offset: i64,
        timestamp: i64,
        now_ms: i64,
        hw: i64,
    ) -> Option<CompletedTxn> {
        self.prune_unwritten(hw);
        let e = self
            .producers
            .entry(m.producer_id)
            .or_insert_with(|| ProducerEntry::new(m.producer_epoch));
        let first = e.txn_first_offset;
        if e.epoch != m.producer_epoch {
            e.epoch = m.producer_epoch;
            e.batches.clear();
        }
        e.txn_first_offset = -1;
        e.coordinator_epoch = m.coordinator_epoch;
        e.last_timestamp = timestamp;
        e.last_append_ms = e.last_append_ms.max(now_ms);
        if first < 0 {
            return None;
        }
        self.ongoing.remove(&first);
        if offset >= hw {
            self.unwritten.push_back((first, offset));
        }
        Some(CompletedTxn {
            producer_id: m.producer_id,
            first_offset: first,
            last_offset: offset,
            aborted: !m.commit,
            last_stable_offset: self.ongoing.keys().next().copied().unwrap_or(offset + 1),
        })
    }

    fn prune_unwritten(&mut self, hw: i64) {
        while self
            .unwritten
            .front()
            .is_some_and(|&(_, marker)| marker < hw)
        {
            self.unwritten.pop_front();
        }
    }

    /// The last stable offset given the high watermark `hw` (module docs).
    pub fn last_stable_offset(&self, hw: i64) -> i64 {
        let ongoing = self.ongoing.keys().next().copied().unwrap_or(i64::MAX);
        let unwritten = self
            .unwritten
            .iter()
            .filter(|&&(_, marker)| marker >= hw)
            .map(|&(first, _)| first)
            .min()
            .unwrap_or(i64::MAX);
        hw.min(ongoing).min(unwritten)
    }

    /// (first offset, producer id) of the ongoing transactions, oldest first.
    pub fn ongoing(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(f, p)| (*f, *p))
    }

    /// Every producer, by id (DescribeProducers).
    pub fn infos(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(pid, e)| ProducerInfo {
                producer_id: *pid,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset,
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    /// Expires idle producers at most every [`EXPIRATION_CHECK_INTERVAL_MS`] (called on append,
    /// so a partition whose active segment lives long does not accumulate dead producers).
    pub fn maybe_expire(&mut self, now_ms: i64) {
        if now_ms - self.last_expiry_ms >= EXPIRATION_CHECK_INTERVAL_MS {
            self.expire(now_ms, PRODUCER_ID_EXPIRATION_MS);
        }
    }

    /// Drops producers whose last append is older than `max_age_ms`, unless their transaction is
    /// ongoing (Kafka's `isProducerExpired`).
    pub fn expire(&mut self, now_ms: i64, max_age_ms: i64) {
        self.last_expiry_ms = now_ms;
        self.producers.retain(|_, e| {
            e.txn_first_offset >= 0 || now_ms.saturating_sub(e.last_append_ms) < max_age_ms
        });
    }

    /// The snapshot file contents for the state as of `offset` (the log end it covers).
    pub fn encode(&self, offset: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(12 + self.producers.len() * (39 + 36 * 5));
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_append_ms.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.txn_first_offset.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(10 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot (version 2, or 1 from before transactions): (offset, state), or `None`
    /// if it is not a valid one.
    pub fn decode(buf: &[u8]) -> Option<(i64, Self)> {
        if buf.len() < 10 || &buf[..4] != MAGIC {
            return None;
        }
        let version = u16::from_be_bytes([buf[4], buf[5]]);
        if version != VERSION && version != VERSION_1 {
            return None;
        }
        let crc = u32::from_be_bytes(buf[6..10].try_into().ok()?);
        let body = &buf[10..];
        if crc32c::crc32c(body) != crc {
            return None;
        }
        let mut r = Reader { buf: body, pos: 0 };
        let offset = r.i64()?;
        let n = r.u32()?;
        let mut producers = HashMap::with_capacity((n as usize).min(1 << 16));
        let mut ongoing = BTreeMap::new();
        for _ in 0..n {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_append_ms = r.i64()?;
            let (coordinator_epoch, txn_first_offset, last_timestamp) = if version == VERSION {
                (r.i32()?, r.i64()?, r.i64()?)
            } else {
                (-1, -1, -1)
            };
            let nb = r.u8()? as usize;
            let mut batches = VecDeque::with_capacity(nb.min(BATCHES_TO_RETAIN));
            for _ in 0..nb {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    max_timestamp: r.i64()?,
                });
            }
            while batches.len() > BATCHES_TO_RETAIN {
                batches.pop_front();
            }
            let last_timestamp = if version == VERSION {
                last_timestamp
            } else {
                batches.back().map_or(-1, |b| b.max_timestamp)
            };
            if txn_first_offset >= 0 {
                ongoing.insert(txn_first_offset, id);
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_append_ms,
                    coordinator_epoch,
                    txn_first_offset,
                    last_timestamp,
                },
            );
        }
        (r.pos == body.len()).then_some((
            offset,
            ProducerStates {
                producers,
                ongoing,
                unwritten: VecDeque::new(),
                last_expiry_ms: 0,
            },
        ))
    }
}

fn add_batch(e: &mut ProducerEntry, h: &BatchHeader, now_ms: i64) {
    if e.epoch != h.producer_epoch {
        e.batches.clear();
        e.epoch = h.producer_epoch;
    }
    if e.batches.len() == BATCHES_TO_RETAIN {
        e.batches.pop_front();
    }
    e.batches.push_back(BatchMeta {
        first_seq: h.base_sequence,
        last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
        first_offset: h.base_offset,
        last_offset: h.last_offset(),
        max_timestamp: h.max_timestamp,
    });
    e.last_timestamp = h.max_timestamp;
    e.last_append_ms = e.last_append_ms.max(now_ms);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.buf.get(self.pos..self.pos + N)?;
        self.pos += N;
        b.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take()?))
    }
}

/// `<dir>/<offset:020>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(super::segment::file_name(offset, SUFFIX))
}

/// Snapshot files in `dir` as (offset, path), newest first.
fn list_snapshots(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".snapshot")
                && stem.len() == 20
                && let Ok(o) = stem.parse::<i64>()
            {
                out.push((o, entry.path()));
            }
        }
    }
    out.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    out
}

/// Writes the snapshot for `offset` (synced); the caller syncs the directory and then calls
/// [`remove_older_snapshots`].
pub(crate) async fn write_snapshot(
    dir: &Path,
    offset: i64,
    bytes: Vec<u8>,
) -> Result<(), StorageError> {
    super::segment::write_small_file(&snapshot_path(dir, offset), bytes).await?;
    Ok(())
}

/// Keeps the two newest snapshots and removes the others (blocking unlinks; rare: on roll and
/// close). Two, so that a snapshot torn by a crash still leaves the previous one.
pub(crate) fn remove_older_snapshots(dir: &Path) {
    for (_, p) in list_snapshots(dir).into_iter().skip(2) {
        let _ = std::fs::remove_file(p);
    }
}

/// Removes the snapshots past `offset` (a truncation cut the log there: they describe data that
/// is gone, and later appends would make them look valid again); blocking unlinks, rare.
pub(crate) fn remove_snapshots_after(dir: &Path, offset: i64) -> std::io::Result<()> {
    for (o, p) in list_snapshots(dir) {
        if o > offset {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

/// A segment's extent, for the replay.
pub(crate) struct SegmentExtent {
    pub base: i64,
    pub next_offset: i64,
    pub size: u64,
    pub path: PathBuf,
}

/// What [`rebuild`] found: the state as of the log end, where its replay started, and the
/// aborted transactions whose ABORT marker the replay met (their `.txnindex` entries).
pub(crate) struct Rebuilt {
    pub state: ProducerStates,
    pub from: i64,
    pub aborted: Vec<TxnIndexEntry>,
}

/// Rebuilds the state on open: newest usable snapshot, then the batch headers after it (see the
/// module docs). `segments` oldest first; `end` is the recovered log end offset.
pub(crate) fn rebuild(
    dir: &Path,
    segments: &[SegmentExtent],
    end: i64,
    now_ms: i64,
) -> Result<Rebuilt, StorageError> {
    let mut state = ProducerStates::default();
    let mut from = None;
    for (o, p) in list_snapshots(dir) {
        if o > end {
            // Covers data the log no longer has (a lost tail): useless.
            tracing::info!(snapshot = %p.display(), log_end = end, "dropping producer snapshot past the log end");
            let _ = std::fs::remove_file(&p);
            continue;
        }
        match std::fs::read(&p)
            .ok()
            .and_then(|b| ProducerStates::decode(&b))
        {
            Some((so, s)) if so == o => {
                state = s;
                from = Some(o);
                break;
            }
            _ => {
                // Torn by a crash while being written: delete it, so it does not count among the
                // two snapshots kept and push out an older, good one.
                tracing::warn!(snapshot = %p.display(), "removing unreadable producer snapshot");
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    // No usable snapshot: a partition that never rolled or closed cleanly, a crash that tore the
    // first roll's snapshot after the new segment was created, or a data dir from before
    // snapshots. Only the whole log is a safe source then (the active segment alone may be the
    // empty one the interrupted roll created).
    let from = match from {
        Some(o) => o,
        None => segments.first().map_or(end, |s| s.base),
    };
    let mut batches = 0u64;
    let mut aborted = Vec::new();
    for seg in segments {
        if seg.next_offset <= from || seg.size == 0 {
            continue;
        }
        let file = std::fs::File::open(&seg.path)?;
        let mut sc = HeaderScanner::new(&file, seg.size);
        let mut pos = 0u64;
        while let Some(h) = sc.header_at(pos)? {
            if h.base_offset >= from {
                if h.is_control() {
                    replay_marker(&mut state, &file, pos, &h, now_ms, end, &mut aborted)?;
                } else {
                    state.apply(&h, now_ms);
                }
                batches += 1;
            }
            pos += h.total_len() as u64;
        }
    }
    state.expire(now_ms, PRODUCER_ID_EXPIRATION_MS);
    if batches > 0 {
        tracing::debug!(dir = %dir.display(), from, batches, producers = state.len(), aborted = aborted.len(), "replayed producer state from the log");
    }
    Ok(Rebuilt {
        state,
        from,
        aborted,
    })
}

/// Replays the control batch `h` at `pos`: reads its record for the marker (the header alone
/// does not say COMMIT or ABORT) and applies it; an ABORT of a non-empty transaction adds its
/// index entry to `aborted`. Control batches that are not transaction markers change nothing.
fn replay_marker(
    state: &mut ProducerStates,
    file: &std::fs::File,
    pos: u64,
    h: &BatchHeader,
    now_ms: i64,
    end: i64,
    aborted: &mut Vec<TxnIndexEntry>,
) -> Result<(), StorageError> {
    // A marker batch is under 100 bytes; a larger control batch is not one of ours.
    if h.total_len() > 4096 {
        return Ok(());
    }
    let mut buf = vec![0u8; h.total_len()];
    super::segment::read_exact_at(file, &mut buf, pos)?;
    let Some((commit, coordinator_epoch)) = super::txn::decode_marker(&buf) else {
        return Ok(());
    };
    let m = TxnMarker {
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        commit,
        coordinator_epoch,
    };
    if let Some(done) = state.apply_marker(&m, h.base_offset, h.max_timestamp, now_ms, end)
        && let Some(e) = done.index_entry()
    {
        aborted.push(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record_batch::{BatchHeader, build_batch};

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, base_offset: i64) -> BatchHeader {
        let recs: Vec<crate::format::record_batch::SimpleRecord<'_>> =
            (0..n).map(|_| (1000, None, &b"v"[..])).collect();
        let mut h = BatchHeader::parse(&build_batch(0, &recs, pid, epoch, seq)).unwrap();
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn sequences_epochs_and_duplicates() {
        let mut s = ProducerStates::default();
        // Unknown producer: any sequence (KIP-360).
        let a = header(7, 0, 5, 3, 0);
        assert_eq!(s.check(&[a]).unwrap(), Verdict::Append);
        s.apply(&a, 1);
        // Retry of the same batch: duplicate with the original offsets.
        match s.check(&[header(7, 0, 5, 3, 99)]).unwrap() {
            Verdict::Duplicate(b) => assert_eq!((b.first_offset, b.last_offset), (0, 2)),
            v => panic!("{v:?}"),
        }
        // Gap and overlap are out of order.
        for seq in [9, 6, 4] {
            assert!(matches!(
                s.check(&[header(7, 0, seq, 1, 3)]),
                Err(StorageError::OutOfOrderSequence(_))
            ));
        }
        let b = header(7, 0, 8, 2, 3);
        assert_eq!(s.check(&[b]).unwrap(), Verdict::Append);
        s.apply(&b, 1);
        // New epoch must start at 0; older epoch is refused.
        assert!(matches!(
            s.check(&[header(7, 1, 10, 1, 5)]),
            Err(StorageError::OutOfOrderSequence(_))
        ));
        let c = header(7, 1, 0, 1, 5);
        assert_eq!(s.check(&[c]).unwrap(), Verdict::Append);
        s.apply(&c, 1);
        assert!(matches!(
            s.check(&[header(7, 0, 10, 1, 6)]),
            Err(StorageError::InvalidProducerEpoch(_))
        ));
        // Batches without a producer id are not checked.
        assert_eq!(
            s.check(&[header(-1, -1, -1, 1, 6)]).unwrap(),
            Verdict::Append
        );
        // Several batches of one append are checked against each other.
        assert_eq!(
            s.check(&[header(7, 1, 1, 2, 6), header(7, 1, 3, 1, 8)])
                .unwrap(),
            Verdict::Append
        );
        assert!(
            s.check(&[header(7, 1, 1, 2, 6), header(7, 1, 4, 1, 8)])
                .is_err()
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.apply(&header(1, 0, i, 1, i as i64), 1);
        }
        assert_eq!(s.get(1).unwrap().batches.len(), BATCHES_TO_RETAIN);
        assert!(matches!(
            s.check(&[header(1, 0, 2, 1, 9)]).unwrap(),
            Verdict::Duplicate(_)
        ));
        assert!(s.check(&[header(1, 0, 1, 1, 9)]).is_err());
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
        assert_eq!(last_sequence(i32::MAX, 3), 2);
        let mut s = ProducerStates::default();
        let a = header(3, 0, i32::MAX - 1, 2, 0); // sequences MAX-1, MAX
        s.apply(&a, 1);
        assert_eq!(s.check(&[header(3, 0, 0, 1, 2)]).unwrap(), Verdict::Append);
        let w = header(3, 0, i32::MAX, 3, 2); // MAX, 0, 1
        s.apply(&w, 1);
        assert_eq!(s.get(3).unwrap().batches.back().unwrap().last_seq, 1);
        assert_eq!(s.check(&[header(3, 0, 2, 1, 5)]).unwrap(), Verdict::Append);
        assert!(matches!(
            s.check(&[header(3, 0, i32::MAX, 3, 5)]).unwrap(),
            Verdict::Duplicate(_)
        ));
    }

    #[test]
    fn snapshot_round_trip_and_expiry() {
        let mut s = ProducerStates::default();
        for i in 0..3 {
            s.apply(&header(10 + i, i as i16, 0, 4, 4 * i), 1000 + i);
        }
        let bytes = s.encode(12);
        let (o, back) = ProducerStates::decode(&bytes).unwrap();
        assert_eq!(o, 12);
        assert_eq!(back, s);
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(ProducerStates::decode(&bad).is_none());
        assert!(ProducerStates::decode(&bytes[..n - 1]).is_none());
        s.expire(1001 + 100, 100);
        assert_eq!(s.len(), 1);
        assert!(s.get(12).is_some());
    }

    fn txn_header(pid: i64, seq: i32, n: usize, base_offset: i64) -> BatchHeader {
        let mut h = header(pid, 0, seq, n, base_offset);
        h.attributes |= crate::format::record_batch::ATTR_TRANSACTIONAL;
        h
    }

    fn marker(pid: i64, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            commit,
            coordinator_epoch: 2,
        }
    }

    #[test]
    fn version_1_snapshots_still_load() {
        // A version-1 snapshot as the previous release wrote it: offset 9, one producer (id 5,
        // epoch 1, last append 77) with one batch.
        let mut body = Vec::new();
        body.extend_from_slice(&9i64.to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&77i64.to_be_bytes());
        body.push(1);
        for v in [0i32, 3] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        for v in [5i64, 8, 1234] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        let mut v1 = b"RBPS".to_vec();
        v1.extend_from_slice(&1u16.to_be_bytes());
        v1.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        v1.extend_from_slice(&body);
        let (o, s) = ProducerStates::decode(&v1).unwrap();
        assert_eq!(o, 9);
        let e = s.get(5).unwrap();
        assert_eq!((e.epoch, e.last_append_ms, e.batches.len()), (1, 77, 1));
        assert_eq!(
            (e.coordinator_epoch, e.txn_first_offset, e.last_timestamp),
            (-1, -1, 1234)
        );
        assert_eq!(s.last_stable_offset(100), 100);
        // Written back, it is version 2.
        assert_eq!(&s.encode(9)[4..6], &2u16.to_be_bytes());
        let mut bad = v1.clone();
        bad[5] = 3;
        assert!(ProducerStates::decode(&bad).is_none());
    }

    #[test]
    fn transactions_survive_a_snapshot_and_keep_producers_from_expiring() {
        let mut s = ProducerStates::default();
        s.apply(&txn_header(1, 0, 2, 10), 1000);
        s.apply(&txn_header(2, 0, 1, 12), 1000);
        s.apply(&txn_header(1, 2, 1, 13), 1000);
        assert_eq!(s.last_stable_offset(14), 10);
        let done = s.apply_marker(&marker(1, false), 14, 5, 1000, 14).unwrap();
        assert_eq!((done.first_offset, done.last_offset), (10, 14));
        // Producer 2 is still ongoing: the LSO stored in the abort's index entry is its start.
        assert_eq!(done.index_entry().unwrap().last_stable_offset, 12);
        // The marker at 14 is not written yet (hw 14): producer 1's data stays unstable.
        assert_eq!(s.last_stable_offset(14), 10);
        assert_eq!(s.last_stable_offset(15), 12);
        let (o, back) = ProducerStates::decode(&s.encode(15)).unwrap();
        assert_eq!(o, 15);
        assert_eq!(back, s);
        assert_eq!(back.last_stable_offset(15), 12);
        assert_eq!(back.get(1).unwrap().coordinator_epoch, 2);
        assert_eq!(back.get(2).unwrap().txn_first_offset, 12);
        // Expiry passes over the producer with an ongoing transaction.
        s.expire(1000 + 200, 100);
        assert!(s.get(1).is_none());
        assert!(s.get(2).is_some());
        assert_eq!(s.last_stable_offset(20), 12);
        // A commit without data here completes nothing.
        assert_eq!(s.apply_marker(&marker(9, true), 20, 5, 1000, 20), None);
        assert_eq!(s.get(9).unwrap().coordinator_epoch, 2);
    }
}

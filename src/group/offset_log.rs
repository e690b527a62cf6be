//! The durable offsets store of one shard: Kafka's `__consumer_offsets` on Ringbolt's own
//! [`PartitionLog`].
//!
//! # Layout
//! `<data-dir>/__consumer_offsets-<p>/` for `p` in `0..offsets.topic.num.partitions` (50): a group
//! lives on partition `abs(javaHash(group)) % 50` exactly as in Kafka, and partition `p` belongs
//! to shard `p % shards`. So a restart with another core count just hands whole partitions to
//! other shards. Partitions are opened lazily (first commit) or at start when their directory
//! exists.
//!
//! # Write path and what an acknowledgement promises
//! A write is queued on its partition; one writer task per partition drains the queue into
//! appends whose offsets are assigned synchronously, in queue order: consecutive plain commits
//! share one append (v2 batches), each transactional write (TxnOffsetCommit) and each transaction
//! marker gets its own, so a fenced producer's write fails alone. The appended writes go to a
//! completer task, which — with `durable_ack` (the default) — waits for the fdatasync covering
//! each ([`PartitionLog::wait_durable`], group commit), then applies it to the in-memory
//! [`OffsetTable`] and answers it, strictly in log order. So an acknowledged commit survives
//! power loss, OffsetFetch never shows an offset that could be lost, and the table always equals
//! a replay of the durable log. The writer does not wait for the sync: the next writes are
//! appended while the previous sync is in flight, so throughput grows with concurrency rather
//! than being one fsync per commit. With `durable_ack = false` writes are answered once written
//! (survives kill -9, not power loss), as Kafka's own single-replica behaviour.
//!
//! # Transactional offsets (KIP-98, KIP-447)
//! A TxnOffsetCommit is written as Kafka writes it: the ordinary offset commit records in a
//! *transactional* batch carrying the producer's id and epoch. Once durable its offsets are
//! pending in the table (invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT for `require_stable`).
//! Ending the transaction writes a COMMIT or ABORT marker (a control batch, through
//! [`PartitionLog::append_marker`]) into the same partition, behind every write queued before it;
//! once durable, COMMIT moves the producer's pending offsets of every group on that partition to
//! the committed ones (a plain commit written later in the log wins, as in Kafka), ABORT drops
//! them. The partition log checks each producer's epoch and sequences like any idempotent
//! producer's (an older epoch is INVALID_PRODUCER_EPOCH, the zombie fence); the store numbers its
//! batches per producer accordingly.
//!
//! # Compaction: snapshot by rewrite
//! Storage retention is switched off for these logs (deleting an old segment could drop the
//! only record of a live offset). Instead, when a partition's log holds more than
//! `compact_min_records` records and over twice its live entries, the partition is rewritten
//! while idle (no append in flight): its committed offsets and its pending transactional ones,
//! in their original log order (so which of a plain and a transactional commit came later is
//! kept), go into a fresh log in `<dir>.compact`; pending ones stay transactional batches of
//! their producer, completed markers and superseded records are dropped. It is synced and
//! closed; then `<dir>` → `<dir>.old`, `<dir>.compact` → `<dir>`, `<dir>.old` is removed, and
//! the partition's table entries are reloaded from the new log (their record offsets change).
//! [`recover_dirs`] finishes or discards an interrupted rewrite at start. Writes to the
//! partition wait during a rewrite (it is as fast as writing the live set once).
//!
//! # Reload
//! At start every existing partition of the shard is read front to back and replayed into the
//! table: plain records commit (tombstones delete, also pending offsets of that partition),
//! transactional records are held per producer until a marker is read; those without a marker
//! stay pending — the transaction coordinator completes them after its own reload (calling
//! [`OffsetStore::write_marker`] again through `group::shard::complete_txn`). This reads through
//! `FileSlice::read_to_vec` (a blocking pread) — acceptable before the shard serves traffic, and
//! bounded by compaction.

use super::offsets::{
    CommittedOffset, OffsetKey, OffsetTable, decode_key, decode_value, encode_key, encode_value,
    partition_for,
};
use crate::storage::keyed_log;
pub use crate::storage::keyed_log::recover_dirs;
use crate::storage::txn::TxnMarker;
use crate::storage::{LogConfig, PartitionLog, StorageError};
use crate::sync::oneshot;
use crate::util::now_ms;
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Settings of the offsets store (Kafka names where Kafka has one).
#[derive(Debug, Clone)]
pub struct OffsetStoreConfig {
    pub data_dir: PathBuf,
    /// `offsets.topic.num.partitions` (50).
    pub num_partitions: u32,
    /// `offsets.topic.segment.bytes` (100 MiB).
    pub segment_bytes: u64,
    /// Acknowledge commits only after fdatasync (true) or once written (false).
    pub durable_ack: bool,
    /// Rewrite a partition's log once it holds this many records and over twice its live set.
    pub compact_min_records: u64,
}

impl OffsetStoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        OffsetStoreConfig {
            data_dir: data_dir.into(),
            num_partitions: 50,
            segment_bytes: 100 * 1024 * 1024,
            durable_ack: true,
            compact_min_records: 100_000,
        }
    }
}

/// A commit (Some) or deletion (None) of one offset.
pub type Entry = (OffsetKey, Option<CommittedOffset>);

/// One queued write of an offsets partition.
#[derive(Debug, Clone)]
pub enum Op {
    /// Plain commits and deletions (OffsetCommit, OffsetDelete, DeleteGroups, expiry).
    Plain(Vec<Entry>),
    /// TxnOffsetCommit: a transactional batch of `producer_id`, pending until its marker.
    Txn {
        producer_id: i64,
        producer_epoch: i16,
        entries: Vec<(OffsetKey, CommittedOffset)>,
    },
    /// The end of `producer_id`'s transaction on this partition (a control batch).
    Marker {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    },
}

impl Op {
    fn records(&self) -> usize {
        match self {
            Op::Plain(e) => e.len(),
            Op::Txn { entries, .. } => entries.len(),
            Op::Marker { .. } => 1,
        }
    }
}

struct Pending {
    op: Op,
    done: oneshot::Sender<Result<(), i16>>,
}

/// Appended writes waiting for their sync (or write), each with its first record's offset.
struct Inflight {
    log: Rc<PartitionLog>,
    last_offset: i64,
    items: Vec<(Pending, i64)>,
}

struct Partition {
    id: u32,
    dir: PathBuf,
    log: RefCell<Option<Rc<PartitionLog>>>,
    queue: RefCell<Vec<Pending>>,
    writing: Cell<bool>,
    inflight: RefCell<VecDeque<Inflight>>,
    completing: Cell<bool>,
    /// Records in the log (live or superseded), for the compaction trigger.
    records: Cell<u64>,
    next_compaction_check: Cell<u64>,
    /// Producer id → (epoch, next sequence) of the transactional batches this log holds, so
    /// each new batch of a producer follows its previous one (the partition log checks
    /// sequences like for any idempotent producer).
    sequences: RefCell<HashMap<i64, (i16, i32)>>,
    /// Producer id → TxnOffsetCommit writes queued or in flight (not yet applied).
    txn_in_flight: RefCell<HashMap<i64, usize>>,
}

/// One shard's committed offsets: the in-memory table plus its durable logs.
pub struct OffsetStore {
    cfg: OffsetStoreConfig,
    table: RefCell<OffsetTable>,
    parts: RefCell<HashMap<u32, Rc<Partition>>>,
}

use crate::storage::keyed_log::BATCH_TARGET_BYTES;

fn log_config(cfg: &OffsetStoreConfig) -> LogConfig {
    keyed_log::log_config(cfg.segment_bytes)
}

pub fn partition_dir(data_dir: &Path, p: u32) -> PathBuf {
    data_dir.join(format!("__consumer_offsets-{p}"))
}

/// One record to encode: a plain one (`producer` None) or one of a transactional batch
/// (`(producer id, epoch, sequence)`).
struct Rec<'a> {
    key: &'a OffsetKey,
    value: Option<&'a CommittedOffset>,
    producer: Option<(i64, i16, i32)>,
}

/// Encodes records as v2 batches of about `BATCH_TARGET_BYTES` each, concatenated: consecutive
/// plain records share a batch (base sequence -1), consecutive records of one producer share a
/// transactional batch whose base sequence is its first record's.
fn encode_records(recs: &[Rec<'_>], now: i64) -> BytesMut {
    let mut out = BytesMut::new();
    let mut records: Vec<Record> = Vec::new();
    let mut size = 0usize;
    let flush = |records: &mut Vec<Record>, out: &mut BytesMut| {
        if records.is_empty() {
            return;
        }
        // The encoder splits batches where producer fields change or `offset - sequence` does;
        // give each run of plain records sequences -1, 0, 1… so it stays one batch whose base
        // sequence is -1 (no sequence), as Kafka writes non-idempotent batches.
        let mut run_start = 0usize;
        for i in 0..records.len() {
            if records[i].producer_id < 0 {
                if i == 0 || records[i - 1].producer_id >= 0 {
                    run_start = i;
                }
                records[i].sequence = (i - run_start) as i32 - 1;
            }
        }
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        // Encoding plain records into a BytesMut cannot fail.
        RecordBatchEncoder::encode(out, records.iter(), &opts).expect("encode offsets batch");
        records.clear();
    };
    for r in recs {
        let k = encode_key(r.key);
        let v = r.value.map(encode_value);
        size += k.len() + v.as_ref().map_or(0, Bytes::len) + 16;
        let (producer_id, producer_epoch, sequence) = r.producer.unwrap_or((-1, -1, -1));
        records.push(Record {
            transactional: r.producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: records.len() as i64,
            sequence,
            timestamp: now,
            key: Some(k),
            value: v,
            headers: Default::default(),
            delete_horizon: false,
        });
        if size >= BATCH_TARGET_BYTES {
            flush(&mut records, &mut out);
            size = 0;
        }
    }
    flush(&mut records, &mut out);
    out
}

/// The sequence after `seq` (sequences wrap to 0 past `i32::MAX`).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// A transaction marker record: (producer id, epoch, COMMIT?), `None` for other control records.
fn decode_marker(r: &Record) -> Option<(i64, i16, bool)> {
    let key = r.key.as_deref()?;
    if key.len() < 4 {
        return None;
    }
    // Kafka's EndTransactionMarker key: i16 version (0), i16 type (0 ABORT, 1 COMMIT).
    let kind = i16::from_be_bytes([key[2], key[3]]);
    match kind {
        0 | 1 => Some((r.producer_id, r.producer_epoch, kind == 1)),
        _ => None,
    }
}

fn storage_err(e: StorageError) -> i16 {
    match e {
        // A zombie's TxnOffsetCommit (an older epoch than the log holds for its producer).
        StorageError::InvalidProducerEpoch(msg) => {
            tracing::info!(%msg, "transactional offset commit fenced");
            ResponseError::InvalidProducerEpoch.code()
        }
        e => {
            tracing::error!(error = %e, "offsets log failure");
            ResponseError::CoordinatorNotAvailable.code()
        }
    }
}

impl OffsetStore {
    /// Opens and reloads every existing offsets partition for which `owned(p)` holds.
    pub async fn load(
        cfg: OffsetStoreConfig,
        owned: impl Fn(u32) -> bool,
    ) -> Result<Rc<Self>, StorageError> {
        let store = Rc::new(OffsetStore {
            cfg,
            table: RefCell::new(OffsetTable::default()),
            parts: RefCell::new(HashMap::new()),
        });
        for p in 0..store.cfg.num_partitions {
            if !owned(p) {
                continue;
            }
            let dir = partition_dir(&store.cfg.data_dir, p);
            recover_dirs(&dir)?;
            if !dir.exists() {
                continue;
            }
            let part = store.partition(p);
            let log = store.open_log(&part).await?;
            let n = store.reload(&part, &log).await?;
            part.records.set(n);
            tracing::info!(
                partition = p,
                records = n,
                pending = store.table().pending_on(p).len(),
                "offsets partition loaded"
            );
            store.maybe_compact(&part).await?;
        }
        Ok(store)
    }

    pub fn config(&self) -> &OffsetStoreConfig {
        &self.cfg
    }

    pub fn table(&self) -> std::cell::Ref<'_, OffsetTable> {
        self.table.borrow()
    }

    /// The offsets partition of `group`.
    pub fn partition_of(&self, group: &str) -> u32 {
        partition_for(group, self.cfg.num_partitions)
    }

    fn partition(&self, p: u32) -> Rc<Partition> {
        self.parts
            .borrow_mut()
            .entry(p)
            .or_insert_with(|| {
                let dir = partition_dir(&self.cfg.data_dir, p);
                Rc::new(Partition {
                    id: p,
                    dir,
                    log: RefCell::new(None),
                    queue: RefCell::new(Vec::new()),
                    writing: Cell::new(false),
                    inflight: RefCell::new(VecDeque::new()),
                    completing: Cell::new(false),
                    records: Cell::new(0),
                    next_compaction_check: Cell::new(0),
                    sequences: RefCell::new(HashMap::new()),
                    txn_in_flight: RefCell::new(HashMap::new()),
                })
            })
            .clone()
    }

    async fn open_log(&self, part: &Partition) -> Result<Rc<PartitionLog>, StorageError> {
        if let Some(l) = part.log.borrow().as_ref() {
            return Ok(l.clone());
        }
        let log = Rc::new(PartitionLog::open(part.dir.clone(), log_config(&self.cfg)).await?);
        *part.log.borrow_mut() = Some(log.clone());
        Ok(log)
    }

    /// Applies the whole log to the table in log order (plain records, transactional records
    /// held per producer, markers completing them); returns the number of records read.
    async fn reload(&self, part: &Partition, log: &PartitionLog) -> Result<u64, StorageError> {
        keyed_log::for_each_raw_record(log, |r| self.replay(part, r)).await
    }

    /// Applies one record read back from the log.
    fn replay(&self, part: &Partition, r: Record) {
        if r.control {
            if let Some((pid, epoch, commit)) = decode_marker(&r) {
                self.table.borrow_mut().apply_marker(part.id, pid, commit);
                let mut seqs = part.sequences.borrow_mut();
                if seqs.get(&pid).is_some_and(|(e, _)| *e != epoch) {
                    seqs.insert(pid, (epoch, 0));
                }
            }
            return;
        }
        let Some(kb) = r.key else { return };
        let key = match decode_key(&kb) {
            Ok(Some(k)) => k,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, offset = r.offset, "bad offsets key");
                return;
            }
        };
        let value = match r.value.as_deref().map(decode_value) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                tracing::warn!(error = %e, offset = r.offset, "bad offsets value");
                return;
            }
        };
        match value {
            Some(v) if r.transactional && r.producer_id >= 0 => {
                part.sequences
                    .borrow_mut()
                    .insert(r.producer_id, (r.producer_epoch, next_seq(r.sequence)));
                self.table.borrow_mut().apply_txn(
                    part.id,
                    r.producer_id,
                    r.producer_epoch,
                    r.offset,
                    key,
                    v,
                );
            }
            // Tombstones are never transactional in Kafka; one is applied as a deletion.
            value => self.table.borrow_mut().apply(r.offset, key, value),
        }
    }

    /// Writes commits/deletions of one group durably (per the configured policy), then applies
    /// them. Returns a Kafka error code on failure.
    pub async fn write(self: &Rc<Self>, group: &str, entries: Vec<Entry>) -> Result<(), i16> {
        if entries.is_empty() {
            return Ok(());
        }
        self.submit(self.partition_of(group), Op::Plain(entries))
            .await
    }

    /// Writes transactional offset commits of `producer_id` for one group as a transactional
    /// batch; once durable they are pending (not visible to OffsetFetch) until the producer's
    /// marker on this partition. INVALID_PRODUCER_EPOCH for an epoch older than the log's.
    pub async fn write_txn(
        self: &Rc<Self>,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        entries: Vec<(OffsetKey, CommittedOffset)>,
    ) -> Result<(), i16> {
        if entries.is_empty() {
            return Ok(());
        }
        let p = self.partition_of(group);
        let part = self.partition(p);
        *part
            .txn_in_flight
            .borrow_mut()
            .entry(producer_id)
            .or_default() += 1;
        let res = self
            .submit(
                p,
                Op::Txn {
                    producer_id,
                    producer_epoch,
                    entries,
                },
            )
            .await;
        let mut inflight = part.txn_in_flight.borrow_mut();
        if let Some(n) = inflight.get_mut(&producer_id) {
            *n -= 1;
            if *n == 0 {
                inflight.remove(&producer_id);
            }
        }
        res
    }

    /// Whether `producer_id` has pending or queued transactional offsets on `group`'s partition.
    pub fn txn_open(&self, group: &str, producer_id: i64) -> bool {
        let p = self.partition_of(group);
        self.table().has_open_txn(p, producer_id)
            || self
                .parts
                .borrow()
                .get(&p)
                .is_some_and(|x| x.txn_in_flight.borrow().contains_key(&producer_id))
    }

    /// Ends `producer_id`'s transaction on `group`'s partition: writes its marker (after every
    /// write queued before it), then, once durable, commits or drops its pending offsets (of
    /// every group on that partition, as the marker covers them all).
    pub async fn write_marker(
        self: &Rc<Self>,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), i16> {
        self.submit(
            self.partition_of(group),
            Op::Marker {
                producer_id,
                producer_epoch,
                commit,
            },
        )
        .await
    }

    async fn submit(self: &Rc<Self>, p: u32, op: Op) -> Result<(), i16> {
        let part = self.partition(p);
        let (tx, rx) = oneshot::channel();
        part.queue.borrow_mut().push(Pending { op, done: tx });
        if !part.writing.replace(true) {
            let me = self.clone();
            let p = part.clone();
            glommio::spawn_local(async move { me.run_writer(p).await }).detach();
        }
        rx.await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()))
    }

    /// Drains the queue into appends: consecutive plain writes share one append, each
    /// transactional write and marker gets its own (so a fenced producer's write fails alone).
    /// Offsets are assigned synchronously, in queue order; the appended writes go to the
    /// in-order completer, so the next ones are written while the previous sync is in flight
    /// (storage's group commit then covers both).
    async fn run_writer(self: Rc<Self>, part: Rc<Partition>) {
        loop {
            let batch: Vec<Pending> = std::mem::take(&mut *part.queue.borrow_mut());
            if batch.is_empty() {
                if part.inflight.borrow().is_empty() {
                    self.compact(&part).await;
                    if !part.queue.borrow().is_empty() {
                        continue;
                    }
                }
                part.writing.set(false);
                return;
            }
            let log = match self.open_log(&part).await {
                Ok(l) => l,
                Err(e) => {
                    let code = storage_err(e);
                    for p in batch {
                        p.done.send(Err(code));
                    }
                    continue;
                }
            };
            let mut run: Vec<Pending> = Vec::new();
            for p in batch {
                if matches!(p.op, Op::Plain(_)) {
                    run.push(p);
                    continue;
                }
                self.append(&part, &log, std::mem::take(&mut run));
                self.append(&part, &log, vec![p]);
            }
            self.append(&part, &log, run);
            if !part.inflight.borrow().is_empty() && !part.completing.replace(true) {
                let me = self.clone();
                let p = part.clone();
                glommio::spawn_local(async move { me.run_completer(p).await }).detach();
            }
        }
    }

    /// Compaction check while nothing is being written or applied (the caller holds the
    /// partition's writer slot, so no append runs during a rewrite).
    async fn compact(&self, part: &Partition) {
        if let Err(e) = self.maybe_compact(part).await {
            tracing::error!(partition = part.id, error = %e, "offsets compaction failed");
        }
    }

    /// Appends one write (or a run of plain ones) and queues it for the completer; a failed
    /// append answers its writes at once.
    fn append(&self, part: &Partition, log: &Rc<PartitionLog>, items: Vec<Pending>) {
        if items.is_empty() {
            return;
        }
        match self.append_items(part, log, &items) {
            Ok((base, last_offset)) => {
                let mut at = base;
                let items = items
                    .into_iter()
                    .map(|p| {
                        let first = at;
                        at += p.op.records() as i64;
                        (p, first)
                    })
                    .collect();
                part.inflight.borrow_mut().push_back(Inflight {
                    log: log.clone(),
                    last_offset,
                    items,
                });
            }
            Err(e) => {
                for p in items {
                    p.done.send(Err(e));
                }
            }
        }
    }

    fn append_items(
        &self,
        part: &Partition,
        log: &PartitionLog,
        items: &[Pending],
    ) -> Result<(i64, i64), i16> {
        let info = match &items[0].op {
            Op::Marker {
                producer_id,
                producer_epoch,
                commit,
            } => {
                let info = log
                    .append_marker(TxnMarker {
                        producer_id: *producer_id,
                        producer_epoch: *producer_epoch,
                        commit: *commit,
                        coordinator_epoch: 0,
                    })
                    .map_err(storage_err)?;
                let mut seqs = part.sequences.borrow_mut();
                if seqs
                    .get(producer_id)
                    .is_some_and(|(e, _)| e != producer_epoch)
                {
                    seqs.insert(*producer_id, (*producer_epoch, 0));
                }
                info
            }
            Op::Txn {
                producer_id,
                producer_epoch,
                entries,
            } => {
                let first = self.sequence_for(part, log, *producer_id, *producer_epoch);
                let mut seq = first;
                let recs: Vec<Rec<'_>> = entries
                    .iter()
                    .map(|(k, v)| {
                        let r = Rec {
                            key: k,
                            value: Some(v),
                            producer: Some((*producer_id, *producer_epoch, seq)),
                        };
                        seq = next_seq(seq);
                        r
                    })
                    .collect();
                let info = log
                    .append_assign(encode_records(&recs, now_ms()))
                    .map_err(storage_err)?;
                part.sequences
                    .borrow_mut()
                    .insert(*producer_id, (*producer_epoch, seq));
                info
            }
            Op::Plain(_) => {
                let recs: Vec<Rec<'_>> = items
                    .iter()
                    .flat_map(|p| match &p.op {
                        Op::Plain(e) => e.as_slice(),
                        _ => &[],
                    })
                    .map(|(k, v)| Rec {
                        key: k,
                        value: v.as_ref(),
                        producer: None,
                    })
                    .collect();
                log.append_assign(encode_records(&recs, now_ms()))
                    .map_err(storage_err)?
            }
        };
        let n: usize = items.iter().map(|p| p.op.records()).sum();
        part.records.set(part.records.get() + n as u64);
        Ok((info.base_offset, info.last_offset))
    }

    /// The base sequence of `producer_id`'s next transactional batch: what the log's producer
    /// state expects when it lists the producer (its epoch, its last sequence), else this
    /// store's own count (same epoch: continue; a new epoch starts at 0).
    fn sequence_for(&self, part: &Partition, log: &PartitionLog, pid: i64, epoch: i16) -> i32 {
        if let Some(info) = log.producers().iter().find(|i| i.producer_id == pid) {
            if info.producer_epoch != epoch {
                return 0;
            }
            if info.last_sequence >= 0 {
                return next_seq(info.last_sequence);
            }
        }
        match part.sequences.borrow().get(&pid) {
            Some((e, next)) if *e == epoch => *next,
            _ => 0,
        }
    }

    /// Applies appended writes in log order once each is durable (or written, without
    /// `durable_ack`), and answers them.
    async fn run_completer(self: Rc<Self>, part: Rc<Partition>) {
        loop {
            let next = part.inflight.borrow_mut().pop_front();
            let Some(f) = next else {
                part.completing.set(false);
                // Idle partition: the compaction check runs here, holding the writer slot;
                // writes queued meanwhile are drained by a writer started afterwards.
                if !part.writing.replace(true) {
                    self.compact(&part).await;
                    let me = self.clone();
                    let p = part.clone();
                    glommio::spawn_local(async move { me.run_writer(p).await }).detach();
                }
                return;
            };
            let res = if self.cfg.durable_ack {
                f.log.wait_durable(f.last_offset).await
            } else {
                f.log.wait_written(f.last_offset).await
            };
            self.finish(&part, f.items, res.map_err(storage_err));
        }
    }

    /// Applies written writes to the table (on success) and answers them.
    fn finish(&self, part: &Partition, items: Vec<(Pending, i64)>, result: Result<(), i16>) {
        for (p, first) in items {
            if result.is_ok() {
                let mut table = self.table.borrow_mut();
                match p.op {
                    Op::Plain(entries) => {
                        for (i, (k, v)) in entries.into_iter().enumerate() {
                            table.apply(first + i as i64, k, v);
                        }
                    }
                    Op::Txn {
                        producer_id,
                        producer_epoch,
                        entries,
                    } => {
                        for (i, (k, v)) in entries.into_iter().enumerate() {
                            table.apply_txn(
                                part.id,
                                producer_id,
                                producer_epoch,
                                first + i as i64,
                                k,
                                v,
                            );
                        }
                    }
                    Op::Marker {
                        producer_id,
                        commit,
                        ..
                    } => {
                        table.apply_marker(part.id, producer_id, commit);
                    }
                }
            }
            p.done.send(result);
        }
    }

    /// The live records of partition `p`, in their log order: committed offsets (plain) and
    /// pending transactional ones (with their producer), so a rewrite keeps which of a plain
    /// and a transactional commit of one partition came later.
    fn live_records(&self, p: u32) -> Vec<(i64, OffsetKey, CommittedOffset, Option<(i64, i16)>)> {
        let table = self.table.borrow();
        let mut out = Vec::new();
        for g in table.group_ids() {
            if partition_for(&g, self.cfg.num_partitions) != p {
                continue;
            }
            for (topic, partition, s) in table.stored(&g) {
                out.push((
                    s.record_offset,
                    OffsetKey {
                        group: g.clone(),
                        topic,
                        partition,
                    },
                    s.value,
                    None,
                ));
            }
        }
        for x in table.pending_on(p) {
            out.push((
                x.stored.record_offset,
                x.key,
                x.stored.value,
                Some((x.producer_id, x.producer_epoch)),
            ));
        }
        out.sort_by_key(|r| r.0);
        out
    }

    async fn maybe_compact(&self, part: &Partition) -> Result<(), StorageError> {
        let records = part.records.get();
        if records
            < self
                .cfg
                .compact_min_records
                .max(part.next_compaction_check.get())
        {
            return Ok(());
        }
        let live = self.live_records(part.id);
        if records <= 2 * live.len() as u64 {
            part.next_compaction_check.set(records * 2);
            return Ok(());
        }
        self.rewrite(part, &live).await?;
        part.next_compaction_check.set(2 * live.len() as u64);
        Ok(())
    }

    /// Snapshot-by-rewrite compaction (module docs). Pending transactional offsets are written
    /// again as transactional batches of their producer (sequences from 0 in the fresh log), in
    /// their original order among the plain ones; completed markers and superseded records are
    /// dropped. The table's entries of the partition are then reloaded from the new log, so
    /// their record offsets are the new ones.
    async fn rewrite(
        &self,
        part: &Partition,
        live: &[(i64, OffsetKey, CommittedOffset, Option<(i64, i16)>)],
    ) -> Result<(), StorageError> {
        let mut seqs: HashMap<i64, i32> = HashMap::new();
        let recs: Vec<Rec<'_>> = live
            .iter()
            .map(|(_, k, v, producer)| Rec {
                key: k,
                value: Some(v),
                producer: producer.map(|(pid, epoch)| {
                    let s = seqs.entry(pid).or_insert(0);
                    let seq = *s;
                    *s = next_seq(seq);
                    (pid, epoch, seq)
                }),
            })
            .collect();
        let current = part.log.borrow_mut().take();
        let log = keyed_log::rewrite(
            &part.dir,
            &log_config(&self.cfg),
            current,
            encode_records(&recs, now_ms()),
        )
        .await?;
        let log = Rc::new(log);
        *part.log.borrow_mut() = Some(log.clone());
        let n = self.cfg.num_partitions;
        self.table
            .borrow_mut()
            .clear_partition(part.id, |g| partition_for(g, n) == part.id);
        part.sequences.borrow_mut().clear();
        let records = self.reload(part, &log).await?;
        part.records.set(records);
        tracing::info!(
            partition = part.id,
            live = live.len(),
            "offsets log rewritten"
        );
        Ok(())
    }

    /// Flushes and closes every open offsets log (clean shutdown).
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

    /// Records currently in partition `p`'s log (tests, metrics).
    pub fn log_records(&self, p: u32) -> u64 {
        self.parts.borrow().get(&p).map_or(0, |x| x.records.get())
    }
}

#[cfg(test)]
#[path = "offset_log_tests.rs"]
mod tests;

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
//! A commit is queued on its partition; one writer task per partition drains everything queued
//! into v2 record batches (one `append`) and hands the written batch to a completer task, which
//! — with `durable_ack` (the default) — waits for the fdatasync covering it
//! ([`PartitionLog::wait_durable`], group commit), then applies the batch to the in-memory
//! [`OffsetTable`] and answers its commits, strictly in log order. So an acknowledged commit
//! survives power loss, and OffsetFetch never shows an offset that could be lost. The writer does
//! not wait for the sync: the next batch accumulates and is written while the previous sync is in
//! flight, so throughput grows with concurrency rather than being one fsync per commit. With `durable_ack = false` commits are answered once
//! written (survives kill -9, not power loss), as Kafka's own single-replica behaviour.
//!
//! # Compaction and reload
//! When a partition's log holds more than `compact_min_records` records and over twice its live
//! entries, the writer rewrites it with the live table of that partition (snapshot by rewrite,
//! [`crate::storage::keyed_log`]). Commits to the partition wait during a rewrite (it is as fast
//! as writing the live set once). At start every existing partition of the shard is read front to
//! back and applied to the table (tombstones delete).

use super::offsets::{
    CommittedOffset, OffsetKey, OffsetTable, decode_key, decode_value, encode_key, encode_value,
    partition_for,
};
use crate::storage::keyed_log;
pub use crate::storage::keyed_log::recover_dirs;
use crate::storage::{LogConfig, PartitionLog, StorageError};
use crate::sync::oneshot;
use crate::util::now_ms;
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
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

struct Pending {
    entries: Vec<Entry>,
    done: oneshot::Sender<Result<(), i16>>,
}

/// An appended batch waiting for its fdatasync.
struct Inflight {
    log: Rc<PartitionLog>,
    last_offset: i64,
    batch: Vec<Pending>,
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
}

/// One shard's committed offsets: the in-memory table plus its durable logs.
pub struct OffsetStore {
    cfg: OffsetStoreConfig,
    table: RefCell<OffsetTable>,
    parts: RefCell<HashMap<u32, Rc<Partition>>>,
}

fn log_config(cfg: &OffsetStoreConfig) -> LogConfig {
    keyed_log::log_config(cfg.segment_bytes)
}

pub fn partition_dir(data_dir: &Path, p: u32) -> PathBuf {
    data_dir.join(format!("__consumer_offsets-{p}"))
}

/// Encodes entries as v2 record batches, concatenated.
fn encode_batches(entries: &[&Entry], now: i64) -> BytesMut {
    let kvs: Vec<(Bytes, Option<Bytes>)> = entries
        .iter()
        .map(|(k, v)| (encode_key(k), v.as_ref().map(encode_value)))
        .collect();
    keyed_log::encode_records(&kvs, now)
}

fn storage_err(e: StorageError) -> i16 {
    tracing::error!(error = %e, "offsets log failure");
    ResponseError::CoordinatorNotAvailable.code()
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
            let n = store.reload(&log).await?;
            part.records.set(n);
            tracing::info!(partition = p, records = n, "offsets partition loaded");
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

    /// Applies the whole log to the table; returns the number of records read.
    async fn reload(&self, log: &PartitionLog) -> Result<u64, StorageError> {
        keyed_log::for_each_record(log, |offset, kb, value| {
            let key = match decode_key(&kb) {
                Ok(Some(k)) => k,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, offset, "bad offsets key");
                    return;
                }
            };
            let value = match value.as_deref().map(decode_value) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, offset, "bad offsets value");
                    return;
                }
            };
            self.table.borrow_mut().apply(key, value);
        })
        .await
    }

    /// Writes commits/deletions of one group durably (per the configured policy), then applies
    /// them. Returns a Kafka error code on failure.
    pub async fn write(self: &Rc<Self>, group: &str, entries: Vec<Entry>) -> Result<(), i16> {
        if entries.is_empty() {
            return Ok(());
        }
        let part = self.partition(partition_for(group, self.cfg.num_partitions));
        let (tx, rx) = oneshot::channel();
        part.queue.borrow_mut().push(Pending { entries, done: tx });
        if !part.writing.replace(true) {
            let me = self.clone();
            let p = part.clone();
            glommio::spawn_local(async move { me.run_writer(p).await }).detach();
        }
        rx.await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()))
    }

    /// Drains the queue into appends. With `durable_ack` it does not wait for each fsync: the
    /// appended batch goes to the in-order completer, so the next batch is written while the
    /// previous sync is in flight (storage's group commit then covers both).
    async fn run_writer(self: Rc<Self>, part: Rc<Partition>) {
        loop {
            let batch: Vec<Pending> = std::mem::take(&mut *part.queue.borrow_mut());
            if batch.is_empty() {
                part.writing.set(false);
                return;
            }
            match self.append_batch(&part, &batch).await {
                Ok((log, last_offset)) if self.cfg.durable_ack => {
                    part.inflight.borrow_mut().push_back(Inflight {
                        log,
                        last_offset,
                        batch,
                    });
                    if !part.completing.replace(true) {
                        let me = self.clone();
                        let p = part.clone();
                        glommio::spawn_local(async move { me.run_completer(p).await }).detach();
                    }
                }
                Ok(_) => self.finish(batch, Ok(())),
                Err(e) => {
                    for p in batch {
                        p.done.send(Err(e));
                    }
                }
            }
            if part.inflight.borrow().is_empty()
                && let Err(e) = self.maybe_compact(&part).await
            {
                tracing::error!(partition = part.id, error = %e, "offsets compaction failed");
            }
        }
    }

    /// Acknowledges appended batches in log order once each is durable.
    async fn run_completer(self: Rc<Self>, part: Rc<Partition>) {
        loop {
            let next = part.inflight.borrow_mut().pop_front();
            let Some(f) = next else {
                part.completing.set(false);
                return;
            };
            let res = f.log.wait_durable(f.last_offset).await.map_err(storage_err);
            self.finish(f.batch, res);
        }
    }

    /// Applies a written batch to the table (on success) and answers its commits.
    fn finish(&self, batch: Vec<Pending>, result: Result<(), i16>) {
        for p in batch {
            if result.is_ok() {
                let mut table = self.table.borrow_mut();
                for (k, v) in p.entries {
                    table.apply(k, v);
                }
            }
            p.done.send(result);
        }
    }

    async fn append_batch(
        &self,
        part: &Partition,
        batch: &[Pending],
    ) -> Result<(Rc<PartitionLog>, i64), i16> {
        let log = self.open_log(part).await.map_err(storage_err)?;
        let entries: Vec<&Entry> = batch.iter().flat_map(|p| p.entries.iter()).collect();
        let bytes = encode_batches(&entries, now_ms());
        let info = log.append(bytes).await.map_err(storage_err)?;
        part.records.set(part.records.get() + entries.len() as u64);
        Ok((log, info.last_offset))
    }

    /// Live entries stored on partition `p`.
    fn live_entries(&self, p: u32) -> Vec<Entry> {
        let table = self.table.borrow();
        let mut out = Vec::new();
        for g in table.group_ids() {
            if partition_for(&g, self.cfg.num_partitions) != p {
                continue;
            }
            for (topic, partition, o) in table.group(&g) {
                out.push((
                    OffsetKey {
                        group: g.clone(),
                        topic,
                        partition,
                    },
                    Some(o),
                ));
            }
        }
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
        let live = self.live_entries(part.id);
        if records <= 2 * live.len() as u64 {
            part.next_compaction_check.set(records * 2);
            return Ok(());
        }
        self.rewrite(part, &live).await?;
        part.records.set(live.len() as u64);
        part.next_compaction_check.set(2 * live.len() as u64);
        Ok(())
    }

    /// Snapshot-by-rewrite compaction (module docs).
    async fn rewrite(&self, part: &Partition, live: &[Entry]) -> Result<(), StorageError> {
        let refs: Vec<&Entry> = live.iter().collect();
        let current = part.log.borrow_mut().take();
        let log = keyed_log::rewrite(
            &part.dir,
            &log_config(&self.cfg),
            current,
            encode_batches(&refs, now_ms()),
        )
        .await?;
        *part.log.borrow_mut() = Some(Rc::new(log));
        tracing::info!(
            partition = part.id,
            live = live.len(),
            "offsets log rewritten"
        );
        Ok(())
    }

    /// Flushes and closes every open offsets log (clean shutdown).
    pub async fn close(&self) -> Result<(), StorageError> {
        let logs: Vec<_> = self
            .parts
            .borrow()
            .values()
            .map(|p| p.log.borrow_mut().take())
            .collect();
        keyed_log::close_all(logs).await
    }

    /// Records currently in partition `p`'s log (tests, metrics).
    pub fn log_records(&self, p: u32) -> u64 {
        self.parts.borrow().get(&p).map_or(0, |x| x.records.get())
    }
}

#[cfg(test)]
#[path = "offset_log_tests.rs"]
mod tests;

//! `PartitionLog`: the public face of one partition's log: open, append, the waits, roll and
//! close. Its mutable state lives in `state/`, shared with the tasks it spawns (`appender.rs`,
//! `syncer.rs`, `zero_fill.rs`).
//!
//! Appends do all their bookkeeping synchronously at enqueue time (validation, offset assignment,
//! header rewrites, roll decision, file position, index entries), so the order of `append` calls is
//! the order in the log, then queue the bytes for the partition's single writer task
//! (`appender.rs`) and wait until the high watermark passes their last offset.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::io::OpenOptions;

use crate::format::record_batch::{self, BatchHeader};
use crate::util::now_ms;

use super::config::{LogConfig, TimestampType};
use super::error::StorageError;
use super::leader_epoch::{EpochFile, LEADER_EPOCH};
use super::log_start::{self, LogStartFile};
use super::producer_state::{self, Verdict};
use super::recovery;
use super::segment::{self, Segment, sync_dir};
use super::slice::AppendInfo;
use super::state::{ActiveFile, Inner, SegmentMap, State, SyncState, SyncStats, WriteQueue};
use super::txn::TxnMarker;

/// One partition's log. Lives on its owner shard (not `Send`); share it there as
/// `Rc<PartitionLog>`. Methods take `&self`; appends are serialised internally.
pub struct PartitionLog {
    inner: Rc<Inner>,
    /// The leader epoch cache and its file (`leader_epoch.rs`).
    epochs: Rc<EpochFile>,
    /// Serialises moves of the log start (`log_start.rs`).
    log_start: LogStartFile,
}

impl PartitionLog {
    /// Opens (recovering if needed) or creates the log in `dir`.
    pub async fn open(dir: impl Into<PathBuf>, config: LogConfig) -> Result<Self, StorageError> {
        let dir: PathBuf = dir.into();
        // A log-cleaner swap cut short by a crash is finished or undone first.
        super::cleaner::swap::recover_dir(&dir)?;
        let (st, persisted_start) = load_state(&dir, &config).await?;
        let log = PartitionLog {
            inner: Rc::new(Inner::new(dir, config, st)),
            epochs: Rc::new(EpochFile::new()),
            log_start: LogStartFile::new(),
        };
        log.apply_persisted_log_start(persisted_start).await?;
        log.load_leader_epochs().await?;
        Ok(log)
    }

    /// The leader epoch cache and its file.
    pub(crate) fn epoch_file(&self) -> &EpochFile {
        &self.epochs
    }

    pub(crate) fn epoch_file_rc(&self) -> Rc<EpochFile> {
        self.epochs.clone()
    }

    /// What serialises moves of the log start.
    pub(crate) fn log_start_state(&self) -> &LogStartFile {
        &self.log_start
    }

    /// The state and notifiers shared with the log's tasks (for `read.rs` and `retention.rs`).
    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }

    /// Whether [`PartitionLog::close`] was called (or the log went offline).
    pub fn is_closed(&self) -> bool {
        let st = self.inner.state();
        st.is_closed() || st.is_failed()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// Appends one or more concatenated v2 record batches (a Produce partition's `records`).
    ///
    /// All batches are validated first (length, magic 2, CRC-32C, record count vs
    /// lastOffsetDelta, timestamps, `max.message.bytes` per batch); on any error nothing is
    /// written. Offsets are assigned from the log end offset synchronously, in call order; the
    /// batches are stored verbatim except for base offset, partition leader epoch (0) and, for
    /// `LogAppendTime`, the timestamp-type bit and maxTimestamp (CRC recomputed). Returns once the
    /// bytes are written to the file (not necessarily durable: see [`PartitionLog::wait_durable`]).
    pub async fn append(&self, records: impl Into<Bytes>) -> Result<AppendInfo, StorageError> {
        let info = self.append_assign(records)?;
        self.wait_written(info.last_offset).await?;
        Ok(info)
    }

    /// The synchronous half of [`PartitionLog::append`]: validates, assigns offsets and queues the
    /// write, without waiting for it. Appends take effect (offsets, order) in call order; the
    /// batches become readable and countable once [`PartitionLog::wait_written`] resolves. A write
    /// that later fails takes the log offline, so the waits report the error.
    ///
    /// The produce path uses it to release a connection's next request as soon as this one's
    /// offsets are assigned, so pipelined requests queue behind each other in the log (and their
    /// writes coalesce) instead of each waiting for the previous one's disk write.
    ///
    /// Control batches are refused (`INVALID_RECORD`, as Kafka refuses them from clients):
    /// only [`PartitionLog::append_marker`] writes them.
    pub fn append_assign(&self, records: impl Into<Bytes>) -> Result<AppendInfo, StorageError> {
        self.assign(records.into(), None)
    }

    /// [`PartitionLog::append_assign`] for client batches (`marker` = `None`) and for the
    /// control batch of a transaction marker (`records` = that batch).
    pub(crate) fn assign(
        &self,
        records: Bytes,
        marker: Option<TxnMarker>,
    ) -> Result<AppendInfo, StorageError> {
        let inner = &self.inner;
        let (base, last, append_time) = {
            let mut st = inner.state_mut();
            st.check_usable()?;
            let Some(epoch) = st.role().append_epoch() else {
                return Err(StorageError::NotLeaderOrFollower(format!(
                    "this replica is a {:?}",
                    st.role()
                )));
            };
            let cfg = inner.config();
            let headers = validate(&records, &cfg)?;
            let verdict = match &marker {
                None => {
                    if headers.iter().any(|h| h.is_control()) {
                        return Err(StorageError::InvalidRecord(
                            "clients may not write control batches".into(),
                        ));
                    }
                    st.producers_mut().check(&headers)?
                }
                Some(m) => {
                    st.producers().check_marker(m)?;
                    Verdict::Append
                }
            };
            if let Verdict::Duplicate(dup) = verdict {
                // A retry of a batch already in the log (or being written): nothing is
                // written; answer with the original offsets once they are readable.
                let append_time = match cfg.timestamp_type {
                    TimestampType::LogAppendTime => dup.max_timestamp,
                    TimestampType::CreateTime => -1,
                };
                (dup.first_offset, dup.last_offset, append_time)
            } else {
                let count = record_count(&headers)?;
                let now = now_ms();
                let base = st.queue().assigned();
                let last = base + count - 1;
                if needs_roll(&st, &cfg, records.len() as u64, last, headers.len(), now) {
                    st.push_roll(now);
                }
                let append_time = match cfg.timestamp_type {
                    TimestampType::LogAppendTime => now,
                    TimestampType::CreateTime => -1,
                };
                let interval = cfg.index_interval_bytes;
                drop(cfg);
                let (records, stored) =
                    stamp_and_index(&mut st, records, &headers, append_time, interval, epoch)?;
                self.enqueue(&mut st, records, &stored, count, now, marker);
                self.note_epoch(epoch, base);
                (base, last, append_time)
            }
        };
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time: append_time,
            log_start_offset: inner.state().segments().log_start(),
        })
    }

    /// Append, last phase: records the batches in the producer state (a marker's aborted
    /// transaction also in the active segment's `.txnindex`), queues their write (and a
    /// producer-state snapshot when one is due) and wakes the writer.
    fn enqueue(
        &self,
        st: &mut State,
        records: Bytes,
        stored: &[BatchHeader],
        count: i64,
        now: i64,
        marker: Option<TxnMarker>,
    ) {
        let epoch = st.role().append_epoch().unwrap_or(LEADER_EPOCH);
        for h in stored {
            match &marker {
                Some(m) => {
                    let hw = st.hw();
                    let done =
                        st.producers_mut()
                            .apply_marker(m, h.base_offset, h.max_timestamp, now, hw);
                    if let Some(e) = done.and_then(|d| d.index_entry()) {
                        st.segments_mut().active_mut().txns.push(e);
                    }
                }
                None => st.producers_mut().apply(h, now),
            }
        }
        st.producers_mut().maybe_expire(now);
        if st.queue_mut().push_write(records, count, epoch) {
            let end = st.queue().assigned();
            let bytes = st.producers_mut().encode(end);
            st.queue_mut().push_snapshot(bytes);
        }
        self.ensure_writer(st);
    }

    /// Resolves once every offset <= `offset` is written to the file (readable; durable only per
    /// [`PartitionLog::wait_durable`]), or with the error that took the log offline.
    pub async fn wait_written(&self, offset: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        loop {
            {
                let st = inner.state();
                if st.written_end() > offset {
                    return Ok(());
                }
                st.check_online()?;
            }
            inner.progress().wait().await;
        }
    }

    /// Starts the writer task when work is queued and none runs.
    pub(crate) fn ensure_writer(&self, st: &mut State) {
        if st.queue_mut().try_start_writer() {
            glommio::spawn_local(super::appender::writer_loop(self.inner.clone())).detach();
        }
    }

    /// Resolves once every offset <= `offset` is on stable storage (fdatasync, group commit:
    /// one sync in flight at a time covers everything written before it started). Offsets not
    /// yet assigned are clamped to the last assigned offset.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        loop {
            let written = {
                let mut st = inner.state_mut();
                st.check_online()?;
                let n = offset.min(st.queue().assigned() - 1);
                let hw = st.written_end();
                if st.sync().durable() > n {
                    return Ok(());
                }
                st.sync_mut().want();
                if hw > n {
                    st.sync_mut().request(n);
                    super::syncer::ensure_syncer(inner, &mut st);
                }
                hw > n
            };
            if written {
                inner.synced().wait().await;
            } else {
                inner.progress().wait().await;
            }
        }
    }

    /// How this partition's acks=all syncs were done so far.
    pub fn sync_stats(&self) -> SyncStats {
        self.inner.state().sync().stats()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.state().segments().log_start()
    }
    /// One past the last written offset (the log end offset; appends still queued are not
    /// counted).
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state().written_end()
    }
    /// What consumers may read up to: the written end for [`super::ReplicaRole::Single`], the
    /// replicated high watermark otherwise (`replica.rs`).
    pub fn high_watermark(&self) -> i64 {
        self.inner.state().hw()
    }
    /// Offsets below this are fdatasynced.
    pub fn durable_offset(&self) -> i64 {
        self.inner.state().sync().durable()
    }
    /// Resolves after the next append becomes readable, i.e. the high watermark moves (or the
    /// role changes, or the log closes); cheap to create and to drop.
    pub fn wait_for_append(&self) -> impl Future<Output = ()> + 'static {
        self.inner.appended().wait()
    }

    /// Resolves after the next write completes, i.e. the log end offset moves (or the log
    /// closes): what a follower's fetch on the leader waits for, as it reads up to the log end
    /// ([`PartitionLog::read_replica`]). Cheap to create and to drop.
    pub fn wait_for_write(&self) -> impl Future<Output = ()> + 'static {
        self.inner.written().wait()
    }

    /// Seals the active segment and starts a new one (no-op when the active segment is empty).
    pub async fn roll(&self) -> Result<(), StorageError> {
        let seq = {
            let mut st = self.inner.state_mut();
            st.check_usable()?;
            if st.queue().projected_size() == 0 {
                return Ok(());
            }
            let seq = st.push_roll(now_ms());
            self.ensure_writer(&mut st);
            seq
        };
        self.wait_seq(seq).await
    }

    /// Resolves once the queued op numbered `seq` is done, or with the error that took the log
    /// offline.
    async fn wait_seq(&self, seq: u64) -> Result<(), StorageError> {
        loop {
            {
                let st = self.inner.state();
                if st.queue().is_done(seq) {
                    return Ok(());
                }
                st.check_online()?;
            }
            self.inner.progress().wait().await;
        }
    }

    /// Makes everything written so far durable and persists the active segment's indexes.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let target = {
            let st = self.inner.state();
            st.check_usable()?;
            st.queue().assigned() - 1
        };
        self.wait_durable(target).await?;
        super::syncer::wait_persist_idle(&self.inner).await;
        super::syncer::persist_active_indexes(&self.inner, true).await
    }

    /// Drains queued appends, syncs, writes the indexes, trims the active file to its logical size
    /// and closes it. Later appends fail with [`StorageError::Closed`]; reads keep working.
    pub async fn close(&self) -> Result<(), StorageError> {
        while self.inner.state().is_truncating() {
            self.inner.progress().wait().await;
        }
        let target = {
            let mut st = self.inner.state_mut();
            if st.is_closed() {
                return Ok(());
            }
            st.check_online()?;
            st.mark_closed();
            st.queue().last_seq()
        };
        self.wait_seq(target).await?;
        let last = self.inner.state().queue().assigned() - 1;
        self.wait_durable(last).await?;
        {
            let mut st = self.inner.state_mut();
            st.segments_mut().active_mut().seal_time_index();
        }
        super::syncer::wait_persist_idle(&self.inner).await;
        super::syncer::persist_active_indexes(&self.inner, true).await?;
        super::txn_log::persist_writer_txn_index(&self.inner, i64::MAX).await?;
        let (end, snapshot) = {
            let mut st = self.inner.state_mut();
            st.producers_mut()
                .expire(now_ms(), producer_state::PRODUCER_ID_EXPIRATION_MS);
            let end = st.queue().assigned();
            (end, st.producers_mut().encode(end))
        };
        producer_state::write_snapshot(self.inner.dir(), end, snapshot).await?;
        sync_dir(self.inner.dir()).await?;
        producer_state::remove_older_snapshots(self.inner.dir());
        super::zero_fill::wait_fill_idle(&self.inner).await;
        let active = self.inner.state_mut().take_active();
        if let Some(a) = active {
            let (dma, written) = a.into_file();
            dma.truncate(written).await?;
            dma.fdatasync().await?;
            if let Ok(f) = Rc::try_unwrap(dma) {
                f.close().await?;
            }
        }
        self.inner.notify_all();
        Ok(())
    }

    /// Replaces the configuration (takes effect for the next append / retention run).
    pub fn set_config(&self, config: LogConfig) {
        self.inner.set_config(config);
    }

    pub fn config(&self) -> LogConfig {
        self.inner.config().clone()
    }

    /// Bytes of the log's segments (readable data; Kafka's `UnifiedLog.size`, what
    /// DescribeLogDirs reports): the `.log` files' sizes, without the active segment's
    /// preallocated zeros past its data.
    pub fn size_bytes(&self) -> u64 {
        self.inner.state().segments().iter().map(|s| s.size).sum()
    }

    /// Number of segments (tests, metrics).
    pub fn segment_count(&self) -> usize {
        self.inner.state().segments().len()
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.inner.state().segments().bases()
    }

    /// Approximate heap bytes held for this partition (indexes and tail block), for the
    /// footprint test.
    pub fn heap_bytes(&self) -> usize {
        let st = self.inner.state();
        let segs: usize = st
            .segments()
            .iter()
            .map(|s| s.heap_bytes() + std::mem::size_of::<Segment>() + 32)
            .sum();
        segs + st.active().map_or(0, |a| a.heap_bytes()) + std::mem::size_of::<State>()
    }

    /// Number of sealed segments currently holding an open read descriptor.
    pub fn open_sealed_readers(&self) -> usize {
        let st = self.inner.state();
        let n = st.segments().len();
        st.segments()
            .iter()
            .take(n.saturating_sub(1))
            .filter(|s| s.reader.is_some())
            .count()
    }
}

/// Open (and the reload after a truncation, `replica.rs`): the state of the log in `dir` as
/// its files are, recovered, with the persisted log start still to apply
/// (`PartitionLog::apply_persisted_log_start`).
pub(crate) async fn load_state(
    dir: &Path,
    config: &LogConfig,
) -> Result<(State, Option<i64>), StorageError> {
    let now = now_ms();
    let mut bases = list_segments(dir).await?;
    let mut segments = recover_segments(dir, &bases, config, now).await?;
    let persisted_start = log_start::read(dir).await?;
    let end = segments.values().next_back().map_or(0, |s| s.next_offset);
    if let Some(start) = persisted_start
        && start > end
    {
        log_start::restart_empty_at(dir, &bases, start).await?;
        bases = vec![start];
        segments = recover_segments(dir, &bases, config, now).await?;
    }
    let (active_base, next, size) = {
        let a = segments.values().next_back().expect("newest segment");
        (a.base_offset, a.next_offset, a.size)
    };
    let active = open_active_file(dir, active_base, size).await?;
    let rebuilt = rebuild_producers(dir, &segments, next, now)?;
    super::txn_log::load_txn_indexes(dir, &mut segments, rebuilt.from, &rebuilt.aborted).await?;
    let st = State::new(
        SegmentMap::new(segments),
        active,
        WriteQueue::new(next, size),
        SyncState::new(
            next,
            config.flush_messages != u64::MAX || config.flush_ms != u64::MAX,
        ),
        rebuilt.state,
    );
    Ok((st, persisted_start))
}

/// Open, first phase: creates `dir` if needed, removes index files whose log is gone and
/// interrupted deletions, and returns the segments' base offsets, oldest first (creating an
/// empty segment 0 in an empty directory).
async fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir)?;
    if created && let Some(parent) = dir.parent() {
        sync_dir(parent).await?;
    }
    let mut bases = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy().to_string();
        if let Some(b) = segment::parse_log_name(&name) {
            bases.push(b);
        } else {
            others.push(name);
        }
    }
    bases.sort_unstable();
    // Index files whose log is gone (interrupted deletion) are removed.
    for name in others {
        let stem = name.split('.').next().unwrap_or("");
        let orphan_index = (name.ends_with(".index")
            || name.ends_with(".timeindex")
            || name.ends_with(".txnindex"))
            && stem.len() == 20
            && stem
                .parse::<i64>()
                .is_ok_and(|b| bases.binary_search(&b).is_err());
        if orphan_index || name.ends_with(".deleted") {
            let _ = std::fs::remove_file(dir.join(&name));
        }
    }
    if bases.is_empty() {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(segment::log_path(dir, 0))
            .await?;
        f.close().await?;
        sync_dir(dir).await?;
        bases.push(0);
    }
    Ok(bases)
}

/// Open, second phase: recovers every segment (`recovery.rs`), refuses overlapping ones, deletes
/// empty sealed ones, and keeps indexes loaded for the newest only (sealed segments load theirs
/// on use).
async fn recover_segments(
    dir: &Path,
    bases: &[i64],
    config: &LogConfig,
    now: i64,
) -> Result<BTreeMap<i64, Segment>, StorageError> {
    let mut segments = BTreeMap::new();
    let n = bases.len();
    let mut prev_end: Option<i64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let newest = i + 1 == n;
        let mut seg = recovery::recover_segment(dir, base, config, now).await?;
        if let Some(end) = prev_end
            && base < end
        {
            return Err(StorageError::Io(std::io::Error::other(format!(
                "segment {base} overlaps the previous segment ending at {end}"
            ))));
        }
        if !newest && seg.size == 0 {
            // An empty sealed segment carries nothing; drop it.
            for p in [
                segment::log_path(dir, base),
                segment::index_path(dir, base),
                segment::time_index_path(dir, base),
                super::txn_index::path(dir, base),
            ] {
                let _ = std::fs::remove_file(p);
            }
            continue;
        }
        prev_end = Some(seg.next_offset);
        if !newest {
            seg.index = None;
            seg.time_index = None;
        }
        segments.insert(base, seg);
    }
    Ok(segments)
}

/// Open, third phase: opens the newest segment (at `base`, `size` bytes) for direct writes,
/// reads its partial last block into memory, and makes whatever survived durable.
async fn open_active_file(dir: &Path, base: i64, size: u64) -> Result<ActiveFile, StorageError> {
    let dma = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(segment::log_path(dir, base))
        .await?;
    let align = dma.alignment().max(512);
    let tail_start = size - size % align;
    let mut tail = vec![0u8; (size - tail_start) as usize];
    if !tail.is_empty() {
        let f = std::fs::File::open(segment::log_path(dir, base))?;
        segment::read_exact_at(&f, &mut tail, tail_start)?;
    }
    // Whatever survived is made durable before we report it as such.
    dma.fdatasync().await?;
    Ok(ActiveFile::new(base, Rc::new(dma), align, tail, size))
}

/// Open, fourth phase: the producers' state as of the log end `next`, from the newest snapshot
/// plus the batch headers after it (`producer_state::rebuild`), with the aborted transactions
/// the replay met.
fn rebuild_producers(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    next: i64,
    now: i64,
) -> Result<producer_state::Rebuilt, StorageError> {
    let extents: Vec<producer_state::SegmentExtent> = segments
        .values()
        .map(|s| producer_state::SegmentExtent {
            base: s.base_offset,
            next_offset: s.next_offset,
            size: s.size,
            path: segment::log_path(dir, s.base_offset),
        })
        .collect();
    producer_state::rebuild(dir, &extents, next, now)
}

/// Append, first phase: validates every batch (`record_batch::validate_all`) and refuses one
/// above `max.message.bytes`.
fn validate(records: &Bytes, cfg: &LogConfig) -> Result<Vec<BatchHeader>, StorageError> {
    let headers = record_batch::validate_all(records)?;
    for h in &headers {
        if h.total_len() > cfg.max_message_bytes as usize {
            return Err(StorageError::MessageTooLarge {
                size: h.total_len(),
                max: cfg.max_message_bytes,
            });
        }
    }
    Ok(headers)
}

/// The records the batches claim, refused above what one segment's u32 relative offsets hold.
fn record_count(headers: &[BatchHeader]) -> Result<i64, StorageError> {
    let count: i64 = headers.iter().map(|h| h.last_offset_delta as i64 + 1).sum();
    // Record counts are taken from the headers (records are not decoded), so bound what
    // one request may claim: its offsets must fit one segment's u32 relative offsets.
    if count > i32::MAX as i64 {
        return Err(StorageError::InvalidRecord(format!(
            "request claims {count} records"
        )));
    }
    Ok(count)
}

/// Append, second phase: whether `total` bytes in `batches` batches ending at offset `last` must
/// start a new segment (`segment.bytes`, `segment.ms`, and what the segment's u32 positions,
/// relative offsets and index can hold).
pub(crate) fn needs_roll(
    st: &State,
    cfg: &LogConfig,
    total: u64,
    last: i64,
    batches: usize,
    now: i64,
) -> bool {
    let a = st.segments().active();
    let idx_len = a.index.as_ref().map_or(0, |i| i.len());
    let size = st.queue().projected_size();
    size > 0
        && (size + total > cfg.segment_bytes
            || size + total > u32::MAX as u64
            || now - a.created_ms >= cfg.roll_ms()
            || last - a.base_offset > i32::MAX as i64
            || idx_len + batches >= cfg.max_index_entries())
}

/// Append, third phase: the batches' headers as stored (offsets from the assigned end, partition
/// leader epoch `epoch` (the role's: 0 on a single node), and under `LogAppendTime` the append time), indexed in the active segment at
/// the projected end. Under `LogAppendTime` the records become a patched copy, since that
/// rewrites CRC-covered fields; otherwise they are appended as the request carried them (see
/// `Op::Write`).
fn stamp_and_index(
    st: &mut State,
    records: Bytes,
    headers: &[BatchHeader],
    append_time: i64,
    interval: u32,
    epoch: i32,
) -> Result<(Bytes, Vec<BatchHeader>), StorageError> {
    let position = st.queue().projected_size();
    let mut next = st.queue().assigned();
    let mut pos = 0usize;
    let mut stored = Vec::with_capacity(headers.len());
    let mut patched = (append_time >= 0).then(|| BytesMut::from(&records[..]));
    let seg = st.segments_mut().active_mut();
    for h in headers {
        let len = h.total_len();
        let h2 = match patched.as_mut() {
            Some(copy) => {
                let b = &mut copy[pos..pos + len];
                record_batch::set_base_offset(b, next);
                record_batch::set_partition_leader_epoch(b, epoch);
                record_batch::set_log_append_time(b, append_time);
                BatchHeader::parse(b)?
            }
            None => BatchHeader {
                base_offset: next,
                partition_leader_epoch: epoch,
                ..*h
            },
        };
        seg.index_batch(&h2, position + pos as u64, interval);
        next = h2.last_offset() + 1;
        pos += len;
        stored.push(h2);
    }
    Ok((patched.map_or(records, BytesMut::freeze), stored))
}

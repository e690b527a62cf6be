//! One cleaning pass over one log: which part is cleanable, the offset map over its dirty part,
//! the rewrite of the closed segments from the log start, and the swap (`swap.rs`).

use std::fs::File;
use std::sync::Arc;

use crate::format::record_batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::storage::config::LogConfig;
use crate::storage::error::StorageError;
use crate::storage::log::PartitionLog;
use crate::storage::page_cache;
use crate::storage::segment::{self, Segment, sync_dir, write_small_file};
use crate::storage::state::State;

use super::aborted::AbortedTracker;
use super::filter::{self, FilterCtx, Kept};
use super::offset_map::OffsetMap;
use super::swap::{self, CLEANED, with_suffix};
use super::throttle::Throttle;
use crate::storage::txn_index::{self, SegmentTxns, TxnIndexEntry};

/// Bytes read (and written) per I/O.
const CHUNK: usize = 1 << 20;

/// A sealed segment as a pass sees it (copied out of the state).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegInfo {
    pub base: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub created_ms: i64,
    pub generation: u64,
}

/// What a pass found cleanable in a log.
#[derive(Debug, Clone, Copy)]
pub struct Cleanable {
    /// Where the dirty part starts (the checkpoint, at least the log start).
    pub first_dirty: i64,
    /// Where the cleanable part ends: the active segment's base, or the first segment holding a
    /// record younger than `min.compaction.lag.ms`.
    pub first_uncleanable: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// dirty / (clean + dirty), 0 when both are 0.
    pub dirty_ratio: f64,
    /// A dirty record is older than `max.compaction.lag.ms`.
    pub must_clean: bool,
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Groups of segments swapped for a rewritten one.
    pub swaps: usize,
    pub keys: usize,
    /// The new first dirty offset (one past the last offset the offset map covered).
    pub end_offset: i64,
    /// The earliest delete horizon of a tombstone the pass kept (a later pass may drop it then).
    pub tombstone_horizon: Option<i64>,
}

/// What writing a group's cleaned copy came to.
enum Written {
    /// The copy is ready to swap in.
    Segment(Segment),
    /// It would equal the one segment it replaces: nothing to swap.
    Unchanged,
    /// The log changed underneath (or closed): nothing written.
    Aborted,
}

/// Whether the swap of a group could proceed.
#[derive(Debug, PartialEq, Eq)]
enum Swapped {
    Yes,
    /// The log changed underneath (retention, close, another swap): nothing swapped.
    Aborted,
}

/// The segments no append can reach (all but the newest, and not the one the writer may still
/// be sealing after a queued roll), and the base of the first other segment.
pub(crate) fn sealed_segments(st: &State) -> (Vec<SegInfo>, i64) {
    let writer_base = st.active().map_or(i64::MAX, |a| a.base());
    let limit = writer_base.min(st.segments().active().base_offset);
    let segs = st
        .segments()
        .before(limit)
        .map(|s| SegInfo {
            base: s.base_offset,
            next_offset: s.next_offset,
            size: s.size,
            max_timestamp: s.max_timestamp,
            created_ms: s.created_ms,
            generation: s.generation,
        })
        .collect();
    (segs, limit)
}

/// Reads the batches of one segment in order through a large window.
struct BatchReader {
    file: Arc<File>,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl BatchReader {
    fn new(file: Arc<File>, size: u64) -> Self {
        BatchReader {
            file,
            size,
            pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    fn holds(&self, pos: u64, len: u64) -> bool {
        pos >= self.buf_pos && pos + len <= self.buf_pos + self.buf.len() as u64
    }

    async fn fill(
        &mut self,
        pos: u64,
        want: usize,
        throttle: &mut Throttle,
    ) -> Result<(), StorageError> {
        let n = want.min((self.size - pos) as usize);
        self.buf.resize(n, 0);
        page_cache::read_exact_at(&self.file, &mut self.buf, pos).await?;
        self.buf_pos = pos;
        throttle.charge(n as u64).await;
        Ok(())
    }

    /// The next whole batch: its bytes live in the window until the next call.
    async fn next(
        &mut self,
        throttle: &mut Throttle,
    ) -> Result<Option<(usize, usize)>, StorageError> {
        let pos = self.pos;
        if pos + LOG_OVERHEAD as u64 > self.size {
            return Ok(None);
        }
        if !self.holds(pos, HEADER_LEN.min((self.size - pos) as usize) as u64) {
            self.fill(pos, CHUNK, throttle).await?;
        }
        let at = (pos - self.buf_pos) as usize;
        let total = record_batch::peek_total_len(&self.buf[at..])
            .filter(|&t| t >= HEADER_LEN && pos + t as u64 <= self.size)
            .ok_or_else(|| {
                StorageError::Io(std::io::Error::other(format!(
                    "log cleaner: no valid batch at position {pos}"
                )))
            })?;
        if !self.holds(pos, total as u64) {
            self.fill(pos, total.max(CHUNK), throttle).await?;
        }
        self.pos = pos + total as u64;
        Ok(Some(((pos - self.buf_pos) as usize, total)))
    }

    fn bytes(&self, at: usize, len: usize) -> &[u8] {
        &self.buf[at..at + len]
    }
}

/// The read descriptor of the sealed segment `s`, if it is still the one the pass saw.
fn reader_of(log: &PartitionLog, s: &SegInfo) -> Result<Option<Arc<File>>, StorageError> {
    let dir = log.dir().to_path_buf();
    let mut st = log.inner().state_mut();
    match st.segments_mut().get_mut(s.base) {
        Some(seg) if seg.generation == s.generation && seg.size == s.size => {
            Ok(Some(seg.reader(&dir)?))
        }
        _ => Ok(None),
    }
}

/// What is cleanable in `log` at `now` given the recorded first dirty offset `checkpoint`;
/// `None` when it has no sealed segment.
pub async fn cleanable(
    log: &PartitionLog,
    checkpoint: i64,
    now: i64,
) -> Result<Option<Cleanable>, StorageError> {
    let cfg = log.config();
    let (segs, limit) = sealed_segments(&log.inner().state());
    if segs.is_empty() {
        return Ok(None);
    }
    let first_dirty = checkpoint.max(log.log_start_offset()).min(limit);
    let mut first_uncleanable = limit;
    // Kafka never cleans past the last stable offset: whether an ongoing transaction's data is
    // aborted is not known yet. Segment-wise here: the segment holding it stays dirty.
    let lso = log.last_stable_offset();
    if let Some(s) = segs.iter().find(|s| s.next_offset > lso) {
        first_uncleanable = first_uncleanable.min(s.base.max(first_dirty));
    }
    if cfg.min_compaction_lag_ms > 0 {
        for s in segs.iter().filter(|s| s.next_offset > first_dirty) {
            let ts = if s.max_timestamp >= 0 {
                s.max_timestamp
            } else {
                s.created_ms
            };
            if ts > now.saturating_sub(cfg.min_compaction_lag_ms) {
                first_uncleanable = first_uncleanable.min(s.base.max(first_dirty));
                break;
            }
        }
    }
    let dirty: Vec<&SegInfo> = segs
        .iter()
        .filter(|s| s.next_offset > first_dirty && s.base < first_uncleanable)
        .collect();
    let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
    let clean_bytes: u64 = segs
        .iter()
        .filter(|s| s.next_offset <= first_dirty)
        .map(|s| s.size)
        .sum();
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let mut must_clean = false;
    if cfg.max_compaction_lag_ms < i64::MAX
        && let Some(first) = dirty.first()
        && first.size >= HEADER_LEN as u64
        && let Some(file) = reader_of(log, first)?
    {
        // Kafka's rule: the first dirty segment's first batch timestamp.
        let mut head = vec![0u8; HEADER_LEN];
        page_cache::read_exact_at(&file, &mut head, 0).await?;
        let h = BatchHeader::parse(&head)
            .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?;
        let ts = if h.base_timestamp >= 0 {
            h.base_timestamp
        } else {
            first.created_ms
        };
        must_clean = now.saturating_sub(ts) > cfg.max_compaction_lag_ms;
    }
    Ok(Some(Cleanable {
        first_dirty,
        first_uncleanable,
        clean_bytes,
        dirty_bytes,
        dirty_ratio,
        must_clean,
    }))
}

/// Cleans `log`: builds `map` over `[c.first_dirty, c.first_uncleanable)` (as far as it holds),
/// then rewrites every sealed segment up to where the map ends, group by group, and swaps each
/// group in. Stops early (without error) when the log changes underneath.
pub async fn clean(
    log: &PartitionLog,
    c: &Cleanable,
    map: &mut OffsetMap,
    throttle: &mut Throttle,
    now: i64,
) -> Result<CleanStats, StorageError> {
    let cfg = log.config();
    let (segs, _) = sealed_segments(&log.inner().state());
    let mut stats = CleanStats {
        segments_before: log.segment_count(),
        ..CleanStats::default()
    };
    // The aborted transactions with data in the sealed range (their markers may lie later).
    let aborted = log.aborted_entries(log.log_start_offset(), c.first_uncleanable);
    build_map(log, &segs, c, &aborted, map, throttle, &mut stats).await?;
    stats.keys = map.len();
    if map.latest_offset() < c.first_dirty && c.dirty_bytes > 0 && !map.is_empty() {
        // Kafka's answer too: no progress is possible until the buffer holds one batch's keys.
        return Err(StorageError::Io(std::io::Error::other(format!(
            "log cleaner: the offset map ({} keys, log.cleaner.dedupe.buffer.size split between \
             shards) cannot hold the keys of the first dirty batch",
            map.len()
        ))));
    }
    let end = map.latest_offset() + 1;
    stats.end_offset = end.max(c.first_dirty);
    let to_clean: Vec<SegInfo> = segs.into_iter().filter(|s| s.base < end).collect();
    let producer_last = log.inner().state().producers().last_batch_offsets();
    let ctx = FilterCtx {
        map,
        now,
        delete_retention_ms: cfg.delete_retention_ms,
        producer_last: &producer_last,
    };
    for group in group_segments(&to_clean, &cfg) {
        let swapped = if log.is_closed() {
            Swapped::Aborted
        } else {
            match write_group(log, &group, &ctx, &aborted, &cfg, throttle, &mut stats).await? {
                Written::Unchanged => continue,
                Written::Aborted => Swapped::Aborted,
                Written::Segment(seg) => swap_in(log, &group, seg).await?,
            }
        };
        if swapped == Swapped::Aborted {
            // What was not rewritten stays dirty: the next pass starts at this group at the
            // latest (its map covers from there).
            stats.end_offset = stats.end_offset.min(group[0].base).max(c.first_dirty);
            tracing::info!(dir = %log.dir().display(), "log changed during cleaning; pass stopped");
            break;
        }
        stats.swaps += 1;
    }
    stats.segments_after = log.segment_count();
    Ok(stats)
}

/// Fills `map` with the keys of the dirty range, batch by batch, until the range ends or the map
/// is full (the map's latest offset then ends at the last batch that went in whole).
async fn build_map(
    log: &PartitionLog,
    segs: &[SegInfo],
    c: &Cleanable,
    aborted: &[TxnIndexEntry],
    map: &mut OffsetMap,
    throttle: &mut Throttle,
    stats: &mut CleanStats,
) -> Result<(), StorageError> {
    map.clear();
    let mut tracker: Option<AbortedTracker> = None;
    // The clean part holds one record per key already: it counts as covered.
    map.update_latest_offset(c.first_dirty - 1);
    for s in segs
        .iter()
        .filter(|s| s.next_offset > c.first_dirty && s.base < c.first_uncleanable)
    {
        let Some(file) = reader_of(log, s)? else {
            return Ok(());
        };
        let tracker = tracker.get_or_insert_with(|| AbortedTracker::new(aborted, s.base));
        let mut reader = BatchReader::new(file, s.size);
        while let Some((at, len)) = reader.next(throttle).await? {
            stats.bytes_read += len as u64;
            let batch = reader.bytes(at, len);
            let h = BatchHeader::parse(batch).map_err(corrupt)?;
            let is_aborted = tracker.on_batch(&h);
            if h.last_offset() < c.first_dirty {
                continue;
            }
            if !h.is_control() && !is_aborted {
                let (h, raw) = filter::decode(batch).map_err(corrupt)?;
                let records = filter::parse_records(&h, &raw).map_err(corrupt)?;
                for r in &records {
                    let offset = h.base_offset + r.offset_delta;
                    if let Some(k) = r.key
                        && offset >= c.first_dirty
                        && !map.put(k, offset)
                    {
                        return Ok(());
                    }
                }
            }
            map.update_latest_offset(h.last_offset());
            glommio::yield_if_needed().await;
        }
    }
    Ok(())
}

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Io(std::io::Error::other(format!("log cleaner: {e}")))
}

/// Kafka's `groupSegmentsBySize`: runs of consecutive segments whose total size fits one segment
/// (`segment.bytes`, and what u32 positions, relative offsets and the index can address).
fn group_segments(segs: &[SegInfo], cfg: &LogConfig) -> Vec<Vec<SegInfo>> {
    let max_bytes = cfg.segment_bytes.min(u32::MAX as u64);
    let interval = cfg.index_interval_bytes.max(1) as u64;
    let mut groups: Vec<Vec<SegInfo>> = Vec::new();
    let mut cur: Vec<SegInfo> = Vec::new();
    let mut bytes = 0u64;
    for s in segs {
        let fits = cur.first().is_none_or(|first| {
            bytes + s.size <= max_bytes
                && s.next_offset - first.base <= i32::MAX as i64
                && ((bytes + s.size) / interval + 1) < cfg.max_index_entries() as u64
        });
        if !fits {
            groups.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += s.size;
        cur.push(*s);
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// Writes the cleaned copy of `group` as `.cleaned` files (and its `.replaces` list), durably.
async fn write_group(
    log: &PartitionLog,
    group: &[SegInfo],
    ctx: &FilterCtx<'_>,
    aborted: &[TxnIndexEntry],
    cfg: &LogConfig,
    throttle: &mut Throttle,
    stats: &mut CleanStats,
) -> Result<Written, StorageError> {
    let mut tracker = AbortedTracker::new(aborted, group[0].base);
    // The group's aborted-transaction entries, in marker order: every marker is kept, so they
    // all stay valid for the merged segment.
    let mut txn_entries = Vec::new();
    for s in group {
        txn_entries.extend(txn_index::read(log.dir(), s.base)?);
    }
    let dir = log.dir().to_path_buf();
    let base = group[0].base;
    swap::discard(&dir, base);
    let log_path = with_suffix(&segment::log_path(&dir, base), CLEANED);
    let out = glommio::io::BufferedFile::create(&log_path).await?;
    let mut seg = Segment::new_empty(base, group[0].created_ms);
    let mut changed = group.len() > 1;
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut size = 0u64;
    let mut flushed = 0u64;
    let mut intact = true;
    'segments: for s in group {
        let Some(file) = reader_of(log, s)? else {
            intact = false;
            break;
        };
        let mut reader = BatchReader::new(file, s.size);
        while let Some((at, len)) = reader.next(throttle).await? {
            if log.is_closed() {
                intact = false;
                break 'segments;
            }
            stats.bytes_read += len as u64;
            let batch = reader.bytes(at, len);
            let h = BatchHeader::parse(batch).map_err(corrupt)?;
            let f = if tracker.on_batch(&h) {
                filter::aborted_batch(batch, ctx)
            } else {
                filter::filter_batch(batch, ctx)
            }
            .map_err(corrupt)?;
            stats.records_read += f.records_in as u64;
            stats.records_kept += f.records_kept as u64;
            if let Some(hz) = f.tombstone_horizon {
                stats.tombstone_horizon = Some(stats.tombstone_horizon.map_or(hz, |t| t.min(hz)));
            }
            let bytes: &[u8] = match &f.kept {
                Kept::Original => batch,
                Kept::Rewritten(b) => {
                    changed = true;
                    b
                }
                Kept::Dropped => {
                    changed = true;
                    continue;
                }
            };
            let h = BatchHeader::parse(bytes).map_err(corrupt)?;
            seg.index_batch(&h, size, cfg.index_interval_bytes);
            pending.extend_from_slice(bytes);
            size += bytes.len() as u64;
            if pending.len() >= CHUNK {
                let n = pending.len() as u64;
                write_all(&out, std::mem::take(&mut pending), flushed).await?;
                flushed += n;
                throttle.charge(n).await;
            }
            glommio::yield_if_needed().await;
        }
    }
    if !pending.is_empty() {
        let n = pending.len() as u64;
        write_all(&out, pending, flushed).await?;
        throttle.charge(n).await;
    }
    out.fdatasync().await?;
    out.close().await?;
    if !intact || !changed {
        swap::discard(&dir, base);
        return Ok(if intact {
            Written::Unchanged
        } else {
            Written::Aborted
        });
    }
    stats.bytes_written += size;
    let last = group.last().expect("a group is never empty");
    seg.size = size;
    seg.next_offset = last.next_offset;
    seg.seal_time_index();
    if let Some(i) = seg.index.as_mut() {
        i.shrink();
    }
    if let Some(t) = seg.time_index.as_mut() {
        t.shrink();
    }
    let ib = seg.index.as_ref().map(|i| i.encode()).unwrap_or_default();
    let tb = seg
        .time_index
        .as_ref()
        .map(|t| t.encode())
        .unwrap_or_default();
    seg.persisted_index = seg.index.as_ref().map_or(0, |i| i.len());
    seg.persisted_time_index = seg.time_index.as_ref().map_or(0, |t| t.len());
    write_small_file(&with_suffix(&segment::index_path(&dir, base), CLEANED), ib).await?;
    write_small_file(
        &with_suffix(&segment::time_index_path(&dir, base), CLEANED),
        tb,
    )
    .await?;
    if !txn_entries.is_empty() {
        write_small_file(
            &with_suffix(&txn_index::path(&dir, base), CLEANED),
            txn_index::encode(&txn_entries),
        )
        .await?;
    }
    seg.txns = SegmentTxns::summary(&txn_entries);
    let list: String = group.iter().map(|s| format!("{}\n", s.base)).collect();
    write_small_file(&swap::replaces_path(&dir, base), list.into_bytes()).await?;
    sync_dir(&dir).await?;
    Ok(Written::Segment(seg))
}

async fn write_all(
    out: &glommio::io::BufferedFile,
    mut buf: Vec<u8>,
    mut pos: u64,
) -> Result<(), StorageError> {
    while !buf.is_empty() {
        let n = out.write_at(buf.clone(), pos).await?;
        if n == 0 {
            return Err(StorageError::Io(std::io::Error::other(
                "log cleaner: short write",
            )));
        }
        buf.drain(..n);
        pos += n as u64;
    }
    Ok(())
}

/// Whether every segment of `group` is still in the log as the pass saw it, sealed, and the log
/// open.
fn still_intact(st: &State, group: &[SegInfo]) -> bool {
    let (_, limit) = sealed_segments(st);
    !st.is_closed()
        && !st.is_failed()
        && !st.is_truncating()
        && group.iter().all(|g| {
            g.base < limit
                && st.segments().get(g.base).is_some_and(|s| {
                    s.size == g.size
                        && s.next_offset == g.next_offset
                        && s.generation == g.generation
                })
        })
}

/// Commits and installs the cleaned copy of `group` (`swap.rs` describes the steps).
async fn swap_in(
    log: &PartitionLog,
    group: &[SegInfo],
    mut seg: Segment,
) -> Result<Swapped, StorageError> {
    let dir = log.dir().to_path_buf();
    let base = group[0].base;
    let bases: Vec<i64> = group.iter().map(|s| s.base).collect();
    if !still_intact(&log.inner().state(), group) {
        swap::discard(&dir, base);
        return Ok(Swapped::Aborted);
    }
    swap::commit(&dir, base)?;
    sync_dir(&dir).await?;
    {
        let mut st = log.inner().state_mut();
        if !still_intact(&st, group) {
            drop(st);
            swap::discard(&dir, base);
            return Ok(Swapped::Aborted);
        }
        if let Err(e) = swap::install(&dir, base, &bases) {
            drop(st);
            // The files are half swapped: the next open finishes the swap (`recover_dir`).
            let e = StorageError::from(e);
            log.inner().fail(&e);
            return Err(e);
        }
        seg.generation = st.segments().get(base).map_or(0, |s| s.generation) + 1;
        st.segments_mut().replace(&bases, seg);
    }
    sync_dir(&dir).await?;
    let _ = std::fs::remove_file(swap::replaces_path(&dir, base));
    Ok(Swapped::Yes)
}

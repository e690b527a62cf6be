//! The read side: offset → (segment file, position, length) of whole batches, and timestamp
//! lookups.
//!
//! A read takes the segment holding the offset, looks up the greatest index entry at or below it,
//! and walks batch headers forward (one or two preads of a 16 KiB window: the entries are at most
//! `index.interval.bytes` apart). The end of the slice is found the same way from the index entry
//! at or below `position + max_bytes`, so a large fetch costs a couple of preads regardless of how
//! many batches it spans. Everything returned lies below the high watermark (a follower's read on
//! the leader, `read_replica`: below the log end, which a leader never truncates), and those bytes
//! never change, so the connection's shard can `sendfile` them at leisure.
//!
//! Header preads are plain `pread(2)` on a buffered descriptor: the pages were just written (the
//! direct write invalidated any stale cached range, so buffered reads are coherent) or are about
//! to be sent from the page cache anyway; routing a 16 KiB cached read through io_uring costs more
//! than the syscall. Reads never touch the writer's DMA file.
//!
//! A read_committed fetch reads with [`PartitionLog::read_below`]: the same walk, stopped at
//! the position of the batch holding the last stable offset (found by one more index lookup and
//! header walk), and reporting the base offset of the batch after the data, which the walk has
//! usually just read, so the aborted transactions sent with the data cover exactly its range.
//!
//! # Max timestamp (ListOffsets `MAX_TIMESTAMP`, KIP-734)
//! The answer is the offset of the *record* carrying the log's largest timestamp (the first such
//! record on a tie), with that timestamp; a batch header only carries its max timestamp, not
//! which record holds it. Kafka's rule (`UnifiedLog.fetchOffsetByTimestamp`), followed here:
//! - each segment tracks, from batch headers alone, its max timestamp and the *last offset of the
//!   first batch* that reached it (`Segment::max_timestamp{,_offset}`, Kafka's
//!   `maxTimestampAndOffsetSoFar`); the time index's last entry persists the same pair, so a
//!   reopened segment knows it without a scan (recovery rebuilds it where the index is damaged);
//! - a query picks the segment with the largest max timestamp (the oldest on a tie), walks from
//!   the offset-index entry at or below that batch to the first batch whose max timestamp equals
//!   the segment's, and decodes that one batch (decompressing it if needed) for its first record
//!   with that timestamp. Under `LogAppendTime` every record of a batch carries the batch's
//!   timestamp, so that is its base offset, with no decoding.
//!
//! The trade-off: recording the exact record at append time would mean decoding (and for
//! compressed batches decompressing) every batch on the produce path, which otherwise never
//! looks inside a batch; the query instead pays one batch read and decode, and it is a rare,
//! administrative request. Keeping maxima per segment rather than one per log means retention
//! needs no bookkeeping: once the segment holding the max is deleted, the next query simply
//! finds the best remaining one (an in-memory pass over the segment map, as Kafka does).
//! Only what is readable counts: a winning batch still queued for the writer is not found, and
//! the answer is "none" (-1, -1) until it is written, as Kafka answers for a max above the
//! high watermark.

use std::fs::File;
use std::io;
use std::sync::Arc;

use tracing::warn;

use crate::format::{compression, record_batch};

use super::error::StorageError;
use super::index::OffsetIndex;
use super::log::PartitionLog;
use super::segment::{self, HeaderScanner};
use super::slice::{FileSlice, ReadResult};
use super::time_index::TimeIndex;

impl PartitionLog {
    /// Loads a cold sealed segment's indexes (and marks it warm).
    pub(crate) async fn ensure_loaded(&self, base: i64) -> Result<(), StorageError> {
        let (needs, size, generation) = {
            let st = self.inner().state();
            match st.segments().get(base) {
                Some(s) => (
                    s.index.is_none() || s.time_index.is_none(),
                    s.size,
                    s.generation,
                ),
                None => return Ok(()),
            }
        };
        let is_active = self.inner().state().segments().active().base_offset == base;
        if needs {
            let dir = self.inner().dir();
            let ib = segment::read_small_file(&segment::index_path(dir, base)).await?;
            let tb = segment::read_small_file(&segment::time_index_path(dir, base)).await?;
            let (idx, _) = OffsetIndex::parse(ib.as_deref().unwrap_or(&[]), size);
            let (tix, _) = TimeIndex::parse(tb.as_deref().unwrap_or(&[]));
            let mut st = self.inner().state_mut();
            // The log cleaner may have swapped in a rewritten segment at the same base while
            // the files were read; indexes read from the old files would point into the wrong
            // file.
            if let Some(s) = st.segments_mut().get_mut(base)
                && s.generation == generation
            {
                if s.index.is_none() {
                    s.index = Some(idx);
                }
                if s.time_index.is_none() {
                    s.time_index = Some(tix);
                }
            }
        }
        if !is_active {
            self.inner().state_mut().segments_mut().touch_warm(base);
        }
        Ok(())
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (at least one batch even
    /// if larger), possibly continuing into following segments. Empty at the high watermark;
    /// `OffsetOutOfRange` below the log start or above the high watermark.
    pub async fn read(&self, offset: i64, max_bytes: u32) -> Result<ReadResult, StorageError> {
        Ok(self.read_bounded(offset, max_bytes, None).await?.0)
    }

    /// [`PartitionLog::read`] that stops before `upper` (a read_committed fetch's last stable
    /// offset): only batches whose last offset is below it, so a batch straddling it is left
    /// out, as Kafka's `LocalLog.read` with `maxOffset` does (its position in its segment caps
    /// the read there). Also returns the offset just past the data returned (the base offset of
    /// the next batch, or where the read started when it returned nothing): the range whose
    /// aborted transactions go with the data (Kafka's `upperBoundOffset`), found from the header
    /// the read's walk stopped on, so it costs no extra pread in the common case. Reading from an
    /// offset between `upper` and the high watermark is not an error: it returns nothing.
    pub async fn read_below(
        &self,
        offset: i64,
        max_bytes: u32,
        upper: i64,
    ) -> Result<(ReadResult, i64), StorageError> {
        self.read_bounded(offset, max_bytes, Some(upper)).await
    }

    async fn read_bounded(
        &self,
        offset: i64,
        max_bytes: u32,
        upper: Option<i64>,
    ) -> Result<(ReadResult, i64), StorageError> {
        self.read_up_to(offset, max_bytes, upper, false).await
    }

    /// The read behind [`PartitionLog::read`], [`PartitionLog::read_below`] and
    /// [`PartitionLog::read_replica`]: up to the high watermark, or for a follower's fetch
    /// (`replica`) up to the log end. An offset above the log end (or below the log start) is
    /// `OffsetOutOfRange`; one between the high watermark and the log end reads nothing (a
    /// replica's consumers wait for replication there, as Kafka's do).
    pub(crate) async fn read_up_to(
        &self,
        offset: i64,
        max_bytes: u32,
        upper: Option<i64>,
        replica: bool,
    ) -> Result<(ReadResult, i64), StorageError> {
        let (log_start, hw, end) = {
            let st = self.inner().state();
            (st.segments().log_start(), st.hw(), st.written_end())
        };
        if offset < log_start || offset > end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                high_watermark: hw,
            });
        }
        let mut out = ReadResult {
            slices: Vec::new(),
            high_watermark: hw,
            log_start_offset: log_start,
            first_batch_len: 0,
        };
        // What the reader may see: a consumer up to the high watermark, which on a replica may
        // lie below the written data, so the walk is capped there like a bounded read.
        let limit = if replica { end } else { hw };
        let capped = upper.is_some() || limit < end;
        let end_offset = upper.map_or(limit, |u| u.min(limit));
        // Where the batch holding `end_offset` starts: nothing at or past it is returned.
        let stop = if capped && end_offset < end && end_offset > offset {
            self.batch_start(end_offset).await?
        } else {
            None
        };
        let mut next = offset;
        let mut cur = offset;
        let mut remaining = max_bytes as u64;
        while cur < end_offset {
            // The segment holding `cur` (or the next one, across a gap).
            let Some(base) = self.inner().state().segments().holding_or_after(cur) else {
                break;
            };
            if stop.is_some_and(|(stop_base, _)| base > stop_base) {
                break;
            }
            // Bounded reads: the position the read stops at in this segment.
            let bound = capped.then_some(match stop {
                Some((stop_base, pos)) if stop_base == base => pos,
                _ => u64::MAX,
            });
            cur = cur.max(base);
            self.ensure_loaded(base).await?;
            let at = match self.locate(base, cur)? {
                Located::At(at) => at,
                Located::Gone => break, // deleted by retention meanwhile
                Located::Evicted => continue, // indexes evicted meanwhile: load them again
            };
            let (size, seg_next) = (at.size, at.next_offset);
            let read = self
                .read_in(
                    base,
                    cur,
                    at,
                    remaining,
                    out.slices.is_empty(),
                    bound,
                    upper.is_some(),
                )
                .await?;
            let slice = match read {
                InSegment::Slice(slice) => slice,
                InSegment::Nothing => {
                    // Nothing at or after `cur` in this segment: go on with the next.
                    if seg_next <= cur {
                        break;
                    }
                    cur = seg_next;
                    continue;
                }
                InSegment::DoesNotFit => break,
            };
            if out.slices.is_empty() {
                out.first_batch_len = slice.first_batch_len;
            }
            next = slice.next_offset.unwrap_or(seg_next);
            let end = slice.slice.position + u64::from(slice.slice.len);
            remaining = remaining.saturating_sub(u64::from(slice.slice.len));
            out.slices.push(slice.slice);
            if end < size || remaining == 0 {
                break;
            }
            cur = seg_next;
        }
        Ok((out, next))
    }

    /// The segment holding `offset` and the position there of the batch that contains it (or of
    /// the first batch after it); `None` when no segment holds it or anything after it.
    pub(crate) async fn batch_start(
        &self,
        offset: i64,
    ) -> Result<Option<(i64, u64)>, StorageError> {
        loop {
            let Some(base) = self.inner().state().segments().holding_or_after(offset) else {
                return Ok(None);
            };
            self.ensure_loaded(base).await?;
            let at = match self.locate(base, offset.max(base))? {
                Located::At(at) => at,
                Located::Gone | Located::Evicted => continue,
            };
            let size = at.size;
            let mut scanner = match at.cached {
                Some(bytes) => HeaderScanner::with_window(&at.file, size, bytes, at.pos),
                None => HeaderScanner::new(&at.file, size),
            };
            let pos = first_batch(&mut scanner, at.pos, offset)
                .await?
                .map_or(size, |(pos, _)| pos);
            return Ok(Some((base, pos)));
        }
    }

    /// Read, first phase in a segment: where the header walk for `cur` starts in the segment at
    /// `base` (the index entry at or below it), with the segment's read descriptor and extent,
    /// and the tail cache's copy from there on when it holds it. The walk reads through
    /// `header_at_async`, so no borrow of the state may live across it: this takes what it needs.
    fn locate(&self, base: i64, cur: i64) -> Result<Located, StorageError> {
        let mut st = self.inner().state_mut();
        let dir = self.inner().dir().to_path_buf();
        let Some(seg) = st.segments_mut().get_mut(base) else {
            return Ok(Located::Gone);
        };
        let file = seg.reader(&dir)?;
        let Some(idx) = seg.index.as_ref() else {
            return Ok(Located::Evicted);
        };
        let rel = (cur - base).clamp(0, u32::MAX as i64) as u32;
        let pos = idx.lookup(rel).map_or(0, |e| e.position as u64);
        let size = seg.size;
        let next_offset = seg.next_offset;
        // The active segment's tail cache, if it holds everything from `pos` on.
        let cached = st.tail_cache_copy(base, pos, size);
        Ok(Located::At(WalkStart {
            file,
            size,
            next_offset,
            pos,
            cached,
        }))
    }

    /// Read, second phase in a segment: the whole batches of the segment at `base` from the one
    /// holding `cur`, up to `remaining` bytes, or the first batch alone if it is larger and
    /// nothing was read before (`first`). A bounded read (`bound`) stops at that position; with
    /// `want_next` it also returns the base offset of the batch after the slice.
    #[allow(clippy::too_many_arguments)]
    async fn read_in(
        &self,
        base: i64,
        cur: i64,
        at: WalkStart,
        remaining: u64,
        first: bool,
        bound: Option<u64>,
        want_next: bool,
    ) -> Result<InSegment, StorageError> {
        let WalkStart {
            file,
            size,
            pos,
            cached,
            ..
        } = at;
        let from_memory = cached.is_some();
        let mut scanner = match cached {
            Some(bytes) => HeaderScanner::with_window(&file, size, bytes, pos),
            None => HeaderScanner::new(&file, size),
        };
        let Some((start, first_len)) = first_batch(&mut scanner, pos, cur).await? else {
            return Ok(InSegment::Nothing);
        };
        // At the cap (the batch holding a bounded read's upper offset) or past it.
        let cap = bound.unwrap_or(u64::MAX);
        if start + first_len > cap || (!first && first_len > remaining) {
            return Ok(InSegment::DoesNotFit);
        }
        let limit = (start + remaining.max(first_len)).min(size).min(cap);
        let end = self
            .batches_end(&mut scanner, base, start + first_len, limit)
            .await?;
        let len = end - start;
        // The base offset of the batch after the data (the walk above read its header).
        let next_offset = match want_next && end < size {
            true => scanner.header_at_async(end).await?.map(|h| h.base_offset),
            false => None,
        };
        let mem = if from_memory {
            scanner.into_window(start, len)
        } else {
            None
        };
        Ok(InSegment::Slice(SegmentSlice {
            slice: FileSlice {
                mem,
                ..FileSlice::in_file(file, start, len as u32)
            },
            first_batch_len: first_len as u32,
            next_offset,
        }))
    }

    /// Read, last phase in a segment: the end of the whole batches from `end` (the end of the
    /// first batch) that fit below `limit`, skipping ahead by the index if it is still loaded
    /// (else the walk covers it).
    async fn batches_end(
        &self,
        scanner: &mut HeaderScanner<'_>,
        base: i64,
        mut end: u64,
        limit: u64,
    ) -> Result<u64, StorageError> {
        let skip_to = {
            let st = self.inner().state();
            st.segments()
                .get(base)
                // Only while the segment still reads the file this walk reads: the log cleaner
                // may have swapped in a rewritten segment meanwhile, whose index positions are
                // in another file.
                .filter(|s| {
                    s.reader
                        .as_ref()
                        .is_some_and(|r| std::ptr::eq(r.as_ref(), scanner.file()))
                })
                .and_then(|s| s.index.as_ref())
                .and_then(|idx| idx.lookup_position(limit.min(u32::MAX as u64) as u32))
                .map(|e| e.position as u64)
        };
        if let Some(p) = skip_to
            && p > end
        {
            end = p;
        }
        while let Some(h) = scanner.header_at_async(end).await? {
            if end + h.total_len() as u64 > limit {
                break;
            }
            end += h.total_len() as u64;
        }
        Ok(end)
    }

    /// First offset at or after the log start whose timestamp is >= `ts`, with that record's
    /// timestamp (ListOffsets by time); `None` if there is none. As Kafka's `FileRecords.searchForTimestamp`: the first
    /// batch whose max timestamp is >= `ts` is decoded (decompressed if needed; off the hot path,
    /// one batch) for its first record at or after `ts`. Under LogAppendTime every record of a
    /// batch has the batch's max timestamp, so that is the batch's first offset, with no read.
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        // A replica's data above the high watermark is not visible to clients yet.
        let hw = self.high_watermark();
        Ok(self
            .offset_for_timestamp_in_log(ts)
            .await?
            .filter(|&(o, _)| o < hw))
    }

    async fn offset_for_timestamp_in_log(
        &self,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let bases = self.inner().state().segments().bases();
        for base in bases {
            let log_start = self.log_start_offset();
            {
                let st = self.inner().state();
                match st.segments().get(base) {
                    Some(s) if s.max_timestamp >= ts && s.size > 0 && s.next_offset > log_start => {
                    }
                    _ => continue,
                }
            }
            self.ensure_loaded(base).await?;
            let (file, size, mut pos) = {
                let mut st = self.inner().state_mut();
                let dir = self.inner().dir().to_path_buf();
                let Some(seg) = st.segments_mut().get_mut(base) else {
                    continue;
                };
                let file = seg.reader(&dir)?;
                // Where to start: the batch of the last time-index entry below `ts` (every batch
                // before it has a smaller max timestamp); the segment start without one, or with
                // the indexes evicted again meanwhile.
                let pos = match (&seg.time_index, &seg.index) {
                    (Some(tix), Some(idx)) => tix
                        .lookup_before(ts)
                        .and_then(|e| idx.lookup(e.relative_offset))
                        .map_or(0, |i| i.position as u64),
                    _ => 0,
                };
                (file, seg.size, pos)
            };
            let mut scanner = HeaderScanner::new(&file, size);
            while let Some(h) = scanner.header_at_async(pos).await? {
                if h.max_timestamp >= ts
                    && let Some(found) =
                        first_record_where(&file, pos, &h, log_start, |t| t >= ts).await?
                {
                    return Ok(Some(found));
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }
}

impl PartitionLog {
    /// ListOffsets `MAX_TIMESTAMP` (-3): (offset, timestamp) of the first record carrying the
    /// largest timestamp in the log; `None` for a log with no readable batch (see the module
    /// docs for the rule and its cost).
    pub async fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        loop {
            // The segment with the largest max timestamp; the oldest wins a tie (Kafka's `maxBy`).
            let (base, max_ts, shallow) = {
                let st = self.inner().state();
                let mut best: Option<&super::segment::Segment> = None;
                for s in st.segments().iter() {
                    if best.is_none_or(|b| s.max_timestamp > b.max_timestamp) {
                        best = Some(s);
                    }
                }
                match best {
                    Some(s) => (s.base_offset, s.max_timestamp, s.max_timestamp_offset),
                    None => return Ok(None),
                }
            };
            self.ensure_loaded(base).await?;
            let (file, size, start) = {
                let mut st = self.inner().state_mut();
                let dir = self.inner().dir().to_path_buf();
                let Some(seg) = st.segments_mut().get_mut(base) else {
                    continue; // deleted by retention meanwhile: pick again
                };
                let file = seg.reader(&dir)?;
                // The offset-index entry at or below the winning batch (whose last offset is
                // `shallow`); without one (or with the indexes evicted again), the segment start.
                let start = match (&seg.index, shallow >= base) {
                    (Some(idx), true) => {
                        let rel = (shallow - base).min(u32::MAX as i64) as u32;
                        idx.lookup(rel).map_or(0, |e| e.position as u64)
                    }
                    _ => 0,
                };
                (file, seg.size, start)
            };
            let mut scanner = HeaderScanner::new(&file, size);
            let mut pos = start;
            while let Some(h) = scanner.header_at_async(pos).await? {
                if h.max_timestamp == max_ts {
                    let found =
                        first_record_where(&file, pos, &h, i64::MIN, |t| t == max_ts).await?;
                    return Ok(Some(found.unwrap_or_else(|| {
                        // Only a batch whose header disagrees with its records (Kafka rewrites
                        // the header from the records on append; this log stores the producer's).
                        warn!(
                            dir = %self.inner().dir().display(),
                            batch = h.base_offset,
                            "no record carries the batch's max timestamp; answering its last offset"
                        );
                        (h.last_offset(), max_ts)
                    })));
                }
                pos += h.total_len() as u64;
            }
            return Ok(None);
        }
    }
}

/// Where a read's header walk starts in one segment (`PartitionLog::locate`).
struct WalkStart {
    file: Arc<File>,
    /// The segment's readable bytes and one past its last offset.
    size: u64,
    next_offset: i64,
    /// The position of the index entry at or below the wanted offset.
    pos: u64,
    /// The tail cache's copy of `[pos, size)`, when it holds it.
    cached: Option<Vec<u8>>,
}

enum Located {
    At(WalkStart),
    /// The segment was deleted (retention) since it was looked up.
    Gone,
    /// Its indexes were evicted since they were loaded.
    Evicted,
}

/// What a read found in one segment.
enum InSegment {
    Slice(SegmentSlice),
    /// No batch at or after the wanted offset.
    Nothing,
    /// The first batch is larger than what is left of the byte limit (and something was read).
    DoesNotFit,
}

struct SegmentSlice {
    slice: FileSlice,
    first_batch_len: u32,
    /// The base offset of the batch right after the slice (when asked for and not at the end of
    /// the segment).
    next_offset: Option<i64>,
}

/// The first batch from `pos` on that holds offsets at or after `cur`: its position and length.
async fn first_batch(
    scanner: &mut HeaderScanner<'_>,
    mut pos: u64,
    cur: i64,
) -> Result<Option<(u64, u64)>, StorageError> {
    loop {
        match scanner.header_at_async(pos).await? {
            Some(h) if h.last_offset() >= cur => return Ok(Some((pos, h.total_len() as u64))),
            Some(h) => pos += h.total_len() as u64,
            None => return Ok(None),
        }
    }
}

/// The (offset, timestamp) of the first record at or after `min_offset` (the log start) of the
/// batch at `pos` (header `h`) whose timestamp satisfies `want`, reading and decoding that one batch; `None` if no record does or
/// the records cannot be decoded. Under `LogAppendTime` every record carries the batch's max
/// timestamp, so the answer needs no read.
async fn first_record_where(
    file: &std::fs::File,
    pos: u64,
    h: &record_batch::BatchHeader,
    min_offset: i64,
    want: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>, StorageError> {
    if h.last_offset() < min_offset {
        return Ok(None);
    }
    if h.is_log_append_time() {
        let first = h.base_offset.max(min_offset);
        return Ok(want(h.max_timestamp).then_some((first, h.max_timestamp)));
    }
    let mut batch = vec![0u8; h.total_len()];
    super::page_cache::read_exact_at(file, &mut batch, pos).await?;
    match compression::record_timestamps(&batch) {
        Ok(recs) => Ok(recs
            .into_iter()
            .map(|(delta, t)| (h.base_offset + delta as i64, t))
            .find(|&(o, t)| o >= min_offset && want(t))),
        Err(e) => {
            warn!(batch = h.base_offset, error = %e, "cannot decode a batch's records");
            Ok(None)
        }
    }
}

/// Reads the whole batch bytes of a slice list (helper for tools).
pub fn read_all(slices: &[FileSlice]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for s in slices {
        out.extend_from_slice(&s.read_to_vec()?);
    }
    Ok(out)
}

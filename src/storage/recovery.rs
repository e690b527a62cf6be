//! Opening a segment after a clean or unclean shutdown.
//!
//! Cost is proportional to the tail, not the log: the offset index's last entry names a batch
//! start that was valid when the entry was written, so the scan starts there (after checking that
//! the batch at that position still validates and carries the entry's offset; if not, the entry is
//! dropped and the previous one tried). From there every batch is fully verified — length, magic,
//! CRC-32C, record count, offsets increasing — and the first one that fails ends the segment: the
//! file is truncated there and what was dropped is logged with `tracing::warn!` (a run of zeros left
//! by direct-I/O block padding after a crash is normal and logged at `info`).
//!
//! Damaged or missing index files are rebuilt: a missing `.index` or a missing/garbled `.timeindex`
//! means a full scan of that segment (Kafka does the same); an `.index` whose entries point past
//! the end of a shorter `.log` is cut back to its last verifiable entry. A crash between rolling and
//! writing the old segment's index files is thus repaired on the next open, and a crash right after
//! creating a new segment leaves an empty newest segment, which is simply reused.

use std::fs::File;
use std::io;
use std::path::Path;

use tracing::{info, warn};

use crate::format::record_batch::{self, LOG_OVERHEAD};

use super::config::LogConfig;
use super::error::StorageError;
use super::index::OffsetIndex;
use super::segment::{self, Segment};
use super::time_index::TimeIndex;

/// Reads whole batches sequentially through a large window.
struct ChunkReader<'a> {
    file: &'a File,
    len: u64,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'a> ChunkReader<'a> {
    /// The bytes of the batch at `pos` (`total` bytes), or `None` if they run past the end.
    fn get(&mut self, pos: u64, total: usize) -> io::Result<Option<&[u8]>> {
        if pos + total as u64 > self.len {
            return Ok(None);
        }
        let have =
            pos >= self.buf_pos && pos + total as u64 <= self.buf_pos + self.buf.len() as u64;
        if !have {
            let want = ((self.len - pos) as usize).min(total.max(1 << 20));
            self.buf.resize(want, 0);
            segment::read_exact_at(self.file, &mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        let at = (pos - self.buf_pos) as usize;
        Ok(Some(&self.buf[at..at + total]))
    }
}

/// Outcome of scanning from `start`.
struct Scan {
    valid_end: u64,
    next_offset: i64,
    batches: usize,
    stop_reason: Option<String>,
}

fn scan(
    file: &File,
    len: u64,
    seg: &mut Segment,
    start: u64,
    min_base: i64,
    interval: u32,
) -> io::Result<Scan> {
    let mut r = ChunkReader {
        file,
        len,
        buf: Vec::new(),
        buf_pos: 0,
    };
    let mut pos = start;
    let mut next = min_base;
    let mut batches = 0;
    let mut stop_reason = None;
    seg.bytes_since_index = 0;
    while pos < len {
        let head = match r.get(pos, LOG_OVERHEAD)? {
            Some(h) => h,
            None => {
                stop_reason = Some("partial batch header".to_string());
                break;
            }
        };
        let total = match record_batch::peek_total_len(head) {
            Some(t) => t,
            None => {
                stop_reason = Some("invalid batch length".to_string());
                break;
            }
        };
        let batch = match r.get(pos, total)? {
            Some(b) => b,
            None => {
                stop_reason = Some(format!("batch of {total} bytes runs past the end"));
                break;
            }
        };
        let h = match record_batch::validate_stored_batch(batch) {
            Ok(h) => h,
            Err(e) => {
                stop_reason = Some(e.to_string());
                break;
            }
        };
        if h.base_offset < next || h.last_offset() - seg.base_offset > u32::MAX as i64 {
            stop_reason = Some(format!(
                "batch base offset {} out of order (expected >= {next})",
                h.base_offset
            ));
            break;
        }
        seg.index_batch(&h, pos, interval);
        next = h.last_offset() + 1;
        pos += total as u64;
        batches += 1;
    }
    Ok(Scan {
        valid_end: pos,
        next_offset: next,
        batches,
        stop_reason,
    })
}

/// Whether `[from, to)` is all zeros (preallocation or padding); gives up past 64 MiB.
fn all_zero(file: &File, from: u64, to: u64) -> bool {
    if to - from > (64 << 20) {
        return false;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        if segment::read_exact_at(file, &mut buf[..n], pos).is_err()
            || buf[..n].iter().any(|&b| b != 0)
        {
            return false;
        }
        pos += n as u64;
    }
    true
}

/// Opens and verifies one segment: from its last index entry that still names a valid batch to
/// its end, truncating a torn or corrupt tail and rewriting index files that were damaged or
/// changed.
pub(crate) async fn recover_segment(
    dir: &Path,
    base: i64,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Segment, StorageError> {
    let log_path = segment::log_path(dir, base);
    let file = File::open(&log_path)?;
    let len = file.metadata()?.len();
    let found = read_indexes(dir, base, len, &log_path).await?;
    let disk_lens = found.disk_lens;
    let mut seg = Segment::new_empty(base, now_ms);
    let (result, mut rebuilt) =
        scan_from_index(&file, len, &mut seg, found, config.index_interval_bytes)?;
    if result.valid_end < len {
        truncate_tail(&file, &log_path, len, &result)?;
        rebuilt = true;
    }
    seg.size = result.valid_end;
    seg.next_offset = result.next_offset;
    seg.seal_time_index();
    write_indexes(dir, &mut seg, disk_lens, rebuilt).await?;
    Ok(seg)
}

/// A segment's index files as read.
struct FoundIndexes {
    index: OffsetIndex,
    time_index: TimeIndex,
    /// Part of them did not parse (or is missing): they are rewritten whatever the scan finds.
    damaged: bool,
    /// Entries parsed from each file.
    disk_lens: (usize, usize),
}

/// Recovery, first phase: the segment's index files. A missing `.index` or a missing or damaged
/// `.timeindex` means a full scan, so both come back empty then.
async fn read_indexes(
    dir: &Path,
    base: i64,
    len: u64,
    log_path: &Path,
) -> Result<FoundIndexes, StorageError> {
    let idx_bytes = segment::read_small_file(&segment::index_path(dir, base)).await?;
    let tidx_bytes = segment::read_small_file(&segment::time_index_path(dir, base)).await?;
    let (mut index, idx_damaged) = match &idx_bytes {
        Some(b) => OffsetIndex::parse(b, len),
        None => (OffsetIndex::new(), len > 0),
    };
    let (mut tindex, t_damaged) = match &tidx_bytes {
        Some(b) => TimeIndex::parse(b),
        None => (TimeIndex::new(), len > 0),
    };
    let damaged = idx_damaged || t_damaged;
    let disk_lens = (index.len(), tindex.len());
    if idx_bytes.is_none() || t_damaged || tidx_bytes.is_none() {
        if len > 0 {
            info!(segment = %log_path.display(), "index files missing or damaged; rebuilding from a full scan");
        }
        index = OffsetIndex::new();
        tindex = TimeIndex::new();
    }
    Ok(FoundIndexes {
        index,
        time_index: tindex,
        damaged,
        disk_lens,
    })
}

/// Recovery, second phase: scans from the last index entry that still names a valid batch (or
/// from the start), dropping entries whose batch does not check out. Returns the scan's outcome
/// and whether the indexes must be rewritten.
fn scan_from_index(
    file: &File,
    len: u64,
    seg: &mut Segment,
    found: FoundIndexes,
    interval: u32,
) -> io::Result<(Scan, bool)> {
    let base = seg.base_offset;
    let FoundIndexes {
        mut index,
        time_index: mut tindex,
        damaged: mut rebuilt,
        ..
    } = found;
    let result = loop {
        // Resume from the last index entry that still names a valid batch.
        let (start, min_base) = resume_at(seg, &index, &tindex);
        // The entry names its batch's *last* offset; the batch itself starts at or before it.
        let s = scan(file, len, seg, start, min_base.min(base), interval)?;
        let entry_ok = match index.last() {
            None => true,
            Some(e) => {
                s.batches > 0
                    && {
                        // The first scanned batch must end exactly at the entry's offset.
                        let mut sc = segment::HeaderScanner::new(file, len);
                        matches!(sc.header_at(start)?, Some(h) if h.last_offset() == base + e.relative_offset as i64)
                    }
            }
        };
        if entry_ok {
            break s;
        }
        let n = index.len();
        index.truncate_entries(n - 1);
        rebuilt = true;
        if index.is_empty() {
            tindex = TimeIndex::new();
        }
    };
    Ok((result, rebuilt))
}

/// Sets `seg` up for a scan resuming at the last entry of `index`: the indexes up to it, and the
/// max timestamp the time index knows; returns where the scan starts and the least base offset
/// its first batch may have.
fn resume_at(seg: &mut Segment, index: &OffsetIndex, tindex: &TimeIndex) -> (u64, i64) {
    let base = seg.base_offset;
    let (start, min_base) = match index.last() {
        Some(e) => (e.position as u64, base + e.relative_offset as i64),
        None => (0, base),
    };
    let trial_index = index.clone();
    let mut trial_time = tindex.clone();
    match index.last() {
        // Entries past the resume point are rebuilt by the scan (the entry's own batch is
        // re-scanned without adding an entry again).
        Some(e) => trial_time.truncate_to_offset(e.relative_offset + 1),
        // Full scan: everything is rebuilt.
        None => trial_time = TimeIndex::new(),
    }
    seg.index = Some(trial_index);
    seg.time_index = Some(trial_time);
    match seg.time_index.as_ref().and_then(|t| t.last()) {
        Some(t) => {
            seg.max_timestamp = t.timestamp;
            seg.max_timestamp_offset = base + t.relative_offset as i64;
        }
        None => {
            seg.max_timestamp = -1;
            seg.max_timestamp_offset = -1;
        }
    }
    (start, min_base)
}

/// Recovery, third phase: cuts the file after its last valid batch (`result.valid_end`), logging
/// what was dropped: at `info` for the zero padding direct I/O leaves, at `warn` for anything else.
fn truncate_tail(file: &File, log_path: &Path, len: u64, result: &Scan) -> io::Result<()> {
    let zeros = all_zero(file, result.valid_end, len);
    if zeros {
        info!(
            segment = %log_path.display(),
            valid_bytes = result.valid_end,
            dropped_bytes = len - result.valid_end,
            "truncating zero padding after the last batch"
        );
    } else {
        warn!(
            segment = %log_path.display(),
            valid_bytes = result.valid_end,
            dropped_bytes = len - result.valid_end,
            next_offset = result.next_offset,
            reason = result.stop_reason.as_deref().unwrap_or("unknown"),
            "truncating torn or corrupt log tail"
        );
    }
    let f = std::fs::OpenOptions::new().write(true).open(log_path)?;
    f.set_len(result.valid_end)?;
    f.sync_all()
}

/// Recovery, last phase: rewrites the index files when they were damaged, the tail was cut, or
/// the scan changed their entries (`disk_lens`: what the files held), and records the entries
/// as persisted.
async fn write_indexes(
    dir: &Path,
    seg: &mut Segment,
    disk_lens: (usize, usize),
    mut rebuilt: bool,
) -> Result<(), StorageError> {
    let base = seg.base_offset;
    let now_lens = (
        seg.index.as_ref().map_or(0, |i| i.len()),
        seg.time_index.as_ref().map_or(0, |t| t.len()),
    );
    if now_lens != disk_lens {
        rebuilt = true;
    }
    if rebuilt {
        let ib = seg.index.as_ref().map(|i| i.encode()).unwrap_or_default();
        let tb = seg
            .time_index
            .as_ref()
            .map(|t| t.encode())
            .unwrap_or_default();
        segment::write_small_file(&segment::index_path(dir, base), ib).await?;
        segment::write_small_file(&segment::time_index_path(dir, base), tb).await?;
    }
    seg.persisted_index = seg.index.as_ref().map_or(0, |i| i.len());
    seg.persisted_time_index = seg.time_index.as_ref().map_or(0, |t| t.len());
    Ok(())
}

//! One segment: `<base>.log` plus its `.index` and `.timeindex`, and the in-memory state the log
//! keeps about it.
//!
//! The active (newest) segment always has its indexes in memory. A sealed segment keeps only a few
//! numbers (base, end offset, size, max timestamp) resident; its indexes and read descriptor are
//! loaded on first use and dropped again when the partition's small LRU of warm sealed segments
//! evicts it, so cold partitions neither hold index memory nor file descriptors.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::record_batch::{self, BatchHeader, HEADER_LEN};

use super::error::StorageError;
use super::index::OffsetIndex;
use super::time_index::TimeIndex;
use super::txn_index::SegmentTxns;

/// Kafka's 20-digit zero-padded file name for a segment base offset.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(file_name(base, "log"))
}
pub fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(file_name(base, "index"))
}
pub fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(file_name(base, "timeindex"))
}

/// Parses `00000000000000001234.log` into 1234.
pub fn parse_log_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) struct Segment {
    pub base_offset: i64,
    /// One past the last offset written (readable) in this segment.
    pub next_offset: i64,
    /// Bytes written and readable (for the active segment: up to the high watermark).
    pub size: u64,
    /// Largest batch max timestamp and the last offset of the first batch that reached it
    /// (-1, -1 when none): Kafka's `maxTimestampAndOffsetSoFar`, from headers only. The record
    /// carrying it is found at query time (`read.rs`, ListOffsets `MAX_TIMESTAMP`). For the active
    /// segment this includes batches queued for writing.
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
    /// Wall-clock ms when the segment was created (or opened), for `segment.ms`.
    pub created_ms: i64,
    /// Offset and time indexes; `None` for a cold sealed segment.
    pub index: Option<OffsetIndex>,
    pub time_index: Option<TimeIndex>,
    /// The aborted transactions whose ABORT marker lies here: entries for the active segment,
    /// a summary for a sealed one (`txn_index.rs`).
    pub txns: SegmentTxns,
    /// Read-only buffered descriptor for pread/sendfile; opened lazily.
    pub reader: Option<Arc<File>>,
    /// Bytes appended since the last offset-index entry (Kafka's `bytesSinceLastIndexEntry`).
    pub bytes_since_index: u64,
    /// Index entries already persisted to the index files (active segment).
    pub persisted_index: usize,
    pub persisted_time_index: usize,
    /// How many times the log cleaner rewrote the files at this base while the log was open: a
    /// load of index files that started before a rewrite must not install them after it.
    pub generation: u64,
}

impl Segment {
    pub(crate) fn new_empty(base_offset: i64, now_ms: i64) -> Self {
        Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            created_ms: now_ms,
            index: Some(OffsetIndex::new()),
            time_index: Some(TimeIndex::new()),
            txns: SegmentTxns::active(Vec::new()),
            reader: None,
            bytes_since_index: 0,
            persisted_index: 0,
            persisted_time_index: 0,
            generation: 0,
        }
    }

    pub(crate) fn reader(&mut self, dir: &Path) -> io::Result<Arc<File>> {
        if let Some(r) = &self.reader {
            return Ok(r.clone());
        }
        let f = Arc::new(File::open(log_path(dir, self.base_offset))?);
        self.reader = Some(f.clone());
        Ok(f)
    }

    /// Kafka's per-batch index maintenance (`LogSegment.append`): update the max timestamp, then
    /// add an index entry if more than `interval` bytes were appended since the last one.
    pub(crate) fn index_batch(&mut self, h: &BatchHeader, position: u64, interval: u32) {
        let last = h.last_offset();
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.max_timestamp_offset = last;
        }
        if self.bytes_since_index > interval as u64 {
            let rel = (last - self.base_offset) as u32;
            if let Some(idx) = self.index.as_mut() {
                idx.append(rel, position as u32);
            }
            let (ts, ts_off) = (self.max_timestamp, self.max_timestamp_offset);
            if let Some(t) = self.time_index.as_mut() {
                t.maybe_append(ts, (ts_off - self.base_offset) as u32);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_len() as u64;
    }

    /// Kafka's `onBecomeInactiveSegment` / close: a final time-index entry for the max timestamp.
    pub(crate) fn seal_time_index(&mut self) {
        let (ts, off) = (self.max_timestamp, self.max_timestamp_offset);
        if off >= self.base_offset
            && let Some(t) = self.time_index.as_mut()
        {
            t.maybe_append(ts, (off - self.base_offset) as u32);
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.heap_bytes())
            + self.time_index.as_ref().map_or(0, |t| t.heap_bytes())
            + self.txns.heap_bytes()
    }
}

/// Reads batch headers sequentially from a file through a small window, so walking from an index
/// entry to the wanted batch costs one or two preads.
pub(crate) struct HeaderScanner<'a> {
    file: &'a File,
    buf: Vec<u8>,
    buf_pos: u64,
    end: u64,
}

impl<'a> HeaderScanner<'a> {
    pub(crate) fn new(file: &'a File, end: u64) -> Self {
        HeaderScanner {
            file,
            buf: Vec::new(),
            buf_pos: 0,
            end,
        }
    }

    /// A scanner whose window already holds `buf`, the file's bytes from `buf_pos` (the
    /// partition's tail cache): headers inside it are read without touching the file.
    pub(crate) fn with_window(file: &'a File, end: u64, buf: Vec<u8>, buf_pos: u64) -> Self {
        HeaderScanner {
            file,
            buf,
            buf_pos,
            end,
        }
    }

    /// The file this scanner reads.
    pub(crate) fn file(&self) -> &'a File {
        self.file
    }

    /// The bytes `[pos, pos + len)` if the window holds all of them (the window's buffer becomes
    /// the returned bytes: no copy).
    pub(crate) fn into_window(self, pos: u64, len: u64) -> Option<bytes::Bytes> {
        let lo = pos.checked_sub(self.buf_pos)? as usize;
        let hi = lo.checked_add(len as usize)?;
        (hi <= self.buf.len()).then(|| bytes::Bytes::from(self.buf).slice(lo..hi))
    }

    /// The header of the batch at `pos`, if a whole, plausible batch header fits before `end`
    /// (CRC not checked: this walks data the log already validated). Reads with `pread(2)`,
    /// which may wait for the device: for recovery and other work off the fetch path.
    pub(crate) fn header_at(&mut self, pos: u64) -> io::Result<Option<BatchHeader>> {
        if let Some(want) = self.window_needed(pos) {
            self.buf.resize(want, 0);
            read_exact_at(self.file, &mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        self.parse_at(pos)
    }

    /// [`Self::header_at`] for the fetch path: the window is read without blocking the shard
    /// thread (`page_cache::read_exact_at`).
    pub(crate) async fn header_at_async(&mut self, pos: u64) -> io::Result<Option<BatchHeader>> {
        if let Some(want) = self.window_needed(pos) {
            self.buf.resize(want, 0);
            super::page_cache::read_exact_at(self.file, &mut self.buf, pos).await?;
            self.buf_pos = pos;
        }
        self.parse_at(pos)
    }

    /// The window to read at `pos` when its header is not in the buffer yet (`Some(0)` never:
    /// `None` also when no header fits before `end`, which `parse_at` then reports).
    fn window_needed(&self, pos: u64) -> Option<usize> {
        if pos + HEADER_LEN as u64 > self.end {
            return None;
        }
        let in_buf =
            pos >= self.buf_pos && pos + HEADER_LEN as u64 <= self.buf_pos + self.buf.len() as u64;
        (!in_buf).then(|| (self.end - pos).min(16 * 1024) as usize)
    }

    fn parse_at(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        if pos + HEADER_LEN as u64 > self.end {
            return Ok(None);
        }
        let at = (pos - self.buf_pos) as usize;
        let h = match BatchHeader::parse(&self.buf[at..]) {
            Ok(h) => h,
            Err(_) => return Ok(None),
        };
        if h.batch_length < record_batch::MIN_BATCH_LENGTH || pos + h.total_len() as u64 > self.end
        {
            return Ok(None);
        }
        Ok(Some(h))
    }
}

/// pread until `buf` is full; an early EOF is an error.
pub fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    file.read_exact_at(buf, pos)
}

/// Reads a whole small file through glommio (index files); `None` if it does not exist.
pub async fn read_small_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match glommio::io::BufferedFile::open(path).await {
        Ok(f) => f,
        Err(e) => {
            let e: io::Error = e.into();
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(e);
        }
    };
    let size = f.file_size().await.map_err(io::Error::from)?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let chunk = f
            .read_at(
                out.len() as u64,
                (size - out.len() as u64).min(8 << 20) as usize,
            )
            .await
            .map_err(io::Error::from)?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    f.close().await.map_err(io::Error::from)?;
    Ok(Some(out))
}

/// Replaces a small file's contents (index files) and fdatasyncs it.
pub async fn write_small_file(path: &Path, bytes: Vec<u8>) -> io::Result<()> {
    let f = glommio::io::BufferedFile::create(path)
        .await
        .map_err(io::Error::from)?;
    if !bytes.is_empty() {
        f.write_at(bytes, 0).await.map_err(io::Error::from)?;
    }
    f.fdatasync().await.map_err(io::Error::from)?;
    f.close().await.map_err(io::Error::from)?;
    Ok(())
}

/// Appends to a small file at `pos` without syncing (incremental index persistence; the indexes
/// are hints that recovery verifies).
pub async fn write_small_file_at(path: &Path, bytes: Vec<u8>, pos: u64) -> io::Result<()> {
    let f = glommio::io::OpenOptions::new()
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(io::Error::from)?;
    if !bytes.is_empty() {
        f.write_at(bytes, pos).await.map_err(io::Error::from)?;
    }
    f.close().await.map_err(io::Error::from)?;
    Ok(())
}

/// fsync a directory (after creating or deleting entries in it).
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = glommio::io::Directory::open(dir).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

//! What reads and appends hand back.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's append time when the topic uses `LogAppendTime`, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// A run of whole batches inside one segment file, readable without copying through user space
/// (sendfile/splice from `file`). The descriptor is a buffered `O_RDONLY` one; it is `Arc`ed so a
/// segment deleted by retention stays readable to a send already in flight.
///
/// `mem`, when set, holds the same bytes from the partition's tail cache (`recent::RecentWrites`):
/// senders use it instead of the file.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u32,
    pub mem: Option<Bytes>,
}

impl FileSlice {
    /// A slice served from the file.
    pub fn in_file(file: Arc<File>, position: u64, len: u32) -> Self {
        FileSlice {
            file,
            position,
            len,
            mem: None,
        }
    }

    /// Copies the bytes out (from `mem`, else with pread: tests, fallbacks, small responses).
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        if let Some(m) = &self.mem {
            return Ok(m.to_vec());
        }
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

/// Result of a read: whole batches, in offset order, possibly spanning segments.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub slices: Vec<FileSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Bytes of the first batch (0 when empty): lets a caller with a smaller budget than it read
    /// with tell, without reading again, whether even one batch would fit (Fetch's `max_bytes`).
    pub first_batch_len: u32,
}

impl ReadResult {
    /// Total bytes of all slices.
    pub fn total_len(&self) -> u64 {
        self.slices.iter().map(|s| s.len as u64).sum()
    }
    /// Concatenated bytes of all slices (tests and small responses).
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.total_len() as usize);
        for s in &self.slices {
            out.extend_from_slice(&s.read_to_vec()?);
        }
        Ok(out)
    }
}

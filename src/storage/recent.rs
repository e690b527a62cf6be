//! The partition's tail cache: the bytes of its last writes, for consumers that keep up.
//!
//! Segments are written with O_DIRECT, so what a consumer that keeps up asks for — the batches of
//! the last milliseconds — is not in the page cache unless the writer's `POSIX_FADV_WILLNEED` hint
//! has read it back in already, and the page of the partial last block is dropped again by every
//! write, which rewrites that block. Such a fetch then waited for the device: through io_uring
//! since `page_cache.rs`, but still a disk read per fetch, in the consumer's latency. Now the
//! writer keeps a copy of what it wrote, once someone reads the partition, and a read whose range
//! lies inside it is answered from memory (`FileSlice::mem`) without any system call. Readers
//! further behind read the file as before (the write hint stays for them: a catch-up consumer
//! finds the data in the page cache).
//!
//! On the seed workload (`--rate 250000 --acks all` with two live consumers) it cut both produce
//! and end-to-end p99; measured in `docs/perf/tail-cache.md`.
//!
//! Bounds: [`PER_PARTITION`] bytes per partition (whole writes, oldest dropped first), and at most
//! [`PER_SHARD`] over all partitions of a shard, past which new writes are not kept. The cost is
//! one copy of each write of a partition that has readers.

use std::cell::Cell;
use std::collections::VecDeque;

use bytes::Bytes;

/// Most bytes kept per partition: ~30 ms of a partition written at 8 MB/s.
pub const PER_PARTITION: usize = 256 << 10;
/// Most bytes kept over all partitions of one shard.
pub const PER_SHARD: usize = 64 << 20;

thread_local! {
    static SHARD_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn account(add: usize, sub: usize) {
    SHARD_BYTES.with(|c| c.set(c.get() + add - sub));
}

/// Bytes held by the tail caches of this thread's partitions.
pub fn shard_bytes() -> usize {
    SHARD_BYTES.with(Cell::get)
}

/// Copies of the last writes of the active segment, `(file position, bytes)`: the tail cache's
/// part of the log's state. One per active file (a roll starts the next file with an empty one);
/// only the writer adds to it, after each write, and reads copy out of it.
///
/// Invariants: the chunks are contiguous (each starts where the previous one ends) and hold
/// exactly the bytes written there; `bytes` is their total, at most [`PER_PARTITION`] unless a
/// single write alone is larger, and it is counted in the shard's total ([`shard_bytes`]) for as
/// long as it is held.
#[derive(Default)]
pub(crate) struct RecentWrites {
    chunks: VecDeque<(u64, Bytes)>,
    bytes: usize,
}

impl RecentWrites {
    /// Whether a write of `len` bytes would be kept (the shard's budget allows it).
    pub(crate) fn has_room(len: usize) -> bool {
        shard_bytes() + len <= PER_SHARD
    }

    /// Records the write at `pos`: its copy when it was `kept`, else forgets everything (the
    /// write would leave a gap in the run).
    pub(crate) fn record(&mut self, pos: u64, kept: Option<Bytes>) {
        match kept {
            Some(b) => self.push(pos, b),
            None => self.clear(),
        }
    }

    /// Adds the bytes written at `pos`; drops everything if they do not continue the kept run.
    pub(crate) fn push(&mut self, pos: u64, b: Bytes) {
        if self.end() != Some(pos) {
            self.clear();
        }
        account(b.len(), 0);
        self.bytes += b.len();
        self.chunks.push_back((pos, b));
        while self.bytes > PER_PARTITION && self.chunks.len() > 1 {
            let (_, old) = self.chunks.pop_front().expect("len > 1");
            self.bytes -= old.len();
            account(0, old.len());
        }
    }

    pub(crate) fn clear(&mut self) {
        account(0, self.bytes);
        self.bytes = 0;
        self.chunks.clear();
    }

    fn end(&self) -> Option<u64> {
        self.chunks.back().map(|(p, b)| p + b.len() as u64)
    }

    /// A copy of `[from, to)` if the kept run covers it.
    pub(crate) fn copy_range(&self, from: u64, to: u64) -> Option<Vec<u8>> {
        let (first, _) = self.chunks.front()?;
        if from < *first || to > self.end()? || from > to {
            return None;
        }
        let mut out = Vec::with_capacity((to - from) as usize);
        for (p, b) in &self.chunks {
            let end = p + b.len() as u64;
            if end <= from || *p >= to {
                continue;
            }
            let lo = from.max(*p) - p;
            let hi = to.min(end) - p;
            out.extend_from_slice(&b[lo as usize..hi as usize]);
        }
        Some(out)
    }
}

impl Drop for RecentWrites {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_contiguous_bounded_run_and_copies_covered_ranges() {
        let before = shard_bytes();
        let mut r = RecentWrites::default();
        r.push(100, Bytes::from(vec![1u8; 50]));
        r.push(150, Bytes::from(vec![2u8; 50]));
        assert_eq!(
            r.copy_range(140, 160).unwrap(),
            [vec![1u8; 10], vec![2u8; 10]].concat()
        );
        assert!(r.copy_range(90, 120).is_none(), "before the run");
        assert!(r.copy_range(190, 201).is_none(), "past the run");
        assert_eq!(r.copy_range(200, 200).unwrap(), Vec::<u8>::new());
        // A write that does not continue the run replaces it.
        r.push(500, Bytes::from(vec![3u8; 10]));
        assert!(r.copy_range(150, 160).is_none());
        assert_eq!(r.copy_range(500, 510).unwrap(), vec![3u8; 10]);
        // Bounded: the oldest whole writes go first.
        let mut pos = 510;
        for _ in 0..(PER_PARTITION / 4096 + 8) {
            r.push(pos, Bytes::from(vec![4u8; 4096]));
            pos += 4096;
        }
        assert!(r.bytes <= PER_PARTITION);
        assert!(r.copy_range(500, 510).is_none());
        assert_eq!(shard_bytes() - before, r.bytes);
        drop(r);
        assert_eq!(shard_bytes(), before);
    }
}

//! Getting a file range into the page cache without blocking the shard thread.
//!
//! Segments are written with O_DIRECT, so the bytes a fetch wants are often not in the page
//! cache, or are still being read into it by a `POSIX_FADV_WILLNEED` hint (the writer hints what
//! it just wrote, [`prefetch`] the range a consumer will ask for next). A `pread(2)`
//! of batch headers or a `sendfile(2)` of the batches then waits for the device *on the shard
//! thread*, and every other connection and partition of that shard waits with it. `perf trace -s`
//! on the seed workload (250k msg/s acks=all with two live consumers) showed each shard blocked
//! in `pread` and `sendfile` for a sizeable share of its time (measured in
//! `docs/perf/fetch-off-shard-thread.md`).
//!
//! [`settle`] answers "can this range be read without waiting?" cheaply, and if not, reads it
//! through io_uring, which waits for the device (or for the hint's read already in flight)
//! asynchronously: ext4 and xfs complete buffered io_uring reads from page-cache wake-ups, with no
//! worker thread. Afterwards `pread` and `sendfile` on the range find it cached.
//!
//! The check: `cachestat(2)` (Linux 6.5+; libc has no binding for it on x86-64 glibc, hence the
//! raw syscall) says whether every page of the range is present, and a one-byte
//! `preadv2(RWF_NOWAIT)` at the first and at the last byte says whether those pages are also
//! up to date (a page being read is present but locked, and `cachestat` counts it). Readahead
//! reads a range in ascending order and completes it together, so a locked page between two
//! ready ends is rare, and it costs what every read cost before: a short synchronous wait. Without
//! `cachestat` (older kernels) the two probes decide alone.
//!
//! The price of a warm-up is one copy of the range into a buffer that is then dropped: the
//! `sendfile` that follows still sends from the page cache. It is only paid for ranges that were
//! not ready, which for a consumer that keeps up means the batches written in the last few
//! hundred microseconds, and for a catch-up consumer the first response (the fetch handler's
//! read-ahead hint prepares the next ones).

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use glommio::io::BufferedFile;

use super::slice::FileSlice;

/// `cachestat(2)`'s system call number: the same on every architecture (the unified table).
const SYS_CACHESTAT: libc::c_long = 451;
/// Largest single io_uring read of a warm-up (the kernel's readahead runs ahead of it).
const WARM_CHUNK: u64 = 256 << 10;
const PAGE: u64 = 4096;

thread_local! {
    static URING_READS: Cell<u64> = const { Cell::new(0) };
}

/// io_uring reads this thread issued because a range was not ready (for tests and probes).
pub fn uring_reads() -> u64 {
    URING_READS.with(Cell::get)
}

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Pages of `[pos, pos + len)` present in the page cache, or `None` without `cachestat(2)`.
fn cached_pages(file: &File, pos: u64, len: u64) -> Option<u64> {
    let range = CachestatRange { off: pos, len };
    let mut cs = Cachestat::default();
    // SAFETY: both pointers refer to live, correctly laid out structs for the call's duration.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    (r == 0).then_some(cs.nr_cache)
}

/// Whether the byte at `pos` can be read without waiting for I/O.
fn byte_ready(file: &File, pos: u64) -> bool {
    pread_nowait(file, &mut [0u8; 1], pos) == 1
}

/// Whether `[pos, pos + len)` is in the page cache and (as far as the probes tell) up to date.
pub fn is_ready(file: &File, pos: u64, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    let last = pos + len - 1;
    if let Some(n) = cached_pages(file, pos, len)
        && n < last / PAGE - pos / PAGE + 1
    {
        return false;
    }
    byte_ready(file, pos) && byte_ready(file, last)
}

/// `preadv2(RWF_NOWAIT)`: the bytes readable at `pos` without waiting for I/O (0 if none).
fn pread_nowait(file: &File, buf: &mut [u8], pos: u64) -> usize {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over a live buffer of `buf.len()` bytes.
    let n = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            pos as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    n.max(0) as usize
}

/// A glommio view of `file` for io_uring reads (glommio closes what it wraps: a duplicate).
fn uring_view(file: &File) -> io::Result<BufferedFile> {
    URING_READS.with(|c| c.set(c.get() + 1));
    // SAFETY: fcntl on a descriptor `file` keeps open; the result is checked.
    let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { BufferedFile::from_raw_fd(fd) })
}

/// Fills `buf` from `pos` like `pread(2)` until full, but never waits for the device on the
/// calling thread: what the page cache holds up to date is copied at once, the rest is read
/// through io_uring. Unlike [`settle`] followed by `pread`, this cannot lose a race with a page
/// dropped in between (a direct write rewriting the partial last block drops its page, and the
/// writer does that every few hundred microseconds on a busy partition). `UnexpectedEof` if the
/// file ends first.
pub async fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    let mut done = pread_nowait(file, buf, pos);
    if done == buf.len() {
        return Ok(());
    }
    let bf = uring_view(file)?;
    let mut res = Ok(());
    while done < buf.len() {
        match bf.read_at(pos + done as u64, buf.len() - done).await {
            Ok(r) if r.is_empty() => {
                res = Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ends before the range",
                ));
                break;
            }
            Ok(r) => {
                buf[done..done + r.len()].copy_from_slice(&r);
                done += r.len();
            }
            Err(e) => {
                res = Err(io::Error::from(e));
                break;
            }
        }
    }
    let closed = bf.close().await.map_err(io::Error::from);
    res.and(closed)
}

/// Makes `[pos, pos + len)` of `file` readable without blocking: returns at once if it already
/// is, else reads it through io_uring (see the module doc). Must run inside a glommio executor.
/// A range past the end of the file is read up to the end.
pub async fn settle(file: &File, pos: u64, len: u64) -> io::Result<()> {
    if is_ready(file, pos, len) {
        return Ok(());
    }
    let bf = uring_view(file)?;
    let end = pos + len;
    let mut off = pos;
    let mut res = Ok(());
    while off < end {
        let want = (end - off).min(WARM_CHUNK) as usize;
        match bf.read_at(off, want).await {
            Ok(r) if r.is_empty() => break,
            Ok(r) => off += r.len() as u64,
            Err(e) => {
                res = Err(io::Error::from(e));
                break;
            }
        }
    }
    let closed = bf.close().await.map_err(io::Error::from);
    res.and(closed)
}

/// Largest read-ahead window hinted past a read's answer.
const PREFETCH_CAP: u64 = 16 << 20;

/// Asks the kernel to read a read's slices (those not served from memory), and the next
/// `max_bytes` after them, into the page cache (`POSIX_FADV_WILLNEED`: submits the reads, does not
/// wait for them). The fetch path calls it on each partition's answer.
///
/// Why: segments are written with O_DIRECT, so a consumer catching up on data it did not follow
/// live finds none of it cached, and `sendfile` then reads it synchronously on the connection's
/// shard in the kernel's small default read-ahead steps (≈ 128 KiB), one partition after another.
/// Kafka writes through the page cache and never pays this. With the hint, this response's
/// ranges are read in parallel as large requests, and the range the consumer will ask for next
/// is already on its way while this response is sent and processed (measured in
/// `docs/perf/fetch-off-shard-thread.md`). The window ends where `readahead_end` says.
pub fn prefetch(slices: &[FileSlice], max_bytes: u32) {
    let Some(last) = slices.last() else { return };
    let advise = |fd: i32, from: u64, len: u64| {
        if len > 0 {
            // SAFETY: plain syscall on a descriptor the slice keeps open; only a hint.
            unsafe {
                libc::posix_fadvise(
                    fd,
                    from as libc::off_t,
                    len as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
        }
    };
    for s in slices.iter().filter(|s| s.mem.is_none()) {
        advise(s.file.as_raw_fd(), s.position, u64::from(s.len));
    }
    let Ok(meta) = last.file.metadata() else {
        return;
    };
    let from = last.position + u64::from(last.len);
    let len = u64::from(max_bytes)
        .min(PREFETCH_CAP)
        .min(readahead_end(meta.len()).saturating_sub(from));
    advise(last.file.as_raw_fd(), from, len);
}

/// Where read-ahead past the data must stop in a segment file `file_len` bytes long: two blocks
/// short of its end. The active segment's writer rewrites its partial last block with each direct
/// write and pads it to the block (`appender.rs`), and pages cached beyond written data must not
/// be read ahead of a direct write.
fn readahead_end(file_len: u64) -> u64 {
    (file_len & !(PAGE - 1)).saturating_sub(2 * PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn drop_cache(f: &File) {
        f.sync_all().unwrap();
        // SAFETY: plain syscall on an open descriptor.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }

    #[test]
    fn readahead_stops_two_blocks_short_of_the_last_whole_block() {
        assert_eq!(readahead_end(0), 0);
        assert_eq!(readahead_end(12_287), 0);
        assert_eq!(readahead_end(12_288), 4096);
        assert_eq!(readahead_end(20_000), 8192);
    }

    #[test]
    fn settle_brings_an_evicted_range_into_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = File::create(&path).unwrap();
        w.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop_cache(&w);
        let f = File::open(&path).unwrap();
        let (pos, len) = (100_000, 300_000);
        assert!(
            !is_ready(&f, pos, len),
            "DONTNEED should have evicted the range"
        );
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                settle(&f, pos, len).await.unwrap();
                assert!(is_ready(&f, pos, len));
                // Already ready: a no-op; past the end: reads up to the end.
                settle(&f, pos, len).await.unwrap();
                settle(&f, (1 << 20) - 10, 100).await.unwrap();
                assert!(is_ready(&f, (1 << 20) - 10, 10));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn read_exact_at_reads_evicted_bytes_and_reports_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = File::create(&path).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        w.write_all(&data).unwrap();
        drop_cache(&w);
        let f = File::open(&path).unwrap();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut buf = vec![0u8; 50_000];
                read_exact_at(&f, &mut buf, 70_001).await.unwrap();
                assert_eq!(buf[..], data[70_001..120_001]);
                // Now cached: the same bytes again, from the fast path.
                let mut again = vec![0u8; 50_000];
                read_exact_at(&f, &mut again, 70_001).await.unwrap();
                assert_eq!(again, buf);
                let mut past = vec![0u8; 100];
                let e = read_exact_at(&f, &mut past, 199_950).await.unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn an_empty_range_is_ready() {
        let f = tempfile::tempfile().unwrap();
        assert!(is_ready(&f, 0, 0));
    }
}

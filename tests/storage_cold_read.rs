//! Reads of data that is not in the page cache go through io_uring, not a blocking `pread(2)` on
//! the shard thread (`storage/page_cache.rs`), and return the same bytes.

mod storage_common;

use std::os::fd::AsRawFd;

use ringbolt::protocol::record_batch::validate_all;
use ringbolt::storage::page_cache;
use storage_common::{batch, with_new_log};

/// Drops the segment's pages from the page cache (they are clean: written with O_DIRECT).
fn evict(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            let f = std::fs::File::open(&p).unwrap();
            // SAFETY: plain syscall on an open descriptor.
            let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(r, 0);
        }
    }
}

#[test]
fn a_cold_read_goes_through_io_uring_and_returns_the_batches() {
    with_new_log(|log, dir| async move {
        // ~4 MiB in 16 KiB batches, so the index has entries to walk from.
        let mut last = 0;
        for i in 0..256 {
            last = log
                .append(batch(80, 190, 1000 + i, i as u8))
                .await
                .unwrap()
                .last_offset;
        }
        log.wait_durable(last).await.unwrap();
        let warm = log.read(100 * 80 + 5, 256 << 10).await.unwrap();
        let want = warm.read_to_vec().unwrap();

        // The first `preadv2(RWF_NOWAIT)` of a read starts the kernel's readahead, and on a fast
        // device that can finish before the same call looks again, so one cold read may find its
        // pages ready and need no io_uring read at all. A read path that never uses io_uring
        // fails every attempt; a racing readahead cannot win twenty times in a row.
        let mut through_uring = false;
        let mut cold = None;
        for _ in 0..20 {
            evict(&dir);
            let before = page_cache::uring_reads();
            cold = Some(log.read(100 * 80 + 5, 256 << 10).await.unwrap());
            if page_cache::uring_reads() > before {
                through_uring = true;
                break;
            }
        }
        assert!(
            through_uring,
            "the header walk over evicted pages should have read through io_uring"
        );
        let cold = cold.unwrap();
        let got = cold.read_to_vec().unwrap();
        assert_eq!(got, want);
        let hs = validate_all(&got).unwrap();
        assert_eq!(hs[0].base_offset, 100 * 80);

        // The connection's step before sendfile: makes every slice ready.
        evict(&dir);
        for s in &cold.slices {
            assert!(!page_cache::is_ready(&s.file, s.position, u64::from(s.len)));
            page_cache::settle(&s.file, s.position, u64::from(s.len))
                .await
                .unwrap();
            assert!(page_cache::is_ready(&s.file, s.position, u64::from(s.len)));
        }
        // Once the header windows are cached too (the read above settled only the slices, and
        // io_uring reads fill the page cache), a read takes the fast path: no io_uring read.
        log.read(100 * 80 + 5, 256 << 10).await.unwrap();
        let before = page_cache::uring_reads();
        let again = log.read(100 * 80 + 5, 256 << 10).await.unwrap();
        assert_eq!(again.read_to_vec().unwrap(), want);
        assert_eq!(page_cache::uring_reads(), before);
        log.close().await.unwrap();
    });
}

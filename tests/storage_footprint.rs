//! Footprint: many idle partitions per shard stay cheap, and cold sealed segments do not keep
//! their read descriptors or indexes.

mod storage_common;

use std::rc::Rc;

use ringbolt::storage::{LogConfig, PartitionLog};
use storage_common::{batch, run};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn thousand_idle_partitions_cost_little() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    run(move || async move {
        const N: usize = 1000;
        let rss_before = rss_bytes();
        let mut logs = Vec::with_capacity(N);
        for p in 0..N {
            let log = PartitionLog::open(root.join(format!("idle-{p}")), LogConfig::default())
                .await
                .unwrap();
            let a = log.append(batch(5, 100, 1000, p as u8)).await.unwrap();
            log.wait_durable(a.last_offset).await.unwrap();
            log.read(0, 1 << 20).await.unwrap();
            logs.push(Rc::new(log));
        }
        let rss_after = rss_bytes();
        let per_partition_rss = rss_after.saturating_sub(rss_before) / N as u64;
        let heap: usize = logs.iter().map(|l| l.heap_bytes()).sum::<usize>() / N;
        eprintln!(
            "{N} idle partitions: RSS +{} KiB total, {} bytes/partition; self-reported heap {} bytes/partition; {} fds open",
            (rss_after - rss_before) / 1024,
            per_partition_rss,
            heap,
            open_fds()
        );
        assert!(
            per_partition_rss < 200 * 1024,
            "{per_partition_rss} bytes per idle partition"
        );
        assert!(heap < 16 * 1024, "{heap} heap bytes per idle partition");
        for l in &logs {
            l.close().await.unwrap();
        }
    });
}

#[test]
fn cold_sealed_segments_release_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cold-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        for i in 0..12 {
            log.append(batch(2, 50, 1000 + i, i as u8)).await.unwrap();
            log.roll().await.unwrap();
        }
        assert_eq!(log.segment_count(), 13);
        // Read every sealed segment once: only a couple stay warm.
        for off in (0..24).step_by(2) {
            let r = log.read(off, 100).await.unwrap();
            assert_eq!(r.slices.len(), 1);
            // A slice outlives eviction of its segment (the Arc keeps the fd).
            assert!(!r.read_to_vec().unwrap().is_empty());
        }
        assert!(
            log.open_sealed_readers() <= 2,
            "{}",
            log.open_sealed_readers()
        );
        // Slices of a segment deleted by retention stay readable.
        let r = log.read(0, 100).await.unwrap();
        log.set_config(LogConfig {
            retention_bytes: 0,
            ..LogConfig::default()
        });
        assert_eq!(log.enforce_retention(0).await.unwrap(), 12);
        assert_eq!(log.log_start_offset(), 24);
        assert!(!std::path::Path::new(&dir.join("00000000000000000000.log")).exists());
        assert_eq!(r.read_to_vec().unwrap().len(), r.total_len() as usize);
        log.close().await.unwrap();
    });
}

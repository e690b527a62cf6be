//! acks=all syncs on ext4 and XFS become device flushes through the data directory's flush anchor
//! (`storage/flush_anchor.rs`), shared by the shard's partitions, once every completed write sits
//! in committed blocks; the first sync of a freshly opened file is always the file's own
//! fdatasync; every acknowledged batch reads back after close and reopen.

mod storage_common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ringbolt::protocol::record_batch::{set_base_offset, set_partition_leader_epoch};
use ringbolt::storage::{LogConfig, PartitionLog, SyncStats};
use storage_common::{batch, run};

const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

fn fs_supports_anchor(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statfs fills the struct we pass; the path is a valid C string.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut s) }, 0);
    let magic = s.f_type as i64;
    magic == EXT4_SUPER_MAGIC || magic == XFS_SUPER_MAGIC
}

/// `tasks` appenders, each appending `per_task` ~16 KiB batches and waiting for each to be
/// durable; returns base offset -> expected bytes.
async fn durable_load(
    log: &Rc<PartitionLog>,
    tasks: usize,
    per_task: usize,
) -> BTreeMap<i64, Vec<u8>> {
    let expected = Rc::new(RefCell::new(BTreeMap::new()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let log = log.clone();
        let expected = expected.clone();
        handles.push(glommio::spawn_local(async move {
            for i in 0..per_task {
                let b = batch(80, 190, (t * per_task + i) as i64, t as u8);
                let mut want = b.to_vec();
                let info = log.append_assign(b).unwrap();
                set_base_offset(&mut want, info.base_offset);
                set_partition_leader_epoch(&mut want, 0);
                expected.borrow_mut().insert(info.base_offset, want);
                log.wait_durable(info.last_offset).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await;
    }
    Rc::try_unwrap(expected).unwrap().into_inner()
}

async fn check(log: &PartitionLog, expected: &BTreeMap<i64, Vec<u8>>) {
    for (&base, want) in expected {
        let r = log.read(base, 256 << 10).await.unwrap();
        let got = r.read_to_vec().unwrap();
        assert!(
            got.len() >= want.len() && got[..want.len()] == want[..],
            "batch at {base} differs"
        );
    }
}

#[test]
fn syncs_during_zero_fill_flush_the_device_and_lose_nothing() {
    storage_common::init_tracing();
    // Under the target directory: /tmp may be a tmpfs, where there is no anchor.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path().join("p-0");
    let anchor_expected = fs_supports_anchor(tmp.path());
    let stats = run(move || async move {
        let config = LogConfig::default();
        let log = Rc::new(PartitionLog::open(&dir, config.clone()).await.unwrap());
        // The first sync of a file this process has not synced is the file's own fdatasync
        // (the new segment's size and blocks are not committed yet).
        let first = durable_load(&log, 1, 1).await;
        assert_eq!(
            log.sync_stats(),
            SyncStats {
                file_syncs: 1,
                anchor_syncs: 0
            }
        );
        // ~24 MiB from 8 appenders: the zero-fill runs ahead in 1..4 MiB chunks, one 64 KiB
        // piece at a time, while syncs keep going.
        let mut expected = durable_load(&log, 8, 190).await;
        expected.extend(first);
        check(&log, &expected).await;
        let stats = log.sync_stats();
        log.close().await.unwrap();
        drop(log);
        let log = PartitionLog::open(&dir, config).await.unwrap();
        assert_eq!(log.high_watermark(), 80 + 8 * 190 * 80);
        check(&log, &expected).await;
        log.close().await.unwrap();
        stats
    });
    if anchor_expected {
        // Once the zero-fill runs ahead, the data sits in committed blocks: device flushes.
        assert!(stats.anchor_syncs > 0, "no sync used the anchor: {stats:?}");
        assert!(tmp.path().join(".ringbolt-flush-anchor").exists());
    } else {
        assert!(stats.file_syncs > 1, "{stats:?}");
        assert_eq!(stats.anchor_syncs, 0, "{stats:?}");
    }
}

/// Four partitions of one shard asking for durability at once share device flushes: fewer
/// flushes than the partitions' syncs that used them.
#[test]
fn partitions_of_a_shard_share_device_flushes() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data_dir = tmp.path().to_path_buf();
    let anchor_expected = fs_supports_anchor(&data_dir);
    let (stats, flushes) = run(move || async move {
        let mut logs = Vec::new();
        for p in 0..4 {
            let dir = data_dir.join(format!("t-{p}"));
            logs.push(Rc::new(
                PartitionLog::open(&dir, LogConfig::default())
                    .await
                    .unwrap(),
            ));
        }
        let mut loads = Vec::new();
        for log in &logs {
            let log = log.clone();
            loads.push(glommio::spawn_local(async move {
                let expected = durable_load(&log, 6, 60).await;
                check(&log, &expected).await;
            }));
        }
        for l in loads {
            l.await;
        }
        let stats: Vec<SyncStats> = logs.iter().map(|l| l.sync_stats()).collect();
        let flushes =
            match ringbolt::storage::flush_anchor::device_flush_for(&data_dir.join("t-0")).await {
                Some(f) => f.flushes(),
                None => 0,
            };
        for log in &logs {
            log.close().await.unwrap();
        }
        (stats, flushes)
    });
    let shared: u64 = stats.iter().map(|s| s.anchor_syncs).sum();
    if anchor_expected {
        assert!(
            stats.iter().all(|s| s.anchor_syncs > 0),
            "every partition used the shared flush: {stats:?}"
        );
        assert!(
            flushes < shared,
            "{flushes} device flushes for {shared} partition syncs: not shared"
        );
    } else {
        assert_eq!((shared, flushes), (0, 0), "{stats:?}");
    }
}

/// Many partitions of one shard zero-filling at once take turns: the shard never has more than
/// `FILL_PIECES_PER_SHARD` zero-fill pieces in flight (this in-order disk queued every data write
/// and flush behind all of them), and every acknowledged batch still reads back.
#[test]
fn a_shards_zero_fills_take_turns() {
    use ringbolt::storage::zero_fill::{FILL_PIECES_PER_SHARD, fill_pieces_in_flight_peak};
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data_dir = tmp.path().to_path_buf();
    let peak = run(move || async move {
        let mut loads = Vec::new();
        for p in 0..12 {
            let dir = data_dir.join(format!("t-{p}"));
            loads.push(glommio::spawn_local(async move {
                let log = Rc::new(
                    PartitionLog::open(&dir, LogConfig::default())
                        .await
                        .unwrap(),
                );
                // Each partition's first sync starts a 1 MiB fill: 16 pieces.
                let expected = durable_load(&log, 2, 40).await;
                check(&log, &expected).await;
                log.close().await.unwrap();
            }));
        }
        for l in loads {
            l.await;
        }
        fill_pieces_in_flight_peak()
    });
    assert!(
        (2..=FILL_PIECES_PER_SHARD).contains(&peak),
        "{peak} zero-fill pieces in flight at once (gate {FILL_PIECES_PER_SHARD})"
    );
}

//! Basic behaviour of the partition log: append, read, durability, roll, reopen.

mod storage_common;

use std::rc::Rc;

use ringbolt::protocol::record_batch::{BatchHeader, validate_all};
use ringbolt::storage::{LogConfig, PartitionLog, StorageError, TimestampType};
use storage_common::{batch, run};

#[test]
fn append_read_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), None);
        let a = log.append(batch(3, 10, 1000, 1)).await.unwrap();
        assert_eq!(
            (a.base_offset, a.last_offset, a.log_append_time),
            (0, 2, -1)
        );
        let b = log.append(batch(2, 10, 2000, 2)).await.unwrap();
        assert_eq!((b.base_offset, b.last_offset), (3, 4));
        assert_eq!(log.high_watermark(), 5);
        log.wait_durable(4).await.unwrap();
        assert!(log.durable_offset() >= 5);

        // Offset inside the first batch returns that batch first.
        let r = log.read(1, 1 << 20).await.unwrap();
        let bytes = r.read_to_vec().unwrap();
        let hs = validate_all(&bytes).unwrap();
        assert_eq!(
            hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
            vec![0, 3]
        );
        assert!(hs.iter().all(|h| h.partition_leader_epoch == 0));
        // max_bytes smaller than a batch still returns one whole batch.
        let r = log.read(3, 1).await.unwrap();
        let hs = validate_all(&r.read_to_vec().unwrap()).unwrap();
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].base_offset, 3);
        assert!(log.read(5, 100).await.unwrap().slices.is_empty());
        assert!(matches!(
            log.read(6, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            log.offset_for_timestamp(1001).await.unwrap(),
            Some((1, 1001))
        );
        assert_eq!(
            log.offset_for_timestamp(1500).await.unwrap(),
            Some((3, 2000))
        );
        assert_eq!(log.offset_for_timestamp(5000).await.unwrap(), None);
        assert_eq!(
            log.offset_of_max_timestamp().await.unwrap(),
            Some((4, 2001))
        );
        log.close().await.unwrap();
        assert!(matches!(
            log.append(batch(1, 1, 1, 1)).await,
            Err(StorageError::Closed)
        ));

        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(
            log.offset_of_max_timestamp().await.unwrap(),
            Some((4, 2001))
        );
        let c = log.append(batch(1, 10, 3000, 3)).await.unwrap();
        assert_eq!(c.base_offset, 5);
        let all = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
        assert_eq!(validate_all(&all).unwrap().len(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_appends_group_commit_and_roll() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-1");
    run(move || async move {
        let cfg = LogConfig {
            segment_bytes: 64 * 1024,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        let log = Rc::new(PartitionLog::open(&dir, cfg.clone()).await.unwrap());
        let mut tasks = Vec::new();
        for w in 0..8u8 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut got = Vec::new();
                for i in 0..40 {
                    let a = log
                        .append(batch(1 + (i % 5), 300, 10_000 + i as i64, w))
                        .await
                        .unwrap();
                    log.wait_durable(a.last_offset).await.unwrap();
                    assert!(log.durable_offset() > a.last_offset);
                    got.push(a);
                }
                got
            }));
        }
        let mut infos = Vec::new();
        for t in tasks {
            infos.extend(t.await);
        }
        infos.sort_by_key(|a| a.base_offset);
        let mut next = 0;
        for a in &infos {
            assert_eq!(a.base_offset, next);
            next = a.last_offset + 1;
        }
        assert_eq!(log.high_watermark(), next);
        assert!(
            log.segment_count() > 3,
            "rolled by segment.bytes: {}",
            log.segment_count()
        );
        // Read everything back across segments.
        let mut off = 0;
        while off < next {
            let r = log.read(off, 10_000).await.unwrap();
            let bytes = r.read_to_vec().unwrap();
            let hs = validate_all(&bytes).unwrap();
            assert!(hs[0].base_offset <= off && hs[0].last_offset() >= off);
            off = hs.last().unwrap().last_offset() + 1;
        }
        log.close().await.unwrap();
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!(log.high_watermark(), next);
        let bases = log.segment_bases();
        for b in &bases {
            let p = dir.join(format!("{b:020}.log"));
            assert!(p.exists());
        }
    });
}

#[test]
fn log_append_time_is_stamped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-2");
    run(move || async move {
        let cfg = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        let a = log.append(batch(2, 5, 1, 1)).await.unwrap();
        assert!(a.log_append_time > 1_600_000_000_000);
        let bytes = log.read(0, 1000).await.unwrap().read_to_vec().unwrap();
        let h = BatchHeader::parse(&bytes).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, a.log_append_time);
        validate_all(&bytes).unwrap(); // CRC recomputed
        log.close().await.unwrap();
    });
}

#[test]
fn wait_for_append_wakes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-3");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&dir, LogConfig::default())
                .await
                .unwrap(),
        );
        let w = log.wait_for_append();
        let dropped = log.wait_for_append();
        drop(dropped);
        let l2 = log.clone();
        let t = glommio::spawn_local(async move {
            l2.append(batch(1, 1, 1, 1)).await.unwrap();
        });
        w.await;
        assert_eq!(log.high_watermark(), 1);
        t.await;
    });
}

/// A crash between creating the new segment and sealing the old one: the old `.log` still has
/// direct-I/O zero padding and no index files, the new segment has no index files either.
#[test]
fn crash_between_roll_and_index_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-4");
    let d2 = dir.clone();
    run(move || async move {
        let cfg = LogConfig {
            index_interval_bytes: 100,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&d2, cfg.clone()).await.unwrap();
        for i in 0..10 {
            log.append(batch(3, 50, 100 + i, i as u8)).await.unwrap();
        }
        log.roll().await.unwrap();
        log.append(batch(2, 50, 500, 9)).await.unwrap();
        log.close().await.unwrap();
        let expected = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
        drop(log);

        let old_log = d2.join("00000000000000000000.log");
        let sealed_len = std::fs::metadata(&old_log).unwrap().len();
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&old_log)
                .unwrap();
            f.write_all(&[0u8; 333]).unwrap();
        }
        for name in [
            "00000000000000000000.index",
            "00000000000000000000.timeindex",
            "00000000000000000030.index",
            "00000000000000000030.timeindex",
        ] {
            std::fs::remove_file(d2.join(name)).unwrap();
        }
        let log = PartitionLog::open(&d2, cfg).await.unwrap();
        assert_eq!(log.high_watermark(), 32);
        assert_eq!(log.segment_bases(), vec![0, 30]);
        assert_eq!(std::fs::metadata(&old_log).unwrap().len(), sealed_len);
        assert!(
            !std::fs::read(d2.join("00000000000000000000.index"))
                .unwrap()
                .is_empty()
        );
        let got = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            log.offset_for_timestamp(500).await.unwrap(),
            Some((30, 500))
        );
        log.close().await.unwrap();
    });
}

/// Polls `cond` on the executor for up to `ms` milliseconds.
async fn eventually(ms: u64, cond: impl Fn() -> bool) -> bool {
    for _ in 0..ms / 5 {
        if cond() {
            return true;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
    }
    cond()
}

#[test]
fn flush_messages_and_flush_ms_sync_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    run(move || async move {
        // No policy: nothing syncs by itself.
        let log = PartitionLog::open(root.join("f-0"), LogConfig::default())
            .await
            .unwrap();
        log.append(batch(3, 10, 1, 1)).await.unwrap();
        assert!(!eventually(100, || log.durable_offset() >= 3).await);
        log.close().await.unwrap();

        // flush.messages = 4: the second append (5 messages in total) triggers a sync.
        let cfg = LogConfig {
            flush_messages: 4,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(root.join("f-1"), cfg).await.unwrap();
        log.append(batch(2, 10, 1, 1)).await.unwrap();
        assert!(!eventually(50, || log.durable_offset() >= 2).await);
        log.append(batch(3, 10, 1, 1)).await.unwrap();
        assert!(eventually(2000, || log.durable_offset() >= 5).await);
        log.close().await.unwrap();

        // flush.ms = 30: unsynced data is synced within about that time.
        let cfg = LogConfig {
            flush_ms: 30,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(root.join("f-2"), cfg).await.unwrap();
        log.append(batch(2, 10, 1, 1)).await.unwrap();
        assert!(eventually(2000, || log.durable_offset() >= 2).await);
        log.close().await.unwrap();
    });
}

#[test]
fn rolls_by_segment_ms_and_full_index() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    run(move || async move {
        // segment.ms = 0: every append finds the active segment old enough to roll.
        let cfg = LogConfig {
            segment_ms: 0,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(root.join("r-0"), cfg).await.unwrap();
        for i in 0..4 {
            log.append(batch(2, 10, i, 1)).await.unwrap();
        }
        assert_eq!(log.segment_bases(), vec![0, 2, 4, 6]);
        log.close().await.unwrap();

        // segment.index.bytes = 16 (two entries), one entry per batch after the first.
        let cfg = LogConfig {
            segment_index_bytes: 16,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(root.join("r-1"), cfg).await.unwrap();
        for i in 0..6 {
            log.append(batch(1, 10, i, 1)).await.unwrap();
        }
        assert!(log.segment_count() >= 2, "{:?}", log.segment_bases());
        for b in log.segment_bases() {
            let idx = std::fs::metadata(root.join("r-1").join(format!("{b:020}.index")));
            if let Ok(m) = idx {
                assert!(m.len() <= 16);
            }
        }
        let all = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
        assert_eq!(validate_all(&all).unwrap().len(), 6);
        log.close().await.unwrap();
    });
}

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
        assert_eq!(log.max_timestamp(), (-1, -1));
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
        assert_eq!(log.max_timestamp(), (2001, 4));
        log.close().await.unwrap();
        assert!(matches!(
            log.append(batch(1, 1, 1, 1)).await,
            Err(StorageError::Closed)
        ));

        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.max_timestamp(), (2001, 4));
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

//! Producer state across an unclean stop: the periodic snapshot (every 64 MiB appended) plus a
//! replay of the batch headers after it restore duplicate detection and sequence checks.

mod storage_common;

use bytes::BytesMut;
use ringbolt::protocol::record_batch::build_batch;
use ringbolt::storage::{LogConfig, PartitionLog, StorageError};
use storage_common::run;

fn idem(seq: i32, value: &[u8]) -> BytesMut {
    BytesMut::from(&build_batch(0, &[(1_000, None, value)], 1, 0, seq)[..])
}

#[test]
fn periodic_snapshot_and_replay_after_unclean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let cfg = LogConfig {
        max_message_bytes: 2 << 20,
        ..LogConfig::default()
    };
    {
        let (dir, cfg) = (dir.clone(), cfg.clone());
        run(move || async move {
            let log = PartitionLog::open(&dir, cfg).await.unwrap();
            let value = vec![7u8; 1 << 20];
            for seq in 0..66 {
                let a = log.append(idem(seq, &value)).await.unwrap();
                assert_eq!(a.base_offset, seq as i64);
            }
            // No close: as after kill -9 (the bytes are in the page cache, no close snapshot).
            std::mem::forget(log);
        });
    }
    let snaps: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    // Crossed 64 MiB with the 64th batch (offset 63): snapshot covering offsets < 64.
    assert_eq!(snaps, ["00000000000000000064.snapshot"]);
    run(move || async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        // A retry of the last batch (written after the snapshot, found by the replay).
        let a = log.append(idem(65, b"retry")).await.unwrap();
        assert_eq!((a.base_offset, a.last_offset), (65, 65));
        // One from before the snapshot, still among the last five.
        let a = log.append(idem(62, b"retry")).await.unwrap();
        assert_eq!(a.base_offset, 62);
        assert!(matches!(
            log.append(idem(70, b"gap")).await,
            Err(StorageError::OutOfOrderSequence(_))
        ));
        assert_eq!(log.append(idem(66, b"next")).await.unwrap().base_offset, 66);
        assert_eq!(log.log_end_offset(), 67);
        log.close().await.unwrap();
    });
}

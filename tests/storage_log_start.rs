//! The log start offset moved by DeleteRecords (`storage::log_start`) and the leader epoch cache
//! (`storage::leader_epoch`): inside a segment, whole segments below it deleted, reads, timestamp
//! lookups and retention honouring it, persisted across reopen, and what a crash between the
//! steps leaves; the epoch file's contents and its recovery from the log.

mod storage_common;

use std::path::Path;

use ringbolt::protocol::record_batch::validate_all;
use ringbolt::storage::leader_epoch::{EpochEntry, FILE_NAME as EPOCH_FILE};
use ringbolt::storage::log_start::FILE_NAME as START_FILE;
use ringbolt::storage::{LogConfig, PartitionLog, StorageError};
use storage_common::{batch, run};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4 * 1024,
        ..LogConfig::default()
    }
}

/// Appends `n` batches of 10 records (~1 KiB each), timestamps 1000 + offset.
async fn fill(log: &PartitionLog, n: usize) {
    for _ in 0..n {
        let next = log.log_end_offset();
        log.append(batch(10, 100, 1000 + next, 1)).await.unwrap();
    }
}

fn read_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn log_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

#[test]
fn delete_records_moves_the_start_inside_a_segment_and_deletes_segments_below() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        // A fresh partition's epoch file: epoch 0 from offset 0, as Kafka's.
        assert_eq!(read_file(&dir, EPOCH_FILE), "0\n1\n0 0\n");
        fill(&log, 20).await;
        assert_eq!(log.high_watermark(), 200);
        let bases = log.segment_bases();
        assert!(bases.len() >= 5, "{bases:?}");

        // Beyond the high watermark, or negative other than -1: refused, nothing changed.
        for bad in [201, -2, i64::MIN] {
            assert!(matches!(
                log.delete_records(bad).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
        }
        assert_eq!(log.log_start_offset(), 0);
        assert!(!dir.join(START_FILE).exists());

        // Inside the third segment: the two before it go, the third stays.
        let target = bases[2] + 5;
        assert_eq!(log.delete_records(target).await.unwrap(), target);
        assert_eq!(log.log_start_offset(), target);
        assert_eq!(read_file(&dir, START_FILE), format!("0\n1\n{target}\n"));
        assert_eq!(log.segment_bases()[0], bases[2]);
        assert_eq!(log_files(&dir), bases.len() - 2);
        assert_eq!(read_file(&dir, EPOCH_FILE), format!("0\n1\n0 {target}\n"));
        assert_eq!(
            log.leader_epochs(),
            vec![EpochEntry {
                epoch: 0,
                start_offset: target
            }]
        );

        // Below the start: out of range. At it: the batch holding it, whole (as Kafka).
        assert!(matches!(
            log.read(target - 1, 1 << 20).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        let r = log.read(target, 1 << 20).await.unwrap();
        let hs = validate_all(&r.read_to_vec().unwrap()).unwrap();
        assert_eq!(hs[0].base_offset, target - 5);
        assert_eq!(r.log_start_offset, target);
        // A timestamp lookup answers nothing below the start.
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap(),
            Some((target, 1000 + target - 5 + 5))
        );

        // Backwards is a no-op answering the current start; -1 is the high watermark.
        assert_eq!(log.delete_records(3).await.unwrap(), target);
        assert_eq!(log.delete_records(-1).await.unwrap(), 200);
        assert_eq!(log.log_start_offset(), 200);
        assert!(log.read(200, 1000).await.unwrap().slices.is_empty());
        // Appends go on after it.
        assert_eq!(
            log.append(batch(1, 10, 5, 2)).await.unwrap().base_offset,
            200
        );
        assert_eq!(log.end_offset_for_epoch(0), (0, 201));
        log.close().await.unwrap();
        drop(log);

        // Reopened: the start survives, the epoch cache agrees.
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        assert_eq!(log.log_start_offset(), 200);
        assert_eq!(log.high_watermark(), 201);
        assert_eq!(read_file(&dir, EPOCH_FILE), "0\n1\n0 200\n");
        assert!(matches!(
            log.read(199, 1000).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn a_crash_before_the_unlink_is_finished_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        fill(&log, 20).await;
        let bases = log.segment_bases();
        log.close().await.unwrap();
        drop(log);
        // As if DeleteRecords persisted the start and crashed before deleting anything.
        let start = bases[3] + 1;
        std::fs::write(dir.join(START_FILE), format!("0\n1\n{start}\n")).unwrap();
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.segment_bases()[0], bases[3]);
        assert_eq!(log_files(&dir), bases.len() - 3);
        assert_eq!(read_file(&dir, EPOCH_FILE), format!("0\n1\n0 {start}\n"));
        log.close().await.unwrap();
        drop(log);

        // A persisted start past the log end (the device lost synced data): the log restarts
        // empty there rather than reuse offsets clients were told are deleted.
        std::fs::write(dir.join(START_FILE), "0\n1\n500\n").unwrap();
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        assert_eq!((log.log_start_offset(), log.high_watermark()), (500, 500));
        assert_eq!(log.segment_bases(), vec![500]);
        assert_eq!(
            log.append(batch(2, 10, 5, 2)).await.unwrap().base_offset,
            500
        );
        log.close().await.unwrap();

        // A garbled start file keeps the log closed rather than guess.
        std::fs::write(dir.join(START_FILE), "0\n1\nnope\n").unwrap();
        assert!(PartitionLog::open(&dir, small_segments()).await.is_err());
    });
}

#[test]
fn retention_works_with_a_start_inside_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            retention_bytes: 6 * 1024,
            ..small_segments()
        };
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        fill(&log, 20).await;
        let bases = log.segment_bases();
        let start = bases[1] + 3;
        log.delete_records(start).await.unwrap();
        assert_eq!(log.segment_bases()[0], bases[1]);
        // Size retention removes whole sealed segments from the front; the start follows the
        // first remaining base once it passes the DeleteRecords start.
        let deleted = log.enforce_retention(i64::MAX / 2).await.unwrap();
        assert!(deleted > 0);
        let first = log.segment_bases()[0];
        assert!(first > start);
        assert_eq!(log.log_start_offset(), first);
        // The epoch cache follows the start.
        assert_eq!(log.leader_epochs()[0].start_offset, first);
        assert_eq!(log.end_offset_for_epoch(0), (0, 200));
        log.close().await.unwrap();
        drop(log);
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        assert_eq!(log.log_start_offset(), first);
        assert_eq!(read_file(&dir, EPOCH_FILE), format!("0\n1\n0 {first}\n"));
        log.close().await.unwrap();
    });
}

#[test]
fn the_epoch_file_is_recovered_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        fill(&log, 8).await;
        log.close().await.unwrap();
        drop(log);

        // No file (a log written before it existed): recovered from the batches, epoch 0 from
        // the log start.
        std::fs::remove_file(dir.join(EPOCH_FILE)).unwrap();
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        assert_eq!(read_file(&dir, EPOCH_FILE), "0\n1\n0 0\n");
        log.close().await.unwrap();
        drop(log);

        // A file naming an epoch the log does not have (a later epoch whose first batch was lost
        // in a crash) is cut back to the log; a garbled one is rebuilt.
        for stale in [
            "0\n2\n0 0\n3 80\n",
            "0\n2\n0 0\n3 500\n",
            "garbage",
            "0\n1\n7 0\n",
        ] {
            std::fs::write(dir.join(EPOCH_FILE), stale).unwrap();
            let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
            assert_eq!(read_file(&dir, EPOCH_FILE), "0\n1\n0 0\n", "{stale:?}");
            assert_eq!(log.end_offset_for_epoch(0), (0, 80));
            assert_eq!(log.end_offset_for_epoch(1), (-1, -1));
            assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
            log.close().await.unwrap();
        }
    });
}

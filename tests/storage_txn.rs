//! Transactions in the partition log: markers, the last stable offset, the aborted-transaction
//! index (`.txnindex`), fencing, refused client control batches, and recovery of all of it after
//! unclean stops (`std::mem::forget(log)`: no close, as after kill -9).

mod storage_common;

use bytes::{Bytes, BytesMut};
use ringbolt::protocol::record_batch::{
    ATTR_CONTROL, ATTR_TRANSACTIONAL, ATTRIBUTES_OFFSET, CRC_OFFSET, build_batch, compute_crc,
    validate_all,
};
use ringbolt::storage::txn::{AbortedTxn, TxnMarker, decode_marker};
use std::path::Path;
use std::rc::Rc;

use ringbolt::format::records;
use ringbolt::storage::cleaner::{CleanerConfig, ShardCleaner};
use ringbolt::storage::txn_index::{self, TxnIndexEntry};
use ringbolt::storage::{CleanupPolicy, LogConfig, PartitionLog, StorageError};
use storage_common::run;

/// A batch of `n` records from producer `pid` (epoch `epoch`, first sequence `seq`), with the
/// given extra attribute bits.
fn batch_with(pid: i64, epoch: i16, seq: i32, n: usize, attrs: i16) -> Bytes {
    let value = [0x5au8; 100];
    let recs: Vec<_> = (0..n).map(|_| (1_000i64, None, &value[..])).collect();
    let mut b = BytesMut::from(&build_batch(0, &recs, pid, epoch, seq)[..]);
    let a = i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]) | attrs;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&a.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn txn(pid: i64, seq: i32, n: usize) -> Bytes {
    batch_with(pid, 0, seq, n, ATTR_TRANSACTIONAL)
}

fn marker(pid: i64, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: 0,
        commit,
        coordinator_epoch: 0,
    }
}

fn aborted(pid: i64, first: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
    }
}

async fn write_marker(log: &PartitionLog, m: TxnMarker) -> i64 {
    let a = log.append_marker(m).unwrap();
    log.wait_durable(a.last_offset).await.unwrap();
    assert_eq!(a.base_offset, a.last_offset);
    a.base_offset
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        ..LogConfig::default()
    }
}

fn txn_index_files(dir: &Path) -> Vec<(i64, Vec<TxnIndexEntry>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            let base: i64 = n.strip_suffix(".txnindex")?.parse().ok()?;
            Some((base, txn_index::read(dir, base).unwrap()))
        })
        .collect();
    out.sort_by_key(|(b, _)| *b);
    out
}

#[test]
fn commit_and_abort_markers_and_the_lso_with_interleaved_producers() {
    storage_common::with_new_log(|log, _dir| async move {
        // Producer 1 starts at 0, producer 2 at 2; a plain batch in between.
        assert_eq!(log.append(txn(1, 0, 2)).await.unwrap().base_offset, 0);
        assert_eq!(log.last_stable_offset(), 0);
        assert_eq!(log.append(txn(2, 0, 3)).await.unwrap().base_offset, 2);
        assert_eq!(
            log.append(storage_common::batch(1, 10, 1, 0))
                .await
                .unwrap()
                .base_offset,
            5
        );
        assert_eq!(log.append(txn(1, 2, 1)).await.unwrap().base_offset, 6);
        assert_eq!(log.last_stable_offset(), 0);
        assert_eq!(log.high_watermark(), 7);
        assert_eq!(log.ongoing_transactions(), vec![(1, 0), (2, 2)]);
        // Producer 1 commits: the LSO moves to producer 2's first offset.
        assert_eq!(write_marker(&log, marker(1, true)).await, 7);
        assert_eq!(log.last_stable_offset(), 2);
        assert!(log.aborted_transactions(0, 8).is_empty());
        // Producer 2 aborts: nothing ongoing, the LSO is the high watermark.
        assert_eq!(write_marker(&log, marker(2, false)).await, 8);
        assert_eq!(log.last_stable_offset(), 9);
        assert_eq!(log.high_watermark(), 9);
        assert_eq!(log.aborted_transactions(0, 9), vec![aborted(2, 2)]);
        assert_eq!(log.aborted_transactions(8, 9), vec![aborted(2, 2)]);
        assert!(log.aborted_transactions(9, 20).is_empty());
        assert!(log.aborted_transactions(0, 2).is_empty());
        // The markers are Kafka's control batches.
        let all = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
        let hs = validate_all(&all).unwrap();
        let ctl: Vec<_> = hs.iter().filter(|h| h.is_control()).collect();
        assert_eq!(ctl.len(), 2);
        let mut pos = 0;
        let mut kinds = Vec::new();
        for h in &hs {
            if h.is_control() {
                assert!(h.is_transactional());
                assert_eq!((h.base_sequence, h.records_count), (-1, 1));
                kinds.push(decode_marker(&all[pos..pos + h.total_len()]).unwrap());
            }
            pos += h.total_len();
        }
        assert_eq!(kinds, vec![(true, 0), (false, 0)]);
        // DescribeProducers.
        let ps = log.producers();
        assert_eq!(ps.len(), 2);
        assert_eq!((ps[0].producer_id, ps[0].last_sequence), (1, 2));
        assert_eq!(
            (ps[0].coordinator_epoch, ps[0].current_txn_start_offset),
            (0, -1)
        );
        // A new transaction of producer 1 continues its sequences.
        assert_eq!(log.append(txn(1, 3, 1)).await.unwrap().base_offset, 9);
        assert_eq!(log.last_stable_offset(), 9);
        assert_eq!(log.producers()[0].current_txn_start_offset, 9);
        log.close().await.unwrap();
    });
}

#[test]
fn client_control_batches_and_bad_markers_are_refused() {
    storage_common::with_new_log(|log, _dir| async move {
        // A client's control batch: INVALID_RECORD, nothing written.
        let ctl = batch_with(5, 0, 0, 1, ATTR_TRANSACTIONAL | ATTR_CONTROL);
        let e = log.append(ctl).await.unwrap_err();
        assert!(matches!(e, StorageError::InvalidRecord(_)), "{e}");
        assert_eq!(e.error_code(), 87);
        assert_eq!(log.high_watermark(), 0);
        // A marker from the coordinator itself, in a client's produce: refused too.
        let m = ringbolt::storage::txn::encode_marker(&marker(5, false), 1);
        assert!(matches!(
            log.append(Bytes::from(m)).await,
            Err(StorageError::InvalidRecord(_))
        ));
        assert_eq!(log.high_watermark(), 0);

        log.append(batch_with(5, 3, 0, 1, ATTR_TRANSACTIONAL))
            .await
            .unwrap();
        // Non-transactional batch while the transaction is ongoing: INVALID_TXN_STATE.
        let e = log.append(batch_with(5, 3, 1, 1, 0)).await.unwrap_err();
        assert!(matches!(e, StorageError::InvalidTxnState(_)), "{e}");
        assert_eq!(e.error_code(), 48);
        // Older producer epoch in a marker: INVALID_PRODUCER_EPOCH.
        let stale = TxnMarker {
            producer_epoch: 2,
            ..marker(5, true)
        };
        let e = log.append_marker(stale).unwrap_err();
        assert!(matches!(e, StorageError::InvalidProducerEpoch(_)), "{e}");
        assert_eq!(log.high_watermark(), 1);
        // Coordinator epoch 4 writes the abort; a marker from coordinator epoch 3 is fenced.
        let m = TxnMarker {
            producer_epoch: 3,
            coordinator_epoch: 4,
            ..marker(5, false)
        };
        write_marker(&log, m).await;
        let old = TxnMarker {
            coordinator_epoch: 3,
            ..m
        };
        let e = log.append_marker(old).unwrap_err();
        assert!(matches!(e, StorageError::CoordinatorFenced(_)), "{e}");
        assert_eq!(e.error_code(), 52);
        assert_eq!(log.high_watermark(), 2);
        // A marker for a producer with nothing ongoing here is written, and ends nothing.
        assert_eq!(write_marker(&log, marker(77, true)).await, 2);
        assert_eq!(
            write_marker(
                &log,
                TxnMarker {
                    producer_epoch: 4,
                    coordinator_epoch: 4,
                    ..marker(5, false)
                }
            )
            .await,
            3
        );
        assert_eq!(log.aborted_transactions(0, 10), vec![aborted(5, 0)]);
        assert_eq!(log.last_stable_offset(), 4);
        // The marker's epoch became the producer's: its epoch-3 data is now stale.
        assert!(matches!(
            log.append(batch_with(5, 3, 1, 1, ATTR_TRANSACTIONAL)).await,
            Err(StorageError::InvalidProducerEpoch(_))
        ));
        log.close().await.unwrap();
    });
}

/// Producer 1 aborts a transaction whose data spans segments; producer 2 commits in between.
/// Returns (first offset of the aborted transaction, its marker's offset).
async fn aborted_across_segments(log: &PartitionLog) -> (i64, i64) {
    let first = log.append(txn(1, 0, 5)).await.unwrap().base_offset;
    let mut seq1 = 5;
    for seq2 in 0..12 {
        log.append(txn(1, seq1, 5)).await.unwrap();
        seq1 += 5;
        log.append(txn(2, seq2, 1)).await.unwrap();
    }
    write_marker(log, marker(2, true)).await;
    let m = write_marker(log, marker(1, false)).await;
    (first, m)
}

#[test]
fn aborted_index_spans_segments_and_survives_a_clean_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let d = dir.clone();
    run(move || async move {
        let log = PartitionLog::open(&d, small_segments()).await.unwrap();
        let (first, m) = aborted_across_segments(&log).await;
        assert!(log.segment_count() >= 4, "{}", log.segment_count());
        let bases = log.segment_bases();
        // A fetch from the middle of the aborted data, in a segment before the marker's.
        let mid = bases[1];
        assert!(mid > first && mid < m);
        assert_eq!(
            log.aborted_transactions(mid, m + 1),
            vec![aborted(1, first)]
        );
        assert_eq!(log.aborted_transactions(0, first), vec![]);
        log.roll().await.unwrap();
        // The marker's segment is sealed now: its .txnindex holds the entry, Kafka's format.
        let files = txn_index_files(&d);
        assert_eq!(files.len(), 1);
        let (base, entries) = &files[0];
        assert!(*base <= m && bases.iter().all(|b| b <= base));
        assert_eq!(
            entries,
            &vec![TxnIndexEntry {
                producer_id: 1,
                first_offset: first,
                last_offset: m,
                last_stable_offset: m + 1,
            }]
        );
        assert_eq!(
            log.aborted_transactions(mid, m + 1),
            vec![aborted(1, first)]
        );
        // A second abort in the (new) active segment, then a clean close.
        let f2 = log.append(txn(1, 65, 1)).await.unwrap().base_offset;
        let m2 = write_marker(&log, marker(1, false)).await;
        assert_eq!(
            log.aborted_transactions(0, m2 + 1),
            vec![aborted(1, first), aborted(1, f2)]
        );
        log.close().await.unwrap();
    });
    assert_eq!(txn_index_files(&dir).len(), 2);
    run(move || async move {
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        let hw = log.high_watermark();
        let all = log.aborted_transactions(0, hw);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].producer_id, 1);
        assert_eq!(log.last_stable_offset(), hw);
        assert_eq!(
            log.aborted_transactions(all[1].first_offset, hw),
            all[1..].to_vec()
        );
        log.close().await.unwrap();
    });
}

#[test]
fn unclean_stop_without_snapshot_rebuilds_ongoing_transactions_and_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let d = dir.clone();
    let (first1, m1, first3) = run(move || async move {
        let log = PartitionLog::open(&d, LogConfig::default()).await.unwrap();
        let first1 = log.append(txn(1, 0, 3)).await.unwrap().base_offset;
        let first3 = log.append(txn(3, 0, 2)).await.unwrap().base_offset;
        log.append(txn(1, 3, 2)).await.unwrap();
        let m1 = write_marker(&log, marker(1, false)).await;
        log.append(txn(3, 2, 2)).await.unwrap();
        let hw = log.high_watermark();
        log.wait_durable(hw - 1).await.unwrap();
        std::mem::forget(log);
        (first1, m1, first3)
    });
    // Neither a snapshot nor an index file was written: only the log survives.
    assert!(txn_index_files(&dir).is_empty());
    run(move || async move {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 10);
        assert_eq!(log.aborted_transactions(0, 10), vec![aborted(1, first1)]);
        assert_eq!(log.ongoing_transactions(), vec![(3, first3)]);
        assert_eq!(log.last_stable_offset(), first3);
        // The rebuilt entry is back in the file, once.
        assert_eq!(txn_index_files(&dir)[0].1.len(), 1);
        assert_eq!(txn_index_files(&dir)[0].1[0].last_offset, m1);
        // Producer 3 goes on and commits: the LSO reaches the end.
        log.append(txn(3, 4, 1)).await.unwrap();
        write_marker(&log, marker(3, true)).await;
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        assert_eq!(log.ongoing_transactions(), vec![]);
        log.close().await.unwrap();
    });
}

#[test]
fn a_torn_marker_is_undone_with_its_index_entry_and_extra_entries_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let d = dir.clone();
    let (first, m) = run(move || async move {
        let log = PartitionLog::open(&d, LogConfig::default()).await.unwrap();
        let first = log.append(txn(4, 0, 3)).await.unwrap().base_offset;
        let m = write_marker(&log, marker(4, false)).await;
        log.close().await.unwrap();
        (first, m)
    });
    assert_eq!(txn_index_files(&dir)[0].1.len(), 1);
    // Cut the log in the middle of the marker (a torn write).
    let log_path = dir.join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&log_path).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap();
    f.set_len(len - 20).unwrap();
    drop(f);
    let d = dir.clone();
    run(move || async move {
        let log = PartitionLog::open(&d, LogConfig::default()).await.unwrap();
        assert_eq!(log.high_watermark(), m);
        assert!(log.aborted_transactions(0, 100).is_empty());
        assert_eq!(log.ongoing_transactions(), vec![(4, first)]);
        assert_eq!(log.last_stable_offset(), first);
        // No index entry points past the log.
        assert!(txn_index_files(&d).is_empty());
        // The coordinator retries the abort.
        let m2 = write_marker(&log, marker(4, false)).await;
        assert_eq!(m2, m);
        assert_eq!(log.aborted_transactions(0, 100), vec![aborted(4, first)]);
        log.close().await.unwrap();
    });
    // An extra entry (past the end) and a replay over entries already in the file (all
    // snapshots gone): the file ends with exactly the real entry.
    let mut bytes = std::fs::read(txn_index::path(&dir, 0)).unwrap();
    bytes.extend_from_slice(&txn_index::encode(&[TxnIndexEntry {
        producer_id: 9,
        first_offset: 1,
        last_offset: 1_000,
        last_stable_offset: 1_001,
    }]));
    std::fs::write(txn_index::path(&dir, 0), bytes).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    run(move || async move {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(log.aborted_transactions(0, 100), vec![aborted(4, first)]);
        let files = txn_index_files(&dir);
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].1,
            vec![TxnIndexEntry {
                producer_id: 4,
                first_offset: first,
                last_offset: m,
                last_stable_offset: m + 1,
            }]
        );
        log.close().await.unwrap();
    });
}

#[test]
fn retention_and_delete_records_delete_txnindex_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        // Aborts in several segments.
        let mut seq = 0;
        for _ in 0..6 {
            log.append(txn(1, seq, 5)).await.unwrap();
            log.append(txn(1, seq + 5, 5)).await.unwrap();
            seq += 10;
            write_marker(&log, marker(1, false)).await;
        }
        log.roll().await.unwrap();
        let files = txn_index_files(&dir);
        assert!(files.len() >= 3, "{files:?}");
        let bases = log.segment_bases();
        // DeleteRecords past the second segment: the first two go, with their .txnindex.
        log.delete_records(bases[2]).await.unwrap();
        for (b, _) in &files {
            assert_eq!(txn_index::path(&dir, *b).exists(), *b >= bases[2], "{b}");
        }
        // Retention down to the active segment.
        log.set_config(LogConfig {
            retention_bytes: 0,
            ..small_segments()
        });
        log.enforce_retention(i64::MAX / 2).await.unwrap();
        assert!(txn_index_files(&dir).is_empty());
        assert_eq!(
            log.aborted_transactions(log.log_start_offset(), log.high_watermark()),
            vec![]
        );
        log.close().await.unwrap();
    });
}

/// A v2 batch of keyed records from producer `pid`, transactional.
fn kv_txn(pid: i64, seq: i32, recs: &[(&[u8], &[u8])]) -> Bytes {
    let r: Vec<_> = recs.iter().map(|(k, v)| (1_000i64, Some(*k), *v)).collect();
    let mut b = BytesMut::from(&build_batch(0, &r, pid, 0, seq)[..]);
    let a =
        i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]) | ATTR_TRANSACTIONAL;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&a.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// (key, value) of every data record from the log start, and the number of control batches.
async fn contents(log: &PartitionLog) -> (Vec<(Vec<u8>, Vec<u8>)>, usize) {
    let bytes = log
        .read(log.log_start_offset(), u32::MAX)
        .await
        .unwrap()
        .read_to_vec()
        .unwrap();
    let mut out = Vec::new();
    let mut markers = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let h = ringbolt::protocol::record_batch::validate_stored_batch(&bytes[pos..]).unwrap();
        let b = &bytes[pos..pos + h.total_len()];
        if h.is_control() {
            markers += 1;
        } else {
            let (h, raw) = records::decode(b).unwrap();
            for r in records::parse_records(&h, &raw).unwrap() {
                out.push((r.key.unwrap().to_vec(), r.value.unwrap().to_vec()));
            }
        }
        pos += h.total_len();
    }
    (out, markers)
}

fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

#[test]
fn the_cleaner_drops_aborted_data_keeps_markers_and_stops_at_the_lso() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let cfg = LogConfig {
        segment_bytes: 512,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let c2 = cfg.clone();
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, c2.clone()).await.unwrap());
        let pad = "p".repeat(150);
        // Committed: k1=a1, k2=a2. Aborted: k1=bad, k3=bad. Committed: k2=c2.
        log.append(kv_txn(1, 0, &[(b"k1", b"a1"), (b"k2", b"a2")]))
            .await
            .unwrap();
        write_marker(&log, marker(1, true)).await;
        let fb = log
            .append(kv_txn(2, 0, &[(b"k1", b"bad"), (b"k3", pad.as_bytes())]))
            .await
            .unwrap()
            .base_offset;
        log.append(kv_txn(2, 2, &[(b"k1", pad.as_bytes())]))
            .await
            .unwrap();
        write_marker(&log, marker(2, false)).await;
        log.append(kv_txn(1, 2, &[(b"k2", b"c2")])).await.unwrap();
        write_marker(&log, marker(1, true)).await;
        log.roll().await.unwrap();
        let segs_before = log.segment_count();
        assert!(segs_before >= 3, "{segs_before}");
        let mut cleaner = ShardCleaner::new(
            CleanerConfig {
                backoff_ms: 0,
                ..CleanerConfig::default()
            },
            1,
        );
        let now = 2_000_000_000_000;
        cleaner
            .clean_filthiest(std::slice::from_ref(&log), now)
            .await
            .expect("something to clean")
            .map_err(|(_, e)| e)
            .unwrap();
        let (recs, markers) = contents(&log).await;
        // The aborted k1 did not shadow the committed one; aborted data is gone; markers stay.
        assert_eq!(recs, vec![kv("k1", "a1"), kv("k2", "c2")]);
        assert_eq!(markers, 3);
        let hw = log.high_watermark();
        assert_eq!(log.aborted_transactions(0, hw), vec![aborted(2, fb)]);
        assert_eq!(
            txn_index_files(&dir)
                .iter()
                .map(|(_, e)| e.len())
                .sum::<usize>(),
            1
        );

        // An ongoing transaction in a sealed segment: nothing from there on is cleaned.
        log.append(kv_txn(3, 0, &[(b"k2", b"pending")]))
            .await
            .unwrap();
        log.roll().await.unwrap();
        log.append(kv_txn(4, 0, &[(b"k2", b"later")]))
            .await
            .unwrap();
        write_marker(&log, marker(4, true)).await;
        log.roll().await.unwrap();
        let _ = cleaner
            .clean_filthiest(std::slice::from_ref(&log), now + 1)
            .await;
        let (recs, _) = contents(&log).await;
        assert_eq!(
            recs,
            vec![
                kv("k1", "a1"),
                kv("k2", "c2"),
                kv("k2", "pending"),
                kv("k2", "later")
            ]
        );
        // Producer 3 aborts: now its data goes and the committed later value wins.
        write_marker(&log, marker(3, false)).await;
        log.roll().await.unwrap();
        let _ = cleaner
            .clean_filthiest(std::slice::from_ref(&log), now + 2)
            .await;
        let (recs, markers) = contents(&log).await;
        assert_eq!(recs, vec![kv("k1", "a1"), kv("k2", "later")]);
        assert_eq!(markers, 5);
        assert_eq!(log.aborted_transactions(0, log.high_watermark()).len(), 2);
        log.close().await.unwrap();
        drop(log);
        // After a restart, the merged segments' indexes give the same answers.
        let log = PartitionLog::open(&dir, c2).await.unwrap();
        assert_eq!(log.aborted_transactions(0, log.high_watermark()).len(), 2);
        assert_eq!(
            log.aborted_transactions(0, log.high_watermark())[0],
            aborted(2, fb)
        );
        assert_eq!(
            contents(&log).await.0,
            vec![kv("k1", "a1"), kv("k2", "later")]
        );
        log.close().await.unwrap();
    });
}

#[test]
fn the_periodic_snapshot_writes_the_active_index_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let cfg = LogConfig {
        max_message_bytes: 2 << 20,
        ..LogConfig::default()
    };
    let (d, c) = (dir.clone(), cfg.clone());
    let first = run(move || async move {
        let log = PartitionLog::open(&d, c).await.unwrap();
        let first = log.append(txn(1, 0, 2)).await.unwrap().base_offset;
        write_marker(&log, marker(1, false)).await;
        // 65 MiB more: a periodic snapshot (every 64 MiB) is written at the crossing.
        let big = vec![1u8; 1 << 20];
        for _ in 0..65 {
            let b = build_batch(0, &[(1_000, None, &big[..])], -1, -1, -1);
            log.append(b).await.unwrap();
        }
        // One more aborted transaction after the snapshot, then an unclean stop.
        log.append(txn(1, 2, 1)).await.unwrap();
        write_marker(&log, marker(1, false)).await;
        std::mem::forget(log);
        first
    });
    let snaps = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snapshot")
        })
        .count();
    assert_eq!(snaps, 1);
    // The entry below the snapshot is on disk; the one after it is not (yet).
    let files = txn_index_files(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1.len(), 1);
    assert_eq!(files[0].1[0].first_offset, first);
    run(move || async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        let hw = log.high_watermark();
        let all = log.aborted_transactions(0, hw);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], aborted(1, first));
        assert_eq!(all[1].first_offset, hw - 2);
        assert_eq!(txn_index_files(&dir)[0].1.len(), 2);
        log.close().await.unwrap();
    });
}

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
use ringbolt::storage::{PartitionLog, StorageError};

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

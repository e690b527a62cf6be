//! The partition log as a replica (issue 19): roles, the replicated high watermark, follower
//! appends of the leader's batches, truncation of a divergent tail, and the state that must
//! follow the data (producer state, transactions, leader epochs).

mod storage_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ringbolt::protocol::record_batch::{
    ATTR_TRANSACTIONAL, ATTRIBUTES_OFFSET, BatchHeader, CRC_OFFSET, build_batch, compute_crc,
    set_partition_leader_epoch, validate_all,
};
use ringbolt::storage::leader_epoch::EpochEntry;
use ringbolt::storage::txn::{AbortedTxn, TxnMarker};
use ringbolt::storage::{LogConfig, PartitionLog, ReplicaRole, StorageError};
use storage_common::{batch, run};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// A batch of `n` records from producer `pid` (epoch 0, first sequence `seq`; `pid` -1: no
/// producer), transactional when `txn`.
fn produced(pid: i64, seq: i32, n: usize, txn: bool) -> Bytes {
    let value = [0x6bu8; 200];
    let recs: Vec<_> = (0..n)
        .map(|i| (5_000 + i as i64, None, &value[..]))
        .collect();
    let (epoch, seq) = if pid < 0 { (-1, -1) } else { (0, seq) };
    let mut b = BytesMut::from(&build_batch(0, &recs, pid, epoch, seq)[..]);
    if txn {
        let a = i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]])
            | ATTR_TRANSACTIONAL;
        b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&a.to_be_bytes());
        let crc = compute_crc(&b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    b.freeze()
}

/// A batch as a leader stored it: `n` records at `base`, stamped with `epoch`.
fn stored(base: i64, n: usize, epoch: i32) -> Bytes {
    let value = [0x11u8; 100];
    let recs: Vec<_> = (0..n)
        .map(|i| (7_000 + i as i64, None, &value[..]))
        .collect();
    let mut b = build_batch(base, &recs, -1, -1, -1);
    set_partition_leader_epoch(&mut b, epoch);
    Bytes::from(b)
}

fn marker(pid: i64, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: 0,
        commit,
        coordinator_epoch: 0,
    }
}

/// One follower fetch round after another until the follower has the leader's log end, then the
/// leader's high watermark (what the replication layer does, by hand).
async fn replicate(leader: &PartitionLog, follower: &PartitionLog, max_bytes: u32) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let r = leader
            .read_replica(follower.log_end_offset(), max_bytes)
            .await
            .unwrap();
        let bytes = Bytes::from(r.read_to_vec().unwrap());
        assert!(
            !bytes.is_empty(),
            "the leader returned nothing below its log end"
        );
        let info = follower.append_replica(bytes).unwrap();
        follower.wait_written(info.last_offset).await.unwrap();
    }
    follower.advance_high_watermark(leader.high_watermark());
}

/// The segment files of a partition directory: name → bytes (`.log`, `.index`, `.timeindex`,
/// `.txnindex`).
fn segment_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| {
            [".log", ".index", ".timeindex", ".txnindex"]
                .iter()
                .any(|s| n.ends_with(s))
        })
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

async fn headers(log: &PartitionLog, from: i64) -> Vec<BatchHeader> {
    let r = log.read_replica(from, u32::MAX).await.unwrap();
    let bytes = r.read_to_vec().unwrap();
    if bytes.is_empty() {
        return Vec::new();
    }
    validate_all(&bytes).unwrap()
}

fn e(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

#[test]
fn a_follower_stores_the_leaders_batches_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (ld, fd) = (tmp.path().join("l/t-0"), tmp.path().join("f/t-0"));
    let (ld2, fd2) = (ld.clone(), fd.clone());
    run(move || async move {
        let leader = PartitionLog::open(&ld, small_segments()).await.unwrap();
        let follower = PartitionLog::open(&fd, small_segments()).await.unwrap();
        leader.set_role(ReplicaRole::Leader { epoch: 3 });
        follower.set_role(ReplicaRole::Follower { epoch: 3 });
        for i in 0..40 {
            leader
                .append(produced(-1, 0, 1 + i % 4, false))
                .await
                .unwrap();
        }
        leader.set_role(ReplicaRole::Leader { epoch: 5 });
        let epoch5_start = leader.log_end_offset();
        for i in 0..30 {
            leader
                .append(produced(-1, 0, 1 + i % 3, false))
                .await
                .unwrap();
        }
        leader.advance_high_watermark(leader.log_end_offset());
        // Small fetches: many appends, several rolls on both sides at the same points.
        replicate(&leader, &follower, 1500).await;
        assert!(leader.segment_count() > 3);
        assert_eq!(follower.segment_bases(), leader.segment_bases());
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(follower.high_watermark(), leader.high_watermark());
        // Client batches carry the epoch of the leader that appended them.
        let hs = headers(&leader, 0).await;
        assert!(hs.iter().all(|h| {
            let want = if h.base_offset < epoch5_start { 3 } else { 5 };
            h.partition_leader_epoch == want
        }));
        assert_eq!(leader.leader_epochs(), vec![e(3, 0), e(5, epoch5_start)]);
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        // Consumers read the same bytes from both.
        let a = leader
            .read(0, u32::MAX)
            .await
            .unwrap()
            .read_to_vec()
            .unwrap();
        let b = follower
            .read(0, u32::MAX)
            .await
            .unwrap()
            .read_to_vec()
            .unwrap();
        assert_eq!(a, b);
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
    let (l, f) = (segment_files(&ld2), segment_files(&fd2));
    assert!(l.keys().filter(|n| n.ends_with(".log")).count() > 3);
    assert_eq!(l.keys().collect::<Vec<_>>(), f.keys().collect::<Vec<_>>());
    for (name, bytes) in &l {
        assert!(f[name] == *bytes, "{name} differs");
    }
}

#[test]
fn the_high_watermark_bounds_consumer_reads_and_the_lso() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&dir, LogConfig::default())
                .await
                .unwrap(),
        );
        log.set_role(ReplicaRole::Leader { epoch: 1 });
        let a = log.append(produced(-1, 0, 3, false)).await.unwrap();
        log.append(produced(-1, 0, 3, false)).await.unwrap();
        log.append(produced(4, 0, 3, true)).await.unwrap();
        assert_eq!((a.base_offset, a.last_offset), (0, 2));
        assert_eq!(log.log_end_offset(), 9);
        // Nothing is known replicated yet.
        assert_eq!(log.high_watermark(), 0);
        assert_eq!(log.last_stable_offset(), 0);
        assert!(log.read(0, u32::MAX).await.unwrap().slices.is_empty());
        // Between the high watermark and the log end: nothing, not out of range.
        assert!(log.read(5, u32::MAX).await.unwrap().slices.is_empty());
        assert!(log.read(9, u32::MAX).await.unwrap().slices.is_empty());
        assert!(matches!(
            log.read(10, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
        // A follower's read sees everything written, and the leader's high watermark.
        let r = log.read_replica(0, u32::MAX).await.unwrap();
        assert_eq!(r.high_watermark, 0);
        assert_eq!(validate_all(&r.read_to_vec().unwrap()).unwrap().len(), 3);

        // An advance wakes fetch long-polls.
        let waiter = {
            let w = log.wait_for_append();
            glommio::spawn_local(w)
        };
        log.advance_high_watermark(3);
        waiter.await;
        assert_eq!(log.high_watermark(), 3);
        let hs =
            validate_all(&log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap()).unwrap();
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].last_offset(), 2);
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((0, 5_000)));
        assert_eq!(
            log.offset_for_timestamp(5_002).await.unwrap(),
            Some((2, 5_002))
        );
        assert_eq!(log.offset_for_timestamp(5_003).await.unwrap(), None);
        // read_committed stops at the LSO = HW here.
        let (r, _) = log
            .read_below(0, u32::MAX, log.last_stable_offset())
            .await
            .unwrap();
        assert_eq!(validate_all(&r.read_to_vec().unwrap()).unwrap().len(), 1);
        // Monotonic, clamped to the log end; the open transaction holds the LSO at its start.
        log.advance_high_watermark(1);
        assert_eq!(log.high_watermark(), 3);
        log.advance_high_watermark(1_000);
        assert_eq!(log.high_watermark(), 9);
        assert_eq!(log.last_stable_offset(), 6);
        assert_eq!(
            validate_all(&log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap())
                .unwrap()
                .len(),
            3
        );
        // A single-node log ignores advances: its high watermark is its log end.
        log.set_role(ReplicaRole::Single);
        log.advance_high_watermark(2);
        assert_eq!(log.high_watermark(), 9);
    });
}

#[test]
fn a_follower_refuses_client_appends_and_a_leader_replica_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        log.set_role(ReplicaRole::Follower { epoch: 2 });
        assert_eq!(log.role(), ReplicaRole::Follower { epoch: 2 });
        let err = log.append_assign(batch(2, 10, 0, 1)).unwrap_err();
        assert!(matches!(err, StorageError::NotLeaderOrFollower(_)), "{err}");
        assert_eq!(err.error_code(), NOT_LEADER_OR_FOLLOWER);
        let err = log.append_marker(marker(3, true)).unwrap_err();
        assert_eq!(err.error_code(), NOT_LEADER_OR_FOLLOWER);
        assert_eq!(log.log_end_offset(), 0);
        // The leader's batches are what it takes.
        let info = log.append_replica(stored(0, 4, 2)).unwrap();
        log.wait_written(info.last_offset).await.unwrap();
        assert_eq!(log.log_end_offset(), 4);
        log.set_role(ReplicaRole::Leader { epoch: 3 });
        let err = log.append_replica(stored(4, 1, 3)).unwrap_err();
        assert_eq!(err.error_code(), NOT_LEADER_OR_FOLLOWER);
        let a = log.append(batch(1, 10, 0, 1)).await.unwrap();
        assert_eq!(a.base_offset, 4);
        assert_eq!(log.leader_epochs(), vec![e(2, 0), e(3, 4)]);
    });
}

#[test]
fn replica_appends_check_offsets_and_accept_a_compaction_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let dir2 = dir.clone();
    run(move || async move {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        log.set_role(ReplicaRole::Follower { epoch: 0 });
        let mut two = BytesMut::from(&stored(0, 3, 0)[..]);
        two.extend_from_slice(&stored(3, 2, 0));
        let info = log.append_replica(two.freeze()).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 4));
        log.wait_written(4).await.unwrap();
        // Overlapping the log end, or going backwards inside one append: refused.
        for bad in [stored(4, 1, 0), stored(0, 1, 0)] {
            let err = log.append_replica(bad).unwrap_err();
            assert!(
                matches!(err, StorageError::UnexpectedAppendOffset { log_end: 5, .. }),
                "{err}"
            );
        }
        let mut backwards = BytesMut::from(&stored(10, 3, 0)[..]);
        backwards.extend_from_slice(&stored(11, 1, 0));
        assert!(matches!(
            log.append_replica(backwards.freeze()),
            Err(StorageError::UnexpectedAppendOffset {
                first: 11,
                log_end: 13
            })
        ));
        // A corrupt batch is refused; a trailing partial batch is left for the next fetch.
        let mut corrupt = BytesMut::from(&stored(5, 1, 0)[..]);
        let n = corrupt.len();
        corrupt[n - 1] ^= 0xff;
        assert!(matches!(
            log.append_replica(corrupt.freeze()),
            Err(StorageError::CorruptMessage(_))
        ));
        // A gap (offsets 5..100 compacted away on the leader), then a partial batch.
        let mut gap = BytesMut::from(&stored(100, 2, 1)[..]);
        let next = stored(102, 2, 1);
        gap.extend_from_slice(&next[..next.len() - 7]);
        let info = log.append_replica(gap.freeze()).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (100, 101));
        log.wait_written(101).await.unwrap();
        assert_eq!(log.log_end_offset(), 102);
        assert_eq!(log.leader_epochs(), vec![e(0, 0), e(1, 100)]);
        let hs = headers(&log, 5).await;
        assert_eq!(
            hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
            vec![100]
        );
        log.close().await.unwrap();
    });
    run(move || async move {
        let log = PartitionLog::open(&dir2, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 102);
        assert_eq!(log.leader_epochs(), vec![e(0, 0), e(1, 100)]);
    });
}

/// A stale leader wrote a tail the new leader does not have: the returning replica truncates to
/// where the new leader's log says its last common epoch ends (KIP-101), replicates, and matches
/// the leader byte for byte, before and after a reopen.
#[test]
fn a_divergent_tail_is_truncated_and_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let (ld, fd) = (tmp.path().join("l/t-0"), tmp.path().join("f/t-0"));
    let (ld2, fd2) = (ld.clone(), fd.clone());
    run(move || async move {
        let leader = PartitionLog::open(&ld, small_segments()).await.unwrap();
        let stale = PartitionLog::open(&fd, small_segments()).await.unwrap();
        leader.set_role(ReplicaRole::Leader { epoch: 1 });
        stale.set_role(ReplicaRole::Follower { epoch: 1 });
        for i in 0..20 {
            leader.append(produced(7, i * 2, 2, false)).await.unwrap();
        }
        leader.advance_high_watermark(leader.log_end_offset());
        replicate(&leader, &stale, 1 << 20).await;
        let common = leader.log_end_offset();
        assert_eq!(common, 40);

        // The follower is elected at epoch 2 and writes a tail nobody else gets (several
        // segments' worth), from the same producer and a new one.
        stale.set_role(ReplicaRole::Leader { epoch: 2 });
        for i in 0..15 {
            stale
                .append(produced(7, 40 + i * 2, 2, false))
                .await
                .unwrap();
            stale.append(produced(8, i, 1, false)).await.unwrap();
        }
        let durable = stale.log_end_offset();
        stale.wait_durable(durable - 1).await.unwrap();
        assert!(stale.segment_count() > leader.segment_count());
        // Meanwhile the old leader is re-elected at epoch 3 and takes other data.
        leader.set_role(ReplicaRole::Leader { epoch: 3 });
        for i in 0..10 {
            leader
                .append(produced(7, 40 + i * 3, 3, false))
                .await
                .unwrap();
        }
        leader.advance_high_watermark(leader.log_end_offset());

        // The stale leader becomes a follower of epoch 3: OffsetForLeaderEpoch for its latest
        // epoch (2) answers the end of epoch 1 on the leader.
        stale.set_role(ReplicaRole::Follower { epoch: 3 });
        let (epoch, end) = leader.end_offset_for_epoch(2);
        assert_eq!((epoch, end), (1, common));
        stale.truncate_to(end).await.unwrap();
        assert_eq!(stale.log_end_offset(), common);
        assert_eq!(stale.high_watermark(), common);
        assert_eq!(stale.leader_epochs(), vec![e(1, 0)]);
        assert_eq!(
            stale.segment_bases(),
            leader.segment_bases()[..stale.segment_count()]
        );
        // The divergent producer is gone; producer 7's state is back at sequence 39.
        let producers = stale.producers();
        assert_eq!(producers.len(), 1);
        assert_eq!(
            (producers[0].producer_id, producers[0].last_sequence),
            (7, 39)
        );
        // Truncating at or past the end changes nothing.
        stale.truncate_to(common + 10).await.unwrap();
        assert_eq!(stale.log_end_offset(), common);

        replicate(&leader, &stale, 1 << 20).await;
        assert_eq!(stale.leader_epochs(), leader.leader_epochs());
        assert_eq!(stale.producers(), leader.producers());
        assert_eq!(stale.segment_bases(), leader.segment_bases());
        leader.close().await.unwrap();
        stale.close().await.unwrap();
    });
    let (l, f) = (segment_files(&ld2), segment_files(&fd2));
    assert_eq!(l.keys().collect::<Vec<_>>(), f.keys().collect::<Vec<_>>());
    for (name, bytes) in &l {
        assert!(f[name] == *bytes, "{name} differs");
    }
    run(move || async move {
        let log = PartitionLog::open(&fd2, small_segments()).await.unwrap();
        assert_eq!(log.log_end_offset(), 70);
        assert_eq!(log.leader_epochs(), vec![e(1, 0), e(3, 40)]);
        let producers = log.producers();
        assert_eq!(
            (producers[0].producer_id, producers[0].last_sequence),
            (7, 69)
        );
    });
}

#[test]
fn truncation_inside_a_batch_cuts_before_it_and_appends_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let dir2 = dir.clone();
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, small_segments()).await.unwrap());
        log.set_role(ReplicaRole::Follower { epoch: 0 });
        let mut next = 0;
        for i in 0..30 {
            let n = 1 + i % 5;
            let info = log.append_replica(stored(next, n, i as i32 / 10)).unwrap();
            next = info.last_offset + 1;
        }
        log.wait_written(next - 1).await.unwrap();
        log.advance_high_watermark(20);
        assert!(log.segment_count() > 2);
        // Batches of 1..5 records repeat (bases 0, 1, 3, 6, 10, 15, ...), epochs 0, 1, 2 from
        // the 1st, 11th and 21st batch: offsets 0, 30, 60. Offset 37 lies in the batch 36..=39.
        assert_eq!(log.leader_epochs(), vec![e(0, 0), e(1, 30), e(2, 60)]);
        let hs = headers(&log, 37).await;
        assert_eq!((hs[0].base_offset, hs[0].last_offset()), (36, 39));
        log.truncate_to(37).await.unwrap();
        assert_eq!(log.log_end_offset(), 36);
        assert_eq!(log.high_watermark(), 20);
        assert_eq!(log.leader_epochs(), vec![e(0, 0), e(1, 30)]);
        assert!(matches!(
            log.read_replica(37, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // Below the high watermark too (a follower may have to): the HW follows. 17 lies in
        // the batch 16..=17.
        log.truncate_to(17).await.unwrap();
        assert_eq!(log.log_end_offset(), 16);
        assert_eq!(log.high_watermark(), 16);
        assert_eq!(log.leader_epochs(), vec![e(0, 0)]);
        // Appends resume at the new end, with later epochs.
        let info = log.append_replica(stored(16, 3, 4)).unwrap();
        log.wait_written(info.last_offset).await.unwrap();
        assert_eq!(log.log_end_offset(), 19);
        log.wait_durable(18).await.unwrap();
        assert_eq!(log.leader_epochs(), vec![e(0, 0), e(4, 16)]);
        let bases: Vec<i64> = headers(&log, 0)
            .await
            .iter()
            .map(|h| h.base_offset)
            .collect();
        assert_eq!(bases, vec![0, 1, 3, 6, 10, 15, 16]);
        // A crash now (no close) reopens as this log.
        std::mem::forget(Rc::try_unwrap(log).ok().unwrap());
    });
    run(move || async move {
        let log = PartitionLog::open(&dir2, small_segments()).await.unwrap();
        assert_eq!(log.log_end_offset(), 19);
        assert_eq!(log.leader_epochs(), vec![e(0, 0), e(4, 16)]);
        let bases: Vec<i64> = headers(&log, 0)
            .await
            .iter()
            .map(|h| h.base_offset)
            .collect();
        assert_eq!(bases, vec![0, 1, 3, 6, 10, 15, 16]);
    });
}

#[test]
fn truncating_fully_restarts_the_log_at_an_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let dir2 = dir.clone();
    run(move || async move {
        let log = PartitionLog::open(&dir, small_segments()).await.unwrap();
        log.set_role(ReplicaRole::Follower { epoch: 0 });
        let mut next = 0;
        for _ in 0..20 {
            let info = log.append_replica(stored(next, 3, 0)).unwrap();
            next = info.last_offset + 1;
        }
        log.wait_written(next - 1).await.unwrap();
        log.truncate_fully_and_start_at(500).await.unwrap();
        assert_eq!(
            (
                log.log_start_offset(),
                log.log_end_offset(),
                log.high_watermark()
            ),
            (500, 500, 500)
        );
        assert!(log.leader_epochs().is_empty());
        assert_eq!(log.segment_bases(), vec![500]);
        let info = log.append_replica(stored(500, 2, 6)).unwrap();
        log.wait_written(info.last_offset).await.unwrap();
        assert_eq!(log.leader_epochs(), vec![e(6, 500)]);
        // Below the log start, truncate_to does the same.
        log.truncate_to(100).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        let info = log.append_replica(stored(100, 2, 7)).unwrap();
        log.wait_written(info.last_offset).await.unwrap();
        log.close().await.unwrap();
    });
    run(move || async move {
        let log = PartitionLog::open(&dir2, small_segments()).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
        assert_eq!(log.leader_epochs(), vec![e(7, 100)]);
    });
}

/// An idempotent producer's retry reaches the follower after it became leader: the follower
/// kept the producer state of the replicated batches, so the retry is a duplicate.
#[test]
fn a_retry_after_failover_is_answered_as_a_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let (ld, fd) = (tmp.path().join("l/t-0"), tmp.path().join("f/t-0"));
    run(move || async move {
        let leader = PartitionLog::open(&ld, LogConfig::default()).await.unwrap();
        let follower = PartitionLog::open(&fd, LogConfig::default()).await.unwrap();
        leader.set_role(ReplicaRole::Leader { epoch: 0 });
        follower.set_role(ReplicaRole::Follower { epoch: 0 });
        let mut last = None;
        for i in 0..6 {
            last = Some(leader.append(produced(42, i * 4, 4, false)).await.unwrap());
        }
        let last = last.unwrap();
        leader.advance_high_watermark(leader.log_end_offset());
        replicate(&leader, &follower, 1 << 20).await;
        // The leader dies before answering; the producer retries on the new leader.
        follower.set_role(ReplicaRole::Leader { epoch: 1 });
        let retry = follower.append(produced(42, 20, 4, false)).await.unwrap();
        assert_eq!(
            (retry.base_offset, retry.last_offset),
            (last.base_offset, last.last_offset)
        );
        assert_eq!(follower.log_end_offset(), 24);
        // An older retry still within the five remembered batches, too.
        let older = follower.append(produced(42, 12, 4, false)).await.unwrap();
        assert_eq!((older.base_offset, older.last_offset), (12, 15));
        // The next sequence goes on; a gap is refused.
        let next = follower.append(produced(42, 24, 2, false)).await.unwrap();
        assert_eq!((next.base_offset, next.last_offset), (24, 25));
        assert!(matches!(
            follower.append(produced(42, 40, 1, false)).await,
            Err(StorageError::OutOfOrderSequence(_))
        ));
        let hs = headers(&follower, 24).await;
        assert_eq!(hs[0].partition_leader_epoch, 1);
    });
}

/// Transaction markers replicate: the follower ends the same transactions, indexes the same
/// aborted ones and computes the same last stable offset.
#[test]
fn markers_replicate_with_their_transaction_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (ld, fd) = (tmp.path().join("l/t-0"), tmp.path().join("f/t-0"));
    let fd2 = fd.clone();
    run(move || async move {
        let leader = PartitionLog::open(&ld, small_segments()).await.unwrap();
        let follower = PartitionLog::open(&fd, small_segments()).await.unwrap();
        leader.set_role(ReplicaRole::Leader { epoch: 2 });
        follower.set_role(ReplicaRole::Follower { epoch: 2 });
        let a1 = leader.append(produced(9, 0, 3, true)).await.unwrap();
        leader.append(produced(10, 0, 2, true)).await.unwrap();
        leader.append(produced(9, 3, 2, true)).await.unwrap();
        let abort = leader.append_marker(marker(9, false)).unwrap();
        leader.wait_written(abort.last_offset).await.unwrap();
        let commit = leader.append_marker(marker(10, true)).unwrap();
        leader.wait_written(commit.last_offset).await.unwrap();
        for i in 0..10 {
            leader
                .append(produced(-1, 0, 1 + i % 2, false))
                .await
                .unwrap();
        }
        let open = leader.append(produced(11, 0, 2, true)).await.unwrap();
        // The leader's HW stops before the markers at first: the transactions stay unstable.
        leader.advance_high_watermark(abort.last_offset);
        replicate(&leader, &follower, 700).await;
        assert_eq!(follower.high_watermark(), abort.last_offset);
        assert_eq!(follower.last_stable_offset(), a1.base_offset);
        assert_eq!(leader.last_stable_offset(), a1.base_offset);
        leader.advance_high_watermark(leader.log_end_offset());
        follower.advance_high_watermark(leader.high_watermark());
        assert_eq!(follower.last_stable_offset(), open.base_offset);
        assert_eq!(leader.last_stable_offset(), open.base_offset);
        let want = vec![AbortedTxn {
            producer_id: 9,
            first_offset: a1.base_offset,
        }];
        let hw = follower.high_watermark();
        assert_eq!(follower.aborted_transactions(0, hw), want);
        assert_eq!(leader.aborted_transactions(0, hw), want);
        assert_eq!(
            follower.ongoing_transactions(),
            vec![(11, open.base_offset)]
        );
        assert_eq!(follower.producers(), leader.producers());
        // Control batches went through verbatim, with the leader's epoch.
        let hs = headers(&follower, abort.last_offset).await;
        assert!(hs[0].is_control() && hs[1].is_control());
        assert_eq!(hs[0].partition_leader_epoch, 2);
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
    run(move || async move {
        let log = PartitionLog::open(&fd2, small_segments()).await.unwrap();
        log.set_role(ReplicaRole::Follower { epoch: 2 });
        log.advance_high_watermark(i64::MAX);
        assert_eq!(
            log.aborted_transactions(0, log.high_watermark()),
            vec![AbortedTxn {
                producer_id: 9,
                first_offset: 0
            }]
        );
        assert_eq!(log.ongoing_transactions().len(), 1);
    });
}

#[test]
fn wait_high_watermark_ends_with_the_role() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&dir, LogConfig::default())
                .await
                .unwrap(),
        );
        log.set_role(ReplicaRole::Leader { epoch: 4 });
        let a = log.append(batch(3, 10, 0, 1)).await.unwrap();
        let l = log.clone();
        let ok = glommio::spawn_local(async move { l.wait_high_watermark(a.last_offset).await });
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        log.advance_high_watermark(2);
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        log.advance_high_watermark(3);
        ok.await.unwrap();

        let b = log.append(batch(2, 10, 0, 1)).await.unwrap();
        let l = log.clone();
        let fails = glommio::spawn_local(async move { l.wait_high_watermark(b.last_offset).await });
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        // Re-elected at a later epoch counts as a change too: the wait's epoch is gone.
        log.set_role(ReplicaRole::Leader { epoch: 5 });
        let err = fails.await.unwrap_err();
        assert!(matches!(err, StorageError::NotLeaderOrFollower(_)), "{err}");
        assert_eq!(err.error_code(), NOT_LEADER_OR_FOLLOWER);

        let l = log.clone();
        let fails = glommio::spawn_local(async move { l.wait_high_watermark(b.last_offset).await });
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        log.set_role(ReplicaRole::Follower { epoch: 6 });
        assert_eq!(
            fails.await.unwrap_err().error_code(),
            NOT_LEADER_OR_FOLLOWER
        );
        // Already past: no wait, whatever the role.
        log.advance_high_watermark(5);
        log.wait_high_watermark(4).await.unwrap();
        // Single: the written end.
        log.set_role(ReplicaRole::Single);
        log.wait_high_watermark(4).await.unwrap();
        assert_eq!(log.high_watermark(), log.log_end_offset());
    });
}

/// A follower's fetch on the leader waits for writes, not for the high watermark.
#[test]
fn wait_for_write_wakes_on_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(
            PartitionLog::open(&dir, LogConfig::default())
                .await
                .unwrap(),
        );
        log.set_role(ReplicaRole::Leader { epoch: 0 });
        let written = glommio::spawn_local(log.wait_for_write());
        let readable = log.wait_for_append();
        log.append(batch(1, 10, 0, 1)).await.unwrap();
        written.await;
        // The high watermark did not move: consumer long-polls still wait.
        let res = futures_lite::future::or(
            async {
                readable.await;
                true
            },
            async {
                glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
                false
            },
        )
        .await;
        assert!(!res);
    });
}

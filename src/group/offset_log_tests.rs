//! Durable offsets store: concurrent commits, reload after close, tombstones, compaction and
//! recovery of an interrupted rewrite.

use super::*;
use crate::storage::keyed_log::with_suffix;

fn key(g: &str, t: &str, p: i32) -> OffsetKey {
    OffsetKey {
        group: g.into(),
        topic: t.into(),
        partition: p,
    }
}

fn val(o: i64, meta: &str) -> Option<CommittedOffset> {
    Some(CommittedOffset {
        offset: o,
        leader_epoch: 2,
        metadata: meta.into(),
        commit_timestamp: 1234,
        expire_timestamp: None,
    })
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move { f().await })
        .unwrap()
        .join()
        .unwrap();
}

fn cfg(dir: &Path) -> OffsetStoreConfig {
    let mut c = OffsetStoreConfig::new(dir);
    c.num_partitions = 4;
    c
}

#[test]
fn concurrent_commits_are_batched_and_survive_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let store = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200i64 {
            let s = store.clone();
            tasks.push(glommio::spawn_local(async move {
                let g = format!("g{}", i % 5);
                s.write(
                    &g,
                    vec![(key(&g, "t", (i % 7) as i32), val(i, &format!("m{i}")))],
                )
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // A later commit overwrites, a tombstone deletes.
        store
            .write("g0", vec![(key("g0", "t", 0), val(9999, "last"))])
            .await
            .unwrap();
        store
            .write("g1", vec![(key("g1", "t", 1), None)])
            .await
            .unwrap();
        let before: Vec<_> = (0..5)
            .map(|g| store.table().group(&format!("g{g}")))
            .collect();
        assert_eq!(store.table().get("g0", "t", 0).unwrap().metadata, "last");
        assert!(store.table().get("g1", "t", 1).is_none());
        let total: u64 = (0..4).map(|p| store.log_records(p)).sum();
        assert_eq!(total, 202);
        store.close().await.unwrap();

        let again = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        let after: Vec<_> = (0..5)
            .map(|g| again.table().group(&format!("g{g}")))
            .collect();
        assert_eq!(before, after);
        assert_eq!(again.table().get("g0", "t", 0).unwrap().offset, 9999);
        assert_eq!(again.table().get("g2", "t", 2).unwrap().metadata, "m177");
        again.close().await.unwrap();
    });
}

#[test]
fn only_owned_partitions_are_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let store = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        for g in ["a", "b", "c", "d", "e", "f"] {
            store
                .write(g, vec![(key(g, "t", 0), val(1, ""))])
                .await
                .unwrap();
        }
        store.close().await.unwrap();
        let p = partition_for("a", 4);
        let part = OffsetStore::load(cfg(&dir), |x| x == p).await.unwrap();
        for g in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(part.table().has_group(g), partition_for(g, 4) == p, "{g}");
        }
        part.close().await.unwrap();
    });
}

#[test]
fn compaction_rewrites_log_to_live_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let mut c = cfg(&dir);
        c.compact_min_records = 50;
        let store = OffsetStore::load(c.clone(), |_| true).await.unwrap();
        let p = partition_for("g", 4);
        for i in 0..120 {
            store
                .write("g", vec![(key("g", "t", i % 3), val(i as i64, "x"))])
                .await
                .unwrap();
        }
        // Rewritten at least once: far fewer records than commits.
        assert!(store.log_records(p) < 60, "{}", store.log_records(p));
        assert!(!with_suffix(&partition_dir(&dir, p), ".old").exists());
        store.close().await.unwrap();
        let again = OffsetStore::load(c, |_| true).await.unwrap();
        assert_eq!(again.table().get("g", "t", 2).unwrap().offset, 119);
        assert_eq!(again.table().get("g", "t", 0).unwrap().offset, 117);
        assert_eq!(again.table().len(), 3);
        again.close().await.unwrap();
    });
}

#[test]
fn interrupted_rewrite_is_finished_or_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("__consumer_offsets-1");
    // Crash after the old dir was moved away: the complete .compact becomes the log.
    std::fs::create_dir_all(with_suffix(&d, ".compact")).unwrap();
    std::fs::write(with_suffix(&d, ".compact").join("marker"), b"new").unwrap();
    std::fs::create_dir_all(with_suffix(&d, ".old")).unwrap();
    recover_dirs(&d).unwrap();
    assert_eq!(std::fs::read(d.join("marker")).unwrap(), b"new");
    assert!(!with_suffix(&d, ".old").exists());
    // Crash while writing .compact: it is discarded, the log stays.
    std::fs::create_dir_all(with_suffix(&d, ".compact")).unwrap();
    recover_dirs(&d).unwrap();
    assert!(!with_suffix(&d, ".compact").exists());
    assert!(d.join("marker").exists());
}

fn txn_val(o: i64) -> CommittedOffset {
    CommittedOffset {
        offset: o,
        leader_epoch: 1,
        metadata: "txn".into(),
        commit_timestamp: 99,
        expire_timestamp: None,
    }
}

/// Appends a Kafka end-transaction marker to `group`'s offsets partition directly in its log
/// (not through the store), to exercise the reload of markers: through
/// `PartitionLog::append_marker`, or, where the partition log cannot write markers, as a
/// hand-built control batch of the same layout.
async fn append_raw_marker(dir: &Path, group: &str, pid: i64, epoch: i16, commit: bool) {
    let p = partition_for(group, 4);
    let log = PartitionLog::open(partition_dir(dir, p), log_config(&cfg(dir)))
        .await
        .unwrap();
    let marker = TxnMarker {
        producer_id: pid,
        producer_epoch: epoch,
        commit,
        coordinator_epoch: 0,
    };
    let info = match log.append_marker(marker) {
        Ok(info) => info,
        Err(_) => {
            // Sequenced like a data batch of the producer (the only check a log without
            // marker support applies to it).
            let res = log.read(log.log_start_offset(), 1 << 20).await.unwrap();
            let mut seq = 0;
            for slice in &res.slices {
                let mut buf = Bytes::from(slice.read_to_vec().unwrap());
                for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
                    for r in set.records {
                        if r.producer_id == pid && r.producer_epoch == epoch {
                            seq = r.sequence + 1;
                        }
                    }
                }
            }
            let mut key = BytesMut::new();
            key.extend_from_slice(&0i16.to_be_bytes());
            key.extend_from_slice(&(commit as i16).to_be_bytes());
            let mut value = BytesMut::new();
            value.extend_from_slice(&0i16.to_be_bytes());
            value.extend_from_slice(&0i32.to_be_bytes());
            let rec = Record {
                transactional: true,
                control: true,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: seq,
                timestamp: 1,
                key: Some(key.freeze()),
                value: Some(value.freeze()),
                headers: Default::default(),
                delete_horizon: false,
            };
            let mut out = BytesMut::new();
            let opts = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut out, [rec].iter(), &opts).unwrap();
            log.append(out.freeze()).await.unwrap()
        }
    };
    log.wait_durable(info.last_offset).await.unwrap();
    log.close().await.unwrap();
}

/// Reads back every batch of `group`'s partition: (transactional, control, producer id) per
/// record.
async fn batches(dir: &Path, group: &str) -> Vec<(bool, bool, i64)> {
    let p = partition_for(group, 4);
    let log = PartitionLog::open(partition_dir(dir, p), log_config(&cfg(dir)))
        .await
        .unwrap();
    let mut out = Vec::new();
    let res = log.read(log.log_start_offset(), 1 << 20).await.unwrap();
    for slice in &res.slices {
        let mut buf = Bytes::from(slice.read_to_vec().unwrap());
        for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            for r in set.records {
                out.push((r.transactional, r.control, r.producer_id));
            }
        }
    }
    log.close().await.unwrap();
    out
}

#[test]
fn transactional_offsets_stay_pending_and_reload_by_their_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let store = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        store
            .write("g", vec![(key("g", "t", 0), val(5, "plain"))])
            .await
            .unwrap();
        // Producer 1 commits, producer 2 aborts, producer 3 never gets a marker.
        for (pid, p, o) in [(1i64, 0, 10i64), (2, 1, 20), (3, 2, 30)] {
            store
                .write_txn("g", pid, 0, vec![(key("g", "t", p), txn_val(o))])
                .await
                .unwrap();
        }
        // Same producer and epoch again: the batch continues its sequence (accepted).
        store
            .write_txn("g", 1, 0, vec![(key("g", "t", 3), txn_val(40))])
            .await
            .unwrap();
        assert_eq!(store.table().get("g", "t", 0).unwrap().offset, 5);
        assert!(store.table().get("g", "t", 3).is_none());
        assert!(store.table().has_pending("g", "t", 0));
        assert_eq!(store.table().pending_len(), 4);
        assert!(store.txn_open("g", 1) && !store.txn_open("g", 9));
        store.close().await.unwrap();
        assert_eq!(
            batches(&dir, "g").await,
            vec![
                (false, false, -1),
                (true, false, 1),
                (true, false, 2),
                (true, false, 3),
                (true, false, 1)
            ]
        );

        // Without markers, a reload keeps all of them pending.
        let again = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        assert_eq!(again.table().pending_len(), 4);
        assert_eq!(again.table().get("g", "t", 0).unwrap().offset, 5);
        again.close().await.unwrap();

        append_raw_marker(&dir, "g", 1, 0, true).await;
        append_raw_marker(&dir, "g", 2, 0, false).await;
        let again = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        {
            let t = again.table();
            assert_eq!(t.get("g", "t", 0).unwrap().offset, 10);
            assert_eq!(t.get("g", "t", 3).unwrap().offset, 40);
            assert!(t.get("g", "t", 1).is_none(), "aborted offset applied");
            assert!(t.get("g", "t", 2).is_none());
            assert!(t.has_pending("g", "t", 2) && !t.has_pending("g", "t", 1));
            assert_eq!(t.pending_len(), 1);
        }
        // After reload the producer's sequence continues from the log.
        again
            .write_txn("g", 3, 0, vec![(key("g", "t", 4), txn_val(50))])
            .await
            .unwrap();
        again.close().await.unwrap();
    });
}

#[test]
fn older_producer_epoch_is_fenced_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let store = OffsetStore::load(cfg(&dir), |_| true).await.unwrap();
        store
            .write_txn("g", 7, 3, vec![(key("g", "t", 0), txn_val(1))])
            .await
            .unwrap();
        // A zombie (epoch 2) and a plain commit queued together: only the zombie fails.
        let s1 = store.clone();
        let zombie = glommio::spawn_local(async move {
            s1.write_txn("g", 7, 2, vec![(key("g", "t", 1), txn_val(2))])
                .await
        });
        let s2 = store.clone();
        let plain = glommio::spawn_local(async move {
            s2.write("g", vec![(key("g", "t", 2), val(3, ""))]).await
        });
        assert_eq!(
            zombie.await,
            Err(ResponseError::InvalidProducerEpoch.code())
        );
        assert_eq!(plain.await, Ok(()));
        assert!(!store.table().has_pending("g", "t", 1));
        assert_eq!(store.table().get("g", "t", 2).unwrap().offset, 3);
        // A new epoch starts its sequence again and is accepted.
        store
            .write_txn("g", 7, 4, vec![(key("g", "t", 1), txn_val(4))])
            .await
            .unwrap();
        assert!(store.table().has_pending("g", "t", 1));
        store.close().await.unwrap();
    });
}

#[test]
fn compaction_keeps_pending_transactional_offsets_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let mut c = cfg(&dir);
        c.compact_min_records = 50;
        let store = OffsetStore::load(c.clone(), |_| true).await.unwrap();
        let p = partition_for("g", 4);
        store
            .write("g", vec![(key("g", "t", 9), val(1, "before"))])
            .await
            .unwrap();
        store
            .write_txn("g", 5, 2, vec![(key("g", "t", 9), txn_val(90))])
            .await
            .unwrap();
        store
            .write_txn("g", 6, 0, vec![(key("g", "t", 8), txn_val(80))])
            .await
            .unwrap();
        for i in 0..120 {
            store
                .write("g", vec![(key("g", "t", i % 3), val(i as i64, "x"))])
                .await
                .unwrap();
        }
        assert!(store.log_records(p) < 60, "{}", store.log_records(p));
        {
            let t = store.table();
            assert!(t.has_pending("g", "t", 9) && t.has_pending("g", "t", 8));
            assert_eq!(t.get("g", "t", 9).unwrap().offset, 1);
            assert!(t.get("g", "t", 8).is_none());
        }
        // A sequence after the rewrite follows the rewritten batch.
        store
            .write_txn("g", 6, 0, vec![(key("g", "t", 7), txn_val(70))])
            .await
            .unwrap();
        store.close().await.unwrap();
        // The rewritten log holds the pending offsets as transactional batches of their
        // producers, in their log order after the plain commit of partition 9 they follow.
        let recs = batches(&dir, "g").await;
        let txn: Vec<i64> = recs.iter().filter(|r| r.0).map(|r| r.2).collect();
        assert_eq!(txn, vec![5, 6, 6]);
        assert!(recs.iter().all(|r| !r.1), "markers survive a rewrite");

        let again = OffsetStore::load(c.clone(), |_| true).await.unwrap();
        assert_eq!(again.table().pending_len(), 3);
        assert_eq!(again.table().get("g", "t", 2).unwrap().offset, 119);
        again.close().await.unwrap();
        // Committing producer 5 now: its offset was written after the plain one, so it wins.
        append_raw_marker(&dir, "g", 5, 2, true).await;
        append_raw_marker(&dir, "g", 6, 0, false).await;
        let again = OffsetStore::load(c, |_| true).await.unwrap();
        assert_eq!(again.table().get("g", "t", 9).unwrap().offset, 90);
        assert!(again.table().get("g", "t", 8).is_none());
        assert_eq!(again.table().pending_len(), 0);
        again.close().await.unwrap();
    });
}

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
